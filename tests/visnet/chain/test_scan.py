"""Dataset scans on a stored chain model (visnet.scan with a :class:`~visnet.chain.engine.ChainEngine`): the
scan's rankings against a brute force that runs every image alone through the chain's graph, its projections
against the chain's own deconvnet, and the scan folder naming the model it was planned for."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.visnet.chain.conftest import SEQUENTIAL_SIZE, small_photos
from visnet.display import reconstruction_image
from visnet.distinctive import UnusableReference, check_reference
from visnet.scan import ScanOptions, create_scan, layer_overview, store, topk, unit_detail
from visnet.scan.layout import ChainLayout, layout_of
from visnet.scan.merge import load_rankings, load_table

K = 3


@pytest.fixture(scope="module")
def engine(chains):
    from visnet.chain.engine import ChainEngine

    return ChainEngine(chains["sequential"], device="cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple:
    """(folder, [relative paths]) of seven 40 × 40 PNGs: two real photos, three noise images, a copy of the
    first (every unit ties it exactly) and a flat grey one (units zero on it tie with the dead ones)."""
    folder = tmp_path_factory.mktemp("chain_scan_photos")
    real = small_photos(SEQUENTIAL_SIZE)
    noise = np.random.default_rng(5).integers(0, 256, (3, SEQUENTIAL_SIZE, SEQUENTIAL_SIZE, 3), dtype=np.uint8)
    grey = np.full((SEQUENTIAL_SIZE, SEQUENTIAL_SIZE, 3), 128, np.uint8)
    images = [real[0], real[1], *noise, real[0], grey]
    names = [f"{index}.png" for index in range(len(images))]
    for name, image in zip(names, images):
        Image.fromarray(image).save(folder / name)
    return folder, names


@pytest.fixture(scope="module")
def scanned(engine, photos, tmp_path_factory):
    """A scan of every layer of the model, in chunks of 3, run to the end: its forward pass (no unit projected in
    blocks: a real worker runs those, tests/integration/test_model_jobs.py)."""
    from visnet.scan.runner import run_scan

    folder, names = photos
    scan_dir = tmp_path_factory.mktemp("chain_scan") / store.new_scan_id()
    options = ScanOptions(layers="all", k=K, chunk_size=3, project_channels=0, layout=ChainLayout.of_chain(engine.chain))
    create_scan(scan_dir, folder, options)
    run_scan(scan_dir, engine)
    return scan_dir


def brute_force_means(engine, folder, names, layer) -> np.ndarray:
    """(N, C) float64: each image alone through the chain's graph, the mean over its map of each channel (a flat
    layer's value as it is)."""
    from visnet.chain.preprocess import to_model_input

    chain, model = engine.chain, engine.model
    rows = []
    for name in names:
        rgb = np.asarray(Image.open(folder / name).convert("RGB"))
        output = model.run(model.activations[layer], {model.images: to_model_input(rgb[None], chain.preprocess)})[0]
        rows.append(output.astype(np.float64) if output.ndim == 1 else output.mean(axis=(0, 1), dtype=np.float64))
    return np.stack(rows)


def test_a_scans_top_and_bottom_k_of_every_unit_equal_a_brute_force(engine, photos, scanned):
    folder, names = photos
    record = store.load_scan(scanned)
    assert record["options"]["layers"] == list(engine.chain.layer_names)
    assert record["options"]["image_size"] == SEQUENTIAL_SIZE  # the default: the model's input, whole
    assert len(record["chunks"]) == 3
    for layer in engine.chain.layer_names:
        means = brute_force_means(engine, folder, names, layer)
        ids = np.arange(len(names))
        ranking = load_rankings(scanned, layer)
        assert ranking.channels == engine.chain.channels(layer)
        for unit in range(ranking.channels):
            column = means[:, unit]
            top = np.lexsort((ids, -column))[:K]  # value descending, then the lower image id: the scan's order
            bottom = np.lexsort((ids, column))[:K]
            assert ranking.top_ids[:, unit].tolist() == top.tolist(), (layer, unit, column)
            assert ranking.bottom_ids[:, unit].tolist() == bottom.tolist(), (layer, unit, column)
            np.testing.assert_allclose(ranking.top_values[:, unit], column[top], rtol=1e-5, atol=1e-6)
        table = np.asarray(load_table(scanned, layer))
        np.testing.assert_allclose(table, means, rtol=1e-5, atol=1e-6)
        assert np.array_equal(table[0], table[5])  # the copy ties the original exactly, bit for bit
        assert topk.brute_force(table, K).equals(ranking)


def test_a_units_top_images_are_projected_by_the_chains_deconvnet(engine, photos, scanned):
    """What opening a unit asks for (both seeds): the single strongest activation inside its receptive field, the
    image there and the whole map's projection, each as the chain's deconvnet draws it on that image alone. A flat
    layer's unit sees the whole image: its window is the full frame."""
    from visnet.scan.projection import project_unit

    folder, names = photos
    for layer in ("pool1", "fc1"):
        unit = layer_overview(scanned, layer, sort="top")["units"][0]["channel"]  # the strongest
        project_unit(scanned, layer, unit, engine)
        detail = unit_detail(scanned, layer, unit)
        assert detail["complete"] and detail["label"] is None and len(detail["top"]) == K
        for entry in detail["top"]:
            rgb = np.asarray(Image.open(folder / names[entry["id"]]).convert("RGB"))
            feature = engine.deconv(rgb[None], layers=None, top_k=0, channels=[(layer, unit)],
                                    seed="both").images[0].layers[layer][0]
            top, left, side = feature.field
            assert side == SEQUENTIAL_SIZE if layer == "fc1" else side < SEQUENTIAL_SIZE
            pictures = {kind: np.asarray(Image.open(scanned / entry["projection"][kind]).convert("RGB"))
                        for kind in ("crop", "patch", "full")}
            assert np.array_equal(pictures["patch"], rgb[top:top + side, left:left + side])
            assert np.array_equal(pictures["crop"], reconstruction_image(feature.max_reconstruction))
            assert np.array_equal(pictures["full"], reconstruction_image(feature.reconstruction))


def test_the_scan_keeps_its_model_and_refuses_another_models_worker(chains, engine, photos, scanned):
    from visnet.chain.engine import ChainEngine
    from visnet.scan.chunks import compute_chunk

    record = json.loads((scanned / store.SCAN_FILE).read_text())
    assert record["model"]["name"] == "tiny-sequential"
    assert record["model"]["sha256"] == chains["sequential"].source["sha256"]
    assert layout_of(record).layer_names == engine.chain.layer_names
    assert [layer["channels"] for layer in record["layers"]] == [engine.chain.channels(name)
                                                                   for name in engine.chain.layer_names]
    other = ChainEngine(chains["functional"], device="cpu")
    store.chunk_path(scanned, 0).unlink()
    with pytest.raises(ValueError, match="planned for model tiny-sequential .* this worker serves tiny-functional"):
        compute_chunk(scanned, 0, other)
    assert compute_chunk(scanned, 0, engine)["skipped"] is False
    with pytest.raises(UnusableReference, match="was made on model tiny-sequential; a distinctive ranking compares"):
        check_reference(scanned, [])  # VGG16's distinctive ranking cannot use it


def test_scan_options_are_checked_against_the_models_own_layers(engine):
    layout = ChainLayout.of_chain(engine.chain)
    assert ScanOptions(layout=layout).layers == ("pool1", "avg1", "pool2")
    with pytest.raises(ValueError, match="unknown layer 'block1_pool' of model tiny-sequential"):
        ScanOptions(layers="block1_pool", layout=layout)
    with pytest.raises(ValueError, match="image_size must be a whole number from 40"):
        ScanOptions(image_size=39, layout=layout)
    described = ChainLayout.from_description(json.loads(json.dumps(layout.describe())))
    assert described.describe() == layout.describe() and described.resolve("all") == layout.resolve("all")
