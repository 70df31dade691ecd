"""A Keras model file that is a chain, turned into a :class:`~visnet.chain.spec.Chain`.

The architecture is checked first without running anything (:mod:`visnet.chain.keras_config`); only then
does Keras load the file, in safe mode (``safe_mode=True``: no custom objects, no Python code from the
file), and only for its weights. Batch norm is folded into the convolution or dense layer before it:
``(W·x + b − mean) · γ / √(var + ε) + β`` is the layer with kernel ``W · γ / √(var + ε)`` and bias
``(b − mean) · γ / √(var + ε) + β``. A ReLU right after a convolution or dense layer (batch norm and
dropout between them do not count) becomes that layer's ``relu``.
"""
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..weights import file_digest
from .keras_config import ChainRefused, chain_entries, read_model_config, refusal_message
from .preprocess import check_preprocess
from .spec import Chain, LayerSpec


def convert_model_file(path, name: str, preprocess=None, classes=None, verify: bool = True) -> Chain:
    """Check and convert ``path``, and (``verify``) check that the chain computes what Keras computes
    (:mod:`visnet.chain.verify`); ChainRefused says why a file is not accepted."""
    path = Path(path)
    entries, problems = chain_entries(read_model_config(path))
    if problems:
        raise ChainRefused(refusal_message(path, problems))
    model = _load_safely(path)
    input_shape = tuple(model.inputs[0].shape[1:])
    if len(input_shape) != 3 or None in input_shape:
        raise ChainRefused(f"{path.name}: the input must be one image of fixed size (height, width, channels); "
                           f"the model takes {tuple(model.inputs[0].shape)}")
    if input_shape[0] != input_shape[1]:
        raise ChainRefused(f"{path.name}: the model takes {input_shape[0]}×{input_shape[1]} inputs; the service "
                           "prepares square photos (crop or squash to a square), so it serves square models only")
    live = dict(_live_layers(model))
    layers = []
    for entry in entries:
        if entry.class_name != "InputLayer":
            _add_layer(layers, entry, live[entry.name], input_shape[2])
    import keras

    source = {"file": path.name, "sha256": file_digest(path, "sha256"), "keras": keras.__version__}
    preprocess = check_preprocess(preprocess, input_shape[2], starts_with_own=bool(layers) and layers[0].kind == "affine")
    try:
        chain = Chain(name, input_shape, tuple(layers), preprocess, classes=None, source=source)
    except ValueError as error:
        raise ChainRefused(f"{path.name}: {error}") from None
    if classes is not None:
        chain = replace(chain, classes=check_classes(chain, classes))
    if verify:
        from .verify import check_against_keras

        chain = replace(chain, source={**chain.source, "keras_difference": check_against_keras(chain, model)})
    return chain


def check_classes(chain: Chain, classes) -> tuple:
    """Class names for a model that ends in a softmax over as many outputs."""
    classes = tuple(str(name) for name in classes)
    if not chain.has_softmax:
        raise ChainRefused(f"class names were given, but {chain.source.get('file', chain.name)} does not end in a softmax")
    outputs = chain.output_shape(chain.layers[-1].name)[0]
    if len(classes) != outputs:
        raise ChainRefused(f"{len(classes)} class names for a softmax over {outputs} outputs; expected {outputs}, one "
                           "per output in order")
    return classes


def _load_safely(path: Path):
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds; each becomes one clear refusal
        raise ChainRefused(f"{path.name}: Keras could not load the model in safe mode: "
                           f"{type(error).__name__}: {str(error)[:400]}") from None


def _live_layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _live_layers(layer)
        else:
            yield layer.name, layer


def _array(value) -> np.ndarray:
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)


def _per_channel(value, channels: int, what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.size not in (1, channels):
        raise ChainRefused(f"{what}: {array.size} values for {channels} channels")
    return np.broadcast_to(array, (channels,)).astype(np.float32)


def _activation(config) -> str:
    activation = config.get("activation", "linear")
    return activation.get("config") if isinstance(activation, dict) else activation


def _add_layer(layers: list, entry, layer, input_channels: int) -> None:
    cls, config = entry.class_name, entry.config
    # the channels entering this layer: the last convolution's, else the input's
    channels = next((spec.kernel.shape[-1] for spec in reversed(layers) if spec.kind == "conv"), input_channels)
    if cls in ("Dropout",) or (cls == "Activation" and _activation(config) == "linear"):
        return
    if cls == "Rescaling":
        layers.append(LayerSpec(entry.name, "affine", scale=_per_channel(config["scale"], channels, entry.name),
                                offset=_per_channel(config["offset"], channels, entry.name)))
    elif cls == "Normalization":
        scale = 1.0 / np.maximum(np.sqrt(_array(layer.variance)), _epsilon())
        layers.append(LayerSpec(entry.name, "affine", scale=_per_channel(scale, channels, entry.name),
                                offset=_per_channel(-_array(layer.mean) * scale, channels, entry.name)))
    elif cls in ("Conv2D", "Dense"):
        weights = layer.get_weights()
        kernel = np.asarray(weights[0], np.float32)
        bias = np.asarray(weights[1], np.float32) if config.get("use_bias", True) else np.zeros(kernel.shape[-1],
                                                                                                np.float32)
        activation = _activation(config)
        extra = {"window": tuple(config["kernel_size"]), "strides": tuple(config["strides"]),
                 "padding": config["padding"].upper()} if cls == "Conv2D" else {}
        layers.append(LayerSpec(entry.name, "conv" if cls == "Conv2D" else "dense", kernel=kernel, bias=bias,
                                relu=activation == "relu", **extra))
        if activation == "softmax":  # the dense layer's output stays the logits
            layers.append(LayerSpec(f"{entry.name}_softmax", "softmax"))
    elif cls == "BatchNormalization":
        layers[-1] = _fold_batch_norm(layers[-1], layer, entry.name)
    elif cls == "ReLU" or (cls == "Activation" and _activation(config) == "relu"):
        last = layers[-1] if layers else None
        if last is not None and last.kind in ("conv", "dense") and not last.relu:
            layers[-1] = replace(last, relu=True, merged=last.merged + (entry.name,))
        else:
            layers.append(LayerSpec(entry.name, "relu"))
    elif cls in ("Softmax", "Activation"):
        layers.append(LayerSpec(entry.name, "softmax"))
    elif cls in ("MaxPooling2D", "AveragePooling2D"):
        window = tuple(config["pool_size"])
        strides = tuple(config.get("strides") or window)
        layers.append(LayerSpec(entry.name, "max_pool" if cls == "MaxPooling2D" else "avg_pool", window=window,
                                strides=strides, padding=config["padding"].upper()))
    elif cls == "Flatten":
        layers.append(LayerSpec(entry.name, "flatten"))
    elif cls == "GlobalAveragePooling2D":
        layers.append(LayerSpec(entry.name, "global_avg_pool"))


def _epsilon() -> float:
    import keras

    return keras.backend.epsilon()


def _fold_batch_norm(spec: LayerSpec, layer, name: str) -> LayerSpec:
    channels = spec.kernel.shape[-1]
    gamma = _array(layer.gamma) if layer.gamma is not None else np.ones(channels)
    beta = _array(layer.beta) if layer.beta is not None else np.zeros(channels)
    factor = gamma / np.sqrt(_array(layer.moving_variance) + layer.epsilon)
    kernel = (spec.kernel.astype(np.float64) * factor).astype(np.float32)
    bias = ((spec.bias.astype(np.float64) - _array(layer.moving_mean)) * factor + beta).astype(np.float32)
    return replace(spec, kernel=kernel, bias=bias, merged=spec.merged + (name,))
