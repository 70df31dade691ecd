"""Headless Chromium for the browser tests: Debian's binary, its flags for a closed network, and what the
pages are waited for by."""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
JOB_TIMEOUT_MS = 180_000

# Records every status line the job page shows, from the first one on.
RECORD_STATUSES = """
window.__statuses = [];
document.addEventListener("DOMContentLoaded", () => {
  const line = document.getElementById("status");
  if (!line) return;
  const shown = (id) => getComputedStyle(document.getElementById(id)).display !== "none";
  const record = () => window.__statuses.push({text: line.textContent, sheet: shown("sheet"),
                                               actions: shown("actions"),
                                               bars: document.querySelectorAll("#stages progress").length});
  new MutationObserver(record).observe(line, {childList: true, characterData: true, subtree: true});
});
"""
ALL_IMAGES_LOADED = ("() => Array.from(document.querySelectorAll('#sheet img'))"
                     ".every((image) => image.complete && image.naturalWidth > 0)")


def wait_for_sheet(page):
    page.wait_for_selector("#sheet .layer-row", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)
