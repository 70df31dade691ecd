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


@pytest.mark.parametrize("shape, relu", [
    ((1, 28, 28, 8), True),  # VGG16's block 4, one image: what a scan on one core runs
    ((2, 6, 10, 5), False),  # two images, a map wider than high, no ReLU
])
def test_a_winograd_convolution_gives_the_direct_convolutions_values(shape, relu):
    """Every tile, border and image in place: a tile out of place, a transform off by a sign or the filters
    transposed would be off by whole products, far beyond rounding."""
    import tensorflow as tf

    from visnet.chain.ops import convolve_winograd, linear_forward, winograd_filters, winograd_fits
    from visnet.chain.spec import LayerSpec

    rng = np.random.default_rng(11)
    values = rng.standard_normal(shape).astype(np.float32)
    layer = LayerSpec("conv", "conv", kernel=rng.standard_normal((3, 3, shape[3], 7)), bias=rng.standard_normal(7),
                      window=(3, 3), padding="SAME", relu=relu)
    activation = tf.nn.relu if relu else None
    graph = tf.Graph()
    with graph.as_default():
        signal = tf.compat.v1.placeholder(tf.float32, [None, *shape[1:]])
        weights = {name: tf.constant(value, tf.float32) for name, value in layer.weights.items()}
        assert winograd_fits(layer, signal) == (shape[1] == 28)
        ours = convolve_winograd(signal, winograd_filters(weights["kernel"]), weights["bias"], activation)
        direct = linear_forward(layer, signal, weights)
        direct = activation(direct) if relu else direct
    with tf.compat.v1.Session(graph=graph) as session:
        found, expected = session.run([ours, direct], {signal: values})
    assert found.shape == expected.shape == (*shape[:3], 7) and (expected == 0).mean() > (0.2 if relu else -1)
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("height, width, window, strides, padding, fits", [
    (56, 56, (3, 3), (1, 1), "SAME", True),  # VGG16's block 3
    (28, 28, (3, 3), (1, 1), "SAME", True),  # block 4
    (14, 14, (3, 3), (1, 1), "SAME", False),  # block 5: no faster
    (112, 112, (3, 3), (1, 1), "SAME", False),  # block 2: slower
    (28, 27, (3, 3), (1, 1), "SAME", False),  # an odd width: no whole tiles
    (28, 28, (3, 3), (2, 2), "SAME", False),
    (28, 28, (3, 3), (1, 1), "VALID", False),
    (28, 28, (5, 5), (1, 1), "SAME", False),
    (28, 28, (3, 1), (1, 1), "SAME", False),
])
def test_which_convolutions_run_by_winograd(height, width, window, strides, padding, fits):
    import tensorflow as tf

    from visnet.chain.ops import winograd_fits
    from visnet.chain.spec import LayerSpec

    layer = LayerSpec("conv", "conv", window=window, strides=strides, padding=padding)
    with tf.Graph().as_default():
        assert winograd_fits(layer, tf.compat.v1.placeholder(tf.float32, [None, height, width, 8])) == fits
