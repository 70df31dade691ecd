"""The VGG16 graph: layer names, device placement, switch ties and the classifier top."""
import numpy as np
import pytest
import tensorflow as tf

from visnet.architecture import LAYER_NAMES, LAYERS, conv_flops, resolve_layers
from visnet.chain.graph import VGG16Graph
from visnet.graph import CPU, GPU, resolve_placement
from visnet.preprocessing import to_network_input
from visnet.weights import load_weights


@pytest.fixture(scope="module")
def hed_weights():
    return load_weights("hed")


def test_layer_table_matches_vgg16_configuration_d():
    assert len(LAYERS) == 18 and sum(layer.kind == "conv" for layer in LAYERS) == 13
    assert LAYER_NAMES[:3] == ("block1_conv1", "block1_conv2", "block1_pool")
    assert [layer.resolution for layer in LAYERS if layer.is_pool] == [112, 56, 28, 14, 7]
    # Multiply-adds by hand: block1 86,704,128 + 1,849,688,064; blocks 2–4 one 924,844,032 each plus
    # 1, 2, 2 of 1,849,688,064; block5 3 × 462,422,016 — 15,346,630,656 MACs in all.
    assert sum(conv_flops(layer) for layer in LAYERS) == 2 * 15_346_630_656
    assert resolve_layers("pools") == [f"block{b}_pool" for b in range(1, 6)]
    assert resolve_layers("block5_pool, block1_conv1") == ["block1_conv1", "block5_pool"]
    with pytest.raises(ValueError, match="unknown layer 'block6_pool'"):
        resolve_layers("block6_pool")


@pytest.mark.parametrize("policy, has_gpu, compute, switches", [
    ("auto", False, CPU, CPU),
    ("auto", True, GPU, GPU),
    ("gpu", False, GPU, GPU),
    ("cpu", True, CPU, CPU),
    ("mostly-cpu", True, CPU, GPU),
])
def test_device_policy(policy, has_gpu, compute, switches):
    placement = resolve_placement(policy, gpu_available=has_gpu)
    assert (placement.compute, placement.switches) == (compute, switches)


def test_unknown_device_policy_is_rejected():
    with pytest.raises(ValueError, match="unknown device policy 'tpu'"):
        resolve_placement("tpu")


@pytest.mark.parametrize("policy, conv_device, pool_device", [
    ("mostly-cpu", CPU, GPU),
    ("gpu", GPU, GPU),
])
def test_placement_is_visible_in_the_built_graph_and_soft_placement_runs_it(
        hed_weights, engine, chelsea_rgb, policy, conv_device, pool_device):
    model = VGG16Graph(hed_weights, device=policy, gpu_available=False)
    try:
        devices = model.op_devices()
        assert devices["MaxPoolWithArgmax"] == {pool_device}
        assert devices["Conv2D"] == {conv_device}
        images = to_network_input(chelsea_rgb[None])
        got = model.run(model.activations["block5_pool"], {model.images: images})
        expected = engine.model.run(engine.model.activations["block5_pool"], {engine.model.images: images})
        np.testing.assert_array_equal(got, expected)
        # The pass without switches (scans, occlusion) runs where the convolutions do, plain pools included.
        unswitched = model.unswitched_activations()["block5_pool"]
        assert model.op_devices()["MaxPool"] == {conv_device}
        np.testing.assert_array_equal(model.run(unswitched, {model.images: images}), expected)
    finally:
        model.close()


def test_cpu_graph_pins_everything_to_the_cpu(engine):
    devices = engine.model.op_devices()
    assert devices["MaxPoolWithArgmax"] == {CPU} and devices["Conv2D"] == {CPU}


def test_switches_and_autodiff_maxpool_gradient_agree_on_ties_inside_the_graph(engine, chelsea_rgb):
    """After ReLU many windows are all zero: switch and MaxPool gradient must both pick the first."""
    model = engine.model
    with model.graph.as_default():
        source = model.activations["block1_conv2"]
        pooled = tf.nn.max_pool2d(source, 2, 2, "VALID")
        gradient = tf.gradients(pooled, source, grad_ys=tf.ones_like(pooled))[0]
    feed = {model.images: to_network_input(chelsea_rgb[None])}
    activation, switches, routed = model.run([source, model.switches["block1_pool"], gradient], feed)
    windows = activation[0].reshape(112, 2, 112, 2, 64).transpose(0, 2, 4, 1, 3).reshape(112, 112, 64, 4)
    assert (windows.max(-1) == 0).mean() > 0.1  # ties really occur
    first = windows.argmax(-1)
    y, x, c = np.indices((112, 112, 64))
    expected = ((2 * y + first // 2) * 224 + 2 * x + first % 2) * 64 + c
    assert np.array_equal(switches[0], expected)
    from_switches = np.zeros(activation.size, np.float32)
    from_switches[switches.ravel()] = 1
    assert np.array_equal(from_switches.reshape(activation.shape), routed)


def test_classifier_top_gives_probabilities(keras_top_file, chelsea_rgb):
    model = VGG16Graph(load_weights(str(keras_top_file)), device="cpu")
    try:
        assert model.has_top
        probabilities = model.run(model.probabilities, {model.images: to_network_input(chelsea_rgb[None])})
        assert probabilities.shape == (1, 1000)
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)
    finally:
        model.close()
