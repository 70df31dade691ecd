"""The built-in VGG19 as a chain, on a generated file of Keras' layout (tests/support/vgg19.py): its 21 layers,
their shapes and receptive fields, its deconvnet against autodiff, and the weights of one VGG refused for the other."""
import numpy as np
import pytest

from tests.visnet.chain.conftest import small_photos

# Keras' VGG19 (configuration E): (name, output side, channels, receptive field) for a 224×224 input. A field
# grows by 2 × the spacing of the layer's input units per 3×3 convolution and by that spacing per 2×2/2 pool,
# and the spacing doubles at every pool.
LAYERS = [
    ("block1_conv1", 224, 64, 3), ("block1_conv2", 224, 64, 5), ("block1_pool", 112, 64, 6),
    ("block2_conv1", 112, 128, 10), ("block2_conv2", 112, 128, 14), ("block2_pool", 56, 128, 16),
    ("block3_conv1", 56, 256, 24), ("block3_conv2", 56, 256, 32), ("block3_conv3", 56, 256, 40),
    ("block3_conv4", 56, 256, 48), ("block3_pool", 28, 256, 52),
    ("block4_conv1", 28, 512, 68), ("block4_conv2", 28, 512, 84), ("block4_conv3", 28, 512, 100),
    ("block4_conv4", 28, 512, 116), ("block4_pool", 14, 512, 124),
    ("block5_conv1", 14, 512, 156), ("block5_conv2", 14, 512, 188), ("block5_conv3", 14, 512, 220),
    ("block5_conv4", 14, 512, 252), ("block5_pool", 7, 512, 268),
]


@pytest.fixture(scope="module")
def vgg19(vgg19_notop_file):
    """The chain the worker builds: VGG19 on the file ``auto`` finds in the models folder."""
    from visnet.chain.vgg import load_built_in

    return load_built_in(vgg19_notop_file.parent, "vgg19")


def test_the_chain_has_vgg19s_21_layers_with_their_shapes_and_receptive_fields(vgg19, vgg19_notop_file):
    from visnet.chain.fields import receptive_fields
    from visnet.weights import file_digest

    assert vgg19.layer_names == tuple(name for name, *_ in LAYERS) and len(vgg19.layer_names) == 21
    assert vgg19.input_shape == (224, 224, 3) and vgg19.preprocess == "caffe" and not vgg19.has_softmax
    fields = receptive_fields(vgg19)
    for name, side, channels, field in LAYERS:
        layer = vgg19.layer(name)
        assert vgg19.output_shape(name) == (side, side, channels), name
        assert [axis.size for axis in fields[name]] == [field, field], name
        if layer.kind == "conv":
            assert layer.kernel.shape[:2] == (3, 3) and layer.padding == "SAME" and layer.relu, name
        else:
            assert layer.kind == "max_pool" and layer.window == layer.strides == (2, 2), name
    assert vgg19.source["built_in"] is True and vgg19.source["weights"] == "vgg19-notop"
    assert vgg19.source["sha256"] == file_digest(vgg19_notop_file, "sha256")
    assert vgg19.source["file"] == "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


def test_with_its_top_it_classifies_over_the_imagenet_classes_vgg16_uses():
    from visnet.chain.vgg import vgg_layout
    from visnet.views.classification import class_names

    chain = vgg_layout("vgg19", has_top=True)
    assert chain.layer_names[-4:] == ("block5_pool", "fc1", "fc2", "predictions") and chain.has_softmax
    assert [chain.output_shape(name) for name in ("flatten", "fc1", "fc2", "predictions")] == [
        (25088,), (4096,), (4096,), (1000,)]
    assert chain.classes == class_names() and len(chain.classes) == 1000


def test_the_deconvnet_on_vgg19_equals_autodiff(vgg19):
    """A photo, channels of the first layer, of a middle block's extra fourth convolution and of the last pool,
    projected in one sweep, each against the gradient with the deconvnet's ReLU rule: map seeds, and the last
    pool's max seeds (every layer's switches below it on the way down)."""
    from visnet.chain.autodiff import ChainAutodiff
    from visnet.chain.graph import ChainGraph
    from visnet.chain.preprocess import to_model_input
    from visnet.chain.projection import ChainSweep

    images = to_model_input(small_photos(224)[:1], "caffe")
    layers = ["block1_conv1", "block3_conv4", "block5_pool"]
    channels = {"block1_conv1": [5], "block3_conv4": [0, 200], "block5_pool": [17, 511]}
    graph = ChainGraph(vgg19, device="cpu")
    try:
        found = ChainSweep(graph, layers, "deconvnet", ("map", "max")).project(images, channels)
    finally:
        graph.close()
    reference = ChainAutodiff(vgg19, "deconvnet")
    for index, layer in enumerate(layers):
        for kind, seed in enumerate(("map", "max") if layer == "block5_pool" else ("map",)):
            rows = (found["layer"] == index) & (found["kind"] == kind)
            np.testing.assert_array_equal(found["channel"][rows], channels[layer])
            expected = reference.project(images, layer, channels[layer], seed)
            scale = np.abs(expected).max()
            assert scale > 0, (layer, seed)
            assert np.abs(found["reconstructions"][rows] - expected).max() <= 1e-4 * scale, (layer, seed)


def test_a_vgg19_file_is_refused_as_vgg16_and_a_vgg16_file_as_vgg19(vgg19_notop_file, keras_notop_file):
    from visnet.weights import WeightsError, read_weights_file, verify_file

    with pytest.raises(WeightsError, match=r"holds VGG19's layers block3_conv4, block4_conv4, block5_conv4, which "
                                           r"VGG16 does not have; .*VISNET_MODEL=vgg19"):
        read_weights_file(vgg19_notop_file)
    with pytest.raises(WeightsError, match=r"layer 'block3_conv4' is missing"):
        read_weights_file(keras_notop_file, model="vgg19")
    report = verify_file(vgg19_notop_file)
    assert report["model"] == "vgg19" and report["convs"] == 16 and not report["has_top"]
    assert report["md5_ok"] is False and report["expected_md5"] == "253f8cb515780f3b799900260a226db6"


def test_without_its_weights_file_loading_vgg19_names_the_fetch_command(tmp_path):
    from visnet.chain.vgg import load_built_in
    from visnet.weights import WeightsError

    with pytest.raises(WeightsError, match=r"no VGG19 weights found: .* python -m visnet weights fetch vgg19 or "
                                           r"python -m visnet weights fetch vgg19-notop"):
        load_built_in(tmp_path, "vgg19")


def test_each_model_takes_only_its_own_known_weights(tmp_path):
    from visnet.weights import WeightsError, resolve_weights

    with pytest.raises(WeightsError, match=r"weights 'vgg19' are VGG19's, not VGG16's"):
        resolve_weights("vgg19", tmp_path)
    with pytest.raises(WeightsError, match=r"weights 'hed' are VGG16's, not VGG19's; VGG19 takes auto, vgg19, "
                                           r"vgg19-notop or a weights file"):
        resolve_weights("hed", tmp_path, model="vgg19")
