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
