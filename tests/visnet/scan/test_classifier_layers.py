"""Scans of the classifier's neurons (fc1, fc2, predictions) on a generated top (tests/visnet/conftest.py:
hed's convolutions, seeded random fc weights): the top and bottom images of every neuron equal a brute
force in NumPy from the block5_pool maps and the file's weights, and the projections of a neuron are its
gradient in pixel space."""
import numpy as np
import pytest
from PIL import Image

from visnet.preprocessing import to_network_input
from visnet.scan import ScanOptions, create_scan, layer_overview, store, topk, unit_detail
from visnet.scan.imagesets import list_images, load_scan_image
from visnet.scan.means import channel_means
from visnet.scan.projection import neuron_gradients, project_unit
from visnet.scan.runner import run_scan
from visnet.scan.units import projected_units
from visnet.views.classification import class_names

CLASSIFIER = ("fc1", "fc2", "predictions")
K = 3


@pytest.fixture(scope="module")
def classifier_scan(top_engine, image_folder, tmp_path_factory):
    paths = list_images(image_folder)[::23][:9]
    scan_dir = tmp_path_factory.mktemp("classifier_scan") / store.new_scan_id()
    options = ScanOptions(layers="block5_pool,fc1,fc2,predictions", k=K, chunk_size=4, project_channels=2,
                          project_k=2)
    record = create_scan(scan_dir, image_folder, options, images=paths)
    run_scan(scan_dir, top_engine)
    images = np.stack([load_scan_image(image_folder / path) for path in record["images"]])
    return scan_dir, record, images


def numpy_classifier(engine, images) -> dict:
    """fc1, fc2 (after ReLU) and the predictions' logits of each image, in float64 NumPy from the network's
    block5_pool maps and the weights file's classifier."""
    model = engine.model
    pooled = model.run(model.activations["block5_pool"], {model.images: to_network_input(images)})
    signal = pooled.reshape(len(images), -1).astype(np.float64)
    tables = {}
    for name in CLASSIFIER:
        kernel, bias = engine.weights.classifier[name]
        signal = signal @ kernel.astype(np.float64) + bias
        if name != "predictions":
            signal = np.maximum(signal, 0)
        tables[name] = signal
    return tables


def test_the_top_and_bottom_images_of_every_neuron_equal_a_brute_force(top_engine, classifier_scan):
    scan_dir, record, images = classifier_scan
    expected = numpy_classifier(top_engine, images)
    with np.load(scan_dir / store.TOPK_NPZ) as stored:
        for name in CLASSIFIER:
            table = np.load(store.table_path(scan_dir, name))
            assert table.shape == (9, {"fc1": 4096, "fc2": 4096, "predictions": 1000}[name])
            np.testing.assert_allclose(table, expected[name], rtol=1e-4, atol=1e-3 * np.abs(expected[name]).max())
            brute = topk.brute_force(expected[name].astype(np.float32), K)
            ranking = topk.Ranking.from_arrays(stored, f"{name}/")
            assert np.array_equal(ranking.top_ids, brute.top_ids), name
            assert np.array_equal(ranking.bottom_ids, brute.bottom_ids), name
    dead = expected["fc2"].max(axis=0) == 0
    page = layer_overview(scan_dir, "fc2", per_page=512, sort="index")
    assert page["dead_units"] == int(dead.sum())
    assert [unit["dead"] for unit in page["units"]] == dead[:512].tolist()


def test_the_predictions_are_labelled_with_their_class(classifier_scan):
    scan_dir, _, _ = classifier_scan
    page = layer_overview(scan_dir, "predictions", page=2, per_page=10)
    assert [unit["label"] for unit in page["units"]] == list(class_names()[10:20])
    assert unit_detail(scan_dir, "predictions", 281)["label"] == class_names()[281]
    assert layer_overview(scan_dir, "fc1", per_page=1)["units"][0]["label"] is None


def test_a_neuron_is_projected_by_its_gradient_to_pixels(top_engine, classifier_scan):
    scan_dir, record, images = classifier_scan
    for name in CLASSIFIER:
        chosen = projected_units(scan_dir, name)
        assert len(chosen) == 2
        detail = unit_detail(scan_dir, name, chosen[0])
        assert detail["complete"]  # the gradient is full frame: the block gives the enlarged view too
        entry = detail["top"][0]
        assert entry["projection"]["crop"] == entry["projection"]["full"]
        assert Image.open(scan_dir / entry["projection"]["full"]).size == (224, 224)
        patch = np.asarray(Image.open(scan_dir / entry["projection"]["patch"]))
        assert np.array_equal(patch, images[entry["id"]])  # the neuron's field is the whole image

    # A neuron the scan did not project, opened: its own job projects it.
    other = next(unit for unit in range(1000) if unit not in projected_units(scan_dir, "predictions"))
    assert not unit_detail(scan_dir, "predictions", other)["complete"]
    assert project_unit(scan_dir, "predictions", other, top_engine)["projections"] == 2
    assert unit_detail(scan_dir, "predictions", other)["complete"]

    # One run for several neurons gives each neuron's own gradient, which is that of its value.
    model = top_engine.model
    import tensorflow as tf

    with model.graph.as_default():
        single = tf.gradients(model.classifier_activations["predictions"][0, 281], model.images)[0]
    alone = model.run(single, {model.images: to_network_input(images[:1])})[0]
    together = neuron_gradients(top_engine, images[0], "predictions", [7, 281])
    np.testing.assert_allclose(together[1], alone, rtol=1e-4, atol=1e-5 * np.abs(alone).max())
    assert np.abs(alone).max() > 0 and not np.allclose(together[0], together[1])


def test_classifier_layers_need_the_top(engine, image_folder):
    image = load_scan_image(image_folder / list_images(image_folder)[0])[None]
    with pytest.raises(ValueError, match="classifier top, and the weights in use have none"):
        channel_means(engine, image, ["fc1"])
