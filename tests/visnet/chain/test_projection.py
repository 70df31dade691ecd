"""The chain's deconvnet, guided backprop and gradient projections against autodiff with the same ReLU
rule (visnet.chain.autodiff), on every layer of two small models; and the unpooling of overlapping
windows against a hand-computed case."""
import numpy as np
import pytest

from tests.visnet.chain.conftest import small_photos

TOLERANCE = 1e-4  # max |projection − autodiff| ≤ TOLERANCE × max |autodiff|
RULES = ("deconvnet", "guided", "gradient")


@pytest.fixture(scope="module")
def graphs(chains):
    from visnet.chain.graph import ChainGraph

    built = {key: ChainGraph(chain, device="cpu") for key, chain in chains.items()}
    yield built
    for graph in built.values():
        graph.close()


def _inputs(chain):
    from visnet.chain.preprocess import to_model_input

    return to_model_input(small_photos(chain.input_shape[0]), chain.preprocess)


@pytest.mark.parametrize("model", ["sequential", "functional"])
@pytest.mark.parametrize("rule", RULES)
def test_projections_equal_autodiff_on_every_layer(chains, graphs, model, rule):
    """Every visualisable layer, every channel, two photos, in one sweep: map seeds, and with the deconvnet's
    rule max seeds too (the other rules differ from it only at the ReLUs, which map seeds exercise)."""
    from visnet.chain.autodiff import ChainAutodiff
    from visnet.chain.projection import ChainSweep

    chain, graph = chains[model], graphs[model]
    images, reference = _inputs(chain), ChainAutodiff(chain, rule)
    seeds = ("map", "max") if rule == "deconvnet" else ("map",)
    channels = {layer: list(range(chain.channels(layer)))[::-1] for layer in chain.layer_names}
    found = ChainSweep(graph, chain.layer_names, rule, seeds).project(images, channels)
    assert len(found["reconstructions"]) == len(images) * len(seeds) * sum(map(len, channels.values()))
    for index, layer in enumerate(chain.layer_names):
        for kind, seed in enumerate(seeds):
            rows = (found["layer"] == index) & (found["kind"] == kind)
            np.testing.assert_array_equal(found["channel"][rows], channels[layer] * len(images))
            np.testing.assert_array_equal(found["image"][rows], np.repeat(np.arange(len(images)), len(channels[layer])))
            expected = reference.project(images, layer, channels[layer], seed)
            scale = np.abs(expected).max()
            assert scale > 0, (layer, seed)
            assert np.abs(found["reconstructions"][rows] - expected).max() <= TOLERANCE * scale, (layer, seed)


def test_a_channel_out_of_range_is_refused_by_name(chains, graphs):
    from visnet.chain.projection import ChainSweep

    chain = chains["sequential"]
    with pytest.raises(ValueError, match=r"channels \[16\] of 'fc1': expected 0 to 15"):
        ChainSweep(graphs["sequential"], ["fc1"]).project(_inputs(chain), {"fc1": [16]})


def test_the_photos_make_max_pool_ties(chains, graphs):
    """The flat square of the first photo gives windows of pool1 whose maximum occurs more than once, so the
    comparison above also covers ties."""
    chain, graph = chains["sequential"], graphs["sequential"]
    images = _inputs(chain)
    below = graph.run(graph.activations["conv2_s2"], {graph.images: images})[0]  # pool1's input, (20, 20, 8)
    rows, columns, _ = chain.output_shape("pool1")
    ties = 0
    for row in range(rows):
        for column in range(columns):
            window = below[2 * row: 2 * row + 3, 2 * column: 2 * column + 3]
            ties += int(((window == window.max(axis=(0, 1))).sum(axis=(0, 1)) > 1).sum())
    assert ties > 20


def test_a_tie_after_relu_goes_to_the_first_position_as_in_autodiff():
    """A hand-made chain: a 1×1 conv with ReLU makes an all-zero map, a 2×2/1 max pool over it ties in every
    window, a dense layer with a bias gives a positive output. Its deconvnet projection puts each window's
    signal on the window's top-left position (the first in row-major order), as autodiff does."""
    from visnet.chain.autodiff import ChainAutodiff
    from visnet.chain.graph import ChainGraph
    from visnet.chain.projection import ChainSweep
    from visnet.chain.spec import Chain, LayerSpec

    chain = Chain("ties", (3, 3, 1), (
        LayerSpec("conv", "conv", kernel=np.ones((1, 1, 1, 1), np.float32), bias=np.zeros(1, np.float32), relu=True),
        LayerSpec("pool", "max_pool", window=(2, 2), strides=(1, 1)),
        LayerSpec("flatten", "flatten"),
        LayerSpec("dense", "dense", kernel=np.array([[1], [2], [3], [4]], np.float32), bias=np.ones(1, np.float32)),
    ), "none")
    images = np.zeros((1, 3, 3, 1), np.float32)
    graph = ChainGraph(chain, device="cpu")
    try:
        found = ChainSweep(graph, ["dense"]).project(images, {"dense": [0]})["reconstructions"]
    finally:
        graph.close()
    expected = np.array([[1, 2, 0], [3, 4, 0], [0, 0, 0]], np.float32)[None, :, :, None]
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(ChainAutodiff(chain).project(images, "dense", [0]), expected)


def test_unpool_sums_overlapping_windows_at_the_first_maximum():
    """A 3×3/2 max pool on a 5×5 map: the centre is the maximum of all four windows and receives the sum of
    their signals; a window of equal values sends its signal to its first position in row-major order."""
    import tensorflow as tf

    from visnet.chain.projection import unpool

    values = np.array([[1, 1, 1, 0, 0],
                       [1, 1, 1, 0, 0],
                       [1, 1, 9, 0, 0],
                       [0, 0, 0, 0, 0],
                       [0, 0, 0, 0, 0]], np.float32)
    values[3:, 3:] = 2  # the bottom-right window: its 2 × 2 corner ties below the centre's 9
    pooled, switches = tf.nn.max_pool_with_argmax(values[None, :, :, None], 3, 2, "VALID",
                                                  include_batch_in_index=True)
    np.testing.assert_array_equal(pooled.numpy()[0, :, :, 0], [[9, 9], [9, 9]])
    signal = np.array([[1, 10], [100, 1000]], np.float32)[None, :, :, None]
    got = unpool(tf.constant(signal), switches, (5, 5, 1)).numpy()[0, :, :, 0]
    expected = np.zeros((5, 5), np.float32)
    expected[2, 2] = 1111
    np.testing.assert_array_equal(got, expected)

    flat = np.zeros((1, 3, 3, 1), np.float32)  # all equal: the switch is the top-left
    _, switches = tf.nn.max_pool_with_argmax(flat, 2, 1, "VALID", include_batch_in_index=True)
    got = unpool(tf.constant(np.array([[1, 2], [3, 4]], np.float32)[None, :, :, None]), switches, (3, 3, 1))
    np.testing.assert_array_equal(got.numpy()[0, :, :, 0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])


def test_several_seeds_per_image_share_the_switches_of_their_own_image():
    """Two images, two signals each: each signal goes to its own image's switches."""
    import tensorflow as tf

    from visnet.chain.projection import unpool

    images = np.zeros((2, 2, 2, 1), np.float32)
    images[0, 0, 1, 0], images[1, 1, 0, 0] = 1, 1
    _, switches = tf.nn.max_pool_with_argmax(images, 2, 2, "VALID", include_batch_in_index=True)
    got = unpool(tf.constant(np.array([5, 6, 7, 8], np.float32).reshape(4, 1, 1, 1)), switches, (2, 2, 1)).numpy()
    expected = np.zeros((4, 2, 2, 1), np.float32)
    expected[0, 0, 1], expected[1, 0, 1], expected[2, 1, 0], expected[3, 1, 0] = 5, 6, 7, 8
    np.testing.assert_array_equal(got, expected)
