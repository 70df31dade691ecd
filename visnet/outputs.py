"""One image of a deconvnet result written to a folder: PNGs, a summary sheet and ``manifest.json``
(the file names are :mod:`visnet.results`).

The CLI and the RQ job both call :func:`write_deconv_outputs`. Pure numpy, Pillow and json (no
TensorFlow): it takes any object shaped like :class:`visnet.engine.DeconvResult`.

Files, for every feature of every layer:

* ``<layer>_ch<channel>.png``: the reconstruction, normalised symmetrically (``display`` module);
* ``<layer>_ch<channel>_overlay.png``: the feature's activation map over the photo;
* ``raw/<layer>_<channel>.npy`` (only with ``raw=True``): the reconstruction as computed, float32
  (224, 224, 3) in the network's input space (BGR, mean subtracted), unnormalised;

and once per image ``summary.png`` (a row per layer) and ``manifest.json``, written last, so a folder
with a manifest is complete. Every file goes through a temporary name and ``os.replace``: a reader
never sees a half-written file.
"""
import io
import time
from pathlib import Path

import numpy as np

from . import display
from .atomic import write_bytes_atomically as _write_atomic
from .methods import RANKINGS
from .results import RAW_FOLDER, SUMMARY_FILE, overlay_file, raw_file, reconstruction_file, write_manifest

NORMALISATION_DOMAIN = "symmetric"
NORMALISATION = "symmetric: 0 → mid-grey, max |value| over the three channels → 0 or 255"
# How top_k chose a layer's channels when the result says nothing else (visnet.distinctive says otherwise).
NORM_RANKING = {"rank": "norm", "words": RANKINGS["norm"], "measure": "l2-norm"}


def write_deconv_outputs(result, image_index, rgb, out_dir, raw=False, progress=None, image_name=None) -> dict:
    """Write image ``image_index`` of ``result`` into the existing folder ``out_dir``; return the manifest.

    ``rgb`` is the photo the network saw (RGB uint8, 224×224), drawn under the overlays and on the
    summary sheet. ``image_name`` is recorded in the manifest and the sheet's title.
    ``progress(stage, done, total)`` is called as ``("rendering", i, n)`` before the first and after
    each of the n layers.

    The manifest::

        {"image", "weights", "weights_description", "device", "mode", "rule", "ranking", "normalisation",
         "layers": [{"name", "features": [{"channel", "norm", "rank", "explicit", "score",
                                           ("mean", "reference_mean", "reference_std": distinctive ranking),
                                           "reconstruction", "overlay", "raw" (with raw=True)}]}],
         "summary": "summary.png", "timings": {**result.timings, "render_seconds"}}

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

    layers = result.images[image_index].layers
    names = [name for name in result.layers if name in layers]
    report("rendering", 0, len(names))
    manifest_layers, sheet_rows = [], []
    for done, name in enumerate(names, start=1):
        entries, tiles = [], []
        for feature in layers[name]:
            existing = next((entry for entry in entries if entry["channel"] == int(feature.channel)), None)
            if existing is not None:
                existing["explicit"] = existing["explicit"] or bool(feature.explicit)
                continue
            entry, tile = _write_feature(feature, len(entries), photo, out_dir, raw)
            entries.append(entry)
            tiles.append(tile)
        manifest_layers.append({"name": name, "features": entries})
        sheet_rows.append((name, tiles))
        report("rendering", done, len(names))

    title = " · ".join(part for part in (image_name, f"{result.weights} weights") if part)
    _write_atomic(out_dir / SUMMARY_FILE, display.encode_png(display.summary_sheet(photo, sheet_rows, title=title)))
    manifest = {
        "image": image_name,
        "weights": result.weights,
        "weights_description": result.weights_description,
        "device": result.device,
        "mode": result.mode,
        "rule": result.rule,
        "ranking": getattr(result, "ranking", None) or NORM_RANKING,
        "normalisation": NORMALISATION,
        "layers": manifest_layers,
        "summary": SUMMARY_FILE,
        "timings": {**result.timings, "render_seconds": round(time.perf_counter() - started, 3)},
    }
    write_manifest(out_dir, manifest)
    return manifest


def _score(feature):
    """What the feature was ranked by: its distinctive score where one was given, else its norm."""
    if getattr(feature, "ranking_figures", None) is not None or getattr(feature, "score", None) is not None:
        return feature.score
    return float(feature.norm)


def _write_feature(feature, rank, photo, out_dir, raw) -> tuple:
    """Write one feature's files; return its manifest entry and its summary-sheet tile."""
    layer, channel = feature.layer, int(feature.channel)
    reconstruction = display.reconstruction_image(feature.reconstruction, NORMALISATION_DOMAIN)
    overlay = display.overlay_activation(photo, feature.activation)
    entry = {
        "channel": channel,
        "norm": float(feature.norm),
        "rank": rank,
        "explicit": bool(feature.explicit),
        "score": _score(feature),
        **(getattr(feature, "ranking_figures", None) or {}),
        "reconstruction": reconstruction_file(layer, channel),
        "overlay": overlay_file(layer, channel),
    }
    _write_atomic(out_dir / entry["reconstruction"], display.encode_png(reconstruction))
    _write_atomic(out_dir / entry["overlay"], display.encode_png(overlay))
    if raw:
        entry["raw"] = raw_file(layer, channel)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(feature.reconstruction, dtype=np.float32))
        _write_atomic(out_dir / entry["raw"], buffer.getvalue())
    tile = {"channel": channel, "norm": float(feature.norm), "overlay": overlay, "reconstruction": reconstruction}
    return entry, tile
