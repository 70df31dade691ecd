"""Headless Chromium for the browser tests: Debian's binary, its flags for a closed network, and what the
pages are waited for by."""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
JOB_TIMEOUT_MS = 180_000



def status_recorder(variable: str, line_id: str, fields: dict) -> str:
    """An init script that keeps, in ``window[variable]``, every text the status line ``#line_id`` shows
    from the first one on, each with ``fields`` ({name: JavaScript expression}) read at that moment."""
    extra = "".join(f", {name}: {expression}" for name, expression in fields.items())
    return f"""
window.{variable} = [];
document.addEventListener("DOMContentLoaded", () => {{
  const line = document.getElementById("{line_id}");
  if (!line) return;
  const shown = (id) => getComputedStyle(document.getElementById(id)).display !== "none";
  const record = () => window.{variable}.push({{text: line.textContent{extra}}});
  new MutationObserver(record).observe(line, {{childList: true, characterData: true, subtree: true}});
}});
"""


# The job page's status lines, with whether the sheet and the actions show, and how many stage bars.
RECORD_STATUSES = status_recorder("__statuses", "status", {
    "sheet": 'shown("sheet")', "actions": 'shown("actions")',
    "bars": 'document.querySelectorAll("#stages progress").length'})
ALL_IMAGES_LOADED = ("() => Array.from(document.querySelectorAll('#sheet img'))"
                     ".every((image) => image.complete && image.naturalWidth > 0)")


def wait_for_sheet(page):
    """Until the finished job's sheet shows (not the pictures of a running one: ``data-partial``), every image loaded."""
    page.wait_for_selector("#sheet:not([data-partial]) .layer-row", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)
