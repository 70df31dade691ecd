"""The built-in VGG19 served by a real ``worker.py`` with VISNET_MODEL=vgg19 (on the session's Redis, its own queue),
on a generated file of Keras' layout in a models folder of this module's (tests/support/vgg19.py): listed by
GET /api/models with its live worker, one deconvnet job through the API. Without its weights file a worker exits
at once, saying which command fetches it."""
import io

import pytest
from PIL import Image

from tests.support.paths import ARTIFACTS, EXAMPLES
from tests.support.service import service_app_on
from tests.support.workers import Worker, running_worker

pytestmark = pytest.mark.integration

VGG19_NOTOP = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, vgg19_notop_file):
    """A models folder holding the generated VGG19 file without the top, under Keras' file name."""
    folder = tmp_path_factory.mktemp("vgg19_jobs") / "models"
    folder.mkdir()
    (folder / VGG19_NOTOP).symlink_to(vgg19_notop_file)
    return folder


def worker_env(service_env, models_dir):
    # no warm-up pass: the one job below pays for the first run instead (VGG19's is longer than a small model's)
    return {**service_env, "VISNET_MODEL": "vgg19", "VISNET_MODELS_DIR": str(models_dir), "VISNET_WORKER_WARM_UP": "0"}


@pytest.fixture(scope="module")
def vgg19_worker(service_env, models_dir):
    with running_worker(worker_env(service_env, models_dir), ARTIFACTS / "worker-vgg19.log") as process:
        yield process


@pytest.fixture(scope="module")
def api(service_env, models_dir):
    return service_app_on(service_env, models_dir).test_client()


def test_a_deconvnet_job_runs_on_the_vgg19_worker(api, vgg19_worker, vgg19_notop_file, wait_for_job,
                                                  check_against_spec):
    from visnet.weights import file_digest

    sha256 = file_digest(vgg19_notop_file, "sha256")
    models = {model["name"]: model for model in api.get("/api/models").get_json()["models"]}
    assert list(models)[:2] == ["vgg16", "vgg19"]
    vgg19 = models["vgg19"]
    assert vgg19["built_in"] is True and vgg19["workers"] == {"alive": 1, "names": [vgg19_worker.name]}
    assert vgg19["weights"]["present"] is True and vgg19["weights"]["name"] == "vgg19-notop"
    assert vgg19["sha256"] == sha256 and len(vgg19["layers"]) == 21

    photo = (EXAMPLES / "chelsea.jpg").read_bytes()
    response = api.post("/api/jobs", data={"image": (io.BytesIO(photo), "chelsea.jpg"), "model": "vgg19",
                                           "layers": "block3_conv4", "top_k": "1"},
                        content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    document = wait_for_job(lambda key: api.get(f"/api/jobs/{key}").get_json(), response.get_json()["id"],
                            timeout=300)
    assert document["status"] == "finished", document
    check_against_spec("/api/jobs/{job_id}", "get", 200, document)
    manifest = document["manifest"]
    assert document["model"] == "vgg19"
    assert manifest["model"] == {"name": "vgg19", "built_in": True, "sha256": sha256, "file": VGG19_NOTOP,
                                 "input_size": 224, "preprocess": "caffe"}
    assert manifest["weights"] == "vgg19-notop" and sha256[:12] in manifest["weights_description"]
    [layer] = manifest["layers"]
    assert layer["name"] == "block3_conv4" and len(layer["features"]) == 1
    picture = api.get(layer["features"][0]["reconstruction_url"])
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    with Image.open(io.BytesIO(picture.data)) as image:
        assert image.size == (224, 224)
    page = api.get(f"/jobs/{document['id']}").get_data(as_text=True)
    assert "model vgg19,\n    built in, on the weights vgg19-notop" in page


def test_a_vgg19_worker_without_its_weights_exits_naming_the_fetch_command(service_env, tmp_path):
    process = Worker(worker_env(service_env, tmp_path), ARTIFACTS / "worker-vgg19-no-weights.log")
    try:
        status = process.process.wait(timeout=300)
        log = process.log_text()
    finally:
        process.stop()
    assert status == 2, log
    assert "cannot serve model vgg19: no VGG19 weights found" in log and "Traceback" not in log
    assert "python -m visnet weights fetch vgg19 or python -m visnet weights fetch vgg19-notop" in log
