"""``python -m visnet`` on real photos: the files it writes, how it fails, and the weights commands.

Most tests call ``cli.main`` in-process with the session's engine, so the graph is built once; one
test runs the real entry point in a subprocess.
"""
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import skimage.data
from PIL import Image

from tests.support.paths import PROJECT_ROOT
from tests.support.weights_origin import WeightsOrigin
from visnet import cli, display
from visnet.fetch import FetchError
from visnet.preprocessing import load_image
from visnet.weights import KNOWN_WEIGHTS, hed_weights_path

TOLERANCE = 1e-4  # max |a − b| ≤ TOLERANCE × max |b|, as in test_engine.py
POOLS = ["block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool"]


def run_cli(argv, engine=None) -> SimpleNamespace:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main([str(arg) for arg in argv], engine=engine)
    return SimpleNamespace(status=status, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def files_under(folder: Path) -> set:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def named_in(manifest) -> set:
    names = {manifest["summary"], "manifest.json", manifest["input"]["file"]}
    for layer in manifest["layers"]:
        for entry in layer["features"]:
            names.update(entry[key] for key in ("reconstruction", "overlay", "patch", "photo_patch", "raw", "raw_patch")
                         if key in entry)
    return names


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> SimpleNamespace:
    """chelsea.jpg at its original 451×300, astronaut.png (512×512), and a second chelsea.jpg in
    another folder (same stem)."""
    folder = tmp_path_factory.mktemp("photos")
    chelsea = folder / "chelsea.jpg"
    Image.fromarray(skimage.data.chelsea()).save(chelsea, quality=90)
    astronaut = folder / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(astronaut)
    (folder / "again").mkdir()
    chelsea_again = folder / "again" / "chelsea.jpg"
    shutil.copy(chelsea, chelsea_again)
    not_an_image = folder / "notes.jpg"
    not_an_image.write_text("these are notes, not a JPEG\n")
    return SimpleNamespace(chelsea=chelsea, astronaut=astronaut, chelsea_again=chelsea_again,
                           not_an_image=not_an_image, folder=folder)


@pytest.fixture(scope="module")
def single(engine, photos, tmp_path_factory) -> SimpleNamespace:
    """One image, the defaults (top-3 of the five pools), with --raw."""
    out = tmp_path_factory.mktemp("single") / "out"
    run = run_cli(["deconv", photos.chelsea, "--out", out, "--raw"], engine=engine)
    assert run.status == 0, run.stderr
    run.out = out
    run.manifest = json.loads((out / "manifest.json").read_text())
    return run


def test_the_photo_is_not_224_so_it_gets_resized(photos):
    assert Image.open(photos.chelsea).size == (451, 300)


def test_the_photo_as_the_network_saw_it_is_written_with_a_note_on_the_squash(single, photos):
    described = single.manifest["input"]
    assert described["file"] == "input.png" and described["image"] == "chelsea.jpg"
    assert (described["fit"], described["original_size"], described["squashed"]) == ("squash", [451, 300], True)
    assert "squashed to 224×224" in described["note"]
    expected = np.asarray(Image.open(photos.chelsea).convert("RGB").resize((224, 224), Image.BILINEAR))
    np.testing.assert_array_equal(np.asarray(Image.open(single.out / "input.png")), expected)


def test_fit_crop_on_a_view_reads_the_centred_square(engine, photos, tmp_path):
    run = run_cli(["feature-maps", photos.chelsea, "--layer", "block1_conv1", "--fit", "crop", "--out", tmp_path],
                  engine=engine)
    assert run.status == 0, run.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["options"]["fit"] == "crop"
    assert (manifest["input"]["fit"], manifest["input"]["squashed"]) == ("crop", False)
    pixels = np.asarray(Image.open(photos.chelsea).convert("RGB"))
    expected = np.asarray(Image.fromarray(pixels[:, 75:375]).resize((224, 224), Image.BILINEAR))  # 451 − 300 = 2 × 75 + 1
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "input.png")), expected)


def test_deconv_writes_pngs_summary_and_manifest(single):
    manifest = single.manifest
    assert manifest["image"] == "chelsea.jpg"
    assert manifest["weights"] == "hed" and manifest["mode"] == "single" and manifest["device"].startswith("cpu")
    assert set(manifest["timings"]) >= {"network_seconds", "render_seconds"}
    assert [layer["name"] for layer in manifest["layers"]] == POOLS
    for layer in manifest["layers"]:
        norms = [entry["norm"] for entry in layer["features"]]
        assert len(norms) == 3 and norms == sorted(norms, reverse=True) and norms[-1] > 0
        for entry in layer["features"]:
            assert entry["reconstruction"] == f"{layer['name']}_ch{entry['channel']}.png"
            for key in ("reconstruction", "overlay"):
                with Image.open(single.out / entry[key]) as image:
                    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (224, 224))
    with Image.open(single.out / "summary.png") as sheet:
        assert sheet.format == "PNG" and sheet.width > 224 and sheet.height > 5 * 112


def test_manifest_names_exactly_the_files_written(single):
    assert files_under(single.out) == named_in(single.manifest)
    # seed both (the default): overlay, whole-map reconstruction, patch and photo patch per feature; summary, input
    assert len([name for name in files_under(single.out) if name.endswith(".png")]) == 4 * 15 + 2


def test_raw_files_are_the_engines_reconstructions_in_network_space(single, engine, photos):
    direct = engine.deconv(load_image(photos.chelsea), layers="block5_pool", top_k=3)
    for entry, feature in zip(single.manifest["layers"][-1]["features"], direct.images[0].layers["block5_pool"]):
        assert entry["raw"] == f"raw/block5_pool_{entry['channel']}.npy" and entry["channel"] == feature.channel
        raw = np.load(single.out / entry["raw"])
        assert raw.dtype == np.float32 and raw.shape == (224, 224, 3)
        assert np.abs(raw).max() > 1  # unnormalised: neither all zero nor squeezed into [0, 1]
        assert np.abs(raw - feature.reconstruction).max() <= TOLERANCE * np.abs(feature.reconstruction).max()
        png = np.asarray(Image.open(single.out / entry["reconstruction"]))
        np.testing.assert_array_equal(png, display.reconstruction_image(raw))


def test_seed_and_rule_flags_write_the_strongest_activation_patches(engine, photos, tmp_path):
    out = tmp_path / "out"
    run = run_cli(["deconv", photos.chelsea, "--out", out, "--layers", "block3_pool", "--top-k", "2",
                   "--seed", "max", "--rule", "guided", "--raw"], engine=engine)
    assert run.status == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["seed"], manifest["rule"]) == ("max", "guided")
    assert files_under(out) == named_in(manifest)
    rgb = load_image(photos.chelsea)
    direct = engine.deconv(rgb, layers="block3_pool", top_k=2, rule="guided", seed="max")
    for entry, feature in zip(manifest["layers"][0]["features"], direct.images[0].layers["block3_pool"]):
        assert "reconstruction" not in entry and "raw" not in entry
        top, left, side = feature.field
        assert entry["field"] == {"top": top, "left": left, "side": side} and entry["channel"] == feature.channel
        assert entry["max_position"] == list(feature.max_position) and entry["max_value"] > 0
        assert entry["patch"] == f"block3_pool_ch{feature.channel}_patch.png"
        photo_patch = np.asarray(Image.open(out / entry["photo_patch"]))
        np.testing.assert_array_equal(photo_patch, rgb[top:top + side, left:left + side])
        raw = np.load(out / entry["raw_patch"])
        assert raw.shape == (side, side, 3)
        assert np.abs(raw - feature.max_reconstruction).max() <= TOLERANCE * np.abs(feature.max_reconstruction).max()
        np.testing.assert_array_equal(np.asarray(Image.open(out / entry["patch"])), display.reconstruction_image(raw))


def test_deconv_prints_a_short_summary(single):
    assert "weights hed" in single.stdout and "device cpu" in single.stdout
    assert "time " in single.stdout and "network" in single.stdout
    assert f"chelsea.jpg: 15 features in 5 layers → {single.out}/" in single.stdout


def test_several_images_get_one_subfolder_each(engine, photos, tmp_path):
    out = tmp_path / "out"
    run = run_cli(["deconv", photos.chelsea, photos.astronaut, photos.chelsea_again, "--out", out,
                   "--layers", "block5_pool", "--top-k", "1", "--channels", "block5_pool:7", "--mode", "per-layer"],
                  engine=engine)
    assert run.status == 0, run.stderr
    assert sorted(path.name for path in out.iterdir()) == ["astronaut", "chelsea", "chelsea-2"]
    manifests = {}
    for folder in out.iterdir():
        manifests[folder.name] = json.loads((folder / "manifest.json").read_text())
        assert files_under(folder) == named_in(manifests[folder.name])
    assert manifests["astronaut"]["image"] == "astronaut.png" and manifests["chelsea-2"]["image"] == "chelsea.jpg"
    for manifest in manifests.values():
        assert manifest["mode"] == "per-layer"
        features = manifest["layers"][0]["features"]
        assert features[-1]["channel"] == 7 and features[-1]["explicit"] and len(features) == 2
    norms = {name: [entry["norm"] for entry in manifest["layers"][0]["features"]] for name, manifest in manifests.items()}
    np.testing.assert_allclose(norms["chelsea"], norms["chelsea-2"], rtol=1e-5)
    assert norms["chelsea"] != norms["astronaut"]


class RefusingEngine:
    """Stands in for the engine where a request must be refused before the network runs."""

    def deconv(self, *args, **kwargs):
        raise AssertionError("the CLI ran the network on a request it should have refused")


@pytest.mark.parametrize("arguments, message", [
    (["--layers", "block6_pool"], "unknown layer 'block6_pool'"),
    (["--channels", "block1_pool:64"], "channel 64 is out of range for block1_pool"),
    (["--channels", "block1_pool"], "not of the form LAYER:CHANNEL"),
    (["--top-k", "-1"], "--top-k must be between 0 and 16, got -1"),
    (["--top-k", "three"], "--top-k: 'three' is not a whole number"),
    (["--top-k", "17"], "--top-k must be between 0 and 16, got 17"),
    (["--mode", "sideways"], "--mode must be one of single, per-layer, got 'sideways'"),
    (["--seed", "all"], "--seed must be one of map, max, both, got 'all'"),
    (["--rule", "backwards"], "--rule must be one of deconvnet, guided, gradient, got 'backwards'"),
], ids=["unknown-layer", "channel-out-of-range", "channel-without-index", "negative-top-k", "top-k-not-a-number",
        "top-k-over-limit", "unknown-mode", "unknown-seed", "unknown-rule"])
def test_bad_requests_exit_2_with_a_message_before_the_network_runs(photos, tmp_path, arguments, message):
    out = tmp_path / "out"
    run = run_cli(["deconv", photos.chelsea, "--out", out, *arguments], engine=RefusingEngine())
    assert run.status == 2
    assert run.stderr.startswith("error: ") and message in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_the_limits_themselves_are_accepted(photos, tmp_path):
    with pytest.raises(AssertionError, match="should have refused"):
        run_cli(["deconv", photos.chelsea, "--out", tmp_path / "out", "--layers", "block1_conv1,block5_pool",
                 "--top-k", "16", "--channels", "block5_pool:511,block1_conv1:0"], engine=RefusingEngine())


@pytest.mark.parametrize("which, message", [
    ("missing", "no such file"),
    ("folder", "not a file"),
])
def test_bad_image_paths_exit_2_with_a_message_before_the_network_runs(photos, tmp_path, which, message):
    path = {"missing": photos.folder / "missing.jpg", "folder": photos.folder}[which]
    run = run_cli(["deconv", photos.chelsea, path, "--out", tmp_path / "out"], engine=RefusingEngine())
    assert run.status == 2
    assert run.stderr.startswith(f"error: {path}: {message}")
    assert "Traceback" not in run.stderr and not (tmp_path / "out").exists()


def test_a_single_unreadable_image_exits_2_before_the_network_runs(photos, tmp_path):
    run = run_cli(["deconv", photos.not_an_image, "--out", tmp_path / "out"], engine=RefusingEngine())
    assert run.status == 2
    assert run.stderr.startswith(f"error: {photos.not_an_image}: not a readable image")
    assert "Traceback" not in run.stderr and not (tmp_path / "out").exists()


def test_an_unreadable_image_among_good_ones_is_reported_and_the_others_are_written(engine, photos, tmp_path):
    out = tmp_path / "out"
    run = run_cli(["deconv", photos.chelsea, photos.not_an_image, photos.astronaut, "--out", out,
                   "--layers", "block2_pool", "--top-k", "1"], engine=engine)
    assert run.status == 2 and "Traceback" not in run.stderr
    assert f"[2/3] error: {photos.not_an_image}: not a readable image" in run.stderr
    assert run.stderr.rstrip().splitlines()[-1] == (
        f"error: 1 of 3 image(s) could not be read and were skipped: {photos.not_an_image}")
    assert sorted(path.name for path in out.iterdir()) == ["astronaut", "chelsea"]
    for folder in out.iterdir():
        assert files_under(folder) == named_in(json.loads((folder / "manifest.json").read_text()))
    assert "chelsea.jpg: 1 features in 1 layers" in run.stdout and "notes.jpg" not in run.stdout


def _without_timings(manifest: dict) -> dict:
    return {key: value for key, value in manifest.items() if key != "timings"}


def test_several_images_write_what_one_image_runs_write(engine, photos, tmp_path):
    """Streaming photo by photo: each folder of a run on three photos equals a run on that photo alone
    (the same files, manifests but for timings, and PNG pixels)."""
    flags = ["--layers", "block1_pool,block4_pool", "--top-k", "2", "--raw"]
    run = run_cli(["deconv", photos.chelsea, photos.astronaut, photos.chelsea_again, "--out", tmp_path / "many",
                   *flags], engine=engine)
    assert run.status == 0, run.stderr
    progress = [line for line in run.stderr.splitlines() if line.startswith("[")]
    assert [line.split(" ", 2)[:2] for line in progress] == [["[1/3]", "chelsea.jpg"], ["[2/3]", "astronaut.png"],
                                                            ["[3/3]", "chelsea.jpg"]]
    assert all("4 features" in line and "network" in line and "writing" in line for line in progress)
    for name, photo in (("chelsea", photos.chelsea), ("astronaut", photos.astronaut), ("chelsea-2", photos.chelsea_again)):
        alone = tmp_path / f"alone-{name}"
        assert run_cli(["deconv", photo, "--out", alone, *flags], engine=engine).status == 0
        together = tmp_path / "many" / name
        assert files_under(together) == files_under(alone)
        assert _without_timings(json.loads((together / "manifest.json").read_text())) == \
            _without_timings(json.loads((alone / "manifest.json").read_text()))
        for file in sorted(files_under(alone)):
            if file.endswith(".png"):
                np.testing.assert_array_equal(np.asarray(Image.open(together / file)),
                                              np.asarray(Image.open(alone / file)), err_msg=f"{name}/{file}")
            elif file.endswith(".npy"):
                np.testing.assert_array_equal(np.load(together / file), np.load(alone / file), err_msg=f"{name}/{file}")


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own niceness is Linux's")
def test_the_writer_encodes_at_the_lowest_priority_and_the_network_keeps_its_own(engine, photos, tmp_path,
                                                                                 monkeypatch):
    """The writer's thread and the pool threads that encode the PNGs run at niceness 19, so that they take
    only the cores the next photo's pass leaves idle; the thread that runs the network keeps its priority."""
    from visnet import outputs

    niceness = {}
    encode = outputs._write_feature_files

    def recording(*args, **kwargs):
        niceness.setdefault("encoding", set()).add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return encode(*args, **kwargs)

    class RecordingEngine:
        def deconv(self, *args, **kwargs):
            niceness.setdefault("network", set()).add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return engine.deconv(*args, **kwargs)

    monkeypatch.setattr(outputs, "_write_feature_files", recording)
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    run = run_cli(["deconv", photos.chelsea, photos.astronaut, "--out", tmp_path / "out", "--layers", "block2_pool",
                   "--top-k", "2"], engine=RecordingEngine())
    assert run.status == 0, run.stderr
    assert niceness == {"network": {own}, "encoding": {cli.WRITER_NICENESS}}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own


def test_an_output_path_that_is_a_file_exits_2(photos, tmp_path):
    out = tmp_path / "out"
    out.write_text("in the way")
    run = run_cli(["deconv", photos.chelsea, "--out", out], engine=RefusingEngine())
    assert (run.status, run.stderr) == (2, f"error: --out {out}: exists and is not a folder\n")


def test_missing_weights_exit_2_with_the_weights_message(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("VISNET_MODELS_DIR", str(tmp_path / "models"))
    run = run_cli(["deconv", photos.chelsea, "--out", tmp_path / "out", "--weights", "imagenet"])
    assert run.status == 2
    assert run.stderr.startswith("error: weights 'imagenet' not found at ")
    assert "weights fetch imagenet" in run.stderr and "Traceback" not in run.stderr
    run = run_cli(["deconv", photos.chelsea, "--out", tmp_path / "out", "--weights", tmp_path / "nothing.h5"])
    assert run.status == 2 and "neither one of auto" in run.stderr


def test_the_entry_point_runs_deconv(photos, tmp_path):
    out = tmp_path / "out"
    process = subprocess.run(
        [sys.executable, "-m", "visnet", "deconv", str(photos.chelsea), "--out", str(out), "--layers", "block5_pool",
         "--top-k", "1", "--weights", "hed", "--device", "cpu"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert files_under(out) == named_in(manifest) and len(manifest["layers"][0]["features"]) == 1
    assert "weights hed" in process.stdout


def test_the_entry_point_lists_weights_and_reports_usage_errors():
    process = subprocess.run([sys.executable, "-m", "visnet", "weights", "list"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=60)
    assert process.returncode == 0, process.stderr
    header, *rows = process.stdout.splitlines()
    assert header.split()[:2] == ["name", "present"]
    assert [row.split()[0] for row in rows] == ["imagenet", "imagenet-notop", "hed", "vgg19", "vgg19-notop"]
    process = subprocess.run([sys.executable, "-m", "visnet"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=60)
    assert process.returncode == 2 and process.stderr.startswith("error: ") and "usage:" in process.stderr


def test_weights_list_marks_what_auto_picks(tmp_path, monkeypatch):
    monkeypatch.setenv("VISNET_MODELS_DIR", str(tmp_path))
    run = run_cli(["weights", "list"])
    assert run.status == 0
    hed = next(line for line in run.stdout.splitlines() if line.startswith("hed "))
    assert hed.split()[:4] == ["hed", "yes", "no", "yes"] and hed.endswith(str(hed_weights_path()))
    imagenet = next(line for line in run.stdout.splitlines() if line.startswith("imagenet "))
    assert imagenet.split()[:3] == ["imagenet", "no", "yes"] and imagenet.endswith(str(tmp_path / (
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5")))


def test_weights_verify_reports_a_known_file():
    run = run_cli(["weights", "verify", hed_weights_path()])
    assert run.status == 0, run.stderr
    lines = dict(line.split(None, 1) for line in run.stdout.splitlines())
    assert lines["layout"] == "hed" and lines["layers"] == "13 conv" and lines["has"] == "top  no"
    assert lines["md5"] == "afaa791a1218a302dd0e99d13d0e7a66" and lines["known"].startswith("yes")


def test_weights_verify_of_a_keras_file_with_another_md5(keras_notop_file):
    run = run_cli(["weights", "verify", keras_notop_file])
    assert run.status == 0, run.stderr
    assert "layout   keras" in run.stdout and "known    no: not one of the known files" in run.stdout


def test_weights_verify_reads_a_vgg19_file_and_checks_it_against_keras_md5(vgg19_notop_file):
    """The generated file has the name of Keras' VGG19 file without the top, not its md5."""
    run = run_cli(["weights", "verify", vgg19_notop_file])
    assert run.status == 1
    lines = dict(line.split(None, 1) for line in run.stdout.splitlines())
    assert lines["layout"] == "keras" and lines["model"] == "vgg19" and lines["layers"] == "16 conv"
    assert "expected 253f8cb515780f3b799900260a226db6" in lines["known"]
    assert "does not match the known vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in run.stderr


def test_weights_verify_fails_with_exit_1_on_a_file_that_is_not_weights(photos):
    run = run_cli(["weights", "verify", photos.not_an_image])
    assert run.status == 1
    assert run.stderr.startswith(f"error: {photos.not_an_image}: not an HDF5 file") and "Traceback" not in run.stderr


def test_weights_fetch_failure_exits_1_with_the_message(tmp_path, monkeypatch):
    def no_network(name, models_dir, **kwargs):
        raise FetchError(f"could not download {name!r}: no connection")

    monkeypatch.setenv("VISNET_MODELS_DIR", str(tmp_path))
    run = run_cli(["weights", "fetch", "hed"])  # bundled, nothing to download: a usage error
    assert run.status == 2 and "cannot fetch weights 'hed'" in run.stderr
    monkeypatch.setattr("visnet.fetch.fetch_weights", no_network)
    run = run_cli(["weights", "fetch", "imagenet-notop"])
    assert (run.status, run.stderr) == (1, "error: could not download 'imagenet-notop': no connection\n")


@pytest.mark.usefixtures("no_proxy_for_localhost")
def test_weights_fetch_imagenet_takes_the_mirror_from_the_settings(tmp_path, monkeypatch):
    body = b"generated weights " * 100_000
    with WeightsOrigin(body) as origin:
        monkeypatch.setenv("VISNET_MODELS_DIR", str(tmp_path))
        monkeypatch.setenv("VISNET_WEIGHTS_URL", origin.url)
        monkeypatch.setenv("VISNET_WEIGHTS_MD5", hashlib.md5(body).hexdigest())
        run = run_cli(["weights", "fetch", "imagenet"])

    target = tmp_path / KNOWN_WEIGHTS["imagenet"].filename
    assert run.status == 0 and run.stdout == f"imagenet: {target} (md5 {hashlib.md5(body).hexdigest()})\n"
    assert target.read_bytes() == body
    assert re.search(r"imagenet \[#{30}\] 1\.8 / 1\.8 MB 100%  [0-9.]+ MB/s  0 s left\n$", run.stderr), run.stderr


def test_cli_choices_match_the_engine():
    from visnet.graph import DEVICE_POLICIES

    assert cli.DEVICE_POLICIES == DEVICE_POLICIES


def test_help_exits_0():
    assert run_cli(["deconv", "--help"]).status == 0


# --- the other views ----------------------------------------------------------------------------

def test_a_view_subcommand_writes_its_pictures_and_manifest(engine, photos, tmp_path):
    out = tmp_path / "rank"
    run = run_cli(["channel-rank", str(photos.chelsea), "--layer", "block3_pool", "--channel", "17",
                   "--measure", "l2-norm", "--out", str(out)], engine=engine)
    assert run.status == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "channel-rank"
    assert manifest["options"] == {"layer": "block3_pool", "channel": 17, "measure": "l2-norm", "fit": "squash"}
    assert manifest["data"]["measure"] == "l2-norm"
    assert {entry["file"] for entry in manifest["files"]} == {"channel_rank.png"}
    assert 1 <= manifest["data"]["rank"] <= 256
    assert Image.open(out / "channel_rank.png").size[0] > 100


def test_filters_need_no_image(engine, tmp_path):
    run = run_cli(["filters", "--layer", "block1_conv1", "--out", str(tmp_path / "f")], engine=engine)
    assert run.status == 0, run.stderr
    assert (tmp_path / "f" / "filters_rgb.png").exists()


@pytest.mark.parametrize("arguments, message", [
    (["occlusion", "--sizes", "9999:1"], "size and stride must be between 1 and 224"),
    (["activation-max", "--layer", "block1_conv1", "--channels", "64"], "channel 64 is out of range"),
    (["feature-maps", "--scale", "log"], "scale must be one of per-channel, shared"),
    (["classification"], "needs a classifier top"),
])
def test_bad_view_requests_exit_2_with_a_message(engine, photos, tmp_path, arguments, message):
    run = run_cli([arguments[0], str(photos.chelsea), *arguments[1:], "--out", str(tmp_path / "o")], engine=engine)
    assert run.status == 2
    assert message in run.stderr and "Traceback" not in run.stderr


def test_scan_is_reachable_as_a_subcommand():
    run = run_cli(["scan", "--help"])
    assert run.status == 0 and "--layers" in run.stdout
