"""The chain's graph: placement as VGG16's (visnet.graph.resolve_placement), and the classifier's tensors."""
import numpy as np
import pytest

from tests.visnet.chain.conftest import small_photos
from visnet.graph import CPU, GPU


@pytest.mark.parametrize("policy, compute, switches", [("mostly-cpu", CPU, GPU), ("gpu", GPU, GPU)])
def test_placement_is_visible_in_the_graph_and_soft_placement_runs_it(chains, policy, compute, switches):
    from visnet.chain.graph import ChainGraph
    from visnet.chain.preprocess import to_model_input

    chain = chains["sequential"]
    graph = ChainGraph(chain, device=policy, gpu_available=False)
    try:
        devices = graph.op_devices()
        assert devices["MaxPoolWithArgmax"] == {switches} and devices["Conv2D"] == {compute}
        images = to_model_input(small_photos(chain.input_shape[0]), chain.preprocess)
        logits, probabilities = graph.run([graph.logits, graph.probabilities], {graph.images: images})
        assert probabilities.shape == (2, 5)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)
        np.testing.assert_allclose(probabilities, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True),
                                   rtol=1e-5)
    finally:
        graph.close()


@pytest.mark.parametrize("shape, window, strides, padding, on_row_pairs", [
    ((3, 224, 224, 64), (2, 2), (2, 2), "VALID", True),  # VGG16's block1_pool, a batch of three
    ((2, 14, 14, 512), (2, 2), (2, 2), "SAME", True),  # block5_pool
    ((2, 9, 10, 4), (2, 2), (2, 2), "SAME", False),  # odd height: the whole image, padded
    ((2, 10, 10, 4), (3, 3), (2, 2), "SAME", False),  # overlapping windows
])
def test_a_pool_on_row_pairs_gives_the_whole_images_values_and_switches_bit_for_bit(
        shape, window, strides, padding, on_row_pairs):
    """Post-ReLU maps, where most windows are all zeros or hold ties: the first maximum in row-major order is the
    switch either way."""
    import tensorflow as tf

    from visnet.chain.ops import max_pool_with_switches
    from visnet.chain.spec import LayerSpec

    rng = np.random.default_rng(7)
    values = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
    values[rng.random(shape) < 0.6] = 0  # sparse, as deep post-ReLU maps are
    values[..., ::2] = np.round(values[..., ::2])  # ties of 1.0
    layer = LayerSpec("pool", "max_pool", window=window, strides=strides, padding=padding)
    graph = tf.Graph()
    with graph.as_default():
        signal = tf.compat.v1.placeholder(tf.float32, shape)
        ours = max_pool_with_switches(layer, signal)
        whole = tf.nn.max_pool_with_argmax(signal, [1, *window, 1], [1, *strides, 1], padding,
                                           include_batch_in_index=True)
    pools = [op for op in graph.get_operations() if op.type == "MaxPoolWithArgmax"]
    assert (pools[0].inputs[0].shape[1] == 2) == on_row_pairs
    with tf.compat.v1.Session(graph=graph) as session:
        (pooled, switches), (expected, expected_switches) = session.run([ours, whole], {signal: values})
    assert pooled.shape == expected.shape and np.array_equal(pooled, expected)
    assert switches.dtype == expected_switches.dtype and np.array_equal(switches, expected_switches)
    assert (expected == 0).mean() > 0.01  # the maps have the all-zero windows the check is about


@pytest.mark.parametrize("shape, kernel_side", [
    ((1, 56, 56, 8), 3),  # VGG16's block 3, one image: what a scan on one core runs
    ((2, 56, 20, 5), 5),  # two images, a 5×5 kernel, a narrow map
    ((1, 56, 9, 3), 1),  # a 1×1 kernel: strips without halos
])
def test_a_convolution_in_strips_gives_the_whole_maps_values(shape, kernel_side):
    """Each strip reads its neighbours' rows its kernel reaches, and zeros at the map's borders: a wrong halo or
    a strip out of place would be off by whole products at the strips' edges, far beyond rounding."""
    import tensorflow as tf

    from visnet.chain.ops import STRIPS, convolve_in_strips, linear_forward, strips_for
    from visnet.chain.spec import LayerSpec

    rng = np.random.default_rng(11)
    values = rng.standard_normal(shape).astype(np.float32)
    layer = LayerSpec("conv", "conv", kernel=rng.standard_normal((kernel_side, kernel_side, shape[3], 7)),
                      bias=rng.standard_normal(7), window=(kernel_side,) * 2, padding="SAME", relu=True)
    graph = tf.Graph()
    with graph.as_default():
        signal = tf.compat.v1.placeholder(tf.float32, [None, *shape[1:]])
        weights = {name: tf.constant(value, tf.float32) for name, value in layer.weights.items()}
        assert strips_for(layer, signal) == STRIPS == 4
        ours = convolve_in_strips(signal, weights, STRIPS, tf.nn.relu)
        whole = tf.nn.relu(linear_forward(layer, signal, weights))
    with tf.compat.v1.Session(graph=graph) as session:
        found, expected = session.run([ours, whole], {signal: values})
    assert found.shape == expected.shape == (*shape[:3], 7) and (expected == 0).mean() > 0.2
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("height, window, strides, padding, strips", [
    (56, (3, 3), (1, 1), "SAME", 4),  # VGG16's block 3
    (112, (3, 3), (1, 1), "SAME", 1),  # block 2: its strips' copies cost what they gained
    (224, (3, 3), (1, 1), "SAME", 1),  # block 1
    (28, (3, 3), (1, 1), "SAME", 1),  # block 4
    (56, (3, 3), (2, 2), "SAME", 1),
    (56, (3, 3), (1, 1), "VALID", 1),
    (56, (2, 2), (1, 1), "SAME", 1),  # an even kernel pads unevenly
    (56, (3, 1), (1, 1), "SAME", 1),
])
def test_which_convolutions_run_in_strips(height, window, strips, strides, padding):
    import tensorflow as tf

    from visnet.chain.ops import strips_for
    from visnet.chain.spec import LayerSpec

    layer = LayerSpec("conv", "conv", window=window, strides=strides, padding=padding)
    with tf.Graph().as_default():
        assert strips_for(layer, tf.compat.v1.placeholder(tf.float32, [None, height, 40, 8])) == strips
