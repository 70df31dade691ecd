"""What a scan's pages show, as plain dicts: a layer's units page by page, and one unit in detail.

Every image entry is ``{"rank", "id", "path", "thumb", "mean", "projection"}``: ``path`` is relative to
the scanned folder, ``thumb`` and the projection's ``full`` / ``crop`` / ``patch`` are file names
relative to the scan folder (serve them with :func:`visnet.scan.store.resolve_file`), and
``projection`` is None until that unit's projection block (or its own projection, on demand) is done;
``full`` is None until the unit's own projection is done (:mod:`.projection`).
"""
import json
import math
from pathlib import Path

import numpy as np

from . import store
from .layout import layout_of
from .merge import load_rankings
from .plan import options_of
from .progress import scan_progress
from .units import projected_units, sorted_units, unit_label, unit_statistics

DEFAULT_PER_PAGE = 32
MAX_PER_PAGE = 512


def _read_marker(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _projections(scan_dir, record, layer):
    """unit → {rank: {"full", "crop", "patch"}} from the finished blocks of ``layer`` and the unit's own
    on-demand projection (which has the ``full`` views), read lazily."""
    options = options_of(record)
    blocks, chosen = {}, []

    def lookup(unit):
        if not chosen:
            chosen.append(projected_units(scan_dir, layer, record))
        documents = []
        if unit in chosen[0]:
            position = chosen[0].index(unit)
            start = position - position % options.project_block
            stop = min(start + options.project_block, len(chosen[0]))
            if start not in blocks:
                blocks[start] = _read_marker(store.projection_marker(scan_dir, layer, start, stop))
            documents.append(blocks[start])
        documents.append(_read_marker(store.unit_marker(scan_dir, layer, unit)))
        found = {}  # the unit's own projection last: it has the full views
        for document in documents:
            for entry in (document or {}).get("channels", {}).get(str(unit), []):
                found[entry["rank"]] = {kind: entry.get(kind) for kind in ("full", "crop", "patch")}
        return found

    return lookup


def _entries(record, ids, values, channel, projections=None):
    projected = projections(channel) if projections else {}
    return [{"rank": rank, "id": int(image_id), "path": record["images"][int(image_id)],
             "thumb": store.thumb_name(int(image_id)), "mean": float(value), "projection": projected.get(rank)}
            for rank, (image_id, value) in enumerate(zip(ids[:, channel], values[:, channel]))]


def _check_layer(record, layer):
    layers = options_of(record).layers
    if layer not in layers:
        raise ValueError(f"layer {layer!r} was not scanned; this scan has {', '.join(layers)}")


def _unit_figures(statistics, layer, unit, layout) -> dict:
    selectivity = statistics["selectivity"][unit]
    return {"label": unit_label(layer, unit, layout), "top_activation": float(statistics["top"][unit]),
            "mean_activation": float(statistics["mean"][unit]),
            "selectivity": None if np.isnan(selectivity) else round(float(selectivity), 4),
            "dead": bool(statistics["dead"][unit])}


def layer_overview(scan_dir, layer: str, page: int = 1, per_page: int = DEFAULT_PER_PAGE, sort: str = "index",
                   unit=None) -> dict:
    """One page of a layer's units in the order ``sort`` (:data:`visnet.scan.units.SORTS`), each with its
    figures (:mod:`.units`: top activation, selectivity, dead) and its top images (and their projections).
    With ``unit``, the page that holds that unit in this order instead of ``page``.

    Returns {"scan", "layer", "channels", "k", "sort", "page", "per_page", "pages", "dead_units",
    "projected_units", "units": [{"channel", "label", "top_activation", "mean_activation", "selectivity",
    "dead", "projected", "top": [entry…]}]}. ValueError for a layer that was not scanned, a page or unit
    out of range or an unknown sort; FileNotFoundError before the merge.
    """
    record = store.load_scan(scan_dir)
    _check_layer(record, layer)
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be 1 to {MAX_PER_PAGE}, received {per_page!r}")
    ranking = load_rankings(scan_dir, layer)
    statistics = unit_statistics(scan_dir, layer)
    order = sorted_units(statistics, sort)
    pages = math.ceil(ranking.channels / per_page)
    if unit is not None:
        _check_unit(unit, ranking.channels, layer)
        page = int(np.flatnonzero(order == unit)[0]) // per_page + 1
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= pages:
        raise ValueError(f"page must be 1 to {pages} for {layer} at {per_page} per page, received {page!r}")
    projections = _projections(scan_dir, record, layer)
    chosen = set(projected_units(scan_dir, layer, record))
    first, layout = (page - 1) * per_page, layout_of(record)
    units = [{"channel": channel, **_unit_figures(statistics, layer, channel, layout), "projected": channel in chosen,
              "top": _entries(record, ranking.top_ids, ranking.top_values, channel, projections)}
             for channel in (int(value) for value in order[first:first + per_page])]
    return {"scan": record["id"], "layer": layer, "channels": ranking.channels, "k": ranking.k, "sort": sort,
            "page": page, "per_page": per_page, "pages": pages, "dead_units": int(statistics["dead"].sum()),
            "projected_units": len(chosen), "units": units}


def _check_unit(unit, channels, layer):
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < channels:
        raise ValueError(f"unit must be 0 to {channels - 1} for {layer}, received {unit!r}")


def unit_detail(scan_dir, layer: str, channel: int) -> dict:
    """One unit: {"scan", "layer", "channel", "label", "top_activation", "mean_activation", "selectivity",
    "dead", "k", "projected_k", "complete", "top": [entry…], "bottom": [entry…]} (bottom entries have no
    projection). ``complete``: every projected top image has its three pictures (else the browser asks for
    the unit's projection, :func:`visnet.scan.projection.project_unit`)."""
    record = store.load_scan(scan_dir)
    _check_layer(record, layer)
    ranking = load_rankings(scan_dir, layer)
    _check_unit(channel, ranking.channels, layer)
    top = _entries(record, ranking.top_ids, ranking.top_values, channel, _projections(scan_dir, record, layer))
    projected_k = min(options_of(record).projected_k, ranking.k)
    return {
        "scan": record["id"], "layer": layer, "channel": channel,
        **_unit_figures(unit_statistics(scan_dir, layer), layer, channel, layout_of(record)),
        "k": ranking.k, "projected_k": projected_k,
        "complete": all(entry["projection"] is not None and entry["projection"]["full"] is not None
                        for entry in top[:projected_k]),
        "top": top,
        "bottom": _entries(record, ranking.bottom_ids, ranking.bottom_values, channel),
    }


def describe_scan(scan_dir) -> dict:
    """The scan as a page header needs it: {"id", "created", "model", "options", "layers", "images", "skipped",
    "progress"} (``model``: the name of the model it runs on; ``skipped`` lists {"path", "reason"})."""
    record = store.load_scan(scan_dir)
    return {"id": record["id"], "created": record["created"], "model": layout_of(record).name, "options": record["options"],
            "layers": record["layers"], "images": len(record["images"]), "skipped": record["skipped"],
            "progress": scan_progress(scan_dir)}


def list_scans(scans_root) -> list:
    """Every scan under ``scans_root`` (folders named by scan id holding a scan.json), newest first:
    [{"id", "created", "images", "layers", "status"}]."""
    scans = []
    root = Path(scans_root)
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not store.SCAN_ID.fullmatch(folder.name) or not (folder / store.SCAN_FILE).is_file():
            continue
        record = store.load_scan(folder)
        scans.append({"id": record["id"], "created": record["created"], "images": len(record["images"]),
                      "layers": record["options"]["layers"], "status": scan_progress(folder)["status"]})
    return sorted(scans, key=lambda scan: scan["created"], reverse=True)
