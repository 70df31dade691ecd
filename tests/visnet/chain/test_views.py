"""VisNet's views on a stored chain model (visnet.chain.views), on the small generated Sequential model (40×40,
its own Rescaling, batch norm, a stride-2 conv, overlapping max pools, an average pool, a dense head with softmax),
each checked against an independent computation: the stored kernels, forward passes of ``ChainAutodiff`` (eager
TensorFlow, not the graph), NumPy rankings and ``tf.GradientTape``."""
import dataclasses

import numpy as np
import pytest

from tests.visnet.chain.conftest import small_photos

CLASSES = ("cat", "dog", "cup", "car", "tree")
TOLERANCE = 1e-4  # of the largest value


@pytest.fixture(scope="module")
def chain(chains):
    """The Sequential model with class names, as ``models add --classes`` stores it."""
    return dataclasses.replace(chains["sequential"], classes=CLASSES)


@pytest.fixture(scope="module")
def engine(chain):
    from visnet.chain.engine import ChainEngine

    built = ChainEngine(chain, device="cpu")
    yield built
    built.model.close()


@pytest.fixture(scope="module")
def photo(chain):
    return small_photos(chain.input_shape[0])[0]


def forward(chain, rgb, layer):
    """``layer``'s output for photos ``rgb`` (N, H, W, 3) uint8 or pixel levels, by the eager reference, as NumPy."""
    from visnet.chain.autodiff import ChainAutodiff
    from visnet.chain.preprocess import to_model_input

    return ChainAutodiff(chain).activation(to_model_input(np.asarray(rgb), chain.preprocess), layer).numpy()


def pre_relu(chain, rgb, layer):
    """What enters ``layer``'s ReLU, for a conv or dense layer with one: its own weights on the layer below's output."""
    import tensorflow as tf

    spec, below = chain.layer(layer), chain.layers[chain.index(layer) - 1].name
    signal = tf.constant(forward(chain, rgb, below))
    if spec.kind == "conv":
        return (tf.nn.conv2d(signal, spec.kernel, [1, *spec.strides, 1], spec.padding) + spec.bias).numpy()
    return (signal @ spec.kernel + spec.bias).numpy()


def test_filters_are_the_stored_kernels(engine, chain):
    from visnet.views import run_view
    from visnet.views.filters import FILTER_GRID_LEFT, FILTER_GRID_TOP

    conv1 = chain.layer("conv1")  # after the model's Rescaling only: it sees the photo's RGB colours
    result = run_view(engine, "filters", None, {"layer": "conv1", "channel": "5"})
    assert set(result.images) == {"filters_rgb", "filter_5"} and result.data["model"] == "tiny-sequential"
    kernel = conv1.kernel[..., 5]
    assert result.data["bias"] == pytest.approx(float(conv1.bias[5]))
    assert result.data["scale"] == pytest.approx(float(np.abs(kernel).max()))
    assert result.data["weight_range"] == pytest.approx([float(kernel.min()), float(kernel.max())])
    assert result.data["rgb_scales"] == pytest.approx(list(np.abs(conv1.kernel).max(axis=(0, 1, 2))))
    # filter 0 as RGB (no BGR reordering: the model takes RGB): each weight a 16-pixel block of the first tile
    rgb = result.images["filters_rgb"]
    weights = conv1.kernel[..., 0].astype(np.float64)
    expected = np.round(255 * (0.5 + weights / (2 * np.abs(weights).max()))).astype(np.uint8)
    blocks = rgb[FILTER_GRID_TOP + 8:FILTER_GRID_TOP + 48:16, FILTER_GRID_LEFT + 8:FILTER_GRID_LEFT + 48:16]
    np.testing.assert_array_equal(blocks, expected)

    deeper = run_view(engine, "filters", None, {"layer": "conv3", "channel": "11"})
    assert set(deeper.images) == {"filter_11"} and deeper.data["in_channels"] == 8
    assert deeper.data["scale"] == pytest.approx(float(np.abs(chain.layer("conv3").kernel[..., 11]).max()))
    with pytest.raises(ValueError, match="layer must be one of conv1, conv2_s2, conv3, conv4; pool1 is a pooling "
                                         "layer, which has no filters"):
        run_view(engine, "filters", None, {"layer": "pool1"})


def test_occlusion_equals_a_loop_of_forward_passes_with_the_grey_square(engine, chain, photo):
    from visnet.preprocessing import BGR_MEAN
    from visnet.views import run_view
    from visnet.views.occlusion import heatmap_shape

    result = run_view(engine, "occlusion", photo, {"sizes": "10:10,24:8", "batch_size": "5"})
    data = result.data
    reference = forward(chain, photo[None], "conv4")[0]  # the model's deepest convolution
    channel = int(np.argmax(np.sqrt((reference.astype(np.float64) ** 2).sum(axis=(0, 1)))))
    probabilities = forward(chain, photo[None], chain.layers[-1].name)[0]
    predicted = int(np.argmax(probabilities))
    assert data["feature_layer"] == "conv4" and data["channel"] == channel and data["has_classifier"]
    assert data["unoccluded_total"] == pytest.approx(reference[..., channel].sum(), rel=1e-5)
    assert data["predicted_class"] == {"index": predicted, "name": CLASSES[predicted],
                                       "probability": pytest.approx(float(probabilities[predicted]), rel=1e-5)}
    for setting, (size, stride) in zip(data["settings"], ((10, 10), (24, 8))):
        positions = list(range(0, 40 - size + 1, stride))
        assert setting["positions"] == positions
        occluded = np.repeat(photo[None].astype(np.float32), len(positions) ** 2, axis=0)
        for index, (row, column) in enumerate((row, column) for row in positions for column in positions):
            occluded[index, row:row + size, column:column + size] = BGR_MEAN[::-1]  # the ImageNet mean colour
        totals = forward(chain, occluded, "conv4")[..., channel].sum(axis=(1, 2)).reshape(len(positions), -1)
        chances = forward(chain, occluded, chain.layers[-1].name)
        np.testing.assert_allclose(setting["feature_grid"], totals, rtol=1e-4, atol=TOLERANCE * np.abs(totals).max())
        np.testing.assert_allclose(setting["probability_grid"], chances[:, predicted].reshape(len(positions), -1),
                                   atol=1e-5)
        assert np.array_equal(setting["class_grid"], chances.argmax(axis=1).reshape(len(positions), -1))
        for kind in ("drop", "feature", "probability"):
            assert result.images[f"occlusion_{size}x{stride}_{kind}"].shape == heatmap_shape(240)  # 40 px, 6×
    assert result.images["occlusion_10x10_class"].shape[:2] == (22 + 240, 240 + 10 + 196)


def test_occlusion_without_class_names_says_why_it_has_no_class_maps(chains, photo):
    from visnet.chain.engine import ChainEngine
    from visnet.views import run_view

    engine = ChainEngine(chains["sequential"], device="cpu")  # stored without --classes
    try:
        result = run_view(engine, "occlusion", photo, {"sizes": "20:20"})
    finally:
        engine.model.close()
    assert not result.data["has_classifier"] and "predicted_class" not in result.data
    assert "was stored without class names" in result.data["class_maps"]
    assert sorted(result.images) == ["occlusion_20x20_drop", "occlusion_20x20_feature"]


@pytest.mark.parametrize("layer", ["pool1", "conv3", "fc1"])
def test_channel_rank_is_the_numpy_ranking_of_the_forward_activations(engine, chain, photo, layer):
    from visnet.views import run_view

    after = forward(chain, photo[None], layer)[0].astype(np.float64)
    if layer == "pool1":  # the max pool of conv2_s2's pre-ReLU map, whose ReLU is the pool's output
        import tensorflow as tf

        spec = chain.layer("pool1")
        before = tf.nn.max_pool2d(pre_relu(chain, photo[None], "conv2_s2"), [1, *spec.window, 1],
                                  [1, *spec.strides, 1], spec.padding).numpy()[0]
        np.testing.assert_allclose(np.maximum(before, 0), after, atol=1e-5)
    else:
        before = pre_relu(chain, photo[None], layer)[0]
    maps = {"post-relu-mean": after, "l2-norm": after, "pre-relu-mean": before.astype(np.float64)}
    for measure, values in maps.items():
        values = values.reshape(-1, values.shape[-1])
        expected = np.sqrt((values ** 2).sum(axis=0)) if measure == "l2-norm" else values.mean(axis=0)
        channel = int(np.argsort(expected)[len(expected) // 2])  # a middling one
        result = run_view(engine, "channel-rank", photo, {"layer": layer, "channel": channel, "measure": measure})
        np.testing.assert_allclose(result.data["values"], expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
        order = np.argsort(-expected, kind="stable")  # NumPy's ranking of the reference's values
        assert result.data["rank"] == int(np.flatnonzero(order == channel)[0]) + 1, measure
        top = {"pool1": 2, "conv3": 3, "fc1": 4}[layer]  # a quarter of a layer narrower than 60 channels
        assert [entry["channel"] for entry in result.data[f"top_{top}"]] == list(order[:top])
        assert result.data[f"in_top_{top}"] == (result.data["rank"] <= top)
        assert result.images["channel_rank"].ndim == 3


def test_activation_maximisation_raises_the_channels_response_from_the_start_image(engine, chain):
    from visnet.views import run_view

    result = run_view(engine, "activation-max", None, {"layer": "conv3", "channels": "2,7", "octaves": "2",
                                                        "steps": "6", "scale": "1.5"})
    assert result.data["octave_sizes"] == [27, 40]
    for entry in result.data["channels"]:
        channel = entry["channel"]
        assert entry["objective_end"] > entry["objective_start"] + 0.1, entry
        image = result.arrays[f"activation_max_conv3_ch{channel}"]
        assert image.shape == (40, 40, 3) and image.min() >= 0 and image.max() <= 255  # a photo's pixel levels
        # the objective of the picture's own array, by the reference: the mean pre-ReLU response of the channel
        response = pre_relu(chain, image[None], "conv3")[0, ..., channel]
        assert entry["objective_end"] == pytest.approx(float(response.mean()), rel=1e-4, abs=1e-5)
        picture = result.images[f"activation_max_conv3_ch{channel}"]
        np.testing.assert_array_equal(picture, np.clip(np.round(image), 0, 255).astype(np.uint8))

    dense = run_view(engine, "activation-max", None, {"layer": "fc1", "channels": "3", "octaves": "2", "steps": "4"})
    assert dense.data["octave_sizes"] == [40, 40]  # after the flatten the model takes one size only
    assert dense.data["channels"][0]["objective_end"] > dense.data["channels"][0]["objective_start"]


def test_ascent_moves_in_pixel_levels_within_a_photos_colours_whatever_the_preprocessing():
    from visnet.chain.preprocess import PREPROCESSING, from_model_input, model_input_space, to_model_input
    from visnet.preprocessing import NETWORK_SPACE
    from visnet.views.activation_max import ascent_step

    rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    for preprocess in PREPROCESSING:
        assert np.array_equal(from_model_input(to_model_input(rgb, preprocess), preprocess), rgb), preprocess
        space = model_input_space(preprocess)
        np.testing.assert_allclose(space.low, to_model_input(np.zeros((3,), np.uint8), preprocess), atol=1e-6)
        gradient = np.random.default_rng(1).normal(size=(2, 5, 5, 3)).astype(np.float32)
        start = to_model_input(rgb, preprocess)
        moved = (ascent_step(start, gradient, step_size=2.0, space=space) - start) / space.unit
        inside = (start > space.low + 3 * space.unit) & (start < space.high - 3 * space.unit)  # not clipped
        assert np.mean(np.abs(moved[inside])) == pytest.approx(2.0, rel=0.2), preprocess
        assert (np.sign(moved[inside]) == np.sign(gradient[inside])).all()
    caffe = model_input_space("caffe")
    for field in ("centre", "unit", "low", "high"):
        np.testing.assert_allclose(getattr(caffe, field), getattr(NETWORK_SPACE, field), atol=1e-4)


def test_gradients_equal_autodiff_with_each_rule(engine, chain, photo):
    from visnet.chain.autodiff import ChainAutodiff
    from visnet.chain.preprocess import to_model_input
    from visnet.views import run_view

    result = run_view(engine, "gradients", photo, {"layers": "avg1,predictions", "top_k": "2", "seed": "both"})
    inputs = to_model_input(photo[None], chain.preprocess)
    features = result.data["features"]
    for layer in ("avg1", "predictions"):
        norms = np.sqrt((forward(chain, photo[None], layer)[0].reshape(-1, chain.channels(layer)).astype(np.float64)
                         ** 2).sum(axis=0))
        assert [f["channel"] for f in features if f["layer"] == layer] == list(np.argsort(-norms, kind="stable")[:2])
    assert len(features) == 4 and set(result.images) == {"gradients_avg1", "gradients_predictions"}
    # the logits' rows are the gradients of the classes, named
    assert [f.get("class") for f in features] == [None, None] + [CLASSES[f["channel"]] for f in features[2:]]
    assert result.images["gradients_avg1"].shape[1] > 8 * 160  # activation, three maps, the patch, three maxima
    # the projections themselves, as the sheet draws them (the same sweeps: the engine keeps them)
    from visnet.chain.views import ChainGradientsView

    projections, _ = ChainGradientsView(engine).project(photo, ["avg1", "predictions"], 2, "both")
    for rule in ("deconvnet", "guided", "gradient"):
        reference = ChainAutodiff(chain, rule)
        for projection, feature in zip(projections, features):
            expected = reference.project(inputs, projection.layer, [projection.channel], "map")[0]
            # the sheet reads BGR, as VGG16's: an RGB model's projection comes with its channels reversed
            np.testing.assert_allclose(projection.reconstructions[rule], expected[..., ::-1],
                                       atol=TOLERANCE * np.abs(expected).max())
            assert feature["max_abs"][rule] == pytest.approx(float(np.abs(expected).max()), rel=TOLERANCE), rule


def test_the_models_own_defaults_replace_vgg16s(engine):
    from visnet.methods import parse_options

    layers = engine.layers
    assert parse_options("filters", {}, layers)["layer"] == "conv1"
    assert parse_options("feature-maps", {}, layers)["layer"] == "conv1"
    assert parse_options("channel-rank", {}, layers)["layer"] == "conv4"
    assert parse_options("activation-max", {}, layers)["layer"] == "conv4"
    assert parse_options("activation-max", {}, layers)["channels"] == [0, 1, 2, 3]
    assert parse_options("occlusion", {}, layers)["sizes"] == [[9, 2]]  # VGG16's 50:10, scaled from 224 to 40 px
    with pytest.raises(ValueError, match="size and stride must be between 1 and 40, got 50:10"):
        parse_options("occlusion", {"sizes": "50:10"}, layers)
