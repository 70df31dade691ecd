"""A stored chain model served by its own worker: a small Keras model added with ``python -m visnet models add``
into a models folder of this module's, a real ``worker.py`` with VISNET_MODEL naming it (on the session's Redis,
its own queue), and deconvnet jobs through the API. A second stored model has no worker: its jobs are refused."""
import hashlib
import io
import os
import subprocess
import sys

import pytest
from PIL import Image
from rq import Queue

from app.jobs.forms import read_method_form
from tests.support.paths import ARTIFACTS, EXAMPLES, PROJECT_ROOT
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


def test_options_are_checked_against_the_models_own_layers(api, model_worker):
    cases = {
        (("layers", "block5_pool"),): "unknown layer 'block5_pool' of model tiny; expected one of conv1,",
        (("top_k", "0"), ("channels", "fc1:16")): "channel 16 is out of range for fc1 of model tiny",
        (("method", "occlusion"),): "method occlusion is not available for model tiny",
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
