"""Dataset scans in headless Chromium against gunicorn and the session's worker: a ZIP uploaded through
the scans page, its progress followed to "done"; then the unit browser of a finished scan: a layer
picked, the grid paged and sorted, a unit jumped to, a unit opened with its top and bottom images and their
mean activations, and a unit the scan did not project projected on demand while its dialog is open."""
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.support.browser import status_recorder
from tests.support.paths import ARTIFACTS
from tests.support.scan_uploads import build_zip, photo_members
from visnet.scan import load_table

pytestmark = pytest.mark.browser

SCAN_TIMEOUT_MS = 180_000
# The scan page's status lines, with how many stage bars and whether the unit browser shows.
RECORD_SCAN_STATUSES = status_recorder("__scanStatuses", "scan-status", {
    "bars": 'document.querySelectorAll("#scan-stages progress").length',
    "browser": '!document.getElementById("browser").hidden'})
IMAGES_LOADED = "(selector) => Array.from(document.querySelectorAll(selector)).every((i) => i.complete && i.naturalWidth > 0)"


def wait_until_done(page):
    page.wait_for_function("() => ['Done', 'Failed'].some((word) => "
                           "document.getElementById('scan-status').textContent.startsWith(word))",
                           timeout=SCAN_TIMEOUT_MS)
    assert page.inner_text("#scan-status") == "Done", page.inner_text("#scan-status")
    page.wait_for_selector("#unit-grid button.unit")


def unit_means(page, which):
    return [float(text) for text in page.locator(f"#unit-{which} .mean").all_inner_texts()]


def test_a_zip_uploaded_through_the_page_is_scanned_and_browsed(page):
    page.add_init_script(RECORD_SCAN_STATUSES)
    members = photo_members(photos=("astronaut", "coffee", "chelsea", "rocket"), generated=2, grey=False)
    page.goto("/scans")
    assert page.title().startswith("Dataset scans")
    page.set_input_files("#archive", files=[{"name": "photos.zip", "mimeType": "application/zip",
                                              "buffer": build_zip(members)}])
    for checkbox in page.locator("input[name=layer]").all():
        checkbox.uncheck()
    page.check("input[name=layer][value=block1_pool]")
    page.fill("#k", "3")
    page.click("details summary")
    page.fill("#chunk_size", "2")
    page.fill("#project_channels", "2")
    page.click("#scan-submit")
    page.wait_for_url("**/scans/*")
    scan_id = page.url.split("/scans/", 1)[1].split("?", 1)[0]

    wait_until_done(page)
    statuses = page.evaluate("window.__scanStatuses")
    before = [entry for entry in statuses if entry["text"] != "Done"]
    assert before, f"no progress was shown before the end: {statuses}"
    assert all(entry["bars"] >= 1 for entry in statuses)
    # The status words and the API's message never say the same thing twice ("Reading the images: reading the images").
    repeated = [entry["text"] for entry in statuses
                if ": " in entry["text"] and entry["text"].split(": ", 1)[1].lower().startswith(
                    entry["text"].split(": ", 1)[0].lower())]
    assert repeated == [], statuses
    assert page.eval_on_selector_all("#scan-stages progress", "bars => bars.every(bar => bar.value >= bar.max)")
    assert page.inner_text("#figure-chunks") == "3 of 3"
    assert float(page.inner_text("#figure-rate")) > 0
    assert page.inner_text("#figure-left") == "done"
    assert "6 images" in page.inner_text("#scan-summary")
    assert page.inner_text("#scan-skipped-summary") == "1 file skipped"  # notes.txt

    assert page.locator("#unit-grid button.unit").count() == 32
    assert page.inner_text("#page-label").startswith("Page 1 of 2")
    # The scan projected its two units with the highest top activation: first when sorted that way.
    page.select_option("#unit-sort", "top")
    page.wait_for_function("() => document.getElementById('page-label').textContent.includes('by top activation')")
    page.wait_for_function(IMAGES_LOADED, arg="#unit-grid button.unit:nth-child(-n+2) img")
    assert page.locator("#unit-grid button.unit >> nth=1").locator("img.crop").count() == 3  # projected unit
    assert page.locator("#unit-grid button.unit >> nth=2").locator("img.crop").count() == 0
    assert page.inner_text("#unit-grid button.unit >> nth=2 >> .empty-note") in (
        "not projected: open the unit to project it", "dead: zero on every image")
    page.screenshot(path=str(ARTIFACTS / "scan-uploaded.png"), full_page=False)

    second = page.get_attribute("#unit-grid button.unit >> nth=1", "data-channel")
    page.click("#unit-grid button.unit >> nth=1")
    page.wait_for_selector("#unit-dialog[open]")
    assert page.inner_text("#unit-title") == f"block1_pool · unit {second}"
    assert page.locator("#unit-top figure").count() == 3 and page.locator("#unit-bottom figure").count() == 3
    top, bottom = unit_means(page, "top"), unit_means(page, "bottom")
    assert top == sorted(top, reverse=True) and bottom == sorted(bottom) and top[0] >= bottom[0]
    # image, patch and strongest activation at once; the whole map's projection when its job is done
    page.wait_for_selector("#unit-top figure >> nth=0 >> img.full", timeout=SCAN_TIMEOUT_MS)
    assert page.locator("#unit-top figure >> nth=0").locator("img").count() == 4
    page.wait_for_function(IMAGES_LOADED, arg="#unit-dialog img")
    listed = requests.get(page.url.split("/scans/")[0] + "/api/scans", timeout=10).json()["scans"]
    assert {"id": scan_id, "status": "done"} in [{"id": s["id"], "status": s["status"]} for s in listed]


def test_a_finished_scan_is_browsed_layer_by_layer(page, web_scan, live_server):
    scan_id = web_scan["id"]
    page.goto(f"/scans/{scan_id}")
    wait_until_done(page)
    assert page.locator("#layer-picker option").all_inner_texts() == ["block1_pool (64 units)", "block2_pool (128 units)"]

    page.select_option("#layer-picker", "block2_pool")
    page.wait_for_function("() => document.getElementById('page-label').textContent.startsWith('Page 1 of 4')")
    assert page.locator("#unit-grid button.unit").count() == 32
    assert page.is_disabled("#page-prev") and page.is_enabled("#page-next")
    page.click("#page-next")
    page.click("#page-next")
    page.wait_for_function("() => document.getElementById('page-label').textContent.startsWith('Page 3 of 4')")
    assert page.inner_text("#unit-grid button.unit >> nth=0 >> .unit-number") == "Unit 64"
    assert "layer=block2_pool" in page.url and "page=3" in page.url

    page.select_option("#per-page", "512")
    page.wait_for_function("() => document.getElementById('page-label').textContent.startsWith('Page 1 of 1')")
    assert page.locator("#unit-grid button.unit").count() == 128
    assert page.is_disabled("#page-next")
    page.screenshot(path=str(ARTIFACTS / "scan-grid.png"), full_page=False)

    # An old link's page, past the last at its page size (the API's 404 page_not_found): the first page instead.
    page.goto(f"/scans/{scan_id}?layer=block2_pool&page=9&per_page=32")
    page.wait_for_function("() => document.getElementById('page-label').textContent.startsWith('Page 1 of 4')")
    assert page.is_hidden("#browser-error")

    # A unit's link: the page opens on it, with its top and bottom images and their mean activations.
    page.goto(f"/scans/{scan_id}?layer=block2_pool&page=1&per_page=32&unit=1")
    page.wait_for_selector("#unit-dialog[open]", timeout=SCAN_TIMEOUT_MS)
    assert page.inner_text("#unit-title") == "block2_pool · unit 1"
    expected = requests.get(f"{live_server}/api/scans/{scan_id}/layers/block2_pool/units/1", timeout=10).json()
    for which in ("top", "bottom"):
        shown = unit_means(page, which)
        assert len(shown) == 4
        assert shown == pytest.approx([entry["mean"] for entry in expected[which]], rel=1e-3, abs=1e-6)
        captions = page.locator(f"#unit-{which} figcaption").all_inner_texts()
        assert [caption.split("\n")[-1] for caption in captions] == [entry["path"] for entry in expected[which]]
    page.wait_for_selector("#unit-top figure >> nth=0 >> img.full", timeout=SCAN_TIMEOUT_MS)
    # image, patch, strongest activation, whole map; an image where the unit is zero has nothing to project
    shown = [4 if entry["mean"] > 0 else 1 for entry in expected["top"][:2]] + [1, 1]
    assert [page.locator(f"#unit-top figure >> nth={rank}").locator("img").count() for rank in range(4)] == shown
    page.wait_for_function(IMAGES_LOADED, arg="#unit-dialog img")
    page.keyboard.press("Escape")
    page.wait_for_selector("#unit-dialog:not([open])", state="attached")
    assert "unit=" not in page.url


def test_units_are_sorted_jumped_to_and_projected_on_demand(page, web_scan, live_server, service_env):
    scan_id = web_scan["id"]
    table = load_table(Path(service_env["RESULTS_DIR"]) / "scans" / scan_id, "block2_pool")
    by_top = sorted(range(128), key=lambda unit: (-float(table[:, unit].max()), unit))
    page.goto(f"/scans/{scan_id}?layer=block2_pool")
    wait_until_done(page)
    assert "Selectivity" in page.inner_text("#unit-measures") and "standard deviation" in page.inner_text("#unit-measures")

    page.select_option("#unit-sort", "top")
    page.wait_for_function("() => document.getElementById('page-label').textContent.includes('by top activation')")
    channels = [int(value) for value in page.eval_on_selector_all(
        "#unit-grid button.unit", "buttons => buttons.map((button) => button.dataset.channel)")]
    assert channels == by_top[:32] and "sort=top" in page.url
    page.select_option("#unit-sort", "selectivity")
    page.wait_for_function("() => document.getElementById('page-label').textContent.includes('by selectivity')")
    shown = [float(text.split("selectivity ")[1]) for text in page.locator("#unit-grid .unit-figures").all_inner_texts()
             if not text.endswith("–")]
    assert shown == sorted(shown, reverse=True) and len(shown) > 1

    # Jump to a unit the scan did not project (and no other test opened): its page, its dialog, and its
    # projection, asked for by the page, filling the dialog when the worker is done.
    live = [unit for unit in reversed(by_top) if np.sort(table[:, unit])[-2] > 0]  # fires on two images at least
    unit = live[3]
    page.fill("#unit-number", str(unit))
    page.click("#unit-jump button")
    page.wait_for_selector("#unit-dialog[open]")
    assert page.inner_text("#unit-title") == f"block2_pool · unit {unit}"
    assert page.locator(f'#unit-grid button.unit.current[data-channel="{unit}"]').count() == 1
    assert page.locator("#unit-top figure >> nth=0 >> .slot-note").count() > 0  # labelled, not blank
    page.wait_for_selector("#unit-top figure >> nth=1 >> img.full", timeout=SCAN_TIMEOUT_MS)
    assert page.inner_text("#unit-projection-state") == ""
    assert [page.locator(f"#unit-top figure >> nth={rank}").locator("img").count() for rank in range(4)] == [4, 4, 1, 1]
    page.wait_for_function(IMAGES_LOADED, arg="#unit-dialog img")
    page.screenshot(path=str(ARTIFACTS / "scan-unit.png"), full_page=False)
    page.keyboard.press("Escape")
    page.wait_for_selector(f'#unit-grid button.unit[data-channel="{unit}"] img.crop')  # the grid shows it too

    page.fill("#unit-number", "128")
    page.click("#unit-jump button")
    page.wait_for_selector("#browser-error:not([hidden])")
    assert "0 to 127" in page.inner_text("#browser-error")
