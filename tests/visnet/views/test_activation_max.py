"""Activation maximisation: the ascent raises its objective, is reproducible per seed, and its graph is
a faithful copy of the model's conv stack."""
import io

import numpy as np
import pytest
from PIL import Image

from visnet.preprocessing import to_network_input
from visnet.views.activation_max import (
    LABEL_HEIGHT,
    PIXEL_HIGH,
    PIXEL_LOW,
    ActivationMaximisationView,
    ascent_ops,
    ascent_step,
    gaussian_blur,
    octave_sizes,
    resize,
)
from visnet.views.base import write_view_outputs

LAYER = "block2_conv2"
SMALL = dict(layer=LAYER, channels=[3, 7], octaves=3, steps=5, scale=1.2, start_size=28)


@pytest.fixture(scope="module")
def runs(engine):
    view = ActivationMaximisationView(engine)
    return {name: view.run(None, **SMALL, seed=seed) for name, seed in (("first", 0), ("again", 0), ("other", 1))}


def test_octaves_grow_by_the_scale_up_to_224():
    assert octave_sizes(28, 1.2, 12) == [28, 34, 40, 48, 58, 70, 84, 100, 120, 144, 173, 208]
    assert octave_sizes(200, 2.0, 3) == [200, 224, 224]
    assert octave_sizes(28, 1.0, 2) == [28, 28]


def test_blur_keeps_a_flat_image_and_the_total_and_resize_gives_the_size():
    flat = np.full((1, 9, 9, 3), 4.0, np.float32)
    assert np.allclose(gaussian_blur(flat, 0.5), 4.0)
    spike = np.zeros((1, 9, 9, 1), np.float32)
    spike[0, 4, 4, 0] = 1
    blurred = gaussian_blur(spike, 1.0)
    assert blurred.sum() == pytest.approx(1.0, rel=1e-6) and blurred[0, 4, 4, 0] < 1 and blurred[0, 3, 4, 0] > 0
    assert np.array_equal(blurred[0, :, :, 0], blurred[0, :, :, 0].T)
    assert resize(np.zeros((2, 28, 28, 3), np.float32), 34).shape == (2, 34, 34, 3)


def test_a_step_has_the_set_mean_size_and_stays_within_a_photos_colours():
    images = np.zeros((2, 4, 4, 3), np.float32)
    gradient = np.random.default_rng(0).normal(size=images.shape).astype(np.float32)
    gradient[1] = gradient[0] * 1000  # the step does not depend on the gradient's scale
    stepped = ascent_step(images, gradient)
    assert np.allclose(stepped[0], stepped[1])
    assert np.mean(np.abs(stepped[0])) == pytest.approx(1.5, rel=1e-5)
    near_white = np.broadcast_to(PIXEL_HIGH - 0.1, images.shape).astype(np.float32)
    clipped = ascent_step(near_white, gradient)
    assert np.allclose(clipped, np.minimum(near_white + stepped, PIXEL_HIGH))
    assert (clipped == PIXEL_HIGH).any() and ((PIXEL_LOW <= clipped) & (clipped <= PIXEL_HIGH)).all()


@pytest.mark.parametrize("layer, reference", [("block2_conv2", "block2_conv2"), ("block3_pool", "block3_conv3")])
def test_the_ascent_graph_matches_the_models_pre_relu_response(engine, chelsea_rgb, layer, reference):
    model, ops = engine.model, ascent_ops(engine.model, layer)
    image = to_network_input(chelsea_rgb)[None]
    channels = np.array([5], np.int32)
    objective = model.run(ops["objective"], {ops["images"]: image, ops["channels"]: channels})
    pre_relu = model.run(model.pre_activations[reference], {model.images: image})[0, :, :, 5]
    if reference != layer:  # the pool of the preceding conv's pre-ReLU map
        pre_relu = pre_relu.reshape(pre_relu.shape[0] // 2, 2, -1, 2).max(axis=(1, 3))
    assert objective[0] == pytest.approx(pre_relu.mean(), rel=1e-4)


def test_the_objective_rises_from_start_to_end(runs):
    # Per octave it need not: fixed-size steps against the colour bounds can overshoot a little once
    # a channel is near its best (block2_conv2 channel 7 does in the third octave).
    for channel in runs["first"].data["channels"]:
        assert channel["objective_end"] > channel["objective_start"]
        assert [octave["size"] for octave in channel["octaves"]] == [28, 34, 40]
        assert channel["octaves"][0]["end"] > channel["octaves"][0]["start"]
        assert channel["objective_start"] == channel["octaves"][0]["start"]


def test_the_same_seed_gives_bit_identical_pictures_and_another_seed_does_not(runs):
    first, again, other = runs["first"], runs["again"], runs["other"]
    assert first.images.keys() == again.images.keys() == other.images.keys()
    for stem in first.images:
        assert np.array_equal(first.images[stem], again.images[stem])
        assert not np.array_equal(first.images[stem], other.images[stem])
    assert first.data["channels"] == again.data["channels"]
    assert first.data["seed"] == 0 and other.data["seed"] == 1


def test_all_channels_ascend_together_in_one_run_per_step(runs):
    # 3 octaves × (5 steps + 1 evaluation) + the final evaluation, whatever the number of channels
    assert runs["first"].data["session_runs"] == 3 * 6 + 1


def test_the_graph_is_built_once_per_layer(engine, runs):
    operations = len(engine.model.graph.get_operations())
    ActivationMaximisationView(engine).run(None, **dict(SMALL, octaves=1, steps=1), seed=0)
    assert len(engine.model.graph.get_operations()) == operations


def test_pictures_are_pngs_of_the_stated_size_and_not_constant(runs, tmp_path):
    manifest = write_view_outputs(runs["first"], tmp_path)
    expected = {f"activation_max_{LAYER}_ch3.png": (224, 224), f"activation_max_{LAYER}_ch7.png": (224, 224),
                f"activation_max_{LAYER}.png": (2 * 224 + 4, 224 + LABEL_HEIGHT)}
    assert {entry["file"] for entry in manifest["files"]} == set(expected)
    for name, size in expected.items():
        with Image.open(io.BytesIO((tmp_path / name).read_bytes())) as picture:
            assert picture.format == "PNG" and picture.size == size and picture.mode == "RGB"
            pixels = np.asarray(picture)
        assert pixels[:224, :224].std() > 5
