"""Activation maximisation: the ascent raises its objective, ends at the output size so that the reported
objective is the written picture's, is reproducible per seed with its regularisers, and its graph is a
faithful copy of the model's conv stack."""
import io

import numpy as np
import pytest
from PIL import Image

from visnet.preprocessing import to_network_input
from visnet.views.activation_max import (
    PIXEL_HIGH,
    PIXEL_LOW,
    STEP_SIZE,
    ActivationMaximisationView,
    ascent_ops,
    ascent_step,
    gaussian_blur,
    jitter_shifts,
    octave_sizes,
    resize,
    roll,
)
from visnet.views.base import write_view_outputs
from visnet.views.drawing import LINE_COLOURS

LAYER = "block2_conv2"
# The default regularisers (jitter, L2 decay, blur every 4 steps) are on; 56, 112 and 224 px.
SMALL = dict(layer=LAYER, channels=[3, 7], octaves=3, steps=4, scale=2.0)


@pytest.fixture(scope="module")
def runs(engine):
    view = ActivationMaximisationView(engine)
    return {name: view.run(None, **SMALL, seed=seed) for name, seed in (("first", 0), ("again", 0), ("other", 1))}


def test_octaves_grow_by_the_scale_and_end_at_224():
    assert octave_sizes(1.2, 12) == [30, 36, 43, 52, 63, 75, 90, 108, 130, 156, 187, 224]
    assert octave_sizes(2.0, 3) == [56, 112, 224]
    assert octave_sizes(1.5, 1) == [224]
    assert octave_sizes(1.0, 2) == [224, 224]
    assert octave_sizes(2.0, 8) == [16, 16, 16, 16, 28, 56, 112, 224]  # at least MIN_SIZE


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
    assert np.mean(np.abs(stepped[0])) == pytest.approx(STEP_SIZE, rel=1e-5)
    assert np.mean(np.abs(ascent_step(images, gradient, step_size=0.75)[0])) == pytest.approx(0.75, rel=1e-5)
    near_white = np.broadcast_to(PIXEL_HIGH - 0.1, images.shape).astype(np.float32)
    clipped = ascent_step(near_white, gradient)
    assert np.allclose(clipped, np.minimum(near_white + stepped, PIXEL_HIGH))
    assert (clipped == PIXEL_HIGH).any() and ((PIXEL_LOW <= clipped) & (clipped <= PIXEL_HIGH)).all()
    decayed = ascent_step(images + 10, gradient, decay=0.25)  # shrinks towards the mean colour (zero)
    assert np.allclose(decayed, np.clip((images + 10 + stepped) * 0.75, PIXEL_LOW, PIXEL_HIGH))


def test_jitter_shifts_stay_within_the_bound_and_roll_back_exactly():
    generators = [np.random.default_rng([0, channel]) for channel in range(3)]
    shifts = [jitter_shifts(generators, 4) for _ in range(50)]
    assert all(-4 <= shift <= 4 for batch in shifts for pair in batch for shift in pair)
    assert len({pair for batch in shifts for pair in batch}) > 20
    assert jitter_shifts(generators, 0) == [(0, 0)] * 3
    images = np.random.default_rng(1).normal(size=(3, 9, 9, 3)).astype(np.float32)
    rolled = roll(images, shifts[0])
    assert np.array_equal(rolled[1], np.roll(images[1], shifts[0][1], axis=(0, 1)))
    assert np.array_equal(roll(rolled, [(-dy, -dx) for dy, dx in shifts[0]]), images)


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
    # Per octave it need not: fixed-size steps, the decay and the blur can lower it a little once a
    # channel is near its best.
    for channel in runs["first"].data["channels"]:
        assert channel["objective_end"] > channel["objective_start"]
        assert [octave["size"] for octave in channel["octaves"]] == [56, 112, 224]
        assert channel["octaves"][0]["end"] > channel["octaves"][0]["start"]
        assert channel["objective_start"] == channel["octaves"][0]["start"]
        assert channel["objective_end"] == channel["octaves"][-1]["end"] == channel["octaves"][-1]["curve"][-1]
        assert channel["post_relu_mean_end"] >= max(channel["objective_end"], 0)
        assert all(len(octave["curve"]) == SMALL["steps"] + 1 for octave in channel["octaves"])
    assert runs["first"].data["octave_sizes"] == [56, 112, 224]


def objective_of(engine, images, channels):
    ops = ascent_ops(engine.model, LAYER)
    return engine.model.run([ops["objective"], ops["post_relu_mean"], ops["gradient"]],
                            {ops["images"]: images, ops["channels"]: np.array(channels, np.int32)})


def test_the_reported_objective_is_that_of_the_written_picture(engine, runs, tmp_path):
    result = runs["first"]
    channels = SMALL["channels"]
    stems = [f"activation_max_{LAYER}_ch{channel}" for channel in channels]
    floats = np.stack([result.arrays[stem] for stem in stems])
    assert floats.shape == (2, 224, 224, 3)
    objective, post_relu, gradient = objective_of(engine, floats, channels)
    write_view_outputs(result, tmp_path)
    pixels = np.stack([np.asarray(Image.open(tmp_path / f"{stem}.png")) for stem in stems])
    assert np.abs(to_network_input(pixels) - floats).max() <= 0.5 + 1e-4  # the PNG only rounds
    from_png, _, _ = objective_of(engine, to_network_input(pixels), channels)
    for index, entry in enumerate(result.data["channels"]):
        assert entry["objective_end"] == pytest.approx(objective[index], abs=1e-3)
        assert entry["post_relu_mean_end"] == pytest.approx(post_relu[index], abs=1e-3)
        # Rounding to uint8 moves every pixel by at most 0.5, so to first order the PNG's objective is
        # within 0.5·‖∇objective‖₁ of the float image's (measured: |Δ| 0.002 and 0.05 against bounds of
        # 6.8 and 8.7 here; 0.002-0.009 against 1.9-3.0 for block4_conv3 with the defaults). One ascent
        # step (gradient / mean|gradient| · STEP_SIZE) moves it by at least STEP_SIZE·‖∇objective‖₁ to first
        # order (Cauchy-Schwarz), six times this tolerance, so the check tells the written picture from one
        # a step before or after.
        tolerance = 0.5 * np.abs(gradient[index]).sum()
        assert abs(entry["objective_end"] - from_png[index]) < tolerance


def test_the_regularisers_change_the_picture(engine, runs):
    plain = ActivationMaximisationView(engine).run(None, **dict(SMALL, channels=[3]), seed=0, jitter=0, decay=0.0,
                                                   blur_every=0)
    stem = f"activation_max_{LAYER}_ch3"
    assert not np.array_equal(plain.images[stem], runs["first"].images[stem])
    assert plain.data["channels"][0]["objective_end"] > plain.data["channels"][0]["objective_start"]


def test_the_same_seed_gives_bit_identical_pictures_and_another_seed_does_not(runs):
    first, again, other = runs["first"], runs["again"], runs["other"]
    assert first.images.keys() == again.images.keys() == other.images.keys()
    for stem in first.images:
        assert np.array_equal(first.images[stem], again.images[stem])
        assert not np.array_equal(first.images[stem], other.images[stem])
    assert first.data["channels"] == again.data["channels"]
    assert first.data["seed"] == 0 and other.data["seed"] == 1


def test_all_channels_ascend_together_in_one_run_per_step(runs):
    # 3 octaves × (4 steps + an evaluation at each octave's start and end), whatever the number of channels
    assert runs["first"].data["session_runs"] == 3 * (4 + 2)


def test_the_graph_is_built_once_per_layer(engine, runs):
    operations = len(engine.model.graph.get_operations())
    ActivationMaximisationView(engine).run(None, **dict(SMALL, octaves=1, steps=1), seed=0)
    assert len(engine.model.graph.get_operations()) == operations


def test_pictures_are_pngs_of_the_stated_size_and_not_constant(runs, tmp_path):
    manifest = write_view_outputs(runs["first"], tmp_path)
    # Each channel's picture once: no grid repeating them.
    expected = {f"activation_max_{LAYER}_ch3.png": (224, 224), f"activation_max_{LAYER}_ch7.png": (224, 224)}
    assert {entry["file"] for entry in manifest["files"]} == set(expected) | {f"activation_max_{LAYER}_curve.png"}
    for name, size in expected.items():
        with Image.open(io.BytesIO((tmp_path / name).read_bytes())) as picture:
            assert picture.format == "PNG" and picture.size == size and picture.mode == "RGB"
            pixels = np.asarray(picture)
        assert pixels[:224, :224].std() > 5


def test_the_objective_curve_is_drawn_with_one_colour_per_channel(runs, tmp_path):
    write_view_outputs(runs["first"], tmp_path)
    with Image.open(tmp_path / f"activation_max_{LAYER}_curve.png") as chart:
        pixels = np.asarray(chart.convert("RGB"))
    colours = {tuple(pixel) for pixel in pixels.reshape(-1, 3)}
    assert set(LINE_COLOURS[:2]) <= colours and LINE_COLOURS[2] not in colours
    assert "objective" in runs["first"].captions[f"activation_max_{LAYER}_curve"]


def test_with_the_defaults_each_channel_ranks_first_on_its_own_picture_by_the_objective(engine, chelsea_rgb):
    """Channel rank with measure=pre-relu-mean measures what the ascent optimised: on the written picture (the
    PNG's pixels) it reads the reported objective, and the channel ranks first of its layer's 512, where on
    a photo it ranks far down. With shorter ascents it need not: 3 octaves × 6 steps left channels 0 and 1
    of block4_conv3 at ranks 2 and 17; the defaults (5 × 8) put channels 0 to 3 at rank 1, by the post-ReLU
    mean too."""
    from visnet.views import run_view

    layer, channels = "block4_conv3", [0, 3]
    result = ActivationMaximisationView(engine).run(None, layer=layer, channels=channels, seed=0)
    for index, channel in enumerate(channels):
        picture = result.images[f"activation_max_{layer}_ch{channel}"]  # uint8, what the PNG holds
        reported = result.data["channels"][index]
        ranked = run_view(engine, "channel-rank", picture, {"layer": layer, "channel": channel,
                                                            "measure": "pre-relu-mean"}).data
        # The PNG only rounds the float image: measured |Δ| ≤ 0.009 on objectives of 4 to 35.
        assert ranked["value"] == pytest.approx(reported["objective_end"], abs=0.05)
        assert ranked["rank"] == 1
        post = run_view(engine, "channel-rank", picture, {"layer": layer, "channel": channel}).data
        assert post["measure"] == "post-relu-mean" and post["rank"] == 1
        assert post["value"] == pytest.approx(reported["post_relu_mean_end"], abs=0.05)
        on_a_photo = run_view(engine, "channel-rank", chelsea_rgb, {"layer": layer, "channel": channel,
                                                                    "measure": "pre-relu-mean"}).data
        assert on_a_photo["rank"] > 15
