"""The models a job can ask for: the built-in VGG16, the built-in VGG19 (a chain model on Keras' ImageNet file in
the models folder, visnet.chain.vgg) and the chain models stored there (``python -m visnet models add``), each
with the live workers that serve it (service.presence).

A job's ``model`` is checked here before anything is stored: an unknown name is a 400 listing the models,
a stored model no live worker serves is a 503 (its jobs would wait for ever; VGG16's queue, as before
models existed, waits for the service's workers). No TensorFlow: a stored model's layers are read with
NumPy (visnet.chain.catalogue), once per version of its files.
"""
from dataclasses import dataclass

from flask import current_app
from redis import RedisError

from app.errors import ApiError
from app.redis_client import get_redis
from service import presence
from visnet import architecture
from visnet.chain.catalogue import model_names, stored_model
from visnet.chain.keras_config import ChainRefused
from visnet.chain.vgg import BUILT_IN_CHAINS
from visnet.scan.layout import model_layout
from visnet.settings import DEFAULT_MODEL, model_queue_name, scan_queue_name


@dataclass(frozen=True)
class Model:
    """A model a job may name: ``layers`` checks its layer options (visnet.methods.parse_options), ``identity``
    is what a job records and hashes ({"name", "sha256"}; None for VGG16, whose job ids are as they were)."""

    name: str
    layers: object
    identity: dict = None
    classes: int = None  # a stored model's class names (0: none); None for VGG16 (its workers' weights say)

    @property
    def built_in(self) -> bool:
        return self.name == DEFAULT_MODEL


VGG16 = Model(DEFAULT_MODEL, architecture)


def models_dir():
    return current_app.config["MODELS_DIR"]


def names() -> list:
    """Every model's name: VGG16 first, VGG19, then the stored ones."""
    return [DEFAULT_MODEL, *model_names(models_dir())]


def get_model(name) -> Model:
    """The model called ``name`` (blank: VGG16), or a 400 listing the models."""
    name = (name or "").strip() or DEFAULT_MODEL
    if name == DEFAULT_MODEL:
        return VGG16
    try:
        stored = stored_model(models_dir(), name)
    except ChainRefused:
        raise ApiError(400, f"model: no model {name[:60]!r}; the models are {', '.join(names())} "
                            "(GET /api/models)", "unknown_model") from None
    return Model(stored.name, stored.layers, {"name": stored.name, "sha256": stored.sha256}, stored.classes)


def require_worker(model: Model) -> None:
    """A 503 when a stored model has no live worker: nothing would ever run its job."""
    if model.built_in or presence.alive_workers_of(get_redis(), model.name):
        return
    fetch = ""
    if model.name in BUILT_IN_CHAINS and not stored_model(models_dir(), model.name).weights["present"]:
        fetch = f" after fetching its weights ({stored_model(models_dir(), model.name).weights['fetch']})"
    raise ApiError(503, f"model {model.name}: no worker serves it right now; start one with "
                        f"VISNET_MODEL={model.name} python worker.py{fetch}", "no_worker_for_model")


def how_to_classify(name: str) -> str:
    """What gives the chain model ``name`` its classes: the built-in VGG19's weights with the top; a stored model's
    final softmax and class names."""
    if name in BUILT_IN_CHAINS:
        return (f"its weights have no classifier top: python -m visnet weights fetch {name}, then restart its "
                "workers")
    return "a final softmax and python -m visnet models add … --classes FILE"


def scan_layout(model: Model):
    """What a dataset scan needs of ``model`` (visnet.scan.layout): its scannable layers, input and preprocessing."""
    return model_layout(models_dir(), model.name)


def queue_name(model_name: str) -> str:
    return model_queue_name(current_app.config["QUEUE_NAME"], model_name or DEFAULT_MODEL)


def scans_queue_name(model_name: str) -> str:
    """The queue of ``model``'s dataset scans: after its photo queue, its workers serve this one."""
    return scan_queue_name(current_app.config["QUEUE_NAME"], model_name or DEFAULT_MODEL)


def describe_models() -> list:
    """``GET /api/models``: each model's layers, input, preprocessing, classes and live workers."""
    workers = presence.alive_workers(get_redis())
    live = {}
    for worker in workers:
        live.setdefault(presence.worker_model(worker), []).append(worker["name"])
    published = presence.published_model(get_redis()) or {}
    has_top = published.get("has_classifier")
    described = [{
        "name": DEFAULT_MODEL, "built_in": True, "sha256": None,
        "input": {"height": architecture.INPUT_SIZE, "width": architecture.INPUT_SIZE,
                  "channels": architecture.INPUT_CHANNELS},
        "preprocess": "caffe",
        # the classifier top depends on the weights the workers loaded: unknown until one has started
        "classes": {"count": None if has_top is None else (1000 if has_top else 0), "classifies": has_top},
        "source": {"weights": published.get("weights")},
        "layers": [{"name": layer.name, "kind": layer.kind, "channels": layer.channels,
                    "shape": [layer.resolution, layer.resolution, layer.channels]} for layer in architecture.LAYERS],
    }]
    for name in model_names(models_dir()):
        try:
            described.append(stored_model(models_dir(), name).describe())
        except (ChainRefused, OSError, ValueError, KeyError):  # removed or half-written meanwhile
            continue
    for model in described:
        model["workers"] = {"alive": len(live.get(model["name"], [])), "names": live.get(model["name"], [])}
    return described


def served_models() -> list:
    """The models with a live worker (:func:`describe_models`), for a page's model picker (shown when there are two
    or more); none when Redis does not answer."""
    try:
        return [model for model in describe_models() if model["workers"]["alive"]]
    except (RedisError, OSError):
        return []
