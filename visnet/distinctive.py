"""Distinctive channels: the channels of a layer that fire unusually strongly on this photo, compared with a
reference set of images (a finished dataset scan on the same weights).

The deconvnet's own rule (Zeiler & Fergus) projects the channels with the largest activation norm; on most
photos these are the same few channels, which fire strongly on everything. The distinctive ranking instead
scores every channel ``c`` of a layer as

    score[c] = (m[c] − mean_ref[c]) / std_ref[c]

where ``m[c]`` is the mean of the channel's post-ReLU map on this photo and ``mean_ref``, ``std_ref`` are
the mean and the (population, ddof 0) standard deviation of the same quantity over the scan's images, read
from the scan's per-image tables (``table_<layer>.npy``, :mod:`visnet.scan.merge`). ``m`` is computed by
the scans' own reduction (:func:`visnet.scan.means.channel_means`), so it is the very quantity the tables
hold. A channel constant over the reference set (dead on every image: its std is 0) has no score (NaN
here, null in a manifest) and ranks after every scored channel; ties rank the lower channel index first.

Importing this module does not import TensorFlow (the web process checks a reference with it); only
:func:`deconv_distinctive`, which runs the network, does.
"""
from pathlib import Path

import numpy as np

from .architecture import resolve_layers
from .methods import RANKINGS, get_method, parse_channels, parse_value
from .scan import store
from .scan.layout import layout_of
from .scan.merge import MEASURE, load_table  # MEASURE: what the scans' tables hold
from .scan.plan import options_of
from .scan.progress import scan_progress
from .settings import DEFAULT_MODEL

READY_STATUSES = ("projecting", "done")  # the tables are complete once the forward pass is merged


class UnusableReference(ValueError):
    """A reference scan that cannot be used; the message says why, in words for the page and the API."""


def check_reference(scan_dir, layers, weights=None) -> dict:
    """Whether the scan in ``scan_dir`` can rank ``layers`` of a photo on ``weights`` (None: not known yet,
    not checked). Returns {"scan", "images", "weights", "layers"}; UnusableReference says why not: no such scan,
    not finished, computed on other weights (or not recording them), or a layer it did not record."""
    scan_dir = Path(scan_dir)
    scan_id = scan_dir.name
    if not (scan_dir / store.SCAN_FILE).is_file():
        raise UnusableReference(f"reference: there is no finished scan {scan_id} (the scans page lists them)")
    model = layout_of(store.load_scan(scan_dir)).name
    if model != DEFAULT_MODEL:
        raise UnusableReference(f"reference: scan {scan_id} was made on model {model}; a distinctive ranking compares a "
                                f"photo with a scan made on {DEFAULT_MODEL}")
    status = scan_progress(scan_dir)["status"]
    if status not in READY_STATUSES:
        raise UnusableReference(f"reference: scan {scan_id} is {status}; a reference needs a scan whose forward pass is "
                             "done")
    scanned_weights = store.merged_weights(scan_dir)
    if not scanned_weights:
        raise UnusableReference(f"reference: scan {scan_id} does not record which weights computed it (it was made by an "
                             "older version); scan the images again")
    if len(scanned_weights) > 1:
        raise UnusableReference(f"reference: scan {scan_id} mixes chunks computed on different weights "
                             f"({', '.join(scanned_weights)}); scan the images again")
    if weights is not None and scanned_weights[0] != weights:
        raise UnusableReference(f"reference: scan {scan_id} was computed on the {scanned_weights[0]} weights and the "
                             f"workers use {weights}; choose a scan made on {weights}")
    recorded = options_of(store.load_scan(scan_dir)).layers
    missing = [layer for layer in layers if layer not in recorded]
    if missing:
        raise UnusableReference(f"reference: scan {scan_id} did not record {', '.join(missing)}; it has "
                             f"{', '.join(recorded)}: rank only those layers, or choose another scan")
    return {"scan": scan_id, "images": int(len(store.load_scan(scan_dir)["images"])), "weights": scanned_weights[0],
            "layers": list(recorded)}


def reference_statistics(scan_dir, layer: str) -> tuple:
    """(mean, std) over the scan's images of every channel's post-ReLU mean, float64 (C,) each."""
    table = np.asarray(load_table(scan_dir, layer), dtype=np.float64)
    return table.mean(axis=0), table.std(axis=0)


def distinctive_scores(photo_means, reference_mean, reference_std) -> np.ndarray:
    """(photo − reference mean) / reference std per channel, float64; NaN where the std is 0."""
    photo = np.asarray(photo_means, dtype=np.float64)
    std = np.asarray(reference_std, dtype=np.float64)
    scores = np.full(photo.shape, np.nan)
    scored = std > 0
    scores[scored] = (photo[scored] - np.asarray(reference_mean, dtype=np.float64)[scored]) / std[scored]
    return scores


def distinctive_order(scores) -> np.ndarray:
    """Channel indices from the highest score to the lowest, ties by lower index, unscored (NaN) last."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.lexsort((np.arange(len(scores)), -np.nan_to_num(scores, nan=-np.inf), np.isnan(scores)))


def score_layers(photo_means: dict, scan_dir) -> dict:
    """{layer: {"scores", "mean", "reference_mean", "reference_std"}} (float64 (C,) arrays) for the layers of
    ``photo_means`` ({layer: (C,) post-ReLU means of the photo})."""
    scored = {}
    for layer, means in photo_means.items():
        reference_mean, reference_std = reference_statistics(scan_dir, layer)
        scored[layer] = {"scores": distinctive_scores(means, reference_mean, reference_std),
                         "mean": np.asarray(means, dtype=np.float64), "reference_mean": reference_mean,
                         "reference_std": reference_std}
    return scored


def _finite(value):
    return None if np.isnan(value) else float(value)


def deconv_distinctive(engine, images_rgb, scan_dir, layers, top_k, channels=(), **deconv_options):
    """Project the ``top_k`` most distinctive channels of each of ``layers`` of each photo (RGB uint8
    (N, 224, 224, 3) or one (224, 224, 3)) against the scan in ``scan_dir``, plus the explicit ``channels``
    [(layer, channel)], with ``engine.deconv`` (``mode``, ``rule``, ``progress`` pass through).

    A photo's means cost one forward pass before its sweep; its chosen channels then go down as the sweep's
    explicit seeds, in score order (one sweep per photo: each photo has its own channels). Returns a
    DeconvResult with ``ranking`` set and, per feature, ``score`` and ``ranking_figures`` (the photo's mean,
    the reference mean and std) where the scan recorded the feature's layer.
    """
    from .scan.means import channel_means  # TensorFlow

    images_rgb = np.asarray(images_rgb)
    images_rgb = images_rgb[None] if images_rgb.ndim == 3 else images_rgb
    if scan_dir is None or str(scan_dir) == "":
        raise UnusableReference("reference: rank=distinctive compares the photo with a reference scan; none was given")
    top_k = parse_value(get_method("deconv").option("top_k"), top_k, {})
    layers = resolve_layers(layers) if layers and top_k > 0 else []
    channels = [tuple(pair) for pair in parse_channels(channels)]
    reference = check_reference(scan_dir, layers, engine.weights_name)
    scored_layers = [layer for layer in dict.fromkeys([*layers, *(layer for layer, _ in channels)])
                     if layer in reference["layers"]]
    results = []
    for rgb in images_rgb:
        photo_means = {layer: values[0] for layer, values in channel_means(engine, rgb[None], scored_layers).items()}
        scored = score_layers(photo_means, scan_dir)
        chosen = [(layer, int(channel)) for layer in layers
                  for channel in distinctive_order(scored[layer]["scores"])[:top_k]]
        seeds = chosen + [pair for pair in channels if pair not in set(chosen)]
        result = engine.deconv(rgb[None], layers=[], top_k=0, channels=seeds, **deconv_options)
        for feature in (feature for features in result.images[0].layers.values() for feature in features):
            feature.explicit = (feature.layer, int(feature.channel)) in set(channels)
            figures = scored.get(feature.layer)
            if figures is not None:
                channel = int(feature.channel)
                feature.score = _finite(figures["scores"][channel])
                feature.ranking_figures = {name: float(figures[name][channel])
                                           for name in ("mean", "reference_mean", "reference_std")}
            else:  # an explicit channel of a layer the scan did not record: no score
                feature.ranking_figures = {}
        results.append(result)
    combined = results[0]
    combined.images = [result.images[0] for result in results]
    combined.timings = {"network_seconds": sum(result.timings["network_seconds"] for result in results)}
    combined.ranking = {"rank": "distinctive", "words": RANKINGS["distinctive"], "measure": MEASURE,
                        "layers": list(layers),
                        "reference": {key: reference[key] for key in ("scan", "images", "weights")}}
    return combined
