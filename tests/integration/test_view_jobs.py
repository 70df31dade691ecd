"""Real view jobs (issue 4): the session's worker runs ``service.jobs.photo.view`` for every method that is
cheap on a CPU, with small options; the manifest's PNGs exist, decode and have the stated size. The
options here are the ones the browser test submits, so whichever runs second reuses the result."""
import io

import pytest
from PIL import Image

from tests.support.paths import EXAMPLES
from visnet.weights import describe_weights

pytestmark = pytest.mark.integration

# method -> small options; shared with tests/browser/test_browser_views.py
CHEAP_VIEWS = {
    "feature-maps": {"layer": "block1_conv1"},
    "filters": {"layer": "block1_conv1"},
    "channel-rank": {"layer": "block5_conv3", "channel": "0"},
    "gradients": {"layers": "block2_pool", "top_k": "1"},
    "occlusion": {"sizes": "112:112"},
    "activation-max": {"layer": "block4_conv3", "channels": "0", "octaves": "1", "steps": "2"},
}


@pytest.fixture(scope="module")
def api(worker, service_app):
    return service_app.test_client()


def submit(api, **fields):
    data = (EXAMPLES / "astronaut.jpg").read_bytes()
    return api.post("/api/jobs", data={"image": (io.BytesIO(data), "astronaut.jpg"), **fields},
                    content_type="multipart/form-data")


@pytest.mark.parametrize("method", list(CHEAP_VIEWS))
def test_a_view_job_end_to_end(api, method, wait_for_job, check_against_spec):
    response = submit(api, method=method, **CHEAP_VIEWS[method])
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    get = lambda job_id: api.get(f"/api/jobs/{job_id}").get_json()  # noqa: E731
    document = wait_for_job(get, response.get_json()["id"], timeout=120)
    assert document["status"] == "finished", document
    check_against_spec("/api/jobs/{job_id}", "get", 200, document)
    assert document["method"] == method and document["manifest"]["method"] == method
    assert document["manifest"]["weights_description"] == describe_weights("hed", False)
    assert [stage["done"] >= stage["total"] for stage in document["progress"]["stages"]] == [True] * 3
    files = document["manifest"]["files"]
    input_photo = [document["manifest"]["input"]["file"]] if document["manifest"]["input"] else []
    assert (document["manifest"]["input"] is None) == (method in ("filters", "activation-max"))  # they read no photo
    assert files and {entry["file"] for entry in files} | set(input_photo) == {entry["name"] for entry in document["files"]}
    for entry in files:
        png = api.get(entry["file_url"])
        assert png.status_code == 200
        with Image.open(io.BytesIO(png.data)) as image:
            assert image.format == "PNG"
            image.load()
            assert image.size == (entry["width"], entry["height"])
            assert image.getextrema() not in ((0, 0), ((0, 0), (0, 0), (0, 0)))
        assert entry["caption"]
    assert api.get(document["links"]["archive"]).status_code == 200


def test_classification_on_weights_without_a_top_is_refused(api):
    response = submit(api, method="classification")
    assert response.status_code == 409
    message = response.get_json()["error"]["message"]
    assert "classifier" in message and describe_weights("hed", False) in message
