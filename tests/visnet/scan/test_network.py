"""The parts that run the network, in this process: channel means, receptive fields, projections, and a
whole scan through the CLI without Redis."""
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.support.graphs import op_types_computed
from visnet.display import reconstruction_image
from visnet.preprocessing import to_network_input
from visnet.receptive_fields import field_window, receptive_field
from visnet.scan import layer_overview, scan_progress, store, top_images, topk, unit_detail
from visnet.scan import means as means_module
from visnet.scan.__main__ import main
from visnet.scan.imagesets import list_images, load_scan_image
from visnet.scan.layout import engine_layout
from visnet.scan.means import channel_means, mean_ops
from visnet.scan.projection import project_unit
from visnet.scan.units import projected_units
from visnet.settings import PROJECT_ROOT

# Published VGG16 receptive fields (e.g. Araujo et al., Distill 2019).
PUBLISHED_FIELDS = {"block1_conv1": 3, "block1_pool": 6, "block2_pool": 16, "block3_conv3": 40, "block3_pool": 44,
                    "block4_pool": 100, "block5_conv3": 196, "block5_pool": 212}


@pytest.fixture(scope="module")
def few_images(image_folder):
    paths = list_images(image_folder)[::37][:6]  # duplicates, flat, noise, shapes, photos
    return np.stack([load_scan_image(image_folder / path) for path in paths])


def test_channel_means_are_the_maps_means_in_one_run_per_image(engine, few_images):
    model = engine.model
    calls = []
    original = model.run
    model.run = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    try:
        means = channel_means(engine, few_images, ["block2_pool", "block4_conv3"])
    finally:
        del model.run
    assert len(calls) == 6  # one run per image, both layers in it
    for index in (0, 5):
        maps = model.run([model.activations["block2_pool"], model.activations["block4_conv3"]],
                         {model.images: to_network_input(few_images[index:index + 1])})
        for name, activation in zip(["block2_pool", "block4_conv3"], maps):
            assert means[name].dtype == np.float32 and means[name].shape == (6, activation.shape[-1])
            np.testing.assert_allclose(means[name][index], activation[0].astype(np.float64).mean(axis=(0, 1)),
                                       rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("one_core", [False, True])
def test_scans_read_a_forward_pass_without_switches(engine, few_images, monkeypatch, one_core):
    """A scan's means come from a forward pass with plain max pools, so its runs compute no argmax. With several
    cores: the graph's second pass (ChainGraph.unswitched_activations), every layer the same bits as the forward
    pass the deconvnet reads. On one core, as a pinned worker: the pass whose blocks 3 and 4 convolve by
    Winograd's algorithm (ChainGraph.winograd_activations), the same values to rounding."""
    monkeypatch.setattr(means_module, "on_one_core", lambda: one_core)
    model = engine.model
    names = list(model.activations)
    feed = {model.images: to_network_input(few_images[:2])}
    switched = model.run([model.activations[name] for name in names], feed)
    scanned = model.winograd_activations() if one_core else model.unswitched_activations()
    maps = model.run([scanned[name] for name in names], feed)
    for name, expected, found in zip(names, switched, maps):
        assert found.shape == expected.shape, name
        if one_core:
            np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max(), err_msg=name)
        else:
            assert np.array_equal(found, expected), name
    computed = op_types_computed(list(mean_ops(model, names, engine_layout(engine)).values()))
    assert "MaxPoolWithArgmax" not in computed and "MaxPool" in computed
    assert ("BatchMatMulV2" in computed) == one_core  # Winograd's 16 products
    assert "MaxPoolWithArgmax" in op_types_computed([model.activations["block5_pool"]])


_PINNED_SCAN = """
import os, sys
import numpy as np
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # before TensorFlow starts its threads, as a pinned worker
from tests.support.graphs import op_types_computed
from visnet.engine import Engine
from visnet.scan.layout import engine_layout
from visnet.scan.means import channel_means, mean_ops, on_one_core
engine = Engine.load("hed", device="cpu")
layers = ["block2_pool", "block3_pool", "block5_pool"]
computed = op_types_computed(list(mean_ops(engine.model, layers, engine_layout(engine)).values()))
means = channel_means(engine, np.load(sys.argv[1]), layers)
np.savez(sys.argv[2], on_one_core=on_one_core(), winograd="BatchMatMulV2" in computed, **means)
"""


def test_a_worker_pinned_to_one_core_scans_by_winograd(engine, few_images, tmp_path):
    """A real process pinned to a core, as ``python -m visnet.bench``'s pinned scan workers: its scan reads the
    pass by Winograd's algorithm, and its means agree with this process's (both cores, direct convolutions) to
    rounding."""
    np.save(tmp_path / "images.npy", few_images)
    process = subprocess.run([sys.executable, "-c", _PINNED_SCAN, str(tmp_path / "images.npy"),
                              str(tmp_path / "means.npz")], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    pinned = np.load(tmp_path / "means.npz")
    assert pinned["on_one_core"] and pinned["winograd"]
    here = channel_means(engine, few_images, ["block2_pool", "block3_pool", "block5_pool"], winograd=False)
    for layer, expected in here.items():
        np.testing.assert_allclose(pinned[layer], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max(),
                                   err_msg=layer)


@pytest.mark.parametrize("winograd", [False, True])
def test_an_images_means_do_not_depend_on_the_other_images(engine, few_images, winograd):
    """What lets chunks run on any worker and still equal the brute force bit for bit (in batches, the
    CPU convolutions round an image's maps differently with other neighbours: visnet.scan.means); with the
    Winograd pass of a worker on one core too."""
    layers = ["block3_pool", "block5_pool"]
    together = channel_means(engine, few_images, layers, winograd=winograd)
    order = np.random.default_rng(5).permutation(len(few_images))
    shuffled = channel_means(engine, few_images[order], layers, winograd=winograd)
    alone = channel_means(engine, few_images[:2], layers, winograd=winograd)
    for layer in layers:
        assert np.array_equal(shuffled[layer], together[layer][order])
        assert np.array_equal(alone[layer], together[layer][:2])


def test_two_lanes_run_two_images_at_once_and_give_the_same_bits_as_one(engine, few_images):
    """The scan's speed-up (visnet.scan.means.SCAN_LANES): two session runs in flight, each image's means the
    same bits as when the images run one after the other; progress still counts in order."""
    layers = ["block3_pool", "block5_pool"]
    model = engine.model
    original, lock = model.run, threading.Lock()
    active, most = [0], {}

    def counting_run(*args, **kwargs):
        with lock:
            active[0] += 1
            most[lanes] = max(most.get(lanes, 0), active[0])
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    model.run = counting_run
    results, progress = {}, {}
    try:
        for lanes in (1, 2):
            progress[lanes] = []
            results[lanes] = channel_means(engine, iter(list(few_images)), layers, count=len(few_images),
                                           lanes=lanes, progress=lambda done, total: progress[lanes].append(done))
    finally:
        del model.run
    assert most == {1: 1, 2: 2}
    assert progress[1] == progress[2] == list(range(1, len(few_images) + 1))
    for layer in layers:
        assert np.array_equal(results[2][layer], results[1][layer])


def test_a_refused_image_stops_the_lanes_with_a_clear_error(engine, few_images):
    images = [few_images[0], few_images[1], few_images[2][:100], few_images[3]]
    with pytest.raises(ValueError, match=r"received image 2 dtype uint8 shape \(100, 224, 3\)"):
        channel_means(engine, iter(images), ["block2_pool"], count=4, lanes=2)


def test_receptive_fields_match_the_published_sizes():
    for layer, size in PUBLISHED_FIELDS.items():
        assert receptive_field(layer).size == size, layer
    assert receptive_field("block5_pool").stride == 32
    assert field_window("block5_pool", 3, 3) == (6, 6, 212)  # centre 15.5 + 3·32 = 111.5, ± 105.5
    assert field_window("block5_pool", 0, 6) == (0, 12, 212)  # shifted back inside the image
    assert field_window("block1_conv1", 10, 0) == (9, 0, 3)


@pytest.mark.parametrize("layer, positions", [("block3_pool", [(0, 0), (13, 20), (27, 27)]),
                                              ("block4_pool", [(0, 13), (7, 7)])])
def test_every_pixel_a_unit_sees_lies_in_its_window(engine, layer, positions):
    model = engine.model
    with model.graph.as_default():
        unit = tf.compat.v1.placeholder(tf.int32, [2])
        target = tf.reduce_sum(model.activations[layer][0, unit[0], unit[1], :])
        gradient = tf.gradients(target, model.images)[0]
    noise = np.random.default_rng(6).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    feed_image = to_network_input(noise)
    for row, column in positions:
        grad = model.run(gradient, {model.images: feed_image, unit: [row, column]})[0]
        rows, columns = np.nonzero(np.abs(grad).sum(axis=-1))
        top, left, side = field_window(layer, row, column)
        assert rows.size, "the unit sees something"
        assert top <= rows.min() and rows.max() < top + side and left <= columns.min() and columns.max() < left + side


def test_a_scan_in_process_equals_the_brute_force_and_projects(engine, image_folder, tmp_path, capsys):
    images = list_images(image_folder)[::10][:20]
    folder = tmp_path / "subset"
    for path in images:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes((image_folder / path).read_bytes())
    scan_id = "0123456789abcdef0123456789abcdef"
    arguments = [str(folder), "--layers", "block1_pool,block2_pool", "--k", "3", "--chunk-size", "8",
                 "--project-channels", "2", "--project-k", "2", "--out", str(tmp_path / "results"),
                 "--scan-id", scan_id]
    assert main(arguments) == 0
    output = capsys.readouterr().out
    assert "20 images in 3 chunks" in output and "done in" in output
    scan_dir = tmp_path / "results" / "scans" / scan_id

    brute = channel_means(engine, np.stack([load_scan_image(folder / path) for path in images]),
                          ["block1_pool", "block2_pool"])
    for layer, table in brute.items():
        assert np.array_equal(np.load(store.table_path(scan_dir, layer)), table)
        expected = topk.brute_force(table, 3)
        with np.load(scan_dir / "topk.npz") as stored:
            assert topk.Ranking.from_arrays(stored, f"{layer}/").equals(expected)
        answer = top_images(scan_dir, layer, 1, 3)
        assert [entry["id"] for entry in answer] == expected.top_ids[:, 1].tolist()

    assert scan_progress(scan_dir)["status"] == "done"
    assert sorted(int(p.stem) for p in (scan_dir / "thumbs").glob("*.jpg")) == list(range(20))
    chosen = projected_units(scan_dir, "block2_pool")
    strongest = topk.brute_force(brute["block2_pool"], 3).top_values[0]
    assert chosen == sorted(range(128), key=lambda unit: (-strongest[unit], unit))[:2]  # by top activation
    marker = json.loads(store.projection_marker(scan_dir, "block2_pool", 0, 2).read_text())
    assert marker["seed"] == "max" and sorted(marker["channels"]) == sorted(map(str, chosen))
    entry = marker["channels"][str(chosen[1])][0]
    assert entry["image"] == int(topk.brute_force(brute["block2_pool"], 3).top_ids[0, chosen[1]])
    assert entry["window"][2] == 16 and entry["full"] is None
    top, left, side = entry["window"]
    seen = load_scan_image(folder / images[entry["image"]])[top:top + side, left:left + side]
    assert np.array_equal(np.asarray(Image.open(scan_dir / entry["patch"])), seen)
    assert Image.open(scan_dir / entry["crop"]).size == (16, 16)
    # The crop is the projection of the unit's single strongest activation (a max seed), not the whole map's
    # projection cut to that window.
    image = load_scan_image(folder / images[entry["image"]])[None]
    feature = engine.deconv(image, layers=None, top_k=0, channels=[("block2_pool", chosen[1])], seed="both")
    feature = feature.images[0].layers["block2_pool"][0]
    assert tuple(entry["position"]) == feature.max_position and tuple(entry["window"]) == feature.field
    crop = np.asarray(Image.open(scan_dir / entry["crop"]))
    assert np.array_equal(crop, reconstruction_image(feature.max_reconstruction))
    assert not np.array_equal(crop, reconstruction_image(feature.reconstruction[top:top + side, left:left + side]))
    overview = layer_overview(scan_dir, "block2_pool", page=1, per_page=128)
    assert overview["units"][chosen[1]]["top"][0]["projection"]["crop"] == entry["crop"]
    assert overview["units"][chosen[1]]["top"][2]["projection"] is None  # only 2 of the 3 top images are projected
    others = [unit for unit in range(128) if unit not in chosen]
    assert overview["units"][others[0]]["top"][0]["projection"] is None  # only the two strongest units
    assert unit_detail(scan_dir, "block1_pool", 0)["bottom"][0]["projection"] is None

    # Opening another unit projects it on demand, with the whole map's projection as the enlarged view.
    result = project_unit(scan_dir, "block2_pool", others[0], engine)
    assert result["projections"] == 2 and not result["skipped"]
    detail = unit_detail(scan_dir, "block2_pool", others[0])
    assert detail["complete"]
    full = detail["top"][0]["projection"]["full"]
    assert Image.open(scan_dir / full).size == (224, 224)
    assert project_unit(scan_dir, "block2_pool", others[0], engine)["skipped"]

    # Running it again finds everything done: nothing is computed twice.
    assert main(["--resume", str(scan_dir)]) == 0
    assert "0 chunks, 0 projection blocks" in capsys.readouterr().out
    events = store.read_executions(scan_dir)
    assert sorted(event["chunk"] for event in events if event["event"] == "done") == [0, 1, 2]


def test_the_cli_reports_bad_requests(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "neither a folder nor a .zip" in capsys.readouterr().err
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    assert main([str(tmp_path / "bad.zip"), "--out", str(tmp_path)]) == 2
    assert "not a readable ZIP" in capsys.readouterr().err
    assert main([str(tmp_path), "--k", "0", "--out", str(tmp_path)]) == 2
