"""Headless Chromium: the upload form's ranking controls. Choosing the session's finished scan as the
reference switches the ranking to distinctive and the layers to the scan's; the result sheet captions each
feature with its score in σ, and the Deconvnet tab offers the same scan."""
import re

import pytest

from tests.support.browser import wait_for_sheet
from tests.support.paths import ARTIFACTS, EXAMPLES

pytestmark = pytest.mark.browser


def test_a_reference_scan_is_chosen_on_the_upload_form_and_the_sheet_gives_scores(page, web_scan):
    ARTIFACTS.mkdir(exist_ok=True)
    scan_id = web_scan["id"]
    page.goto("/")
    page.click("details summary")
    assert page.input_value("#rank") == "norm"
    # The form offers the finished scans a distinctive job can use, as the API lists them: the session's scan,
    # and any other a test before this one finished.
    usable = usable_references(page)
    assert scan_id in usable
    labels = page.eval_on_selector_all("#reference option", "all => all.map(o => [o.value, o.textContent])")
    assert [value for value, _ in labels] == ["", *usable]
    assert "14 images · block1_pool, block2_pool · hed weights" in dict(labels)[scan_id]
    page.select_option("#reference", scan_id)
    assert page.input_value("#rank") == "distinctive"
    assert page.is_checked("input[name=preset][value=custom]")
    checked = page.eval_on_selector_all("#layer-choice input:checked", "all => all.map(box => box.value)")
    assert checked == ["block1_pool", "block2_pool"]
    page.screenshot(path=str(ARTIFACTS / "distinctive-form.png"), full_page=True)

    page.set_input_files("#image", str(EXAMPLES / "coffee.jpg"))
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    wait_for_sheet(page)
    captions = page.locator("#sheet .feature > figcaption").all_inner_texts()
    assert len(captions) == 6 and all(re.search(r"· [+-]\d+\.\d\d σ ·", caption) for caption in captions), captions
    # The legend says what the score is, and that the norm beside it is not what ranked the channels.
    legend = dict(zip(page.locator("#sheet .legend dt").all_inner_texts(), page.locator("#sheet .legend dd").all_inner_texts()))
    assert legend["score (σ)"].startswith("the ranking measure: (this photo's post-ReLU mean − the reference scan's mean)")
    assert legend["norm"].startswith("L2 norm of the channel's map after the ReLU") and "not the ranking measure" in legend["norm"]
    page.click("#tab-deconv")
    options = page.eval_on_selector_all("#option-deconv-reference option", "all => all.map(o => o.value)")
    assert options == ["", *usable] and page.input_value("#option-deconv-reference") == scan_id
    assert page.input_value("#option-deconv-rank") == "distinctive"
    page.screenshot(path=str(ARTIFACTS / "distinctive-sheet.png"), full_page=True)


def usable_references(page) -> list:
    """The ids of the scans the service offers as references (GET /api/methods, the Deconvnet tab's scan option)."""
    methods = page.request.get("/api/methods").json()["methods"]
    deconv = next(method for method in methods if method["name"] == "deconv")
    return [scan["id"] for option in deconv["options"] if option["kind"] == "scan" for scan in option["scans"]]
