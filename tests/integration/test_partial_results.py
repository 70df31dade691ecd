"""A running deconvnet job's pictures, listed and served as soon as they are written: the session's worker runs
the real job with its writer held after the first feature (tests.support.fault_jobs), so the test sees the job
mid-write for as long as it needs."""
import io

import pytest
from PIL import Image

from tests.support.paths import EXAMPLES
from tests.support.service import enqueue_held_deconv
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_a_running_job_lists_and_serves_the_pictures_already_written(worker, service_app, service_env, tmp_path,
                                                                      wait_for_job, check_against_spec):
    api = service_app.test_client()
    gate = tmp_path / "gate"
    job_id = enqueue_held_deconv(service_env, gate, EXAMPLES / "coffee.jpg", layers="block1_pool", top_k="2")

    def get(job):
        return api.get(f"/api/jobs/{job}").get_json()

    def written_or_ended(document):
        return document if document["files"] or document["status"] in ("finished", "failed", "canceled") else None

    try:
        running = wait_until(lambda: written_or_ended(get(job_id)), 180, f"job {job_id} listed no file",
                             interval=0.05)
        check_against_spec("/api/jobs/{job_id}", "get", 200, running)
        assert running["status"] == "started", running
        features = [(layer["name"], feature) for layer in running["manifest"]["layers"] for feature in layer["features"]]
        assert len(features) == 1 and "summary" not in running["manifest"]  # the others are held
        layer, feature = features[0]
        pictures = {"input.png"} | {feature[kind] for kind in ("overlay", "reconstruction", "patch", "photo_patch")}
        assert {entry["name"] for entry in running["files"]} == pictures
        early = {}
        for entry in running["files"]:
            response = api.get(entry["url"])
            assert response.status_code == 200 and response.mimetype == "image/png", entry
            early[entry["name"]] = response.data
            Image.open(io.BytesIO(response.data)).verify()
        assert feature["overlay_url"] == f"/api/jobs/{job_id}/files/{feature['overlay']}"
        # Not written yet: neither the other features' pictures nor the summary sheet.
        assert api.get(f"/api/jobs/{job_id}/files/summary.png").status_code == 404
        assert api.get(f"/api/jobs/{job_id}/files/../{job_id}/input.png").status_code == 404
    finally:
        gate.touch()
    finished = wait_for_job(get, job_id)
    assert finished["status"] == "finished", finished
    assert sum(len(layer["features"]) for layer in finished["manifest"]["layers"]) == 2
    for name, data in early.items():  # the same URLs now serve the finished folder's files, unchanged
        assert api.get(f"/api/jobs/{job_id}/files/{name}").data == data
