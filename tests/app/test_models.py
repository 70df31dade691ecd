"""The models a job can name, without a worker process: a stored chain model written by hand into a models
folder, workers' presence keys set as a live worker sets them. (A real worker of a stored model:
tests/integration/test_model_jobs.py.)"""
import io

import numpy as np
import pytest
from rq import Queue

from service import presence
from tests.support.jobs import png_bytes
from visnet.chain.spec import Chain, LayerSpec
from visnet.chain.store import save_chain

SHA256 = "ab" * 32


@pytest.fixture
def app_config(app_config, tmp_path):
    """The web fixtures' config with a models folder holding one stored model, 'hand': 8×8×3 in, a 3×3 conv of 4
    channels with ReLU, a 2×2 max pool."""
    kernel = np.arange(3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4) / 100
    chain = Chain("hand", (8, 8, 3), (
        LayerSpec("conv", "conv", kernel=kernel, bias=np.zeros(4, np.float32), window=(3, 3), padding="SAME",
                  relu=True),
        LayerSpec("pool", "max_pool", window=(2, 2), strides=(2, 2))), "unit",
        source={"file": "hand.keras", "sha256": SHA256})
    save_chain(chain, tmp_path / "models")
    return {**app_config, "MODELS_DIR": str(tmp_path / "models")}


@pytest.fixture
def live(redis_conn):
    """live(name, model): a worker's presence key, as service.worker's heartbeat writes it."""
    def mark(name, model):
        presence.mark_alive(redis_conn, name, {"model": model, "weights": model, "device": "cpu"})
    return mark


def post(client, **fields):
    return client.post("/api/jobs", data={"image": (io.BytesIO(png_bytes()), "photo.png"), **fields},
                       content_type="multipart/form-data")


def test_the_models_list_has_vgg16_and_the_stored_model_with_their_workers(client, live, check_against_spec):
    live("w-vgg", None)  # a worker of an older version names no model: it serves VGG16
    live("w-hand", "hand")
    body = client.get("/api/models").get_json()
    check_against_spec("/api/models", "get", 200, body)
    vgg16, vgg19, hand = body["models"]
    assert vgg16["name"] == "vgg16" and vgg16["workers"] == {"alive": 1, "names": ["w-vgg"]}
    assert vgg16["input"] == {"height": 224, "width": 224, "channels": 3} and vgg16["preprocess"] == "caffe"
    assert vgg19["name"] == "vgg19" and vgg19["built_in"] is True and vgg19["workers"]["alive"] == 0
    assert hand == {"name": "hand", "built_in": False, "sha256": SHA256,
                    "input": {"height": 8, "width": 8, "channels": 3}, "preprocess": "unit",
                    "classes": {"count": 0, "classifies": False}, "source": {"file": "hand.keras"},
                    "layers": [{"name": "conv", "kind": "conv", "channels": 4, "shape": [8, 8, 4]},
                               {"name": "pool", "kind": "max_pool", "channels": 4, "shape": [4, 4, 4]}],
                    "workers": {"alive": 1, "names": ["w-hand"]}}


def test_a_job_for_the_stored_model_goes_to_its_queue_and_its_id_names_the_model(client, app, live, redis_conn):
    live("w-hand", "hand")
    response = post(client, model="hand", layers="all", top_k="2", channels="pool:3")
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    assert job["model"] == "hand" and job["options"]["layers"] == ["conv", "pool"]
    assert job["options"]["channels"] == [["pool", 3]]
    queue = Queue("visnet-test-model-hand", connection=redis_conn)
    assert queue.get_job_ids() == [job["id"]] and Queue("visnet-test", connection=redis_conn).count == 0
    enqueued = queue.fetch_job(job["id"])
    assert enqueued.kwargs == {"model": {"name": "hand", "sha256": SHA256}}
    assert enqueued.meta["model"] == {"name": "hand", "sha256": SHA256}
    vgg16 = post(client, layers="block1_pool,block2_pool", top_k="2")  # same photo, VGG16: another id, its queue
    assert vgg16.status_code == 202 and vgg16.get_json()["id"] != job["id"] and vgg16.get_json()["model"] == "vgg16"
    assert Queue("visnet-test", connection=redis_conn).get_job_ids() == [vgg16.get_json()["id"]]
    assert Queue("visnet-test", connection=redis_conn).fetch_job(vgg16.get_json()["id"]).kwargs == {}


def test_bad_models_and_layers_are_refused_before_anything_is_stored(client, live, nothing_stored, redis_conn):
    assert post(client, model="hand").status_code == 503  # no live worker of it
    live("w-hand", "hand")
    for fields, status, words in (
            ({"model": "nope"}, 400, "no model 'nope'; the models are vgg16, vgg19, hand"),
            ({"model": "hand", "layers": "block1_pool"}, 400, "unknown layer 'block1_pool' of model hand"),
            ({"model": "hand", "channels": "conv:4"}, 400, "channel 4 is out of range for conv of model hand"),
            ({"model": "hand", "method": "filters"}, 400, "method filters is not available for model hand"),
            ({"model": "hand", "method": "classification"}, 409, "model hand has no class names"),
            ({"model": "hand", "method": "nope"}, 400, "unknown method 'nope'")):
        response = post(client, **fields)
        assert response.status_code == status and words in response.get_json()["error"]["message"], fields
    nothing_stored()
    assert Queue("visnet-test-model-hand", connection=redis_conn).count == 0


def test_the_upload_page_offers_the_models_with_live_workers_when_there_are_several(client, live, redis_conn):
    live("w-vgg", "vgg16")
    assert 'id="model"' not in client.get("/").get_data(as_text=True)  # one model served: no picker
    live("w-hand", "hand")
    page = client.get("/").get_data(as_text=True)
    assert '<select id="model" name="model">' in page
    assert '<option value="vgg16" selected>vgg16</option>' in page
    assert 'value="hand" >hand: your model, 8×8 input, 2 layers</option>' in page
    # without JavaScript the form posts to /jobs, which takes the model too
    response = client.post("/jobs", data={"image": (io.BytesIO(png_bytes()), "photo.png"), "model": "hand",
                                          "preset": "pools", "top_k": "1"}, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    assert Queue("visnet-test-model-hand", connection=redis_conn).count == 1


# --- the built-in VGG19 --------------------------------------------------------------------------

VGG19_NOTOP = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


def test_vgg19_is_listed_as_built_in_and_says_its_weights_are_missing(client, nothing_stored, redis_conn):
    """No weights file in the models folder: listed with its convolutional layers and the fetch commands; a job
    for it is refused (no worker can serve it), naming them."""
    body = client.get("/api/models").get_json()
    vgg19 = next(model for model in body["models"] if model["name"] == "vgg19")
    assert vgg19["built_in"] is True and vgg19["sha256"] is None and vgg19["workers"] == {"alive": 0, "names": []}
    assert vgg19["weights"] == {"present": False, "name": None, "file": None, "fetch": (
        "python -m visnet weights fetch vgg19 or python -m visnet weights fetch vgg19-notop")}
    assert vgg19["input"] == {"height": 224, "width": 224, "channels": 3} and vgg19["preprocess"] == "caffe"
    assert vgg19["classes"] == {"count": 0, "classifies": False}
    assert len(vgg19["layers"]) == 21 and vgg19["layers"][9] == {
        "name": "block3_conv4", "kind": "conv", "channels": 256, "shape": [56, 56, 256]}
    response = post(client, model="vgg19")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "no_worker_for_model"
    assert response.get_json()["error"]["message"] == (
        "model vgg19: no worker serves it right now; start one with VISNET_MODEL=vgg19 python worker.py after fetching "
        "its weights (python -m visnet weights fetch vgg19 or python -m visnet weights fetch vgg19-notop)")
    nothing_stored()


def test_with_its_weights_and_a_live_worker_a_vgg19_job_goes_to_its_queue_checked_against_its_layers(
        client, app_config, live, redis_conn, vgg19_notop_file, check_against_spec):
    from pathlib import Path

    from visnet.weights import file_digest

    (Path(app_config["MODELS_DIR"]) / VGG19_NOTOP).symlink_to(vgg19_notop_file)
    live("w-vgg19", "vgg19")
    body = client.get("/api/models").get_json()
    check_against_spec("/api/models", "get", 200, body)
    vgg19 = next(model for model in body["models"] if model["name"] == "vgg19")
    sha256 = file_digest(vgg19_notop_file, "sha256")
    assert vgg19["weights"]["present"] is True and vgg19["weights"]["name"] == "vgg19-notop"
    assert vgg19["weights"]["file"] == VGG19_NOTOP and vgg19["sha256"] == sha256
    assert vgg19["workers"] == {"alive": 1, "names": ["w-vgg19"]}

    response = post(client, model="vgg19", layers="block3_conv4,block5_pool", top_k="1")
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    assert job["model"] == "vgg19" and job["options"]["layers"] == ["block3_conv4", "block5_pool"]
    queue = Queue("visnet-test-model-vgg19", connection=redis_conn)
    assert queue.get_job_ids() == [job["id"]]
    assert queue.fetch_job(job["id"]).kwargs == {"model": {"name": "vgg19", "sha256": sha256}}
    refused = post(client, model="vgg19", layers="block5_conv5")
    assert refused.status_code == 400 and "unknown layer 'block5_conv5' of model vgg19" in (
        refused.get_json()["error"]["message"])
    classification = post(client, model="vgg19", method="classification")  # the file has no top
    assert classification.status_code == 409 and classification.get_json()["error"]["message"] == (
        "classification: model vgg19 has no class names (its weights have no classifier top: python -m visnet "
        "weights fetch vgg19, then restart its workers)")
