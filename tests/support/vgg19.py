"""VGG19 weights files for offline tests: Keras' ImageNet layout (``keras.applications.vgg19``'s legacy HDF5:
``layer_names`` at the root, ``weight_names`` per layer) with seeded random He-scaled weights, written once per
session. The layout is written out here from Keras' VGG19 (configuration E), not taken from the project's code.
The file without the top holds 20 million parameters (80 MB)."""
from pathlib import Path

import h5py
import numpy as np
import pytest

WIDTHS, CONVS_PER_BLOCK = (64, 128, 256, 512, 512), (2, 2, 4, 4, 4)
TOP = (("fc1", (25088, 4096)), ("fc2", (4096, 4096)), ("predictions", (4096, 1000)))


def vgg19_conv_shapes() -> dict:
    """{block{b}_conv{i}: kernel shape}, in Keras' model order: 16 convolutions."""
    shapes, channels = {}, 3
    for block, (width, count) in enumerate(zip(WIDTHS, CONVS_PER_BLOCK), start=1):
        for index in range(1, count + 1):
            shapes[f"block{block}_conv{index}"] = (3, 3, channels, width)
            channels = width
    return shapes


def vgg19_layer_names(top: bool) -> list:
    """Keras' layer list of the file: input, convolutions and pools, then flatten and the top."""
    names = ["input_1"]
    for block in range(1, 6):
        names += [name for name in vgg19_conv_shapes() if name.startswith(f"block{block}_")] + [f"block{block}_pool"]
    return names + (["flatten", *(name for name, _ in TOP)] if top else [])


def write_keras_weights(path: Path, layers: dict, layer_names) -> Path:
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


def write_vgg19_file(path: Path, top: bool = False, seed: int = 19) -> Path:
    """A VGG19 file of Keras' layout with seeded random weights: He-scaled kernels (activations keep their
    scale through the 16 ReLU convolutions), small random biases."""
    rng = np.random.default_rng(seed)
    shapes = {**vgg19_conv_shapes(), **(dict(TOP) if top else {})}
    layers = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[:-1]))
        kernel = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2 / fan_in))
        layers[name] = (kernel, rng.standard_normal(shape[-1], dtype=np.float32) * np.float32(0.1))
    return write_keras_weights(path, layers, vgg19_layer_names(top))


@pytest.fixture(scope="session")
def vgg19_notop_file(tmp_path_factory) -> Path:
    """A generated VGG19 file without the top (80 MB), named as Keras' is."""
    folder = tmp_path_factory.mktemp("vgg19")
    return write_vgg19_file(folder / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
