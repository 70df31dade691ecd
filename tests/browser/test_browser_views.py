"""The job page's tabs (issue 4): from a deconvnet job, every other view is chosen by its tab,
submitted with small options on the same photo, and its images load; Classes is marked unavailable, since the hed
weights have no classifier top, and its own tab (only) says why."""
import pytest
import requests

from tests.support.browser import ALL_IMAGES_LOADED, JOB_TIMEOUT_MS
from tests.support.paths import ARTIFACTS, EXAMPLES

pytestmark = pytest.mark.browser

# The options of tests/integration/test_view_jobs.py: whichever runs second reuses the results.
CHEAP_VIEWS = {
    "feature-maps": ("Feature maps", {"layer": "block1_conv1"}),
    "filters": ("Filters", {"layer": "block1_conv1"}),
    "channel-rank": ("Channel rank", {"layer": "block5_conv3", "channel": "0"}),
    "gradients": ("Gradients", {"layers": "block2_pool", "top_k": "1"}),
    "occlusion": ("Occlusion", {"sizes": "112:112"}),
    "activation-max": ("Activation max.", {"layer": "block4_conv3", "channels": "0", "octaves": "1", "steps": "2"}),
}


def fill_and_run(page, method, options):
    page.click(f"#tab-{method}")
    assert page.get_attribute(f"#tab-{method}", "aria-selected") == "true"
    for name, value in options.items():
        selector = f"#option-{method}-{name}"
        if page.eval_on_selector(selector, "node => node.tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)
    before = page.url
    page.click(f"#tab-panel form[data-method='{method}'] button[type=submit]")
    page.wait_for_url(lambda url: url != before)


def test_every_view_is_reachable_from_the_job_page_tabs(page, live_server):
    photo = (EXAMPLES / "astronaut.jpg").read_bytes()
    # Not block1_pool with top_k 1 on this photo: tests/integration/test_worker_loss.py needs that job new.
    response = requests.post(live_server + "/api/jobs", files={"image": ("astronaut.jpg", photo)},
                             data={"layers": "block2_pool", "top_k": "1"}, timeout=30)
    assert response.status_code in (200, 202), response.text
    first_page = response.json()["links"]["page"]
    page.goto(first_page)
    page.wait_for_selector("#tabs [role=tab]")
    labels = page.eval_on_selector_all("#tabs [role=tab]", "tabs => tabs.map((tab) => tab.textContent)")
    assert labels == ["Deconvnet", "Feature maps", "Filters", "Occlusion", "Activation max.", "Classes",
                      "Channel rank", "Gradients"]
    assert page.get_attribute("#tab-deconv", "aria-selected") == "true"
    assert page.get_attribute("#tab-classification", "data-unavailable") == "true"
    assert "classifier" not in page.text_content("#views")  # the Deconvnet tab says nothing of the Classes tab
    page.click("#tab-classification")
    notes = page.text_content("#tab-panel")
    assert "classifier" in notes and "Classes" in notes and page.locator("#tab-panel form").count() == 0
    # Why, and how to enable it, in the API's words; the weights in words on the page and in the job's status.
    assert "HED edge-detector VGG16" in notes and notes.count("run `python -m visnet weights fetch imagenet`") == 1
    assert "restart the service" in notes
    assert page.get_attribute("#tab-classification", "title") + "." == notes
    page.click("#tab-feature-maps")
    assert "classifier" not in page.text_content("#views")  # nor does any other tab
    assert page.text_content("#weights-note").startswith("Weights: HED edge-detector VGG16 (fine-tuned on BSDS500")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('Finished')",
                           timeout=JOB_TIMEOUT_MS)
    # The result's weights are the ones the header describes: the status names them and points up.
    assert "hed weights (see above)" in page.text_content("#status")

    for method, (label, options) in CHEAP_VIEWS.items():
        fill_and_run(page, method, options)
        page.wait_for_selector("#sheet .view-figure img", timeout=JOB_TIMEOUT_MS)
        page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)
        assert page.text_content("#view-heading") == label
        assert page.get_attribute(f"#tab-{method}", "aria-selected") == "true"  # the tab of the shown job
        assert page.eval_on_selector_all("#sheet img", "images => images.every((image) => image.naturalWidth > 0)")
        assert "Finished" in page.text_content("#status")
        if method == "channel-rank":
            page.screenshot(path=str(ARTIFACTS / "views-channel-rank.png"), full_page=True)
    assert page.locator("#sheet table.figures-table").count() >= 1  # channel rank etc. list key figures

    # Back to the deconvnet with the first job's options: the same job, reused.
    fill_and_run(page, "deconv", {"layers": "block2_pool", "top_k": "1"})
    assert page.url.endswith(first_page)
    page.wait_for_selector("#sheet .layer-row .features img", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)


def test_a_bad_option_is_shown_beside_the_form(page, live_server):
    photo = (EXAMPLES / "coffee.jpg").read_bytes()
    response = requests.post(live_server + "/api/jobs", files={"image": ("coffee.jpg", photo)},
                             data={"layers": "block1_pool", "top_k": "1"}, timeout=30)
    page.goto(response.json()["links"]["page"])
    page.wait_for_selector("#tab-occlusion")
    page.click("#tab-occlusion")
    page.fill("#option-occlusion-sizes", "50x10")
    page.click("#tab-panel form[data-method='occlusion'] button[type=submit]")
    page.wait_for_selector("#tab-panel .tab-error:not(:empty)")
    assert "sizes" in page.text_content("#tab-panel .tab-error")
