"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against the page served by
gunicorn, with the session's real worker: upload, progress, result sheet, enlarge, ZIP, a typed
channel, drag and drop, examples, a phone-sized screen. Screenshots go to test-artifacts/ (and to
docs/screenshot.png with --update-screenshot)."""
import base64
import hashlib
import json
import shutil
import zipfile
from urllib.parse import urlsplit

import pytest

from tests.support.browser import ALL_IMAGES_LOADED, JOB_TIMEOUT_MS, wait_for_sheet
from tests.support.paths import ARTIFACTS, EXAMPLES, PROJECT_ROOT
from tests.support.service import enqueue_held_deconv

pytestmark = pytest.mark.browser


def test_upload_progress_sheet_enlarge_and_zip(page, request):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto("/")
    assert page.title().startswith("Upload a photo")
    page.set_input_files("#image", str(EXAMPLES / "chelsea.jpg"))
    # The preview has a size once the browser has decoded the photo, later than the input's change under load.
    page.wait_for_selector("#preview", state="visible", timeout=10_000)
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]

    wait_for_sheet(page)
    statuses = page.evaluate("window.__statuses")
    pending = [entry for entry in statuses if not entry["text"].startswith("Finished")]
    assert pending, f"no progress was shown before the result: {statuses}"
    # While it runs, the sheet may show the pictures written so far (test_pictures_show_as_they_are_written).
    assert all(entry["bars"] >= 1 and not entry["actions"] for entry in pending)
    assert page.inner_text("#status").startswith("Finished")
    assert page.eval_on_selector_all("#stages progress", "bars => bars.every(bar => bar.value >= bar.max)")

    rows = page.locator("#sheet .layer-row:not(.sheet-controls)")
    # the photo as the network saw it, five pooling layers and the summary sheet, and the rule and seed controls
    assert rows.count() == 7
    assert page.is_checked("#rule-deconvnet") and page.eval_on_selector("#sheet-seed", "select => select.value") == "both"
    assert page.locator("#sheet .feature").count() == 15
    images = page.eval_on_selector_all("#sheet img", "all => all.map(i => [i.naturalWidth, i.getAttribute('alt')])")
    # Per feature (seed both, the default): overlay, whole-map projection, strongest-activation patch, photo patch.
    assert len(images) == 15 * 4 + 2 and all(width > 0 and alt for width, alt in images)  # and input.png, summary
    captions = page.locator("#sheet .feature > figcaption").all_inner_texts()
    assert len(captions) == 15 and all("channel" in caption and "norm" in caption for caption in captions)
    first_channel = page.get_attribute("#sheet .feature[data-layer=block5_pool]", "data-channel")
    page.screenshot(path=str(ARTIFACTS / "result-sheet.png"), full_page=True)
    if request.config.getoption("--update-screenshot"):
        (PROJECT_ROOT / "docs").mkdir(exist_ok=True)
        # The sheet itself: its rule and seed controls and the first layers' rows (the page above it holds the
        # status, the stages and the tabs' forms).
        top = page.locator("#sheet").bounding_box()["y"]
        page.screenshot(path=str(PROJECT_ROOT / "docs" / "screenshot.png"), full_page=True,
                        clip={"x": 0, "y": top - 8, "width": 1280, "height": 1300})

    page.click("#sheet .feature a.enlarge >> nth=1")
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function("() => document.getElementById('viewer-image').naturalWidth > 0")
    box = page.locator("#viewer-image").bounding_box()
    assert box["width"] > 400  # larger than the 224-pixel thumbnail
    assert "channel" in page.inner_text("#viewer-caption")
    page.screenshot(path=str(ARTIFACTS / "enlarged.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer:not([open])", state="attached")

    with page.expect_download() as download:
        page.click("#download")
    path = download.value.path()
    shutil.copy(path, ARTIFACTS / f"{job_id}.zip")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read(f"{job_id}/manifest.json"))
    # The manifest names the photo: the stored upload (the SHA-256 of its bytes), and the copy the network saw.
    photo = hashlib.sha256((EXAMPLES / "chelsea.jpg").read_bytes()).hexdigest() + ".jpg"
    assert manifest["image"] == photo and manifest["input"]["file"] == "input.png" and manifest["input"]["image"] == photo
    assert f"{job_id}/input.png" in names
    assert sum(name.endswith(".png") for name in names) == 15 * 4 + 2
    assert f"{job_id}/block5_pool_ch{first_channel}_patch.png" in names
    assert f"{job_id}/block5_pool_ch{first_channel}_photo_patch.png" in names


def test_pictures_show_as_they_are_written(page, service_env, tmp_path):
    """A running job's pictures appear on its page as they land: the real job, its writer held after the first
    feature (tests.support.fault_jobs), then let go; the finished sheet replaces them."""
    gate = tmp_path / "gate"
    job_id = enqueue_held_deconv(service_env, gate, EXAMPLES / "coffee.jpg", layers="block1_pool", top_k="2")
    try:
        page.goto(f"/jobs/{job_id}")
        page.wait_for_selector("#sheet[data-partial] .feature img", timeout=JOB_TIMEOUT_MS)
        page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)
        assert page.get_attribute("#job", "data-status") == "started"
        assert page.inner_text("#status").startswith("Running")
        assert page.get_attribute("#sheet", "aria-busy") == "true" and page.is_hidden("#actions")
        assert page.locator("#sheet .feature").count() == 1 and page.locator("#sheet .feature img").count() == 4
        assert page.locator("#sheet .input-photo img").count() == 1  # the photo as the network saw it
        assert page.locator("#sheet a.summary").count() == 0
    finally:
        gate.touch()
    wait_for_sheet(page)
    assert page.inner_text("#status").startswith("Finished")
    assert page.locator("#sheet .feature").count() == 2 and page.locator("#sheet a.summary").count() == 1
    assert page.get_attribute("#sheet", "aria-busy") is None and page.is_visible("#actions")


def test_the_job_page_waits_for_changes_instead_of_polling(page, service_env, tmp_path):
    """The page long-polls its job (static/status.js): while nothing changes, one request waits on the server
    (since its revision, wait 10 s) where a schedule would have polled every 0.1 s; a change shows at once."""
    gate = tmp_path / "gate"
    job_id = enqueue_held_deconv(service_env, gate, EXAMPLES / "coffee.jpg", layers="block1_pool", top_k="3")
    polls = []
    page.on("request", lambda request: urlsplit(request.url).path == f"/api/jobs/{job_id}" and polls.append(request.url))
    try:
        page.goto(f"/jobs/{job_id}")
        page.wait_for_selector("#sheet[data-partial] .feature img", timeout=JOB_TIMEOUT_MS)
        page.wait_for_timeout(1000)  # the held writer's last progress lands
        before = len(polls)
        page.wait_for_timeout(2000)
        assert len(polls) - before <= 1, polls[before:]  # the writing stage's schedule: a poll every 0.1 s
        assert polls[0].endswith(f"/api/jobs/{job_id}")  # the first fetch has no revision yet
        assert all("since=" in url and "wait=10" in url for url in polls[1:]), polls
    finally:
        gate.touch()
    wait_for_sheet(page)
    assert page.locator("#sheet .feature").count() == 3


def test_typing_a_channel_projects_it(page):
    page.goto("/")
    page.set_input_files("#image", str(EXAMPLES / "chelsea.jpg"))
    page.click("#submit")  # the same photo and options: the finished job is reused
    page.wait_for_url("**/jobs/*")
    wait_for_sheet(page)
    first_job = page.url
    row = page.locator("#sheet .layer-row", has=page.locator("h2", has_text="block4_pool"))
    row.locator("input[type=number]").fill("100")
    row.locator("button", has_text="Project").click()
    page.wait_for_url(lambda url: url != first_job and "/jobs/" in url)
    wait_for_sheet(page)
    assert page.locator("#sheet .feature").count() == 1
    assert "channel 100" in page.inner_text("#sheet .feature > figcaption")

    channel_job = page.url
    row = page.locator("#sheet .layer-row:not(.sheet-controls):not(.sheet-input)").first
    row.locator("input[type=number]").fill("700")  # out of range for block4_pool's 512 channels
    row.locator("button", has_text="Project").click()
    page.wait_for_timeout(300)
    # The browser's own validation (max=511) stops it: no new job, no navigation.
    assert page.url == channel_job
    assert page.eval_on_selector("#sheet .layer-row:not(.sheet-controls):not(.sheet-input) input[type=number]",
                                 "input => !input.validity.valid")


def test_drag_and_drop_and_examples(page):
    page.goto("/")
    data = base64.b64encode((EXAMPLES / "coffee.jpg").read_bytes()).decode()
    page.evaluate("""(data) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.jpg", {type: "image/jpeg"}));
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", data)
    page.wait_for_function("() => document.getElementById('preview').naturalWidth > 0")
    assert "dropped.jpg" in page.get_attribute("#preview", "alt")
    page.screenshot(path=str(ARTIFACTS / "upload-dropped.png"), full_page=True)

    page.goto("/")
    assert not page.is_visible("#layer-choice")
    page.check("input[name=preset][value=custom]")
    assert page.is_visible("#layer-choice") and page.is_enabled("#layer-choice input >> nth=0")
    page.check("input[name=preset][value=pools]")
    page.click("button.example >> nth=0")
    page.wait_for_url("**/jobs/*")
    wait_for_sheet(page)


def test_errors_are_shown_on_the_page(page, tmp_path):
    page.goto("/")
    fake = tmp_path / "not-really.png"
    fake.write_text("this is text, not a PNG")
    page.set_input_files("#image", str(fake))
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    assert "accepted format" in page.inner_text("#error")
    assert page.url.endswith("/")


def test_usable_on_a_phone(browser, live_server, worker):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, base_url=live_server)
    page = context.new_page()
    sideways = "() => document.documentElement.scrollWidth - window.innerWidth"
    try:
        page.goto("/")
        assert page.evaluate(sideways) <= 0, "the upload page scrolls sideways on a phone"
        page.screenshot(path=str(ARTIFACTS / "phone-upload.png"), full_page=True)
        page.tap("button.example >> nth=0")
        page.wait_for_url("**/jobs/*")
        wait_for_sheet(page)
        assert page.evaluate(sideways) <= 0, "the result sheet scrolls sideways on a phone"
        page.screenshot(path=str(ARTIFACTS / "phone-sheet.png"), full_page=True)
    finally:
        context.close()
