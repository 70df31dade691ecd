"""The layer explorer's jobs on the session's real worker: the feature-maps job states every channel's L2 norm
(the deconvnet's own ranking measure: its strongest channel and norm are the sheet's first feature) and where
its thumbnail lies in the picture; a clicked channel is a small from_job deconv job whose second submission
is the same finished job."""
import io

import numpy as np
import pytest
from PIL import Image

from tests.support.paths import EXAMPLES

pytestmark = pytest.mark.integration

LAYER = "block2_pool"


@pytest.fixture(scope="module")
def api(worker, service_app):
    return service_app.test_client()


def finished(api, wait_for_job, response):
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    document = wait_for_job(lambda job_id: api.get(f"/api/jobs/{job_id}").get_json(), response.get_json()["id"],
                            timeout=120)
    assert document["status"] == "finished", document
    return document


def test_explorer_measures_thumbnails_and_a_reused_channel_job(api, wait_for_job, check_against_spec):
    photo = (EXAMPLES / "astronaut.jpg").read_bytes()
    sheet = finished(api, wait_for_job, api.post("/api/jobs", data={
        "image": (io.BytesIO(photo), "astronaut.jpg"), "layers": LAYER, "top_k": "1"}, content_type="multipart/form-data"))
    maps = finished(api, wait_for_job, api.post("/api/jobs", data={
        "from_job": sheet["id"], "method": "feature-maps", "layer": LAYER, "scale": "per-channel"}))
    check_against_spec("/api/jobs/{job_id}", "get", 200, maps)
    channels = maps["manifest"]["data"]["channels"]
    assert [entry["channel"] for entry in channels] == list(range(128))
    top = sheet["manifest"]["layers"][0]["features"][0]
    strongest = max(channels, key=lambda entry: entry["norm"])
    assert strongest["channel"] == top["channel"] and strongest["norm"] == pytest.approx(top["norm"], rel=1e-5)

    picture_entry = next(entry for entry in maps["manifest"]["files"] if entry["file"] == "feature_maps.png")
    with Image.open(io.BytesIO(api.get(picture_entry["file_url"]).data)) as image:
        pixels = np.asarray(image.convert("RGB"))
    for entry in channels:
        left, top_edge, size = entry["tile"]
        assert 0 <= left and left + size <= pixels.shape[1] and 0 <= top_edge and top_edge + size <= pixels.shape[0]
        tile = pixels[top_edge:top_edge + size, left:left + size]
        # inferno: a silent channel's tile is black throughout, any other reaches its pale-yellow maximum
        assert (tile.max() > 200) == (entry["norm"] > 0), entry

    channel = sorted(channels, key=lambda entry: -entry["norm"])[3]["channel"]
    fields = {"from_job": sheet["id"], "layers": "", "top_k": "0", "channels": f"{LAYER}:{channel}",
              "seed": "both", "rule": "guided"}
    projected = finished(api, wait_for_job, api.post("/api/jobs", data=fields))
    feature = projected["manifest"]["layers"][0]["features"][0]
    assert feature["channel"] == channel and feature["explicit"]
    assert feature["norm"] == pytest.approx(channels[channel]["norm"], rel=1e-5)
    assert all(feature[f"{kind}_url"] for kind in ("reconstruction", "patch", "photo_patch"))
    again = api.post("/api/jobs", data=fields)
    assert again.status_code == 200 and again.get_json()["id"] == projected["id"] and again.get_json()["reused"]
