"""Occlusion sensitivity: hand-checked geometry, a synthetic one-patch image, and the class maps."""
import io
import math

import numpy as np
import pytest
from PIL import Image

from tests.support.graphs import op_types_computed
from visnet.views.base import write_view_outputs
from visnet.views.occlusion import (
    BAR_WIDTH,
    CLASSMAP_SHAPE,
    HEADER_HEIGHT,
    HEATMAP_SHAPE,
    SIDE_GAP,
    OcclusionView,
    _occlusion_ops,
    class_names,
    drop_grid,
    occluded_images,
    occluder_positions,
    per_pixel_map,
    pixel_weights,
)

PATCH_TOP, PATCH_LEFT, PATCH_SIZE = 64, 120, 48  # inside the 56×56 square at grid position (1, 2)


@pytest.fixture(scope="module")
def patch_image():
    """Flat grey with one 48×48 black-and-white checkerboard (6 px squares): the only structure."""
    image = np.full((224, 224, 3), 128, np.uint8)
    rows, cols = np.mgrid[:PATCH_SIZE, :PATCH_SIZE]
    checker = ((rows // 6 + cols // 6) % 2 * 255).astype(np.uint8)
    image[PATCH_TOP:PATCH_TOP + PATCH_SIZE, PATCH_LEFT:PATCH_LEFT + PATCH_SIZE] = checker[..., None]
    return image


@pytest.fixture(scope="module")
def patch_run(engine, patch_image):
    """Occlusion of the patch image at 56×56, stride 56 (4×4 positions), 5 images per batch, counting
    the session runs."""
    model = engine.model
    calls = []
    original_run = model.run

    def counting_run(fetches, feed_dict=None):
        calls.append(len(feed_dict[model.images]))
        return original_run(fetches, feed_dict)

    model.run = counting_run
    try:
        result = OcclusionView(engine).run(patch_image, sizes=[(56, 56)], batch_size=5)
    finally:
        del model.run
    return result, calls


def test_positions_step_by_stride_while_the_square_fits():
    assert occluder_positions(50, 10) == list(range(0, 171, 10))
    assert occluder_positions(100, 50) == [0, 50, 100]
    assert occluder_positions(224, 7) == [0]
    with pytest.raises(ValueError, match="occluder size"):
        occluder_positions(225, 1)


def test_occluded_images_are_mean_grey_inside_the_square_only():
    image = np.random.default_rng(0).normal(size=(8, 8, 3)).astype(np.float32)
    batch = occluded_images(image, [(0, 0), (2, 5)], 3)
    assert batch.shape == (2, 8, 8, 3)
    assert (batch[0, :3, :3] == 0).all() and (batch[1, 2:5, 5:8] == 0).all()
    outside = np.ones((8, 8), bool)
    outside[2:5, 5:8] = False
    assert np.array_equal(batch[1][outside], image[outside])


def test_each_pixel_is_the_mean_over_the_squares_covering_it():
    # positions 0, 1, 2 of a 2-pixel square over 4 pixels: pixel 0 ← {0}, 1 ← {0, 1}, 2 ← {1, 2}, 3 ← {2}
    grid = np.arange(9, dtype=np.float64).reshape(3, 3)
    result = per_pixel_map(grid, [0, 1, 2], 2, extent=4)
    assert result[0, 0] == grid[0, 0]
    assert result[1, 1] == pytest.approx(grid[:2, :2].mean())
    assert result[2, 3] == pytest.approx(grid[1:3, 2].mean())
    assert result[3, 3] == grid[2, 2]


def test_uncovered_pixels_take_the_nearest_position():
    # size 2, stride 2 over 5 pixels leaves pixel 4 uncovered; size 1, stride 3 over 7 leaves gaps
    assert pixel_weights([0, 2], 2, extent=5)[:, 4].tolist() == [0, 1]
    gaps = pixel_weights([0, 3, 6], 1, extent=7)
    assert np.argmax(gaps, axis=0).tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert np.allclose(gaps.sum(axis=0), 1)


def test_occluding_the_patch_lowers_the_strongest_block5_map_most(patch_run):
    result, _ = patch_run
    setting = result.data["settings"][0]
    grid = np.array(setting["feature_grid"])
    assert grid.shape == (4, 4)
    assert np.unravel_index(np.argmin(grid), grid.shape) == (1, 2)
    assert grid.min() < 0.6 * np.median(grid)
    assert result.data["unoccluded_total"] > np.median(grid)
    pixels = per_pixel_map(grid, setting["positions"], 56)
    patch = pixels[PATCH_TOP:PATCH_TOP + PATCH_SIZE, PATCH_LEFT:PATCH_LEFT + PATCH_SIZE]
    assert (patch == pixels.min()).all()


def test_the_drop_map_is_each_pixels_mean_occluded_total_minus_the_unoccluded_one(patch_run):
    result, _ = patch_run
    setting = result.data["settings"][0]
    grid, size = np.array(setting["feature_grid"]), setting["size"]
    expected = np.zeros((224, 224))
    covering = np.zeros((224, 224))
    for i, top in enumerate(setting["positions"]):  # 56 divides 224: every pixel is covered exactly once
        for j, left in enumerate(setting["positions"]):
            expected[top:top + size, left:left + size] += grid[i, j]
            covering[top:top + size, left:left + size] += 1
    expected = expected / covering - result.data["unoccluded_total"]
    assert np.allclose(result.arrays["occlusion_56x56_drop"], expected)
    assert drop_grid(grid, 2.0).tolist() == (grid - 2.0).tolist()
    # Blue (negative) where the patch is hidden, on a scale centred at zero: the bar's middle is white.
    picture = result.images["occlusion_56x56_drop"]
    red, green, blue = picture[HEADER_HEIGHT + PATCH_TOP + PATCH_SIZE // 2, PATCH_LEFT + PATCH_SIZE // 2].astype(int)
    assert blue > red + 40
    bar_middle = picture[HEADER_HEIGHT + 224 // 2, 224 + SIDE_GAP + BAR_WIDTH // 2]
    assert bar_middle.min() > 230


def test_one_forward_pass_per_batch_plus_the_unoccluded_image(patch_run):
    result, calls = patch_run
    assert calls == [1, 5, 5, 5, 1]
    assert result.timings["forward_passes"] == math.ceil(16 / 5) + 1 == len(calls)
    assert result.timings["occlusion_56x56_images_per_second"] > 0


def test_the_occluded_images_run_the_forward_pass_without_pool_switches(engine, patch_run):
    """The figures come from the graph's forward pass with plain max pools (the same values as the deconvnet's):
    hundreds of occluded images need no switches."""
    ops = _occlusion_ops(engine.model)
    assert "MaxPoolWithArgmax" not in op_types_computed(list(ops.values()))
    assert {"MaxPool", "Conv2D"} <= op_types_computed(list(ops.values()))


def test_without_a_top_only_the_feature_map_is_drawn(patch_run):
    result, _ = patch_run
    assert list(result.images) == ["occlusion_56x56_drop", "occlusion_56x56_feature"]
    assert "predicted_class" not in result.data and "probability_grid" not in result.data["settings"][0]
    assert 0 <= result.data["channel"] < 512
    picture = result.images["occlusion_56x56_feature"]
    assert picture.shape == HEATMAP_SHAPE and picture.dtype == np.uint8
    overlay = picture[HEADER_HEIGHT:, :224]
    assert overlay.std() > 5


def test_with_a_top_the_probability_and_class_maps_are_written(top_engine, chelsea_rgb, tmp_path):
    result = OcclusionView(top_engine).run(chelsea_rgb, sizes=[(112, 112)], batch_size=3)
    setting = result.data["settings"][0]
    probabilities = np.array(setting["probability_grid"])
    classes = np.array(setting["class_grid"])
    assert probabilities.shape == classes.shape == (2, 2)
    assert ((0 <= probabilities) & (probabilities <= 1)).all()
    assert ((0 <= classes) & (classes < 1000)).all()
    predicted = result.data["predicted_class"]
    assert predicted["name"] == class_names()[predicted["index"]] and 0 <= predicted["probability"] <= 1
    assert result.timings["forward_passes"] == 3

    manifest = write_view_outputs(result, tmp_path)
    expected = {"occlusion_112x112_drop.png": HEATMAP_SHAPE, "occlusion_112x112_feature.png": HEATMAP_SHAPE, "occlusion_112x112_probability.png": HEATMAP_SHAPE,
                "occlusion_112x112_class.png": CLASSMAP_SHAPE}
    assert {entry["file"] for entry in manifest["files"]} == set(expected)
    for name, shape in expected.items():
        with Image.open(io.BytesIO((tmp_path / name).read_bytes())) as picture:
            assert picture.format == "PNG" and picture.size == (shape[1], shape[0])
            pixels = np.asarray(picture)
        assert pixels.min() < pixels.max()
