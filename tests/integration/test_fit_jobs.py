"""``fit`` through the session's real worker (issue 13): a non-square photo squashed (the default) or centre-cropped
makes two jobs with two ids, each writing input.png, the photo as the network saw it, equal to the same preparation
written out with numpy and Pillow; the manifest (and the ZIP's copy) names the stored upload and says what fit did."""
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.support.paths import EXAMPLES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(worker, service_app):
    return service_app.test_client()


@pytest.fixture(scope="module")
def wide_photo() -> tuple:
    """coffee.jpg as a lossless 300×180 PNG (bytes), and its pixels."""
    with Image.open(EXAMPLES / "coffee.jpg") as photo:
        pixels = np.asarray(photo.convert("RGB").resize((300, 180)))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue(), pixels


def _finished(api, wait_for_job, data, **fields):
    response = api.post("/api/jobs", data={"image": (io.BytesIO(data), "wide.png"), **fields},
                        content_type="multipart/form-data")
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    document = wait_for_job(lambda job_id: api.get(f"/api/jobs/{job_id}").get_json(), response.get_json()["id"],
                            timeout=180)
    assert document["status"] == "finished", document
    return document


def _input_png(api, document) -> np.ndarray:
    response = api.get(document["manifest"]["input"]["file_url"])
    assert response.status_code == 200 and response.mimetype == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.data)))


def _expected(pixels) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((224, 224), Image.BILINEAR))


@pytest.mark.parametrize("method, fields", [
    ("deconv", {"layers": "block1_pool", "top_k": "1", "seed": "map"}),
    ("feature-maps", {"layer": "block1_conv1"}),
])
def test_squash_and_crop_make_two_jobs_each_with_the_photo_the_network_saw(
        api, wait_for_job, check_against_spec, wide_photo, method, fields):
    data, pixels = wide_photo
    squashed = _finished(api, wait_for_job, data, method=method, **fields)
    cropped = _finished(api, wait_for_job, data, method=method, fit="crop", **fields)
    assert squashed["id"] != cropped["id"]
    for document in (squashed, cropped):
        check_against_spec("/api/jobs/{job_id}", "get", 200, document)
    assert (squashed["options"]["fit"], cropped["options"]["fit"]) == ("squash", "crop")

    stored = hashlib.sha256(data).hexdigest() + ".png"
    described = squashed["manifest"]["input"]
    assert squashed["manifest"]["image"] == stored and described["image"] == stored
    assert (described["fit"], described["original_size"], described["squashed"]) == ("squash", [300, 180], True)
    assert described["note"].startswith("The photo is 300×180; it was squashed to 224×224")
    np.testing.assert_array_equal(_input_png(api, squashed), _expected(pixels))

    described = cropped["manifest"]["input"]
    assert (described["fit"], described["squashed"]) == ("crop", False)
    assert described["note"].startswith("The photo is 300×180; its centre 180×180 square was kept")
    np.testing.assert_array_equal(_input_png(api, cropped), _expected(pixels[:, 60:240]))

    archive = api.get(squashed["links"]["archive"])
    with zipfile.ZipFile(io.BytesIO(archive.data)) as zipped:
        zipped_manifest = json.loads(zipped.read(f"{squashed['id']}/manifest.json"))
        assert f"{squashed['id']}/input.png" in zipped.namelist()
    assert zipped_manifest["image"] == stored and zipped_manifest["input"]["file"] == "input.png"
