"""Headless Chromium: the labelled sheet and its small fixes (issue 13 points 1 and 6). The sheet opens with the
photo as the network saw it (224×224) and a note when a non-square photo was squashed, explains its figures in a
legend and on hover; the upload form's fit choice crops instead, as a job of its own; a channel silent on the photo
says so instead of showing flat grey pictures; a file the browser cannot draw leaves no broken preview."""
import io
import json

import pytest
import requests
from PIL import Image

from tests.support.browser import wait_for_sheet
from tests.support.paths import ARTIFACTS, EXAMPLES

pytestmark = pytest.mark.browser


def legend(page) -> dict:
    return dict(zip(page.locator("#sheet .legend dt").all_inner_texts(), page.locator("#sheet .legend dd").all_inner_texts()))


CHELSEA = EXAMPLES / "chelsea.jpg"
WIDTH, HEIGHT = Image.open(CHELSEA).size  # not square


def submit_one_layer(page, fit):
    """The upload form with chelsea.jpg, block1_pool only, top 1 and ``fit``; waits for the sheet."""
    page.goto("/")
    page.set_input_files("#image", str(CHELSEA))
    page.check("input[name=preset][value=custom]")
    for box in page.locator("#layer-choice input").all():
        box.set_checked(box.get_attribute("value") == "block1_pool")
    page.fill("#top_k", "1")
    page.select_option("#fit", fit)
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    wait_for_sheet(page)
    return page.url


def test_the_sheet_opens_with_the_photo_the_network_saw_and_explains_its_figures(page):
    ARTIFACTS.mkdir(exist_ok=True)
    squashed_page = submit_one_layer(page, "squash")
    first = page.locator("#sheet > .layer-row").first
    assert first.locator("h2").inner_text() == "The photo as the network saw it"
    size = page.eval_on_selector("#sheet .input-photo img", "image => [image.naturalWidth, image.naturalHeight]")
    assert size == [224, 224]
    assert WIDTH != HEIGHT
    assert f"fit squash ({WIDTH} × {HEIGHT} px uploaded)" in page.inner_text("#sheet .input-photo figcaption")
    note = page.inner_text("#sheet .fit-note")
    assert note.startswith(f"The photo is {WIDTH}×{HEIGHT}; it was squashed to 224×224 (fit squash)") and "fit crop" in note
    terms = legend(page)
    assert terms["norm"].startswith("L2 norm of the channel's map after the ReLU") and "the ranking measure" in terms["norm"]
    assert "silent on this photo" in terms["strongest activation"]
    # The same words on hover, beside each feature's figures.
    norm = page.locator("#sheet .feature > figcaption .term", has_text="norm").first
    assert norm.get_attribute("title").startswith("L2 norm of the channel's map after the ReLU")
    page.screenshot(path=str(ARTIFACTS / "sheet-input-squash.png"), full_page=True)

    cropped_page = submit_one_layer(page, "crop")
    assert cropped_page != squashed_page  # another fit, another job
    assert "fit crop" in page.inner_text("#sheet .input-photo figcaption")
    side = min(WIDTH, HEIGHT)
    assert page.inner_text("#sheet .fit-note").startswith(f"The photo is {WIDTH}×{HEIGHT}; its centre {side}×{side} "
                                                          "square was kept")
    page.screenshot(path=str(ARTIFACTS / "sheet-input-crop.png"), full_page=True)


def test_a_channel_silent_on_the_photo_says_so_instead_of_flat_grey_pictures(page, live_server):
    # A flat grey photo (not square: the note shows too) leaves some of block5_pool's first 16 channels at zero
    # everywhere (tests/visnet/test_seeds.py); the sheet asks for those 16 by name.
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (128, 128, 128)).save(buffer, "PNG")
    channels = ",".join(f"block5_pool:{channel}" for channel in range(16))
    response = requests.post(live_server + "/api/jobs", files={"image": ("grey.png", buffer.getvalue())},
                             data={"top_k": "0", "channels": channels}, timeout=30)
    assert response.status_code in (200, 202), response.text
    page.goto(response.json()["links"]["page"])
    wait_for_sheet(page)
    manifest = requests.get(live_server + response.json()["links"]["self"], timeout=30).json()["manifest"]
    features = manifest["layers"][0]["features"]
    silent = {feature["channel"] for feature in features if feature["max_value"] == 0}
    assert silent and len(silent) < len(features), json.dumps(features)[:400]
    shown = page.eval_on_selector_all("#sheet .feature", """all => all.map((feature) => [
        Number(feature.dataset.channel), feature.querySelectorAll('img').length,
        (feature.querySelector('.silent') || {}).textContent || null])""")
    assert len(shown) == 16
    for channel, images, words in shown:
        if channel in silent:
            assert images == 0 and words.startswith(f"Silent on this photo: the map of block5_pool, channel {channel} "
                                                    "is zero everywhere")
        else:
            assert images == 4 and words is None
    assert "squashed" in page.inner_text("#sheet .fit-note")
    page.locator("#sheet .feature.is-silent").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "sheet-silent.png"), full_page=True)


def test_a_file_that_is_no_picture_leaves_no_broken_preview(page, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("shopping: milk, eggs")
    page.goto("/")
    page.set_input_files("#image", str(notes))
    page.wait_for_selector("#preview-note:not(:empty)")
    assert page.is_hidden("#preview") and page.get_attribute("#preview", "src") is None
    assert page.locator("img[alt='Chosen photo: notes.jpg']").count() == 0
    assert page.inner_text("#preview-note").startswith("notes.jpg cannot be shown")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    assert "accepted format" in page.inner_text("#error")
    assert page.is_hidden("#preview") and page.inner_text("#preview-note") == "notes.jpg was refused."
    page.screenshot(path=str(ARTIFACTS / "upload-refused.png"), full_page=True)

    page.set_input_files("#image", str(EXAMPLES / "coffee.jpg"))  # a photo again: its preview, no note
    page.wait_for_function("() => document.getElementById('preview').naturalWidth > 0")
    assert page.is_visible("#preview") and page.inner_text("#preview-note") == ""
    assert page.is_hidden("#error")
