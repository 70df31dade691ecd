"""The models a job can name, without a worker process: a stored chain model written by hand into a models
folder, workers' presence keys set as a live worker sets them. (A real worker of a stored model:
tests/integration/test_model_jobs.py.)"""
import io

import numpy as np
import pytest
from rq import Queue

from service import presence
from tests.support.jobs import png_bytes
from tests.support.scan_api import good_zip, queued_ids, scans_root
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
            ({"model": "hand", "method": "filters", "layer": "pool"}, 400,
             "layer must be one of conv; pool is a pooling layer, which has no filters"),
            ({"model": "hand", "method": "occlusion", "sizes": "9:1"}, 400, "size and stride must be between 1 and 8"),
            ({"model": "hand", "method": "classification"}, 409, "model hand has no class names"),
            ({"model": "hand", "method": "nope"}, 400, "unknown method 'nope'")):
        response = post(client, **fields)
        assert response.status_code == status and words in response.get_json()["error"]["message"], fields
    nothing_stored()
    assert Queue("visnet-test-model-hand", connection=redis_conn).count == 0


def test_every_view_takes_the_models_own_defaults_and_goes_to_its_queue(client, live, redis_conn):
    live("w-hand", "hand")
    expected = {"filters": {"layer": "conv", "channel": 0}, "occlusion": {"sizes": [[2, 1]], "batch_size": 32},
                "activation-max": {"layer": "conv", "channels": [0, 1, 2, 3]},
                "channel-rank": {"layer": "conv", "channel": 0}, "gradients": {"layers": ["pool"], "top_k": 3}}
    for method, values in expected.items():
        response = post(client, model="hand", method=method)
        assert response.status_code == 202, (method, response.get_data(as_text=True))
        options = response.get_json()["options"]
        assert {name: options[name] for name in values} == values, method
    assert Queue("visnet-test-model-hand", connection=redis_conn).count == len(expected)


def test_the_methods_of_a_stored_model_have_its_own_defaults_and_layer_choices(client, check_against_spec):
    """What the job page of a stored model's job draws its tabs from (templates/job.html: data-methods)."""
    body = client.get("/api/methods?model=hand").get_json()
    check_against_spec("/api/methods", "get", 200, body)
    options = {method["name"]: {option["name"]: option for option in method["options"]} for method in body["methods"]}
    assert options["filters"]["layer"]["default"] == "conv" and options["filters"]["layer"]["choices"] == ["conv"]
    assert options["occlusion"]["sizes"]["default"] == "2:1"  # VGG16's 50:10 at 8 px
    assert options["activation-max"]["channels"]["default"] == "0,1,2,3"
    assert options["channel-rank"]["layer"]["default"] == "conv"
    assert body["has_classifier"] is False
    classification = next(method for method in body["methods"] if method["name"] == "classification")
    assert "model hand has none" in classification["unavailable"]
    vgg16 = {method["name"]: method for method in client.get("/api/methods").get_json()["methods"]}
    assert vgg16["filters"]["options"][0]["choices"][0] == "block1_conv1" and "unavailable" not in vgg16["filters"]
    unknown = client.get("/api/methods?model=nope")
    assert unknown.status_code == 400 and unknown.get_json()["error"]["code"] == "unknown_model"
    check_against_spec("/api/methods", "get", 400, unknown.get_json())


def test_a_method_a_stored_model_does_not_serve_is_refused_by_name(client, live, monkeypatch, nothing_stored):
    """Every method is served today; a method added to visnet.methods before its chain view is refused by name."""
    from app.jobs import forms

    live("w-hand", "hand")
    monkeypatch.setattr(forms, "CHAIN_METHODS", tuple(name for name in forms.CHAIN_METHODS if name != "filters"))
    response = post(client, model="hand", method="filters")
    assert response.status_code == 400
    assert "method filters is not available for model hand" in response.get_json()["error"]["message"]
    nothing_stored()


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


def post_scan(client, **fields):
    return client.post("/api/scans", data={"archive": (io.BytesIO(good_zip()), "set.zip"), **fields},
                       content_type="multipart/form-data")


def test_a_scan_for_the_stored_model_goes_to_its_scans_queue_and_names_the_model(client, app, live, redis_conn,
                                                                                 check_against_spec):
    refused = post_scan(client, model="hand")
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "no_worker_for_model"
    assert "VISNET_MODEL=hand" in refused.get_json()["error"]["message"]
    live("w-hand", "hand")
    for fields, status, words in (
            ({"model": "nope"}, 400, "no model 'nope'; the models are vgg16, vgg19, hand"),
            ({"model": "hand", "layers": "block1_pool"}, 400, "unknown layer 'block1_pool' of model hand"),
            ({"model": "hand", "image_size": "7"}, 400, "image_size must be a whole number from 8")):
        response = post_scan(client, **fields)
        assert response.status_code == status and words in response.get_json()["error"]["message"], fields
    root = scans_root(app)
    assert not root.exists() or list(root.iterdir()) == []

    response = post_scan(client, model="hand", layers="all", k="2")
    assert response.status_code == 202, response.get_data(as_text=True)
    document = response.get_json()
    check_against_spec("/api/scans", "post", 202, document)
    assert document["model"] == "hand" and document["options"]["layers"] == ["conv", "pool"]
    assert document["options"]["image_size"] == 8  # the model's input, whole
    assert [(layer["name"], layer["channels"]) for layer in document["layers"]] == [("conv", 4), ("pool", 4)]
    queue = Queue("visnet-test-scans-model-hand", connection=redis_conn)
    assert queue.job_ids == [f"scanstart-{document['id']}-1"] and queued_ids(app, redis_conn) == []
    start = queue.fetch_job(queue.job_ids[0])
    assert start.kwargs["model"]["name"] == "hand" and start.kwargs["model"]["sha256"] == SHA256
    listed = client.get("/api/scans").get_json()
    check_against_spec("/api/scans", "get", 200, listed)
    assert [(scan["id"], scan["model"]) for scan in listed["scans"]] == [(document["id"], "hand")]
    assert "<strong>Model:</strong> hand" in client.get(f"/scans/{document['id']}").get_data(as_text=True)


def test_the_scans_form_offers_the_models_with_live_workers_and_their_layers(client, app, live, redis_conn):
    live("w-vgg", "vgg16")
    assert 'id="model"' not in client.get("/scans").get_data(as_text=True)  # one model served: no picker
    live("w-hand", "hand")
    page = client.get("/scans").get_data(as_text=True)
    assert '<select id="model" name="model">' in page and '<option value="vgg16" selected>vgg16</option>' in page
    assert 'value="hand" >hand: your model, 8×8 input, 2 layers</option>' in page
    assert '<input type="checkbox" name="layer-hand" value="pool" checked>' in page
    assert '<input type="checkbox" name="layer-hand" value="conv" >' in page
    # without JavaScript: the chosen model's boxes count, VGG16's ticked pools do not
    response = client.post("/scans", data={"archive": (io.BytesIO(good_zip()), "set.zip"), "model": "hand",
                                           "layer": ["block1_pool"], "layer-hand": ["conv"], "k": "2",
                                           "image_size": ""}, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    scan_id = response.headers["Location"].rsplit("/", 1)[1]
    assert client.get(f"/api/scans/{scan_id}").get_json()["options"]["layers"] == ["conv"]
    assert Queue("visnet-test-scans-model-hand", connection=redis_conn).job_ids == [f"scanstart-{scan_id}-1"]


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
