"""A stored chain model served by its own worker: a small Keras model added with ``python -m visnet models add``
into a models folder of this module's, a real ``worker.py`` with VISNET_MODEL naming it (on the session's Redis,
its own queue), and deconvnet jobs and a dataset scan through the API. A second stored model has no worker: its
jobs and scans are refused."""
import hashlib
import io
import os
import subprocess
import sys
import time

import pytest
from PIL import Image
from rq import Queue

from app.jobs.forms import read_method_form
from tests.support.paths import ARTIFACTS, EXAMPLES, PROJECT_ROOT
from tests.support.scan_uploads import build_zip, photo_members
from tests.support.service import service_app_on
from tests.support.workers import running_worker
from visnet.chain.store import load_chain

pytestmark = pytest.mark.integration

SERVED, IDLE = "tiny", "tiny-idle"
CLASSES = ("cat", "dog", "cup", "car", "tree")  # the served model's; the idle one has none


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """Two models added by the CLI from one small Keras file (tests/visnet/chain/conftest.py's sequential model:
    40×40 input, its own Rescaling, max and average pools, a dense head with softmax)."""
    from tests.visnet.chain.conftest import randomise, sequential_model

    folder = tmp_path_factory.mktemp("model_jobs")
    keras_file = folder / "tiny.keras"
    randomise(sequential_model(), 3).save(keras_file)
    models = folder / "models"
    (folder / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    env = {"VISNET_MODELS_DIR": str(models), "TF_CPP_MIN_LOG_LEVEL": "2"}
    # One CLI process adds both: each `models add` is the operator's command, run by visnet.cli as the shell runs it.
    script = ("import sys; from visnet.cli import main; "
              f"sys.exit(main(['models', 'add', sys.argv[1], '--name', {SERVED!r}, '--classes', sys.argv[2]]) or "
              f"main(['models', 'add', sys.argv[1], '--name', {IDLE!r}]))")
    run = subprocess.run([sys.executable, "-c", script, str(keras_file), str(folder / "classes.txt")], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, **env})
    assert run.returncode == 0, run.stdout + run.stderr
    return models


@pytest.fixture(scope="module")
def model_worker(service_env, models_dir):
    with running_worker({**service_env, "VISNET_MODEL": SERVED, "VISNET_MODELS_DIR": str(models_dir)},
                        ARTIFACTS / "worker-model.log") as process:
        yield process


@pytest.fixture(scope="module")
def api(service_env, models_dir):
    return service_app_on(service_env, models_dir).test_client()


def post(api, **fields):
    photo = (EXAMPLES / "chelsea.jpg").read_bytes()
    return api.post("/api/jobs", data={"image": (io.BytesIO(photo), "chelsea.jpg"), **fields},
                    content_type="multipart/form-data")


def test_the_models_list_names_the_stored_models_and_their_live_workers(api, model_worker, models_dir,
                                                                         check_against_spec):
    response = api.get("/api/models")
    check_against_spec("/api/models", "get", 200, response.get_json())
    models = {model["name"]: model for model in response.get_json()["models"]}
    assert list(models) == ["vgg16", "vgg19", SERVED, IDLE]
    chain = load_chain(models_dir, SERVED)
    served = models[SERVED]
    assert served["workers"] == {"alive": 1, "names": [model_worker.name]}
    assert models[IDLE]["workers"] == {"alive": 0, "names": []}
    assert served["built_in"] is False and served["sha256"] == chain.source["sha256"]
    assert served["input"] == {"height": 40, "width": 40, "channels": 3} and served["preprocess"] == "none"
    assert served["classes"] == {"count": 5, "classifies": True}
    assert models[IDLE]["classes"] == {"count": 0, "classifies": True}
    assert [(layer["name"], layer["kind"], layer["channels"]) for layer in served["layers"]] == [
        (name, chain.layer(name).kind, chain.channels(name)) for name in chain.layer_names]
    assert models["vgg16"]["built_in"] is True and len(models["vgg16"]["layers"]) == 18
    assert model_worker.name not in models["vgg16"]["workers"]["names"]


def test_a_deconvnet_job_runs_on_the_models_worker_and_names_the_model(api, model_worker, models_dir, wait_for_job,
                                                                       check_against_spec):
    response = post(api, model=SERVED, layers="pools", top_k="2", seed="both")
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["id"]
    assert response.get_json()["model"] == SERVED
    photo_hash = hashlib.sha256((EXAMPLES / "chelsea.jpg").read_bytes()).hexdigest()
    assert job_id != read_method_form({"layers": "pools", "top_k": "2", "seed": "both"}).job_key(photo_hash)

    document = wait_for_job(lambda key: api.get(f"/api/jobs/{key}").get_json(), job_id, timeout=300)
    assert document["status"] == "finished", document
    check_against_spec("/api/jobs/{job_id}", "get", 200, document)
    manifest = document["manifest"]
    sha256 = load_chain(models_dir, SERVED).source["sha256"]
    assert document["model"] == SERVED
    assert manifest["model"] == {"name": SERVED, "built_in": False, "sha256": sha256, "file": "tiny.keras",
                                 "input_size": 40, "preprocess": "none"}
    assert manifest["weights"] == SERVED and sha256[:12] in manifest["weights_description"]
    assert [layer["name"] for layer in manifest["layers"]] == ["pool1", "avg1", "pool2"]
    for layer in manifest["layers"]:
        assert len(layer["features"]) == 2
        for feature in layer["features"]:
            for key in ("reconstruction", "overlay", "patch", "photo_patch"):
                picture = api.get(feature[f"{key}_url"])
                assert picture.status_code == 200 and picture.mimetype == "image/png"
                with Image.open(io.BytesIO(picture.data)) as image:
                    size = image.size
                side = feature["field"]["side"]
                assert size == {"reconstruction": (40, 40), "overlay": (40, 40)}.get(key, (side, side)), key
    assert "tiny" in model_worker.log_text()
    page = api.get(f"/jobs/{job_id}")
    assert page.status_code == 200 and f"model {SERVED}" in page.get_data(as_text=True)
    # its tabs are the model's: its own defaults and layer choices (GET /api/methods?model=)
    assert f'data-methods="/api/methods?model={SERVED}"' in page.get_data(as_text=True)

    # a follow-up job on the result (the job page's per-layer forms) runs on the same model, checked against it
    follow_up = api.post("/api/jobs", data={"from_job": job_id, "top_k": "0", "channels": "conv3:11"},
                         content_type="multipart/form-data")
    assert follow_up.status_code == 202 and follow_up.get_json()["model"] == SERVED, follow_up.get_data(as_text=True)
    done = wait_for_job(lambda key: api.get(f"/api/jobs/{key}").get_json(), follow_up.get_json()["id"], timeout=300)
    assert done["status"] == "finished" and done["manifest"]["layers"][0]["name"] == "conv3", done
    assert done["manifest"]["layers"][0]["features"][0]["channel"] == 11


def test_feature_maps_and_classification_run_on_the_models_worker(api, model_worker, wait_for_job,
                                                                 check_against_spec):
    jobs = {}
    for fields in ({"method": "feature-maps", "layer": "conv3"}, {"method": "feature-maps"},
                   {"method": "classification"}):
        response = post(api, model=SERVED, **fields)
        assert response.status_code == 202, response.get_data(as_text=True)
        jobs[tuple(fields.items())] = response.get_json()["id"]
    done = {key: wait_for_job(lambda job: api.get(f"/api/jobs/{job}").get_json(), job_id, timeout=300)
            for key, job_id in jobs.items()}
    for document in done.values():
        assert document["status"] == "finished" and document["model"] == SERVED, document
        check_against_spec("/api/jobs/{job_id}", "get", 200, document)
        assert document["manifest"]["model"]["name"] == SERVED
    conv3, first, classes = (done[key]["manifest"] for key in jobs)
    assert conv3["data"]["layer"] == "conv3" and len(conv3["data"]["channels"]) == 12
    assert first["data"]["layer"] == "conv1"  # a blank layer is the model's first
    assert conv3["files"][0]["caption"].startswith("conv3 of model tiny: every channel (12)")
    top = classes["data"]["top5"]
    assert sorted(entry["name"] for entry in top) == sorted(CLASSES)
    assert sum(entry["probability"] for entry in top) == pytest.approx(1, abs=1e-5)
    for manifest in (conv3, classes):
        picture = api.get(manifest["files"][0]["file_url"])
        assert picture.status_code == 200 and picture.mimetype == "image/png"


# One job per view (and the deconvnet's other two rules), small: what each must show (its files' stems).
VIEW_JOBS = {
    "filters": ({"layer": "conv1", "channel": "3"}, {"filters_rgb", "filter_3"}),
    "occlusion": ({"sizes": "10:10"}, {"occlusion_10x10_drop", "occlusion_10x10_feature",
                                       "occlusion_10x10_probability", "occlusion_10x10_class"}),
    "activation-max": ({"layer": "conv3", "channels": "1", "octaves": "1", "steps": "3"},
                       {"activation_max_conv3_ch1", "activation_max_conv3_curve"}),
    "channel-rank": ({"layer": "conv3", "channel": "4"}, {"channel_rank"}),
    "gradients": ({"layers": "pool2", "top_k": "1"}, {"gradients_pool2"}),
}


def test_every_view_and_the_deconvnets_rules_run_on_the_models_worker(api, model_worker, wait_for_job,
                                                                     check_against_spec):
    jobs = {method: post(api, model=SERVED, method=method, **fields) for method, (fields, _) in VIEW_JOBS.items()}
    for rule in ("guided", "gradient"):
        jobs[rule] = post(api, model=SERVED, layers="pool2", top_k="1", seed="map", rule=rule)
    for key, response in jobs.items():
        assert response.status_code == 202, (key, response.get_data(as_text=True))
    done = {key: wait_for_job(lambda job: api.get(f"/api/jobs/{job}").get_json(), response.get_json()["id"],
                              timeout=300) for key, response in jobs.items()}
    for key, document in done.items():
        assert document["status"] == "finished" and document["model"] == SERVED, (key, document)
        check_against_spec("/api/jobs/{job_id}", "get", 200, document)
        manifest = document["manifest"]
        assert manifest["model"]["name"] == SERVED, key
        if key in VIEW_JOBS:
            assert {entry["file"].removesuffix(".png") for entry in manifest["files"]} == VIEW_JOBS[key][1], key
            assert manifest["data"]["model"] == SERVED
            urls = [entry["file_url"] for entry in manifest["files"]]
        else:
            assert manifest["rule"] == key and [layer["name"] for layer in manifest["layers"]] == ["pool2"]
            urls = [manifest["layers"][0]["features"][0]["reconstruction_url"]]
        for url in urls:
            picture = api.get(url)
            assert picture.status_code == 200 and picture.mimetype == "image/png", (key, url)
            (ARTIFACTS / "model-views").mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "model-views" / f"{key}-{url.rsplit('/', 1)[-1]}").write_bytes(picture.data)
    occlusion = done["occlusion"]["manifest"]["data"]
    assert occlusion["feature_layer"] == "conv4" and occlusion["predicted_class"]["name"] in CLASSES
    assert done["channel-rank"]["manifest"]["data"]["channels"] == 12


def test_options_are_checked_against_the_models_own_layers(api, model_worker):
    cases = {
        (("layers", "block5_pool"),): "unknown layer 'block5_pool' of model tiny; expected one of conv1,",
        (("top_k", "0"), ("channels", "fc1:16")): "channel 16 is out of range for fc1 of model tiny",
        (("method", "occlusion"), ("sizes", "50:10")): "sizes: size and stride must be between 1 and 40, got 50:10",
        (("method", "filters"), ("layer", "pool1")): "layer must be one of conv1, conv2_s2, conv3, conv4; pool1 is",
        (("method", "feature-maps"), ("layer", "block1_conv1")): "unknown layer 'block1_conv1' of model tiny",
        (("rank", "distinctive"), ("reference", "0" * 32)): "model tiny ranks channels by norm only",
    }
    for fields, message in cases.items():
        response = post(api, model=SERVED, **dict(fields))
        assert response.status_code == 400, (fields, response.get_data(as_text=True))
        assert message in response.get_json()["error"]["message"]
    unknown = post(api, model="nope")
    assert unknown.status_code == 400 and unknown.get_json()["error"]["code"] == "unknown_model"
    assert "the models are vgg16, vgg19, tiny, tiny-idle" in unknown.get_json()["error"]["message"]


def test_a_model_without_a_live_worker_is_refused_and_nothing_is_enqueued(api, service_env, model_worker,
                                                                          check_against_spec):
    response = post(api, model=IDLE)
    assert response.status_code == 503, response.get_data(as_text=True)
    check_against_spec("/api/jobs", "post", 503, response.get_json())
    assert response.get_json()["error"]["code"] == "no_worker_for_model"
    assert f"VISNET_MODEL={IDLE}" in response.get_json()["error"]["message"]
    queue = Queue(f"{service_env['VISNET_QUEUE']}-model-{IDLE}", connection=model_worker.connection)
    assert queue.count == 0 and queue.get_job_ids() == []


def wait_for_scan_document(api, scan_id, timeout=300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = api.get(f"/api/scans/{scan_id}").get_json()
        if document["status"] in ("done", "failed"):
            return document
        time.sleep(0.25)
    raise AssertionError(f"scan {scan_id} still {document['status']} after {timeout} s: {document}")


def test_a_scan_posted_with_the_model_runs_on_its_worker(api, model_worker, service_env, check_against_spec):
    archive = build_zip(photo_members(photos=("chelsea", "coffee", "astronaut"), generated=1, grey=False))
    refused = api.post("/api/scans", data={"archive": (io.BytesIO(archive), "set.zip"), "model": IDLE},
                       content_type="multipart/form-data")
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "no_worker_for_model"
    response = api.post("/api/scans", data={"archive": (io.BytesIO(archive), "set.zip"), "model": SERVED,
                                            "layers": "pool1,fc1", "k": "2", "chunk_size": "2", "project_channels": "2"},
                        content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    scan_id = response.get_json()["id"]
    document = wait_for_scan_document(api, scan_id)
    check_against_spec("/api/scans/{scan_id}", "get", 200, document)
    assert document["status"] == "done" and document["model"] == SERVED, document
    assert document["images"] == 4 and document["progress"]["chunks_done"] == 2
    assert [(layer["name"], layer["channels"]) for layer in document["layers"]] == [("pool1", 8), ("fc1", 16)]

    page = api.get(f"/api/scans/{scan_id}/layers/pool1?sort=top").get_json()
    check_against_spec("/api/scans/{scan_id}/layers/{layer}", "get", 200, page)
    strongest = page["units"][0]
    assert strongest["projected"] and len(strongest["top"]) == 2
    crop = api.get(strongest["top"][0]["projection"]["crop_url"])
    assert crop.status_code == 200 and crop.mimetype == "image/png"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "chain-scan-pool1-crop.png").write_bytes(crop.data)
    (ARTIFACTS / "chain-scan-pool1-patch.png").write_bytes(api.get(strongest["top"][0]["projection"]["patch_url"]).data)
    # a unit opened in the browser is projected on demand, on the model's scans' queue, with its whole map too
    neuron = api.get(f"/api/scans/{scan_id}/layers/fc1?sort=top").get_json()["units"][0]  # the strongest
    assert neuron["top_activation"] > 0, neuron
    requested = api.post(neuron["url"] + "/projection")
    assert requested.status_code in (200, 202), requested.get_data(as_text=True)
    deadline = time.monotonic() + 120
    while (unit := api.get(neuron["url"]).get_json())["projection_state"]["state"] \
            not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.25)
    check_against_spec("/api/scans/{scan_id}/layers/{layer}/units/{channel}", "get", 200, unit)
    assert unit["complete"] and unit["label"] is None, unit
    full = api.get(unit["top"][0]["projection"]["full_url"])
    with Image.open(io.BytesIO(full.data)) as image:
        assert image.size == (40, 40)
        assert len(image.getcolors(40 * 40)) > 1  # a picture of the input that moves the neuron, not a blank
    (ARTIFACTS / "chain-scan-fc1-full.png").write_bytes(full.data)
    assert f"<strong>Model:</strong> {SERVED}" in api.get(f"/scans/{scan_id}").get_data(as_text=True)
    assert Queue(f"{service_env['VISNET_QUEUE']}-scans-model-{IDLE}", connection=model_worker.connection).count == 0
