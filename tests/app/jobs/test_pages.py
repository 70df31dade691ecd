"""The pages: upload form (also without JavaScript) and the job page shell."""
import html
import io
import re

import pytest

from service import presence
from tests.support.paths import PROJECT_ROOT
from visnet.architecture import LAYER_NAMES
from visnet.weights import describe_weights


def test_upload_page_has_picker_drop_zone_examples_and_options(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'type="file"' in html and 'id="drop-zone"' in html
    for example in ("chelsea.jpg", "astronaut.jpg", "coffee.jpg"):
        assert f"/static/examples/{example}" in html
        assert client.get(f"/static/examples/{example}").status_code == 200
    for name in LAYER_NAMES:
        assert f'value="{name}"' in html
    assert 'name="top_k"' in html and 'name="mode"' in html
    assert 'name="viewport"' in html and 'lang="en"' in html


def test_pages_load_nothing_from_other_hosts(client, app):
    html = client.get("/").get_data(as_text=True) + client.get("/jobs/" + "a" * 32).get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for asset in ["style.css", *(path.name for path in (PROJECT_ROOT / "static").glob("*.js"))]:
        text = client.get(f"/static/{asset}").get_data(as_text=True)
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    csp = client.get("/").headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp


def test_job_page_is_served_without_touching_redis(client):
    response = client.get("/jobs/" + "a" * 32)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-api="/api/jobs/' + "a" * 32 + '"' in html
    assert 'id="viewer"' in html and "archive.zip" in html


def test_job_page_for_a_malformed_id_is_404(client):
    assert client.get("/jobs/..%2f..%2fetc").status_code == 404
    assert client.get("/jobs/xyz").status_code == 404


def test_form_post_without_javascript_redirects_to_the_job_page(client, images):
    response = client.post("/jobs", data={"image": (io.BytesIO(images.photo_jpeg()), "a.jpg"), "preset": "custom",
                                          "layer": ["block2_pool", "block4_pool"], "top_k": "2", "mode": "single"},
                           content_type="multipart/form-data")
    assert response.status_code == 303
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    options = client.get(f"/api/jobs/{job_id}").get_json()["options"]
    assert options["layers"] == ["block2_pool", "block4_pool"] and options["top_k"] == 2


def test_form_post_errors_show_on_the_upload_page(client, images, nothing_stored):
    response = client.post("/jobs", data={"image": (io.BytesIO(b"plain text"), "a.png"), "preset": "pools",
                                          "top_k": "3"}, content_type="multipart/form-data")
    assert response.status_code == 415
    assert "accepted format" in response.get_data(as_text=True)
    response = client.post("/jobs", data={"image": (io.BytesIO(images.photo_jpeg()), "a.jpg"), "preset": "custom"},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and "at least one layer" in response.get_data(as_text=True)
    nothing_stored()


HED_WORDS = ("HED edge-detector VGG16 (fine-tuned on BSDS500 for edges; deep features are edge features; "
             "classification unavailable; run `python -m visnet weights fetch imagenet` on a machine with internet "
             "for the ImageNet model)")


@pytest.mark.parametrize("page", ["/", "/jobs/" + "a" * 32, "/scans"])
def test_every_page_says_in_words_which_weights_the_workers_serve(client, redis_conn, page):
    def note():
        found = re.search(r'<p class="weights-note" id="weights-note"><strong>Weights:</strong> (.*?)</p>',
                          client.get(page).get_data(as_text=True))
        return html.unescape(found.group(1))

    assert note() == "no worker has started yet: weights and device are not known"
    presence.publish_model(redis_conn, {"weights": "hed", "weights_description": describe_weights("hed", False),
                                        "has_classifier": False, "device": "cpu"})
    assert note() == HED_WORDS
    presence.publish_model(redis_conn, {"weights": "imagenet", "weights_description": describe_weights("imagenet", True),
                                        "has_classifier": True, "device": "cpu"})
    assert note() == "ImageNet VGG16 (Keras)"


def test_pages_load_and_say_so_when_redis_is_away(app_config, tmp_path):
    from app import create_app

    client = create_app({**app_config, "REDIS_URL": f"unix://{tmp_path}/nothing-here.sock"}).test_client()
    response = client.get("/")
    assert response.status_code == 200
    assert "<strong>Weights:</strong> not known: Redis is not reachable" in response.get_data(as_text=True)


def test_while_make_run_downloads_the_weights_pages_and_the_api_say_how_far(client, redis_conn):
    presence.publish_model(redis_conn, {"weights": "hed", "weights_description": describe_weights("hed", False),
                                        "has_classifier": False, "device": "cpu"})  # the last run's worker
    text = "downloading the ImageNet VGG16 (Keras) before the worker starts: 3.0 / 553.5 MB   1%  1.0 MB/s  9 min 10 s left"
    presence.publish_preparing(redis_conn, text)

    assert f"<strong>Weights:</strong> {text}</p>" in client.get("/").get_data(as_text=True)
    assert client.get("/api/model").get_json()["message"] == text
    presence.clear_preparing(redis_conn)
    assert client.get("/api/model").get_json()["message"] is None


def test_the_upload_form_offers_the_rankings_and_the_finished_scans_as_references(app, client, redis_conn, images):
    from tests.support.scan_api import build_finished_scan, scans_root
    from visnet.methods import RANKINGS

    presence.publish_model(redis_conn, {"weights": "hed", "weights_description": describe_weights("hed", False),
                                        "has_classifier": False, "device": "cpu"})
    empty = client.get("/").get_data(as_text=True)
    assert "none yet: no finished scan on these weights" in empty
    scan_id, _, _ = build_finished_scan(scans_root(app))
    page = client.get("/").get_data(as_text=True)
    assert 'name="rank"' in page and 'name="reference"' in page
    for name, words in RANKINGS.items():
        assert f'<option value="{name}"' in page and words in html.unescape(page)
    assert f'<option value="{scan_id}" data-layers="block1_pool,block2_pool">{scan_id[:8]} · 7 images' in page

    def post(**fields):
        return client.post("/jobs", data={"image": (io.BytesIO(images.photo_jpeg()), "a.jpg"), "preset": "custom",
                                          "layer": ["block1_pool", "block2_pool"], "top_k": "2", **fields},
                           content_type="multipart/form-data")

    response = post(rank="distinctive", reference=scan_id)  # without JavaScript
    assert response.status_code == 303
    options = client.get(response.headers["Location"].replace("/jobs/", "/api/jobs/")).get_json()["options"]
    assert (options["rank"], options["reference"]) == ("distinctive", scan_id)
    refused = post(rank="distinctive", reference="f" * 32)
    assert refused.status_code == 404 and "there is no scan" in refused.get_data(as_text=True)
