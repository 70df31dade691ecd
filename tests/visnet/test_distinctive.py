"""Distinctive channels (visnet.distinctive): on a real scan of real photos, a photo's distinctive ranking
equals a direct NumPy computation from the scan's tables, differs from the norm ranking, and a reference
that cannot serve is refused with the reason."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from visnet import distinctive
from visnet.methods import RANKINGS
from visnet.outputs import write_deconv_outputs
from visnet.preprocessing import load_image, to_network_input
from visnet.scan import ScanOptions, create_scan, store
from visnet.scan.imagesets import list_images

LAYERS = ("block2_pool", "block3_pool")
TOP_K = 3
REFERENCE_PHOTOS = ("astronaut", "cat", "chelsea")  # with their crops and flips: 27 images, no coffee


@pytest.fixture(scope="module")
def reference_scan(engine, image_folder, tmp_path_factory):
    """A finished scan, run in this process, of 27 real photos (scikit-image's, cropped and flipped)."""
    from visnet.scan.runner import run_scan

    photos = [path for path in list_images(image_folder) if path.split("/")[:2][-1] in REFERENCE_PHOTOS]
    scan_dir = store.scan_path(tmp_path_factory.mktemp("reference") / store.SCANS_FOLDER, store.new_scan_id())
    create_scan(scan_dir, image_folder, ScanOptions(layers=",".join(LAYERS), k=5, project_channels=0), images=photos)
    run_scan(scan_dir, engine)
    return scan_dir


@pytest.fixture(scope="module")
def coffee_rgb():
    import skimage.data

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.coffee()).save(buffer, format="PNG")
    return load_image(buffer.getvalue())


def direct_scores(engine, rgb, scan_dir, layer):
    """NumPy from the scan's table file and the photo's post-ReLU map: (scores, photo means, mean, std)."""
    table = np.load(store.table_path(scan_dir, layer)).astype(np.float64)
    maps = engine.model.run(engine.model.activations[layer], {engine.model.images: to_network_input(rgb)[None]})[0]
    means = maps.astype(np.float64).mean(axis=(0, 1))
    mean, std = table.mean(axis=0), np.sqrt(((table - table.mean(axis=0)) ** 2).mean(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, (means - mean) / std, np.nan), means, mean, std


def test_the_scan_records_its_weights_and_serves_as_a_reference(reference_scan):
    assert store.merged_weights(reference_scan) == ["hed"]
    assert json.loads((reference_scan / store.TOPK_JSON).read_text())["weights"] == ["hed"]
    assert json.loads((reference_scan / store.TOPK_JSON).read_text())["measure"] == "post-relu-mean"
    assert distinctive.check_reference(reference_scan, LAYERS, "hed") == {
        "scan": reference_scan.name, "images": 27, "weights": "hed", "layers": list(LAYERS)}


def test_the_distinctive_ranking_equals_numpy_on_the_scans_tables_and_differs_from_the_norms(
        engine, reference_scan, coffee_rgb, tmp_path):
    explicit = ("block3_pool", 5)
    result = engine.deconv(coffee_rgb[None], layers=",".join(LAYERS), top_k=TOP_K, rank="distinctive",
                           reference=reference_scan, channels=[explicit])
    by_norm = engine.deconv(coffee_rgb[None], layers=",".join(LAYERS), top_k=TOP_K)
    assert result.ranking == {"rank": "distinctive", "words": RANKINGS["distinctive"], "measure": "post-relu-mean",
                              "layers": list(LAYERS),
                              "reference": {"scan": reference_scan.name, "images": 27, "weights": "hed"}}
    for layer in LAYERS:
        scores, means, mean, std = direct_scores(engine, coffee_rgb, reference_scan, layer)
        order = sorted(np.flatnonzero(~np.isnan(scores)), key=lambda c: (-scores[c], c))
        features = result.images[0].layers[layer]
        ranked = [feature for feature in features if not feature.explicit]
        assert [feature.channel for feature in ranked] == order[:TOP_K]
        for feature in features:
            channel = feature.channel
            assert feature.score == pytest.approx(scores[channel], rel=1e-4, abs=1e-4)
            assert feature.ranking_figures["mean"] == pytest.approx(means[channel], rel=1e-5, abs=1e-6)
            assert feature.ranking_figures["reference_mean"] == pytest.approx(mean[channel], rel=1e-9)
            assert feature.ranking_figures["reference_std"] == pytest.approx(std[channel], rel=1e-9)
        strongest = [feature.channel for feature in by_norm.images[0].layers[layer]]
        assert set(strongest).isdisjoint(feature.channel for feature in ranked), (layer, strongest)
        assert scores[order[0]] > 1.5  # unusual indeed: over one and a half reference deviations
    assert [(feature.channel, feature.explicit) for feature in result.images[0].layers["block3_pool"]][-1] == (5, True)

    manifest = write_deconv_outputs(result, 0, coffee_rgb, tmp_path)
    assert manifest["ranking"]["rank"] == "distinctive" and manifest["ranking"]["reference"]["scan"] == reference_scan.name
    for layer, entry in zip(LAYERS, manifest["layers"]):
        features = result.images[0].layers[layer]
        assert [feature["score"] for feature in entry["features"]] == [feature.score for feature in features]
        assert all({"mean", "reference_mean", "reference_std"} <= set(feature) for feature in entry["features"])
    (tmp_path / "norm").mkdir()
    norm_manifest = write_deconv_outputs(by_norm, 0, coffee_rgb, tmp_path / "norm")
    assert norm_manifest["ranking"]["rank"] == "norm"
    assert all(feature["score"] == feature["norm"] for layer in norm_manifest["layers"] for feature in layer["features"])


def test_unscored_channels_rank_last_and_ties_go_to_the_lower_index():
    scores = distinctive.distinctive_scores([1.0, 0.0, 3.0, 2.0, 5.0], [0.0, 0.0, 1.0, 0.0, 5.0], [1.0, 0.0, 1.0, 1.0, 0.0])
    assert np.isnan(scores[[1, 4]]).all() and scores[[0, 2, 3]].tolist() == [1.0, 2.0, 2.0]
    assert distinctive.distinctive_order(scores).tolist() == [2, 3, 0, 1, 4]


def test_a_reference_that_cannot_serve_is_refused_with_the_reason(reference_scan, tmp_path, image_folder):
    with pytest.raises(distinctive.UnusableReference, match="there is no finished scan"):
        distinctive.check_reference(tmp_path / ("0" * 32), LAYERS, "hed")
    with pytest.raises(distinctive.UnusableReference, match="computed on the hed weights and the workers use imagenet"):
        distinctive.check_reference(reference_scan, LAYERS, "imagenet")
    with pytest.raises(distinctive.UnusableReference, match="did not record block5_pool; it has block2_pool, "
                                                            "block3_pool"):
        distinctive.check_reference(reference_scan, ["block2_pool", "block5_pool"], "hed")
    pending = tmp_path / ("1" * 32)
    create_scan(pending, image_folder, ScanOptions(layers=",".join(LAYERS)), images=list_images(image_folder)[:2])
    with pytest.raises(distinctive.UnusableReference, match="is pending; a reference needs a scan whose forward pass"):
        distinctive.check_reference(pending, LAYERS, "hed")


def test_a_scan_merged_without_its_weights_is_refused(tmp_path):
    from tests.support.scan_api import build_finished_scan

    scan_id, folder, _ = build_finished_scan(tmp_path, weights=None)
    with pytest.raises(distinctive.UnusableReference, match="does not record which weights computed it"):
        distinctive.check_reference(folder, ["block1_pool"], "hed")
    scan_id, folder, _ = build_finished_scan(tmp_path, weights=["hed", "imagenet"])
    with pytest.raises(distinctive.UnusableReference, match=r"mixes chunks computed on different weights \(hed, imagenet\)"):
        distinctive.check_reference(folder, ["block1_pool"], "hed")
    scan_id, folder, _ = build_finished_scan(tmp_path, weights=["hed", None])  # one chunk of an older version
    with pytest.raises(distinctive.UnusableReference, match=r"different weights \(hed, unrecorded\)"):
        distinctive.check_reference(folder, ["block1_pool"], "hed")


def test_the_cli_ranks_against_a_scan_of_the_results_folder(engine, reference_scan, tmp_path, monkeypatch):
    import skimage.data

    from tests.visnet.test_cli import run_cli

    photo = tmp_path / "coffee.png"
    Image.fromarray(skimage.data.coffee()).save(photo)
    monkeypatch.setenv("RESULTS_DIR", str(reference_scan.parent.parent))
    out = tmp_path / "out"
    run = run_cli(["deconv", photo, "--layers", "block3_pool", "--top-k", "2", "--rank", "distinctive",
                   "--reference", reference_scan.name, "--out", out], engine=engine)
    assert run.status == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ranking"]["rank"] == "distinctive" and manifest["ranking"]["reference"]["scan"] == reference_scan.name
    assert len(manifest["layers"][0]["features"]) == 2 and manifest["layers"][0]["features"][0]["score"] > 1
    refused = run_cli(["deconv", photo, "--layers", "block5_pool", "--rank", "distinctive",
                       "--reference", reference_scan.name, "--out", out], engine=engine)
    assert refused.status == 2 and "did not record block5_pool" in refused.stderr
