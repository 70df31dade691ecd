"""Navigation and each method's page (issue 13): a job made from another links back to it and is listed
among its children; Back works and choosing tabs traps nobody; tab forms start valid; the viewer pairs
pictures and steps through them; filters, occlusion and activation maximisation show what suits them; at
390 px no page overflows, and axe-core finds no serious or critical violation on any page.

The jobs are the cheap ones of test_browser_views.py, on the same photo and options: whichever module runs
second reuses their results."""
import pytest
import requests
from axe_playwright_python.sync_playwright import Axe

from tests.browser.test_browser_views import CHEAP_VIEWS
from tests.support.browser import ALL_IMAGES_LOADED, JOB_TIMEOUT_MS
from tests.support.paths import ARTIFACTS, EXAMPLES
from visnet.architecture import CONV_LAYERS

pytestmark = pytest.mark.browser

BASE_OPTIONS = {"layers": "block2_pool", "top_k": "1"}  # test_browser_views.py's first job
PHONE = {"width": 390, "height": 844}
SERIOUS = ("serious", "critical")


@pytest.fixture(scope="module")
def jobs(live_server, worker, wait_for_job):
    """The astronaut's block2_pool job and, made from it, one finished job of each cheap view: {name: document}."""
    photo = (EXAMPLES / "astronaut.jpg").read_bytes()
    response = requests.post(live_server + "/api/jobs", files={"image": ("astronaut.jpg", photo)},
                             data=BASE_OPTIONS, timeout=30)
    assert response.status_code in (200, 202), response.text
    base = response.json()
    made = {"deconv": base}
    for method, (_, options) in CHEAP_VIEWS.items():
        response = requests.post(live_server + "/api/jobs", data={"from_job": base["id"], "method": method, **options},
                                 timeout=30)
        assert response.status_code in (200, 202), response.text
        made[method] = response.json()

    def get_json(job_id):
        return requests.get(f"{live_server}/api/jobs/{job_id}", timeout=30).json()

    documents = {name: wait_for_job(get_json, document["id"]) for name, document in made.items()}
    assert all(document["status"] == "finished" for document in documents.values()), documents
    return documents


def open_finished(page, url):
    page.goto(url)
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Finished')",
                           timeout=JOB_TIMEOUT_MS)
    page.wait_for_selector("#sheet:not([hidden]) img")
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)


def test_a_projected_channel_links_to_its_parent_which_lists_it_and_back_works(page, jobs):
    base = jobs["deconv"]
    page.goto("/")
    open_finished(page, base["links"]["page"])
    page.fill("#project-block2_pool", "5")
    page.click("#sheet form.project:has(#project-block2_pool) button[type=submit]")
    page.wait_for_url(lambda url: not url.endswith(base["links"]["page"]))
    projected_page = page.url
    page.wait_for_selector("#lineage a.parent-job")
    assert page.get_attribute("#lineage a.parent-job", "href") == base["links"]["page"]
    assert base["id"][:8] in page.inner_text("#lineage")

    # Its Deconvnet tab starts from values the form can submit: not the projection's empty layers and top_k 0.
    page.wait_for_selector("#option-deconv-layers")
    assert page.input_value("#option-deconv-layers") == "pools"
    assert page.input_value("#option-deconv-top_k") == "3"
    assert page.input_value("#option-deconv-rule") == "deconvnet"

    page.click("#lineage a.parent-job")
    page.wait_for_url(lambda url: url.endswith(base["links"]["page"]))
    page.wait_for_selector("#lineage ul.child-jobs a")
    children = page.eval_on_selector_all("#lineage ul.child-jobs a", "links => links.map((a) => a.href)")
    assert projected_page in children
    assert "Deconvnet · job" in page.inner_text("#lineage")
    # Choosing tabs keeps the choice in the address without adding history entries.
    page.click("#tab-occlusion")
    page.click("#tab-filters")
    assert page.url.endswith("?view=filters")
    page.reload()
    page.wait_for_selector("#tab-filters[aria-selected=true]")
    page.go_back()
    assert page.url == projected_page
    page.go_back()
    assert page.url.endswith(base["links"]["page"])
    page.go_back()
    assert page.url.endswith("/") and "/jobs/" not in page.url  # the home page this test started from


def test_the_viewer_pairs_overlay_and_projection_and_steps_through_the_sheet(page, jobs):
    open_finished(page, jobs["deconv"]["links"]["page"])
    page.click("#sheet .picture[data-kind=overlay] a.enlarge")
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function("() => Array.from(document.querySelectorAll('#viewer-pictures img'))"
                           ".every((image) => image.naturalWidth > 0)")
    boxes = [image.bounding_box() for image in page.locator("#viewer-pictures img").all()]
    assert len(boxes) == 2 and boxes[0]["y"] == boxes[1]["y"] and boxes[1]["x"] > boxes[0]["x"] + boxes[0]["width"] - 1
    assert all(box["width"] > 400 for box in boxes)
    caption = page.inner_text("#viewer-caption")
    assert caption.startswith("Left: Where block2_pool") and "Right: Projection of the whole map" in caption
    # The photo the network saw, one feature's two pairs, then the summary sheet.
    assert page.inner_text("#viewer-position") == "2 of 4"
    page.screenshot(path=str(ARTIFACTS / "viewer-pair.png"))
    page.keyboard.press("ArrowRight")
    assert page.inner_text("#viewer-position") == "3 of 4"
    assert "strongest activation" in page.inner_text("#viewer-caption")
    assert page.locator("#viewer-pictures img").count() == 2
    page.click("#viewer-next")
    assert page.inner_text("#viewer-position") == "4 of 4" and page.inner_text("#viewer-caption") == "Summary sheet"
    assert page.locator("#viewer-pictures img").count() == 1
    page.click("#viewer-next")
    assert page.inner_text("#viewer-position") == "1 of 4"
    assert page.inner_text("#viewer-caption") == "The photo as the network saw it"
    page.keyboard.press("ArrowLeft")
    assert page.inner_text("#viewer-position") == "4 of 4"
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer:not([open])", state="attached")


def figure_captions(page):
    return page.locator("#sheet .view-figure figcaption").all_inner_texts()


def test_each_methods_page_suits_it(page, jobs):
    # Filters: conv layers only, and no photo stage.
    open_finished(page, jobs["filters"]["links"]["page"])
    layers = page.eval_on_selector_all("#option-filters-layer option", "options => options.map((o) => o.value)")
    assert layers == [layer.name for layer in CONV_LAYERS]
    stages = page.inner_text("#stages")
    assert "Reading the photo" not in stages and "Loading the network" in stages

    # Occlusion: the drop map first, beside the raw map, large enough to read; no speed or empty class rows.
    open_finished(page, jobs["occlusion"]["links"]["page"])
    captions = figure_captions(page)
    assert captions[0].startswith("Drop in that total") and captions[1].startswith("Total post-ReLU activation")
    first, second = (page.locator("#sheet .view-figure img").nth(index).bounding_box() for index in (0, 1))
    assert first["y"] == second["y"] and first["width"] >= 320 and second["width"] >= 320
    figures = page.inner_text("#sheet").lower()
    for word in ("seconds", "per second", "forward passes", "gflops", "predicted class"):
        assert word not in figures
    page.screenshot(path=str(ARTIFACTS / "occlusion-page.png"), full_page=True)

    # Activation maximisation: each channel's picture once (and the objective's curve).
    open_finished(page, jobs["activation-max"]["links"]["page"])
    sources = page.eval_on_selector_all("#sheet .view-figure img", "images => images.map((image) => image.src)")
    channels = CHEAP_VIEWS["activation-max"][1]["channels"].split(",")
    assert len(sources) == len(set(sources)) == len(channels) + 1
    assert sum("_ch" in source for source in sources) == len(channels)


def test_no_page_overflows_a_phone_and_axe_finds_no_serious_violation(page, jobs, web_scan):
    explorer = jobs["deconv"]["links"]["page"] + "/explore/block3_pool"
    pages = ["/", *(document["links"]["page"] for document in jobs.values()), explorer, "/scans",
             f"/scans/{web_scan['id']}"]
    page.set_viewport_size(PHONE)
    axe = Axe()
    problems = []
    for url in pages:
        if url == explorer:
            page.goto(url)
            page.wait_for_selector("#channel-grid .thumb", timeout=JOB_TIMEOUT_MS)
        elif url.startswith("/jobs/"):
            open_finished(page, url)
            # Results before the long forms.
            assert page.locator("#sheet").bounding_box()["y"] < page.locator("#views").bounding_box()["y"], url
        else:
            page.goto(url)
            if url.startswith("/scans/"):
                page.wait_for_selector("#unit-grid button.unit")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if widths[0] > widths[1]:
            wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
              .filter((node) => node.getBoundingClientRect().right > window.innerWidth + 0.5)
              .slice(0, 5).map((node) => node.tagName + '.' + node.className + ' ' + node.getBoundingClientRect().right)""")
            problems.append(f"{url}: {widths[0]} px wide at {widths[1]} px: {wide}")
        # Nor is a table cut off inside its card (the scans table's Status column was).
        clipped = page.eval_on_selector_all(".scan-list, .scans-table, .figures-table",
                                            "nodes => nodes.filter((n) => n.scrollWidth > n.clientWidth + 1).length")
        if clipped:
            problems.append(f"{url}: {clipped} tables wider than their box")
        sizes = page.eval_on_selector_all("input:not([type=radio]):not([type=checkbox]):not([type=file]), select, textarea",
                                          "nodes => [...new Set(nodes.map((n) => getComputedStyle(n).fontSize))]")
        if len(sizes) > 1:
            problems.append(f"{url}: inputs in {sizes}")
        results = axe.run(page)
        for violation in results.response["violations"]:
            if violation["impact"] in SERIOUS:
                targets = [node["target"] for node in violation["nodes"][:3]]
                problems.append(f"{url}: axe {violation['id']} ({violation['impact']}): {violation['help']} {targets}")
        page.screenshot(path=str(ARTIFACTS / f"phone-{url.strip('/').replace('/', '-') or 'home'}.png"), full_page=True)
    assert problems == []
