"""The deconvnet sheet's single-activation patches and its controls (issue 12 point 2): every feature shows its
overlay, whole-map projection, strongest-activation patch and the photo there, each labelled; the rule toggle
projects the same seeds by guided backprop as a small job and swaps the pictures in place (toggling back
reuses the finished jobs); the seed control re-runs the job with other seeds."""
import pytest
import requests

from tests.support.browser import ALL_IMAGES_LOADED, JOB_TIMEOUT_MS, wait_for_sheet
from tests.support.paths import ARTIFACTS, EXAMPLES

pytestmark = pytest.mark.browser

OPTIONS = {"layers": "block2_pool,block4_pool", "top_k": "2"}


def open_sheet(page, live_server, **options):
    photo = (EXAMPLES / "chelsea.jpg").read_bytes()
    response = requests.post(live_server + "/api/jobs", files={"image": ("chelsea.jpg", photo)},
                             data={**OPTIONS, **options}, timeout=30)
    assert response.status_code in (200, 202), response.text
    page.goto(response.json()["links"]["page"])
    wait_for_sheet(page)
    return response.json()["id"]


def pictures(page):
    """Per feature: {kind: (label, image source, natural width)}."""
    return page.eval_on_selector_all("#sheet .feature", """features => features.map((feature) => Object.fromEntries(
        Array.from(feature.querySelectorAll('.picture')).map((picture) => [picture.dataset.kind, [
            picture.querySelector('.picture-label').textContent, picture.querySelector('img').getAttribute('src'),
            picture.querySelector('img').naturalWidth]])))""")


def test_each_feature_shows_its_patch_beside_the_photo_patch_labelled(page, live_server):
    job_id = open_sheet(page, live_server)
    manifest = requests.get(f"{live_server}/api/jobs/{job_id}", timeout=30).json()["manifest"]
    features = [feature for layer in manifest["layers"] for feature in layer["features"]]
    shown = pictures(page)
    assert len(shown) == len(features) == 4
    for feature, kinds in zip(features, shown):
        assert list(kinds) == ["overlay", "reconstruction", "patch", "photo_patch"]
        assert kinds["overlay"][0] == "Where it fires"
        assert kinds["reconstruction"][0] == "Whole map · deconvnet"
        assert kinds["patch"][0] == "Strongest activation · deconvnet"
        assert kinds["photo_patch"][0] == f"Photo there · {feature['field']['side']} px"
        # The patches are the receptive field's size, drawn large enough to see.
        assert kinds["patch"][2] == kinds["photo_patch"][2] == feature["field"]["side"]
    box = page.locator("#sheet .picture[data-kind=patch] img").first.bounding_box()
    assert box["width"] > 80
    alt = page.get_attribute("#sheet .picture[data-kind=patch] img >> nth=0", "alt")
    assert "single strongest activation" in alt and "receptive field" in alt
    page.screenshot(path=str(ARTIFACTS / "sheet-patches.png"), full_page=True)


def test_the_rule_toggle_swaps_the_pictures_in_place_and_reuses_finished_jobs(page, live_server):
    open_sheet(page, live_server)
    address = page.url
    posts = []
    page.on("request", lambda request: request.method == "POST" and posts.append(request.url))
    before = pictures(page)
    assert page.is_checked("#rule-deconvnet") and page.get_attribute("#sheet", "data-rule") == "deconvnet"

    page.click("label[for=rule-guided]")
    page.wait_for_selector("#sheet[data-rule=guided]", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)
    guided = pictures(page)
    assert page.url == address and len(posts) == 1  # one small job on the same photo, no navigation
    assert "guided backprop" in page.text_content("#rule-status")
    for old, new in zip(before, guided):
        assert new["reconstruction"][0] == "Whole map · guided backprop"
        assert new["patch"][0] == "Strongest activation · guided backprop"
        assert new["reconstruction"][1] != old["reconstruction"][1] and new["patch"][1] != old["patch"][1]
        assert new["overlay"] == old["overlay"] and new["photo_patch"] == old["photo_patch"]
    page.screenshot(path=str(ARTIFACTS / "sheet-guided.png"), full_page=True)

    page.click("label[for=rule-deconvnet]")
    page.wait_for_selector("#sheet[data-rule=deconvnet]")
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)
    assert pictures(page) == before
    page.click("label[for=rule-guided]")
    page.wait_for_selector("#sheet[data-rule=guided]")
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)
    assert pictures(page) == guided and len(posts) == 1  # both finished jobs reused, nothing submitted


def test_the_seed_control_reruns_the_job_with_other_seeds(page, live_server):
    first_job = open_sheet(page, live_server)
    assert page.eval_on_selector("#sheet-seed", "select => select.value") == "both"
    page.select_option("#sheet-seed", "map")
    page.click("form.seed-form button[type=submit]")
    page.wait_for_url(lambda url: first_job not in url and "/jobs/" in url)
    wait_for_sheet(page)
    assert page.eval_on_selector("#sheet-seed", "select => select.value") == "map"
    assert all(list(kinds) == ["overlay", "reconstruction"] for kinds in pictures(page))

    page.select_option("#sheet-seed", "max")
    map_job = page.url
    page.click("form.seed-form button[type=submit]")
    page.wait_for_url(lambda url: url != map_job and "/jobs/" in url)
    wait_for_sheet(page)
    shown = pictures(page)
    assert len(shown) == 4 and all(list(kinds) == ["overlay", "patch", "photo_patch"] for kinds in shown)
