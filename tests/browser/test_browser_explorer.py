"""The layer explorer (issue 13 point 2): opened from a layer row of the sheet, it shows every channel of the layer
as a thumbnail, sorts them by strength, projects a clicked channel on the same page (a second click reuses the
job), is keyboard navigable, and fits a 390 px phone. Writes docs/explorer.png with --update-screenshot."""
import pytest
import requests

from tests.support.browser import JOB_TIMEOUT_MS, wait_for_sheet
from tests.support.paths import ARTIFACTS, EXAMPLES, PROJECT_ROOT

pytestmark = pytest.mark.browser

LAYER = "block3_pool"  # 256 channels of 28×28
OPTIONS = {"layers": LAYER, "top_k": "2"}
PROJECTION_LOADED = ("() => { const images = Array.from(document.querySelectorAll('#projection-pictures img'));"
                     " return images.length > 0 && images.every((image) => image.complete && image.naturalWidth > 0)"
                     " && !document.getElementById('projection').hasAttribute('aria-busy'); }")
SIDEWAYS = "() => document.documentElement.scrollWidth - window.innerWidth"


def submit_job(live_server):
    photo = (EXAMPLES / "chelsea.jpg").read_bytes()
    response = requests.post(live_server + "/api/jobs", files={"image": ("chelsea.jpg", photo)}, data=OPTIONS,
                             timeout=30)
    assert response.status_code in (200, 202), response.text
    return response.json()


def channel_measures(live_server, job_id):
    """The feature-maps job the explorer runs (the same options, so the API answers the finished job)."""
    response = requests.post(live_server + "/api/jobs", data={"from_job": job_id, "method": "feature-maps",
                                                              "layer": LAYER, "scale": "per-channel"}, timeout=30)
    assert response.status_code == 200 and response.json()["reused"], response.text
    return response.json()["manifest"]["data"]["channels"]


def grid_order(page):
    return page.eval_on_selector_all("#channel-grid .thumb", "all => all.map((thumb) => Number(thumb.dataset.channel))")


def wait_for_grid(page):
    page.wait_for_selector("#channel-grid .thumb", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function("() => Array.from(document.querySelectorAll('.thumb-map')).every((map) =>"
                           " map.style.backgroundImage)")


def wait_for_projection(page, channel):
    page.wait_for_selector(f"#projection[data-channel='{channel}'] .picture[data-kind=reconstruction] img",
                           timeout=JOB_TIMEOUT_MS)
    page.wait_for_function(PROJECTION_LOADED, timeout=30_000)


def test_explore_a_layer_from_the_sheet_sort_and_project_in_place(page, live_server, request):
    job = submit_job(live_server)
    page.goto(job["links"]["page"])
    wait_for_sheet(page)
    links = page.locator("#sheet .layer-row a.explore-link")
    assert links.count() == 1  # one per layer row
    links.first.click()
    page.wait_for_url(f"**/jobs/{job['id']}/explore/{LAYER}")
    wait_for_grid(page)
    measures = channel_measures(live_server, job["id"])
    assert page.locator("#channel-grid .thumb").count() == len(measures) == 256

    # Strongest first by L2 norm (the default), by mean, or in channel order.
    by = lambda key: [entry["channel"] for entry in sorted(measures, key=lambda e: (-e[key], e["channel"]))]  # noqa: E731
    assert grid_order(page) == by("norm")
    page.check("input[name=sort][value=mean]")
    assert grid_order(page) == by("mean")
    assert "sort=mean" in page.url
    page.check("input[name=sort][value=channel]")
    assert grid_order(page) == list(range(256))
    page.check("input[name=sort][value=norm]")

    # Every thumbnail is named by its channel and measures; hovering one shows them.
    labels = page.eval_on_selector_all("#channel-grid .thumb", "all => all.map((thumb) => thumb.getAttribute('aria-label'))")
    strongest = measures[by("norm")[0]]
    prefix = f"Channel {strongest['channel']}: L2 norm "
    assert labels[0].startswith(prefix)
    assert float(labels[0][len(prefix):].split(",")[0]) == pytest.approx(strongest["norm"], rel=5e-3)
    assert all(label.startswith("Channel ") and "L2 norm" in label and "mean" in label for label in labels)
    page.hover("#channel-grid .thumb >> nth=3")
    assert page.inner_text("#explore-readout").startswith(f"Channel {by('norm')[3]}: L2 norm")

    # The sheet's own features are marked projected; another channel is projected by a small job, in place.
    on_sheet = {feature["channel"] for feature in job_document(live_server, job["id"])["manifest"]["layers"][0]["features"]}
    marked = set(page.eval_on_selector_all("#channel-grid .thumb.projected", "all => all.map((t) => Number(t.dataset.channel))"))
    assert marked == on_sheet
    channel = next(channel for channel in by("norm") if channel not in on_sheet)
    address = page.url.split("?")[0]
    posts = []
    page.on("request", lambda request: request.method == "POST" and posts.append(request.url))
    page.click(f"#channel-grid .thumb[data-channel='{channel}']")
    wait_for_projection(page, channel)
    assert page.url.split("?")[0] == address and len(posts) == 1
    kinds = page.eval_on_selector_all("#projection-pictures .picture", "all => all.map((p) => p.dataset.kind)")
    assert kinds == ["overlay", "reconstruction", "patch", "photo_patch"]
    assert page.inner_text("#projection-pictures .picture[data-kind=patch] .picture-label") == "Strongest activation · deconvnet"
    assert page.get_attribute("#projection", "aria-live") == "polite"
    assert f"Channel {channel}" in page.inner_text("#projection-status")
    projection_job = page.get_attribute("#projection", "data-job")
    child = job_document(live_server, projection_job)
    assert child["options"]["channels"] == [[LAYER, channel]] and child["options"]["top_k"] == 0
    assert page.is_visible(f"#channel-grid .thumb.projected[data-channel='{channel}']")
    if request.config.getoption("--update-screenshot"):
        (PROJECT_ROOT / "docs").mkdir(exist_ok=True)
        top = page.locator("#explorer").bounding_box()["y"]
        page.screenshot(path=str(PROJECT_ROOT / "docs" / "explorer.png"), full_page=True,
                        clip={"x": 0, "y": top - 8, "width": 1280, "height": 1160})
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)

    # Another channel, then the first again: its finished job is shown without a new submission.
    sheet_channel = sorted(on_sheet)[0]
    page.click(f"#channel-grid .thumb[data-channel='{sheet_channel}']")
    wait_for_projection(page, sheet_channel)
    assert len(posts) == 1  # the sheet's own feature needs no job
    page.click(f"#channel-grid .thumb[data-channel='{channel}']")
    wait_for_projection(page, channel)
    assert len(posts) == 1 and page.get_attribute("#projection", "data-job") == projection_job

    # After a reload the channel is still marked, and projecting it again answers the same finished job.
    page.reload()
    wait_for_grid(page)
    wait_for_projection(page, channel)  # the address names the channel
    assert page.get_attribute("#projection", "data-job") == projection_job
    assert page.is_visible(f"#channel-grid .thumb.projected[data-channel='{channel}']")


def job_document(live_server, job_id):
    return requests.get(f"{live_server}/api/jobs/{job_id}", timeout=30).json()


def test_the_grid_is_keyboard_navigable(page, live_server):
    job = submit_job(live_server)
    page.goto(f"{job['links']['page']}/explore/{LAYER}?sort=channel")
    wait_for_grid(page)
    assert page.eval_on_selector_all("#channel-grid .thumb[tabindex='0']", "all => all.length") == 1
    page.focus("input[name=sort][value=channel]")
    page.keyboard.press("Tab")  # into the grid: its one tab stop, the first channel
    focused = "() => document.activeElement.dataset.channel"
    assert page.evaluate(focused) == "0"
    page.keyboard.press("ArrowRight")
    assert page.evaluate(focused) == "1"
    columns = page.evaluate("() => { const all = Array.from(document.querySelectorAll('#channel-grid .thumb'));"
                            " return all.filter((thumb) => thumb.offsetTop === all[0].offsetTop).length; }")
    assert columns > 1
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == str(1 + columns)
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(focused) == str(columns)
    assert page.eval_on_selector_all("#channel-grid .thumb[tabindex='0']", "all => all.map((t) => t.dataset.channel)") \
        == [str(columns)]
    assert "Channel " + str(columns) in page.inner_text("#explore-readout")
    page.keyboard.press("Enter")
    wait_for_projection(page, columns)
    assert page.evaluate(focused) == str(columns)  # focus stays in the grid
    assert page.get_attribute("#projection", "data-rule") == "deconvnet"

    # Guided backprop, where chosen: the shown channel is projected again with that rule, and the marks follow it.
    page.click("label[for=explore-rule-guided]")
    page.wait_for_selector(f"#projection[data-rule=guided][data-channel='{columns}']", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function(PROJECTION_LOADED, timeout=30_000)
    assert page.inner_text("#projection-pictures .picture[data-kind=reconstruction] .picture-label") \
        == "Whole map · guided backprop"
    assert page.eval_on_selector_all("#channel-grid .thumb.projected", "all => all.map((t) => t.dataset.channel)") \
        == [str(columns)]
    assert "projected with guided backprop" in page.get_attribute(f".thumb[data-channel='{columns}']", "aria-label")


def test_the_explorer_fits_a_phone(browser, live_server, worker):
    job = submit_job(live_server)
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, base_url=live_server)
    page = context.new_page()
    try:
        page.goto(f"{job['links']['page']}/explore/{LAYER}")
        wait_for_grid(page)
        assert page.evaluate(SIDEWAYS) <= 0, "the explorer scrolls sideways on a phone"
        page.tap("#channel-grid .thumb >> nth=5")
        channel = int(page.get_attribute("#channel-grid .thumb >> nth=5", "data-channel"))
        wait_for_projection(page, channel)
        assert page.evaluate(SIDEWAYS) <= 0, "the explorer's projection scrolls sideways on a phone"
        # The projection sits above the grid on a phone, and comes into view when it is drawn.
        assert -1 < page.locator("#projection").bounding_box()["y"] < 844
        page.screenshot(path=str(ARTIFACTS / "phone-explorer.png"), full_page=False)
    finally:
        context.close()


def test_an_unknown_layer_is_a_readable_page(page, live_server):
    job = submit_job(live_server)
    response = page.goto(f"{job['links']['page']}/explore/block9_conv1")
    assert response.status == 404
    assert "unknown layer 'block9_conv1'" in page.inner_text("main")
