"""The distinctive ranking through the API: ``rank=distinctive`` with ``reference=<scan id>`` is enqueued only
for a finished scan on the workers' weights that recorded the ranked layers; anything else is a 400 that says
why, with nothing stored. GET /api/methods lists the usable scans for the page's select. No worker here: the
scans are folders written as the workers leave them (tests/support/scan_api.py)."""
import io
import shutil

import pytest
from rq.job import Job

from service import presence
from tests.support.scan_api import build_finished_scan, png, scans_root
from visnet.scan import ScanOptions, create_scan
from visnet.weights import describe_weights

LAYERS = "block1_pool,block2_pool"  # what build_finished_scan records


def post(client, data: bytes, **fields):
    return client.post("/api/jobs", data={"image": (io.BytesIO(data), "photo.jpg"), **fields},
                       content_type="multipart/form-data")


def publish(redis_conn, weights):
    presence.publish_model(redis_conn, {"weights": weights, "weights_description": describe_weights(weights, False),
                                        "has_classifier": False, "device": "cpu"})


def test_a_distinctive_job_on_a_finished_scan_is_enqueued_with_its_reference(client, redis_conn, images, finished,
                                                                           check_against_spec):
    scan_id = finished[0]
    publish(redis_conn, "hed")
    response = post(client, images.photo_jpeg(), layers=LAYERS, top_k="2", rank="distinctive", reference=scan_id)
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    check_against_spec("/api/jobs", "post", 202, body)
    assert body["options"]["rank"] == "distinctive" and body["options"]["reference"] == scan_id
    job = Job.fetch(body["id"], connection=redis_conn)
    assert job.args[3]["rank"] == "distinctive" and job.args[3]["reference"] == scan_id
    norm = post(client, images.photo_jpeg(), layers=LAYERS, top_k="2").get_json()
    assert norm["id"] != body["id"] and norm["options"]["rank"] == "norm"


@pytest.mark.parametrize("case, status, words", [
    ("missing", 404, ["reference", "there is no scan"]),
    ("unfinished", 409, ["reference", "is pending", "forward pass is done"]),
    ("other weights", 409, ["reference", "computed on the hed weights", "workers use imagenet"]),
    ("layer", 409, ["reference", "did not record block3_pool", "it has block1_pool, block2_pool"]),
    ("no weights recorded", 409, ["reference", "does not record which weights computed it"]),
])
def test_a_reference_that_cannot_serve_is_refused_with_nothing_stored(app, client, redis_conn, images, nothing_stored,
                                                                      check_against_spec, case, status, words):
    publish(redis_conn, "imagenet" if case == "other weights" else "hed")
    layers = LAYERS + ",block3_pool" if case == "layer" else LAYERS
    if case == "missing":
        scan_id = "0" * 32
    elif case == "unfinished":
        scan_id = "1" * 32
        folder = scans_root(app) / scan_id
        (folder / "images").mkdir(parents=True)
        (folder / "images" / "a.png").write_bytes(png(1))
        create_scan(folder, folder / "images", ScanOptions(layers=LAYERS))
    else:
        scan_id, _, _ = build_finished_scan(scans_root(app), weights=None if case == "no weights recorded" else "hed")
    scans_root(app).mkdir(parents=True, exist_ok=True)
    before = sorted(path.name for path in scans_root(app).iterdir())
    response = post(client, images.photo_jpeg(), layers=layers, rank="distinctive", reference=scan_id)
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    check_against_spec("/api/jobs", "post", status, body)
    assert body["error"]["code"] == "invalid_reference"
    for word in words:
        assert word in body["error"]["message"]
    assert sorted(path.name for path in scans_root(app).iterdir()) == before
    shutil.rmtree(scans_root(app))  # the scans are the test's: the job must have left nothing besides them
    nothing_stored()


def test_methods_list_the_scans_a_distinctive_ranking_can_use(app, client, redis_conn, finished, check_against_spec):
    publish(redis_conn, "hed")
    old, _, _ = build_finished_scan(scans_root(app), weights=None)
    body = client.get("/api/methods").get_json()
    check_against_spec("/api/methods", "get", 200, body)
    deconv = next(method for method in body["methods"] if method["name"] == "deconv")
    reference = next(option for option in deconv["options"] if option["name"] == "reference")
    assert [scan["id"] for scan in reference["scans"]] == [finished[0]]
    assert "7 images · block1_pool, block2_pool · hed weights" in reference["scans"][0]["label"]
    publish(redis_conn, "imagenet")
    deconv = next(method for method in client.get("/api/methods").get_json()["methods"] if method["name"] == "deconv")
    assert next(option for option in deconv["options"] if option["name"] == "reference")["scans"] == []
