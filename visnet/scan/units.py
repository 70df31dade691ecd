"""Which units of a scanned layer are interesting: their top activation, their selectivity, the dead ones,
the order the browser sorts them in, and the ones a scan projects.

For unit ``c`` of a layer, over the N images of the scan (``x_i``: the unit's mean activation over image
``i``, the scan's table):

* **top activation**: ``max_i x_i``, the value of its top image;
* **selectivity**: ``(max_i x_i − mean_i x_i) / std_i x_i``, how many standard deviations its strongest
  image stands above its average image. A unit that fires on a few images only is selective; one that
  fires alike on everything is not. Undefined (None) when the unit has one value on every image;
* **dead**: zero on every image of the set (``max_i x_i = min_i x_i = 0``).

A scan projects the ``project_channels`` units with the highest top activation (ties: the lower index
first), not the first ones by index: those are the units whose top images show something. Scans of
format 2 and older projected the first ones, and are read that way.
"""
from pathlib import Path

import numpy as np

from ..views.classification import class_names
from . import store
from .layout import VGG16_LAYOUT
from .merge import load_rankings, load_table
from .plan import options_of

SORTS = ("index", "top", "selectivity")
SORT_LABELS = {"index": "unit number", "top": "top activation (highest first)",
               "selectivity": "selectivity (most selective first)"}
UNIT_CHOICE_VERSION = 3  # the first scan format that projects the strongest units


def statistics_arrays(table) -> dict:
    """{"mean", "std"} (float64, (C,)) of an (N, C) table, by column: what the merge stores."""
    table = np.asarray(table)
    return {"mean": table.mean(axis=0, dtype=np.float64), "std": table.std(axis=0, dtype=np.float64)}


def unit_statistics(scan_dir, layer: str) -> dict:
    """{"top", "bottom", "mean", "std", "selectivity" (NaN where undefined), "dead" (bool)}, arrays over the
    layer's units, from the merged scan (the table's column statistics are stored by the merge; scans
    merged before that have them computed from the table)."""
    ranking = load_rankings(scan_dir, layer)
    with np.load(Path(scan_dir) / store.TOPK_NPZ) as arrays:
        stored = {name: arrays[f"{layer}/{name}"] for name in ("mean", "std") if f"{layer}/{name}" in arrays}
    if len(stored) < 2:
        stored = statistics_arrays(load_table(scan_dir, layer))
    top = ranking.top_values[0].astype(np.float64)
    bottom = ranking.bottom_values[0].astype(np.float64)
    spread = stored["std"] > 0
    selectivity = np.full(top.shape, np.nan)
    selectivity[spread] = (top[spread] - stored["mean"][spread]) / stored["std"][spread]
    return {"top": top, "bottom": bottom, "mean": stored["mean"], "std": stored["std"],
            "selectivity": selectivity, "dead": (top == 0) & (bottom == 0)}


def unit_order(top_values) -> np.ndarray:
    """Unit indices by top activation, highest first; ties: the lower index first."""
    top_values = np.asarray(top_values)
    return np.lexsort((np.arange(top_values.shape[0]), -top_values))


def sorted_units(statistics: dict, sort: str) -> np.ndarray:
    """The layer's unit indices in the browser's order ``sort`` (one of SORTS). Selectivity: highest first,
    the units without one (constant, dead) last; every tie: the lower index first."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, received {str(sort)[:20]!r}")
    count = statistics["top"].shape[0]
    if sort == "index":
        return np.arange(count)
    if sort == "top":
        return unit_order(statistics["top"])
    selectivity = statistics["selectivity"]
    defined = ~np.isnan(selectivity)
    return np.lexsort((np.arange(count), -np.where(defined, selectivity, 0.0), ~defined))


def projected_units(scan_dir, layer: str, record: dict = None) -> list:
    """The units of ``layer`` that the scan projects, in the order of its projection blocks: the
    ``project_channels`` with the highest top activation (all of them by default) of a merged scan."""
    record = record or store.load_scan(scan_dir)
    count = options_of(record).projected_channels(layer)
    if record.get("version", 1) < UNIT_CHOICE_VERSION:
        return list(range(count))
    ranking = load_rankings(scan_dir, layer)
    return [int(unit) for unit in unit_order(ranking.top_values[0])[:count]]


def unit_label(layer: str, unit: int, layout=VGG16_LAYOUT):
    """What a unit stands for, when it has a name: the ImageNet class of a VGG16 ``predictions`` neuron."""
    return class_names()[unit] if layout.built_in and layer == "predictions" else None
