"""One image of a deconvnet result written to a folder: PNGs, a summary sheet and ``manifest.json``
(the file names are :mod:`visnet.results`).

The CLI and the RQ job both call :func:`write_deconv_outputs`. Pure numpy, Pillow and json (no
TensorFlow): it takes any object shaped like :class:`visnet.engine.DeconvResult`.

Files, for every feature of every layer:

* ``<layer>_ch<channel>_overlay.png``: the feature's activation map over the photo;
* with map seeds (``seed`` map or both), ``<layer>_ch<channel>.png``: the whole-map reconstruction,
  normalised symmetrically (``display`` module);
* with max seeds (``seed`` max or both), ``<layer>_ch<channel>_patch.png``: the projection of the
  channel's single strongest activation inside that unit's receptive field, normalised on its own (a
  patch is far fainter than a whole map's projection, and keeps its contrast), and
  ``<layer>_ch<channel>_photo_patch.png``: the photo the network saw, cropped to the same field; both at
  the field's size in pixels (Zeiler & Fergus, Fig. 2);
* with ``raw=True``, ``raw/<layer>_<channel>.npy`` (the whole-map reconstruction, float32 (224, 224, 3))
  and ``raw/<layer>_<channel>_max.npy`` (the patch, float32 (side, side, 3)), both as computed: in the
  network's input space (BGR, mean subtracted), unnormalised;

and once per image ``summary.png`` (a row per layer) and ``manifest.json``, written last, so a folder
with a manifest is complete. Every file goes through a temporary name and ``os.replace``: a reader
never sees a half-written file.

Each feature's pictures are drawn, encoded and written by a pool of threads (``workers``, by default
one per usable core, :func:`write_workers`): Pillow releases the GIL while zlib compresses (most of the
writing time) and while it resizes, and numpy while it sorts and copies. The files are the same, byte for
byte, whatever the number of workers; the summary sheet and then the manifest are still written last.
"""
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from . import display
from .atomic import write_bytes_atomically as _write_atomic
from .methods import MEASURES, RANKINGS
from .results import (
    INPUT_FILE,
    RAW_FOLDER,
    SUMMARY_FILE,
    overlay_file,
    patch_file,
    photo_patch_file,
    raw_file,
    raw_patch_file,
    reconstruction_file,
    write_manifest,
)

NORMALISATION_DOMAIN = "symmetric"
NORMALISATION = "symmetric: 0 → mid-grey, max |value| over the three channels → 0 or 255"
# How top_k chose a layer's channels when the result says nothing else (visnet.distinctive says otherwise).
NORM_RANKING = {"rank": "norm", "words": RANKINGS["norm"], "measure": "l2-norm"}
# What the figures beside each feature mean, for the sheet's legend (the score's words are the ranking's).
TERMS = {
    "norm": MEASURES["l2-norm"],
    "max_value": "the channel's strongest activation: the largest value of its map after the ReLU (0: the channel "
                 "is silent on this photo, its map zero everywhere, so there is nothing to project)",
}
# The manifest's ``model`` of a result of the built-in VGG16 (its weights are the manifest's ``weights``); a stored
# chain model's result names it, its file's hash, input size and preprocessing (visnet.chain.engine).
BUILT_IN_MODEL = {"name": "vgg16", "built_in": True}
# At most this many threads encode one result's PNGs, however many cores there are.
WRITE_WORKERS_MAX = 8


def write_workers() -> int:
    """Threads that encode and write one result's files by default: the cores this process may run on,
    at most ``WRITE_WORKERS_MAX``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, WRITE_WORKERS_MAX))


def write_deconv_outputs(result, image_index, rgb, out_dir, raw=False, progress=None, image_name=None,
                         input_photo=None, title=None, workers=None, written=None) -> dict:
    """Write image ``image_index`` of ``result`` into the existing folder ``out_dir``; return the manifest.

    ``rgb`` is the photo the network saw (RGB uint8, 224×224), drawn under the overlays and on the
    summary sheet. ``image_name`` is recorded in the manifest and, unless ``title`` says otherwise, heads the summary
    sheet beside the weights. ``input_photo``: the manifest's
    ``input`` entry (:func:`write_input_photo`), where the caller wrote one.
    ``progress(stage, done, total)`` is called as ``("rendering", i, n)`` before the first and after
    each of the n layers (once its files are written). ``workers``: the threads that draw, encode and write
    the features' files (default :func:`write_workers`; 1 writes them one at a time). ``written(manifest)``,
    where given, is called each time a feature's files have all been written (in the order they land), with
    the manifest so far: its ``layers`` hold only the features whose files are written (in their final
    order, a layer with none left out), and it has no ``summary`` or ``timings`` yet.

    The manifest::

        {"image", "input", "model", "weights", "weights_description", "device", "mode", "rule", "seed", "ranking", "normalisation",
         "layers": [{"name", "features": [{"channel", "norm", "rank", "explicit", "score",
                                           ("mean", "reference_mean", "reference_std": distinctive ranking),
                                           "overlay", "max_position": [row, column], "max_value",
                                           "field": {"top", "left", "side"},
                                           "reconstruction" (map seeds), "patch", "photo_patch" (max seeds),
                                           "raw", "raw_patch" (with raw=True)}]}],
         "terms": {"norm", "max_value"}, "summary": "summary.png", "timings": {**result.timings, "render_seconds"}}

    ``max_position`` is the channel's strongest activation in its map (the first in row-major order),
    ``max_value`` that activation (0 for a channel silent on this photo, whose patch is flat grey) and
    ``field`` the input window of its receptive field, in pixels of the 224×224 photo.

    ``image`` names the photo: the CLI's file name, or a job's stored upload (the SHA-256 of its bytes and its
    extension; the name a user's file had is not kept). ``input`` describes ``input.png``, the photo as the network
    saw it (see :func:`write_input_photo`), or is null where none was written.

    ``terms`` says in words what each feature's ``norm`` and ``max_value`` are (the sheet's legend).

    ``weights_description`` says in words which weights these are and what that means
    (visnet.weights.describe_weights). ``ranking`` says how top_k chose each layer's channels: ``rank``
    (``norm`` or ``distinctive``), ``words``, ``measure`` and, for distinctive, ``layers`` and ``reference``
    ({"scan", "images", "weights"}); each feature's ``score`` is the value it was ranked by (its norm, or
    its distinctive score, null where the reference has none), and a distinctive feature also has ``mean``
    (this photo's post-ReLU mean), ``reference_mean`` and ``reference_std``. ``rank`` is the feature's
    position in its layer, 0 for the strongest; ranked features come before explicitly requested ones. A channel both ranked and requested is listed once, with
    ``explicit`` true. File names are relative to ``out_dir``.
    """
    started = time.perf_counter()
    if not 0 <= image_index < len(result.images):
        raise ValueError(f"image_index {image_index} is out of range for a result of {len(result.images)} images")
    photo = np.asarray(rgb)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"rgb must be an RGB uint8 (H, W, 3) photo, got dtype {photo.dtype} shape {photo.shape}")
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ValueError(f"output folder {out_dir} does not exist")
    if raw:
        (out_dir / RAW_FOLDER).mkdir(exist_ok=True)
    report = progress or (lambda stage, done, total: None)
    workers = write_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")

    layers = result.images[image_index].layers
    names = [name for name in result.layers if name in layers]
    report("rendering", 0, len(names))
    manifest = {
        "image": image_name,
        "input": input_photo,
        "model": getattr(result, "model", None) or BUILT_IN_MODEL,
        "weights": result.weights,
        "weights_description": result.weights_description,
        "device": result.device,
        "mode": result.mode,
        "rule": result.rule,
        "seed": result.seed,
        "ranking": getattr(result, "ranking", None) or NORM_RANKING,
        "normalisation": NORMALISATION,
        "terms": TERMS,
        "layers": [],
    }
    title = " · ".join(part for part in (title or image_name, f"{result.weights} weights") if part)
    drawn = []  # (layer index, feature index, feature, entry)
    for name in names:
        entries = []
        for feature in layers[name]:
            existing = next((entry for entry in entries if entry["channel"] == int(feature.channel)), None)
            if existing is not None:
                existing["explicit"] = existing["explicit"] or bool(feature.explicit)
                continue
            entries.append(_feature_entry(feature, len(entries), raw))
            drawn.append((len(manifest["layers"]), len(entries) - 1, feature, entries[-1]))
        manifest["layers"].append({"name": name, "features": entries})
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="visnet-write") as pool:
        # Every feature's pictures are drawn first (cheap), so that the summary sheet, which needs them all, is
        # drawn and encoded on one thread while the others encode the features' files: last, it was 0.115 s of
        # the default job's 0.275 s of writing (2-core AMD EPYC).
        tiles = dict(zip([(layer_index, index) for layer_index, index, _, _ in drawn],
                         pool.map(lambda item: feature_pictures(item[2], photo), drawn)))
        sheet_rows = [(layer["name"], [{"channel": entry["channel"], "norm": entry["norm"],
                                        **tiles[layer_index, index]} for index, entry in enumerate(layer["features"])])
                      for layer_index, layer in enumerate(manifest["layers"])]
        sheet = pool.submit(_write_sheet, photo, sheet_rows, title, out_dir)
        writing = {pool.submit(_write_feature_files, feature, entry, tiles[layer_index, index], out_dir):
                   (layer_index, index) for layer_index, index, feature, entry in drawn}
        written_tiles = {}
        left = [len(layer["features"]) for layer in manifest["layers"]]
        layers_done = 0
        for future in as_completed(writing):
            # The first failure, if any, is raised here, and the manifest is never written.
            future.result()
            layer_index, index = writing[future]
            written_tiles[layer_index, index] = tiles[layer_index, index]
            left[layer_index] -= 1
            if written is not None:
                written(_written_so_far(manifest, written_tiles))
            if not left[layer_index]:
                layers_done += 1
                report("rendering", layers_done, len(names))
        sheet.result()
    manifest["summary"] = SUMMARY_FILE
    manifest["timings"] = {**result.timings, "render_seconds": round(time.perf_counter() - started, 3)}
    write_manifest(out_dir, manifest)
    return manifest


def _written_so_far(manifest, tiles) -> dict:
    """``manifest`` with only the features whose pictures are drawn (``tiles``' keys), for ``written``."""
    layers = [{"name": layer["name"], "features": [entry for index, entry in enumerate(layer["features"])
                                                   if (layer_index, index) in tiles]}
              for layer_index, layer in enumerate(manifest["layers"])]
    return {**manifest, "layers": [layer for layer in layers if layer["features"]]}


def write_input_photo(photo, out_dir, image_name=None) -> dict:
    """Write ``input.png``, the photo as the network saw it (a visnet.preprocessing.PreparedPhoto), into
    ``out_dir``; return the manifest's ``input`` entry: ``file``, ``image`` (the name of the photo it was made
    from), ``fit``, ``fit_words``, ``original_size`` and ``size`` ([width, height]), ``squashed`` (a non-square
    photo stretched) and ``note`` (what fit did to a non-square photo, in words; null for a square one)."""
    _write_atomic(Path(out_dir) / INPUT_FILE, display.encode_png(np.ascontiguousarray(photo.rgb)))
    return {"file": INPUT_FILE, "image": image_name, **photo.describe()}


def _score(feature):
    """What the feature was ranked by: its distinctive score where one was given, else its norm."""
    if getattr(feature, "ranking_figures", None) is not None or getattr(feature, "score", None) is not None:
        return feature.score
    return float(feature.norm)


def _feature_entry(feature, rank, raw) -> dict:
    """One feature's manifest entry: its figures and the names of the files :func:`_write_feature_files` writes."""
    layer, channel = feature.layer, int(feature.channel)
    top, left, side = (int(value) for value in feature.field)
    entry = {
        "channel": channel,
        "norm": float(feature.norm),
        "rank": rank,
        "explicit": bool(feature.explicit),
        "score": _score(feature),
        **(getattr(feature, "ranking_figures", None) or {}),
        "overlay": overlay_file(layer, channel),
        "max_position": [int(value) for value in feature.max_position],
        "max_value": float(feature.max_value),
        "field": {"top": top, "left": left, "side": side},
    }
    if feature.reconstruction is not None:
        entry["reconstruction"] = reconstruction_file(layer, channel)
    if feature.max_reconstruction is not None:
        entry["patch"], entry["photo_patch"] = patch_file(layer, channel), photo_patch_file(layer, channel)
    if raw:
        for key, name, array in _raw_arrays(feature):
            if array is not None:
                entry[key] = name(layer, channel)
    return entry


def _write_sheet(photo, sheet_rows, title, out_dir) -> None:
    _write_atomic(out_dir / SUMMARY_FILE, display.encode_png(display.summary_sheet(photo, sheet_rows, title=title)))


def _write_feature_files(feature, entry, pictures, out_dir) -> None:
    """Write one feature's files, named by ``entry``, from its drawn ``pictures``. Runs on a writer thread:
    numpy, Pillow and zlib release the GIL."""
    for key, picture in pictures.items():
        _write_atomic(out_dir / entry[key], display.encode_png(picture))
    for key, _, array in _raw_arrays(feature):
        if key in entry:
            _write_atomic(out_dir / entry[key], _npy_bytes(array))


def _raw_arrays(feature) -> tuple:
    """``(manifest key, file name function, array)`` of a feature's raw files (the array may be None)."""
    return (("raw", raw_file, feature.reconstruction), ("raw_patch", raw_patch_file, feature.max_reconstruction))


def feature_pictures(feature, photo) -> dict:
    """A feature's pictures as RGB uint8, by kind (visnet.display.SHEET_TILE_KINDS): ``overlay``, and
    ``reconstruction`` with map seeds, ``patch`` and ``photo_patch`` with max seeds."""
    pictures = {"overlay": display.overlay_activation(photo, feature.activation)}
    if feature.reconstruction is not None:
        pictures["reconstruction"] = display.reconstruction_image(feature.reconstruction, NORMALISATION_DOMAIN)
    if feature.max_reconstruction is not None:
        top, left, side = (int(value) for value in feature.field)
        pictures["patch"] = display.reconstruction_image(feature.max_reconstruction, NORMALISATION_DOMAIN)
        pictures["photo_patch"] = np.ascontiguousarray(photo[top:top + side, left:left + side])
    return pictures


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()
