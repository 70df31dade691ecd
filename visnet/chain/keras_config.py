"""A Keras model file's architecture, read without running anything, and what in it is not a chain.

A ``.keras`` file is a zip archive whose ``config.json`` describes the model; a Keras ``.h5`` model keeps
the same description in the root attribute ``model_config``. Both are read as JSON here, before Keras
loads anything, so that a custom or ``Lambda`` layer is named in the refusal instead of failing inside
Keras, and a file that is not a model is told apart from one that is the wrong model.
"""
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py

MODEL_CLASSES = ("Sequential", "Functional", "Model")
ACTIVATION_CLASSES = ("ReLU", "Activation", "Softmax")
SUPPORTED_CLASSES = ("InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "BatchNormalization", "Dropout",
                     "Flatten", "GlobalAveragePooling2D", "Dense", "Rescaling", "Normalization") + ACTIVATION_CLASSES
MERGE_CLASSES = ("Add", "Concatenate", "Multiply", "Average", "Subtract", "Maximum", "Minimum", "Dot")
ACCEPTED = ("InputLayer, Conv2D (dilation 1, activation relu or linear), ReLU, Activation('relu'), MaxPooling2D, "
            "AveragePooling2D, BatchNormalization after a linear Conv2D or Dense, Dropout, Flatten, "
            "GlobalAveragePooling2D, Dense (relu or linear; softmax last), Softmax last, Rescaling, Normalization")


class ChainRefused(ValueError):
    """The file is not a model, or a model that is not a chain of the supported layers; the message says why."""


@dataclass(frozen=True)
class Entry:
    """One layer of the file in chain order: ``where`` it sits (position, and the enclosing sub-model)."""

    where: str
    name: str
    class_name: str
    config: dict
    module: str


def read_model_config(path) -> dict:
    """The model's architecture as Keras wrote it; ChainRefused when ``path`` is not a Keras model file."""
    path = Path(path)
    if not path.is_file():
        raise ChainRefused(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ChainRefused(f"{path.name} is a zip archive without config.json, so not a Keras .keras model "
                                   "file")
            return _parse_json(archive.read("config.json"), path)
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as h5:
            if "model_config" not in h5.attrs:
                raise ChainRefused(f"{path.name} is an HDF5 file without the attribute model_config: weights only "
                                   "or another program's data, not a model saved by Keras' model.save (the "
                                   "architecture is needed; save the whole model as .keras)")
            return _parse_json(h5.attrs["model_config"], path)
    with open(path, "rb") as handle:
        head = handle.read(16)
    raise ChainRefused(f"{path.name} is not a Keras model file (it starts with {head!r}); expected a .keras "
                       "archive or an .h5 file saved by model.save")


def _parse_json(raw, path) -> dict:
    try:
        config = json.loads(raw.decode() if isinstance(raw, (bytes, bytearray)) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ChainRefused(f"{path.name}: the model description is not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise ChainRefused(f"{path.name}: the file holds a {found!r}, not a Keras Sequential or functional model")
    return config


def chain_entries(config: dict) -> tuple:
    """(entries in chain order, problems): every layer of the model, sub-models flattened, and a line for
    each thing that keeps it from being a chain of the supported layers."""
    entries, problems = [], []
    _walk(config, "", entries, problems)
    problems.extend(_sequence_problems(entries))
    return entries, problems


def _walk(model: dict, inside: str, entries: list, problems: list) -> None:
    body = model.get("config", {})
    layers = body.get("layers", [])
    if model.get("class_name") != "Sequential":
        problems.extend(_topology_problems(body, inside))
    for position, layer in enumerate(layers, start=1):
        name = layer.get("config", {}).get("name") or layer.get("name") or "?"
        where = f"layer {position} of {len(layers)}{inside}"
        if layer.get("class_name") in MODEL_CLASSES:
            _walk(layer, f" in sub-model {name!r} ({where})", entries, problems)
            continue
        entries.append(Entry(where, name, layer.get("class_name", "?"), layer.get("config", {}),
                             layer.get("module") or ""))


def _inbound_names(layer: dict) -> list:
    """Names of the layers whose outputs ``layer`` takes, from Keras 3's ``keras_history`` or Keras 2's
    ``[name, node, tensor, kwargs]`` lists."""
    names = []

    def visit(value):
        if isinstance(value, dict):
            if "keras_history" in value.get("config", {}):
                names.append(value["config"]["keras_history"][0])
                return
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            if len(value) == 4 and isinstance(value[0], str) and isinstance(value[1], int):
                names.append(value[0])
                return
            for item in value:
                visit(item)

    visit(layer.get("inbound_nodes", []))
    return names


def _topology_problems(body: dict, inside: str) -> list:
    """A functional model is a chain when it has one input, one output, and every layer takes exactly
    the output of the layer listed before it, once."""
    layers, problems = body.get("layers", []), []
    for key, what in (("input_layers", "inputs"), ("output_layers", "outputs")):
        count = len(_flat_references(body.get(key, [])))
        if count != 1:
            problems.append(f"the model{inside} has {count} {what}; a chain has one")
    for position, layer in enumerate(layers[1:], start=2):
        previous = layers[position - 2].get("name") or layers[position - 2].get("config", {}).get("name")
        inbound = _inbound_names(layer)
        if inbound != [previous]:
            name = layer.get("name") or layer.get("config", {}).get("name")
            taken = ", ".join(repr(item) for item in inbound) or "nothing"
            problems.append(f"layer {position} of {len(layers)}{inside} {name!r} ({layer.get('class_name')}) takes "
                            f"{taken}, not just the layer before it ({previous!r}): the model branches")
    return problems


def _flat_references(value) -> list:
    """Keras writes one input as ``[name, 0, 0]`` and several as ``[[name, 0, 0], …]``."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value]
    return [item for item in value if isinstance(item, list)] if isinstance(value, list) else []


def _sequence_problems(entries: list) -> list:
    """The layers' own problems, and those of their order (batch norm needs a linear conv or dense before it,
    a softmax must come last, a conv needs a spatial input and a dense a flat one)."""
    problems, previous, spatial = [], None, True
    for index, entry in enumerate(entries):
        order_reason, previous, spatial = _order_reason(entry, previous, spatial, last=index == len(entries) - 1)
        reason = _unsupported_reason(entry) or order_reason
        if reason is not None:
            problems.append(f"{entry.where} {entry.name!r} ({entry.class_name}): {reason}")
    return problems


def _activation(entry: Entry) -> str:
    activation = entry.config.get("activation", "linear")
    if isinstance(activation, dict):  # a serialised function: {"class_name": "function", "config": "relu"}
        activation = activation.get("config")
    return activation if isinstance(activation, str) else repr(activation)


def _unsupported_reason(entry: Entry):
    config, cls = entry.config, entry.class_name
    custom = bool(entry.module) and not entry.module.startswith("keras")  # Keras 2 .h5 files name no module
    if cls not in SUPPORTED_CLASSES or custom:
        if cls in MERGE_CLASSES:
            return "merges branches (a residual or parallel path); a deconvnet needs a chain of layers"
        if cls == "Lambda":
            return "runs Python code stored in the file; VisNet loads models in Keras' safe mode and runs no code"
        if custom:
            return f"a custom layer (module {entry.module!r}); only Keras' own layers are supported"
        return f"not supported; supported layers are {ACCEPTED}"
    if config.get("data_format", "channels_last") != "channels_last":
        return "channels_first data; only channels_last is supported"
    if cls == "Conv2D":
        if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
            return f"dilation_rate {config.get('dilation_rate')}; only 1 is supported"
        if config.get("groups", 1) != 1:
            return f"groups {config.get('groups')}; only 1 is supported"
        if _activation(entry) not in ("relu", "linear"):
            return f"activation {_activation(entry)!r}; a Conv2D may have relu or linear"
    if cls == "Dense" and _activation(entry) not in ("relu", "linear", "softmax"):
        return f"activation {_activation(entry)!r}; a Dense may have relu, linear or (last) softmax"
    if cls == "Activation" and _activation(entry) not in ("relu", "linear", "softmax"):
        return f"activation {_activation(entry)!r}; only relu, linear and (last) softmax are supported"
    if cls == "ReLU" and (config.get("max_value") is not None or config.get("negative_slope", 0) != 0
                          or config.get("threshold", 0) != 0):
        return "a ReLU with max_value, negative_slope or threshold; only the plain ReLU is supported"
    if cls == "BatchNormalization" and config.get("axis", -1) not in (-1, 3, [-1], [3]):
        return f"axis {config.get('axis')}; only the channel axis (-1) can be folded into a convolution"
    if cls == "Normalization" and (config.get("invert") or config.get("axis", -1) not in (-1, 3, [-1], [3])):
        return "an inverted or not per-channel Normalization; only per-channel normalisation is supported"
    if cls == "GlobalAveragePooling2D" and config.get("keepdims"):
        return "keepdims=True; only the flat output (keepdims=False) is supported"
    if cls == "Softmax" and config.get("axis", -1) not in (-1, [-1]):
        return f"axis {config.get('axis')}; only the last axis is supported"
    return None


def _order_reason(entry: Entry, previous, spatial: bool, last: bool) -> tuple:
    """(reason or None, the last layer with weights or an activation, whether the signal is still spatial)."""
    cls, activation = entry.class_name, _activation(entry)
    if cls in ("InputLayer", "Dropout") or (cls == "Activation" and activation == "linear"):
        return None, previous, spatial
    if cls == "BatchNormalization":
        if previous is None or previous.class_name not in ("Conv2D", "Dense") or _activation(previous) != "linear":
            return ("batch norm can only be folded into a Conv2D or Dense with linear activation right before it",
                    previous, spatial)
        return None, previous, spatial
    if (cls == "Softmax" or (cls in ("Activation", "Dense") and activation == "softmax")) and not last:
        return "a softmax must be the last layer", entry, spatial
    if cls in ("Conv2D", "MaxPooling2D", "AveragePooling2D", "Rescaling", "Normalization") and not spatial:
        return "needs an image-shaped input, but comes after Flatten or GlobalAveragePooling2D", entry, spatial
    if cls in ("Flatten", "GlobalAveragePooling2D"):
        return (None if spatial else "comes after the signal was already flattened"), entry, False
    if cls == "Dense" and spatial:
        return "takes an image-shaped input; a Dense needs Flatten or GlobalAveragePooling2D before it", entry, spatial
    return None, entry, spatial


def refusal_message(path, problems: list) -> str:
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return (f"{Path(path).name} is not a chain VisNet can project ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n{lines}\nA deconvnet walks the model down layer by layer, so "
            f"it must be a chain of: {ACCEPTED}.")
