"""The dataset scans' pages (app.scans.pages): the upload form and the list, and the form without
JavaScript."""

import io

import pytest

from tests.support.scan_api import good_zip, make_zip, png, queued_ids


def test_scans_page_has_the_upload_form_and_the_list(client, finished):
    scan_id, _, _ = finished
    html = client.get("/scans").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html and 'name="archive"' in html
    for name in ("k", "image_size", "skip_grey", "chunk_size", "project_channels", "project_k"):
        assert f'name="{name}"' in html
    assert html.count('name="layer"') == 21  # the 18 convolutional layers, fc1, fc2 and predictions
    assert f'href="/scans/{scan_id}"' in html and "done" in html
    assert 'href="/scans"' in client.get("/").get_data(as_text=True)  # in the site's navigation
    scan_page = client.get(f"/scans/{scan_id}").get_data(as_text=True)
    assert f'data-api="/api/scans/{scan_id}"' in scan_page and 'id="unit-grid"' in scan_page
    assert 'id="unit-sort"' in scan_page and 'id="unit-jump"' in scan_page and "<strong>Selectivity</strong>" in scan_page
    assert "/static/scan.js" in scan_page and "<script>" not in scan_page


def test_form_post_without_javascript_redirects_to_the_scan_page(client, app, redis_conn):
    response = client.post("/scans", data={"archive": (io.BytesIO(good_zip()), "set.zip"),
                                           "layer": ["block1_pool", "block2_pool"], "k": "5", "skip_grey": "true",
                                           "image_size": "224", "chunk_size": "2", "project_channels": "",
                                           "project_k": ""}, content_type="multipart/form-data")
    assert response.status_code == 303
    scan_id = response.headers["Location"].rsplit("/", 1)[1]
    options = client.get(f"/api/scans/{scan_id}").get_json()["options"]
    assert (options["layers"], options["k"], options["skip_grey"], options["project_channels"]) == (
        ["block1_pool", "block2_pool"], 5, True, None)
    assert queued_ids(app, redis_conn) == [f"scanstart-{scan_id}-1"]


@pytest.mark.parametrize("fields, data, status, words", [
    ({"layer": "block1_pool"}, png(1), 415, "not a ZIP archive"),
    ({"layer": "block1_pool", "k": "0"}, None, 400, "k must be a whole number from 1 to 64"),
    ({}, None, 400, "choose at least one layer"),
    ({"layer": "block1_pool"}, make_zip({"a.txt": b"x"}), 422, "holds no image"),
])
def test_a_refused_form_shows_the_form_again_with_the_reason(client, no_scan_stored, fields, data, status, words):
    form = {**fields, "k": fields.get("k", "7"), "archive": (io.BytesIO(data or good_zip()), "set.zip")}
    response = client.post("/scans", data=form, content_type="multipart/form-data")
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert words in html and 'id="scan-form"' in html
    assert f'value="{form["k"]}"' in html  # what was typed is kept
    no_scan_stored()
