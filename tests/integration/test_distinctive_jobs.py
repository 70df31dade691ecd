"""The distinctive ranking through the live service: a photo posted to gunicorn with ``rank=distinctive`` and
the session's finished scan of real photos as ``reference``, run by the real worker; its manifest names the
ranking and gives every feature's score, which equal NumPy on the scan's stored tables and the photo's maps."""
import numpy as np
import pytest
import requests

from tests.support.paths import EXAMPLES
from visnet.preprocessing import load_image, to_network_input
from visnet.scan import load_table
from visnet.scan.store import scan_path, scans_root

pytestmark = pytest.mark.integration

LAYERS = ("block1_pool", "block2_pool")  # what the session's scan recorded (tests/support/scan_uploads.py)
TOP_K = 3


def run_job(base, photo: bytes, wait_for_job, **fields):
    response = requests.post(base + "/api/jobs", files={"image": ("coffee.jpg", photo, "image/jpeg")}, data=fields,
                             timeout=30)
    assert response.status_code in (200, 202), response.text

    def get(job_id):
        return requests.get(f"{base}/api/jobs/{job_id}", timeout=10).json()

    document = wait_for_job(get, response.json()["id"])
    assert document["status"] == "finished", document
    return document


def test_a_distinctive_job_ranks_by_the_scans_tables_and_says_so(web_scan, live_server, service_env, engine,
                                                                 wait_for_job):
    photo = (EXAMPLES / "coffee.jpg").read_bytes()
    scan_id = web_scan["id"]
    fields = {"layers": ",".join(LAYERS), "top_k": str(TOP_K), "channels": "block2_pool:7"}
    document = run_job(live_server, photo, wait_for_job, **fields, rank="distinctive", reference=scan_id)
    norm = run_job(live_server, photo, wait_for_job, **fields)
    assert document["options"]["rank"] == "distinctive" and document["options"]["reference"] == scan_id
    manifest = document["manifest"]
    assert manifest["ranking"]["rank"] == "distinctive" and manifest["ranking"]["measure"] == "post-relu-mean"
    assert manifest["ranking"]["reference"] == {"scan": scan_id, "images": 14, "weights": "hed"}
    assert norm["manifest"]["ranking"]["rank"] == "norm"

    folder = scan_path(scans_root(service_env["RESULTS_DIR"]), scan_id)
    rgb = load_image(photo)
    for layer, entry, by_norm in zip(LAYERS, manifest["layers"], norm["manifest"]["layers"]):
        table = np.asarray(load_table(folder, layer), dtype=np.float64)
        maps = engine.model.run(engine.model.activations[layer], {engine.model.images: to_network_input(rgb)[None]})[0]
        means = maps.astype(np.float64).mean(axis=(0, 1))
        mean, std = table.mean(axis=0), table.std(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(std > 0, (means - mean) / std, np.nan)
        order = sorted(np.flatnonzero(~np.isnan(scores)), key=lambda c: (-scores[c], c))
        ranked = [feature for feature in entry["features"] if not feature["explicit"]]
        assert [feature["channel"] for feature in ranked] == order[:TOP_K]
        for feature in entry["features"]:
            expected = scores[feature["channel"]]
            assert feature["score"] == (None if np.isnan(expected) else pytest.approx(expected, rel=1e-4, abs=1e-4))
            assert feature["reference_mean"] == pytest.approx(mean[feature["channel"]], rel=1e-9)
            assert feature["mean"] == pytest.approx(means[feature["channel"]], rel=1e-5, abs=1e-6)
        strongest = [feature["channel"] for feature in by_norm["features"] if not feature["explicit"]]
        assert strongest != [feature["channel"] for feature in ranked]
        assert all(feature["score"] == feature["norm"] for feature in by_norm["features"])
    assert (entry["features"][-1]["channel"], entry["features"][-1]["explicit"]) == (7, True)
    for name in ("reconstruction_url", "overlay_url"):
        assert requests.get(live_server + entry["features"][0][name], timeout=10).status_code == 200

    refused = requests.post(live_server + "/api/jobs", files={"image": ("coffee.jpg", photo, "image/jpeg")},
                            data={**fields, "layers": "block3_pool", "rank": "distinctive", "reference": scan_id},
                            timeout=30)
    assert refused.status_code == 409  # a scan that exists but cannot serve as the reference
    assert "did not record block3_pool; it has block1_pool, block2_pool" in refused.json()["error"]["message"]
