"""write_deconv_outputs on a hand-made result: which files, what is in them, and the manifest.

No TensorFlow: the result is a plain stand-in with the attributes of visnet.engine.DeconvResult.
"""
import io
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.support.paths import PROJECT_ROOT
from visnet import atomic, display, outputs
from visnet.methods import RANKINGS
from visnet.outputs import NORMALISATION, write_deconv_outputs
from visnet.weights import describe_weights

# The fake receptive fields: (top, left, side) per layer, one side per layer.
FIELDS = {"block4_pool": (30, 50, 100), "block5_pool": (12, 0, 212)}


def feature(layer, channel, norm, scale, resolution, explicit=False, seed="both"):
    """A reconstruction whose three channels differ and whose extremes are ±scale, an activation map
    with a single peak, and (max seeds) a faint patch of its layer's field size."""
    ramp = np.linspace(-1.0, 1.0, 224 * 224, dtype=np.float32).reshape(224, 224)
    reconstruction = np.stack([ramp, -ramp, 0.5 * ramp], axis=-1) * np.float32(scale)
    activation = np.zeros((resolution, resolution), np.float32)
    activation[channel % resolution, channel % resolution] = norm
    top, left, side = FIELDS[layer]
    patch = np.random.default_rng(channel).normal(0, 1e-4, (side, side, 3)).astype(np.float32)
    return SimpleNamespace(layer=layer, channel=channel, norm=norm, explicit=explicit,
                           reconstruction=None if seed == "max" else reconstruction, activation=activation,
                           max_position=(channel % resolution, channel % resolution), max_value=norm / 2,
                           field=(top, left, side), max_reconstruction=None if seed == "map" else patch)


def make_result(seed="both"):
    """Two images; layers block4_pool (2 ranked features) and block5_pool (1 ranked, 1 explicit)."""
    images = []
    for image in range(2):
        layers = {
            "block4_pool": [feature("block4_pool", 5 + image, 90.0, 10.0, 14, seed=seed),
                            feature("block4_pool", 2, 40.5, 3.0, 14, seed=seed)],
            "block5_pool": [feature("block5_pool", 12, 7.25, 0.5, 7, seed=seed),
                            feature("block5_pool", 300, 1.5, 2.0, 7, explicit=True, seed=seed)],
        }
        images.append(SimpleNamespace(layers=layers))
    return SimpleNamespace(layers=["block4_pool", "block5_pool"], images=images, weights="hed",
                           device="cpu (CPU)", mode="single", rule="deconvnet", seed=seed,
                           timings={"network_seconds": 1.25}, weights_description=describe_weights("hed", False))


@pytest.fixture
def photo():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)


@pytest.fixture
def written(tmp_path, photo):
    calls = []
    manifest = write_deconv_outputs(make_result(), 1, photo, tmp_path, raw=True,
                                    progress=lambda *call: calls.append(call), image_name="cat.jpg")
    return SimpleNamespace(manifest=manifest, folder=tmp_path, calls=calls, photo=photo)


def named_files(manifest):
    names = {manifest["summary"]}
    for layer in manifest["layers"]:
        for entry in layer["features"]:
            names.update(entry[key] for key in ("reconstruction", "overlay", "patch", "photo_patch", "raw", "raw_patch")
                         if key in entry)
    return names


def test_manifest_describes_the_result_and_is_written(written):
    manifest = written.manifest
    assert json.loads((written.folder / "manifest.json").read_text()) == manifest
    assert {key: manifest[key] for key in ("image", "weights", "device", "mode", "rule", "seed", "summary")} == {
        "image": "cat.jpg", "weights": "hed", "device": "cpu (CPU)", "mode": "single", "rule": "deconvnet",
        "seed": "both", "summary": "summary.png"}
    assert manifest["weights_description"].startswith("HED edge-detector VGG16 (fine-tuned on BSDS500 for edges;")
    assert manifest["normalisation"] == NORMALISATION
    assert manifest["timings"]["network_seconds"] == 1.25
    assert manifest["timings"]["render_seconds"] >= 0
    assert [layer["name"] for layer in manifest["layers"]] == ["block4_pool", "block5_pool"]
    field = {"top": 30, "left": 50, "side": 100}
    assert manifest["layers"][0]["features"] == [
        {"channel": 6, "norm": 90.0, "rank": 0, "explicit": False, "score": 90.0, "reconstruction": "block4_pool_ch6.png",
         "overlay": "block4_pool_ch6_overlay.png", "raw": "raw/block4_pool_6.npy",
         "max_position": [6, 6], "max_value": 45.0, "field": field, "patch": "block4_pool_ch6_patch.png",
         "photo_patch": "block4_pool_ch6_photo_patch.png", "raw_patch": "raw/block4_pool_6_max.npy"},
        {"channel": 2, "norm": 40.5, "rank": 1, "explicit": False, "score": 40.5, "reconstruction": "block4_pool_ch2.png",
         "overlay": "block4_pool_ch2_overlay.png", "raw": "raw/block4_pool_2.npy",
         "max_position": [2, 2], "max_value": 20.25, "field": field, "patch": "block4_pool_ch2_patch.png",
         "photo_patch": "block4_pool_ch2_photo_patch.png", "raw_patch": "raw/block4_pool_2_max.npy"},
    ]
    assert manifest["ranking"] == {"rank": "norm", "words": RANKINGS["norm"], "measure": "l2-norm"}
    assert [(entry["channel"], entry["explicit"]) for entry in manifest["layers"][1]["features"]] == [
        (12, False), (300, True)]


def test_every_named_file_exists_and_every_file_is_named(written):
    on_disk = {str(path.relative_to(written.folder)) for path in written.folder.rglob("*") if path.is_file()}
    assert on_disk == named_files(written.manifest) | {"manifest.json"}  # also: no temporary files left


def test_pngs_are_the_display_modules_pictures(written):
    result = make_result()
    for layer in written.manifest["layers"]:
        for entry, source in zip(layer["features"], result.images[1].layers[layer["name"]]):
            reconstruction = np.asarray(Image.open(written.folder / entry["reconstruction"]))
            overlay = np.asarray(Image.open(written.folder / entry["overlay"]))
            np.testing.assert_array_equal(reconstruction, display.reconstruction_image(source.reconstruction))
            np.testing.assert_array_equal(overlay, display.overlay_activation(written.photo, source.activation))


def test_patches_are_the_field_of_the_strongest_activation_beside_the_photo_there(written):
    result = make_result()
    for layer in written.manifest["layers"]:
        for entry, source in zip(layer["features"], result.images[1].layers[layer["name"]]):
            top, left, side = source.field
            patch = np.asarray(Image.open(written.folder / entry["patch"]))
            photo_patch = np.asarray(Image.open(written.folder / entry["photo_patch"]))
            assert patch.shape == photo_patch.shape == (side, side, 3)
            np.testing.assert_array_equal(photo_patch, written.photo[top:top + side, left:left + side])
            # Normalised on its own: a patch of magnitude 1e-4 still spans black to white.
            np.testing.assert_array_equal(patch, display.reconstruction_image(source.max_reconstruction))
            assert patch.min() == 0 and patch.max() == 255
            np.testing.assert_array_equal(np.load(written.folder / entry["raw_patch"]), source.max_reconstruction)


@pytest.mark.parametrize("seed, present, absent", [
    ("map", {"reconstruction", "raw"}, {"patch", "photo_patch", "raw_patch"}),
    ("max", {"patch", "photo_patch", "raw_patch"}, {"reconstruction", "raw"}),
])
def test_each_seed_writes_its_own_pictures(tmp_path, photo, seed, present, absent):
    manifest = write_deconv_outputs(make_result(seed), 0, photo, tmp_path, raw=True)
    assert manifest["seed"] == seed
    for layer in manifest["layers"]:
        for entry in layer["features"]:
            assert present <= set(entry) and not absent & set(entry)
            assert {"overlay", "max_position", "max_value", "field"} <= set(entry)
    on_disk = {str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()}
    assert on_disk == named_files(manifest) | {"manifest.json"}


def test_reconstruction_png_is_symmetric_around_mid_grey(written):
    # The ramp goes from -scale to +scale in B (channel 0 of BGR), the reverse in G, half of it in R.
    png = np.asarray(Image.open(written.folder / "block4_pool_ch6.png"))  # RGB
    assert png.shape == (224, 224, 3) and png.dtype == np.uint8
    # The scale is the 99.5th percentile of |x| (a bit below the max): the ends clip to 0 and 255 and
    # half the max lands just beyond a quarter of the range.
    assert tuple(png[0, 0])[1:] == (255, 0) and 60 <= png[0, 0, 0] <= 64
    assert tuple(png[-1, -1])[1:] == (0, 255) and 191 <= png[-1, -1, 0] <= 195


def test_raw_files_are_the_unnormalised_reconstructions(written):
    for layer in written.manifest["layers"]:
        for entry, source in zip(layer["features"], make_result().images[1].layers[layer["name"]]):
            array = np.load(written.folder / entry["raw"])
            assert array.dtype == np.float32 and array.shape == (224, 224, 3)
            np.testing.assert_array_equal(array, source.reconstruction)


def test_summary_sheet_shows_a_row_per_layer(written, photo):
    sheet = np.asarray(Image.open(written.folder / "summary.png"))
    def tile(f):
        top, left, side = f.field
        return {"channel": f.channel, "norm": f.norm, "overlay": display.overlay_activation(photo, f.activation),
                "reconstruction": display.reconstruction_image(f.reconstruction),
                "patch": display.reconstruction_image(f.max_reconstruction),
                "photo_patch": photo[top:top + side, left:left + side]}

    rows = [(layer, [tile(f) for f in features]) for layer, features in make_result().images[1].layers.items()]
    np.testing.assert_array_equal(sheet, display.summary_sheet(photo, rows, title="cat.jpg · hed weights"))


def test_progress_is_reported_per_layer(written):
    assert written.calls == [("rendering", 0, 2), ("rendering", 1, 2), ("rendering", 2, 2)]


def test_each_feature_is_announced_once_its_files_exist(tmp_path, photo):
    """``written`` gets the manifest so far each time a feature lands: only features whose files are on disk,
    in their final order, and no summary until the end."""
    seen = []

    def check(manifest):
        features = [entry for layer in manifest["layers"] for entry in layer["features"]]
        assert features and all(layer["features"] for layer in manifest["layers"])
        assert "summary" not in manifest and "timings" not in manifest
        assert all((tmp_path / name).is_file() for name in named_files({**manifest, "summary": "input.png"})
                   if name != "input.png")
        seen.append(manifest)

    final = write_deconv_outputs(make_result(), 1, photo, tmp_path, raw=True, workers=2, written=check,
                                 input_photo={"file": "input.png"})
    assert [sum(len(layer["features"]) for layer in manifest["layers"]) for manifest in seen] == [1, 2, 3, 4]
    final_entries = {layer["name"]: layer["features"] for layer in final["layers"]}
    for manifest in seen:
        assert manifest["input"] == {"file": "input.png"}
        for layer in manifest["layers"]:  # a subsequence of the final layer, entry for entry
            entries = iter(final_entries[layer["name"]])
            assert all(entry in entries for entry in layer["features"])
    assert seen[-1] == {key: value for key, value in final.items() if key not in ("summary", "timings")}


def test_image_index_selects_the_image(tmp_path, photo):
    manifest = write_deconv_outputs(make_result(), 0, photo, tmp_path)
    assert [entry["channel"] for entry in manifest["layers"][0]["features"]] == [5, 2]
    assert not (tmp_path / "raw").exists()
    assert all("raw" not in entry for layer in manifest["layers"] for entry in layer["features"])
    assert manifest["image"] is None


def test_a_channel_both_ranked_and_requested_is_written_once(tmp_path, photo):
    result = make_result()
    layer = result.images[0].layers["block5_pool"]
    layer.append(feature("block5_pool", 12, 7.25, 0.5, 7, explicit=True))
    manifest = write_deconv_outputs(result, 0, photo, tmp_path)
    assert [(entry["channel"], entry["rank"], entry["explicit"]) for entry in manifest["layers"][1]["features"]] == [
        (12, 0, True), (300, 1, True)]


def test_bad_arguments_are_rejected(tmp_path, photo):
    with pytest.raises(ValueError, match="image_index 2 is out of range"):
        write_deconv_outputs(make_result(), 2, photo, tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        write_deconv_outputs(make_result(), 0, photo, tmp_path / "missing")
    with pytest.raises(ValueError, match="RGB uint8"):
        write_deconv_outputs(make_result(), 0, photo.astype(np.float32), tmp_path)


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path, monkeypatch):
    def refuse(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", refuse)  # the one writer outputs uses
    with pytest.raises(OSError, match="disk full"):
        outputs._write_atomic(tmp_path / "a.png", b"\x89PNG")
    assert list(tmp_path.iterdir()) == []


def test_outputs_and_cli_do_not_import_tensorflow():
    code = ("import sys, visnet.outputs, visnet.cli; "
            "sys.exit(any(name.split('.')[0] == 'tensorflow' for name in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT).returncode == 0


def test_parallel_writing_gives_the_files_of_a_serial_write_byte_for_byte(tmp_path, photo):
    folders = {workers: tmp_path / f"workers{workers}" for workers in (1, 4)}
    manifests = {}
    for workers, folder in folders.items():
        folder.mkdir()
        manifests[workers] = write_deconv_outputs(make_result(), 1, photo, folder, raw=True, image_name="cat.jpg",
                                                  workers=workers)
    for manifest in manifests.values():
        manifest["timings"].pop("render_seconds")
    assert manifests[1] == manifests[4]
    names = sorted(str(path.relative_to(folders[1])) for path in folders[1].rglob("*") if path.is_file())
    assert names == sorted(str(path.relative_to(folders[4])) for path in folders[4].rglob("*") if path.is_file())
    assert len(names) == len(named_files(manifests[1])) + 1  # and manifest.json
    for name in names:
        if name != "manifest.json":
            assert (folders[4] / name).read_bytes() == (folders[1] / name).read_bytes(), name


def test_pngs_decode_to_the_pixels_pillows_default_level_gives(written, photo):
    """The chosen zlib level changes bytes, never pixels: every PNG equals its picture encoded at level 6."""
    result = make_result()
    for entry, source in zip(written.manifest["layers"][0]["features"], result.images[1].layers["block4_pool"]):
        for kind, picture in outputs.feature_pictures(source, photo).items():
            written_bytes = (written.folder / entry[kind]).read_bytes()
            reference = display.encode_png(picture, compress_level=6)
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(written_bytes))),
                                  np.asarray(Image.open(io.BytesIO(reference))))
            assert written_bytes == display.encode_png(picture, compress_level=display.PNG_COMPRESS_LEVEL)


def test_a_failed_write_in_a_worker_is_raised_and_leaves_no_manifest(tmp_path, photo, monkeypatch):
    def refuse(uint8_array):
        raise OSError("disk full")

    monkeypatch.setattr(outputs.display, "encode_png", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_deconv_outputs(make_result(), 0, photo, tmp_path, workers=2)
    assert not (tmp_path / "manifest.json").exists()
    with pytest.raises(ValueError, match="workers must be at least 1"):
        write_deconv_outputs(make_result(), 0, photo, tmp_path, workers=0)
