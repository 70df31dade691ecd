"""What a scan's pages show, as plain dicts: a layer's units page by page, and one unit in detail.

Every image entry is ``{"rank", "id", "path", "thumb", "mean", "projection"}``: ``path`` is relative to
the scanned folder, ``thumb`` and the projection's ``full`` / ``crop`` / ``patch`` are file names
relative to the scan folder (serve them with :func:`visnet.scan.store.resolve_file`), and
``projection`` is None until that channel's projection block is done (or when it is not projected).
"""
import json
import math
from pathlib import Path

from . import store
from .merge import load_rankings
from .plan import options_of
from .progress import scan_progress

DEFAULT_PER_PAGE = 32
MAX_PER_PAGE = 512


def _projections(scan_dir, record, layer):
    """channel → {rank: projection entry} for every finished block of ``layer``, read lazily."""
    options = options_of(record)
    cache = {}

    def lookup(channel):
        if channel >= options.projected_channels(layer):
            return {}
        start = channel - channel % options.project_block
        stop = min(start + options.project_block, options.projected_channels(layer))
        if start not in cache:
            try:
                cache[start] = json.loads(store.projection_marker(scan_dir, layer, start, stop).read_text())
            except (OSError, ValueError):
                cache[start] = None
        document = cache[start]
        if document is None:
            return {}
        return {entry["rank"]: {kind: entry[kind] for kind in ("full", "crop", "patch")}
                for entry in document["channels"].get(str(channel), [])}

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


def layer_overview(scan_dir, layer: str, page: int = 1, per_page: int = DEFAULT_PER_PAGE) -> dict:
    """One page of a layer's units, each with its top images (and their projections).

    Returns {"scan", "layer", "channels", "k", "page", "per_page", "pages", "units": [{"channel",
    "top": [entry…]}]}. ValueError for a layer that was not scanned or a page out of range;
    FileNotFoundError before the merge.
    """
    record = store.load_scan(scan_dir)
    _check_layer(record, layer)
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be 1 to {MAX_PER_PAGE}, received {per_page!r}")
    ranking = load_rankings(scan_dir, layer)
    pages = math.ceil(ranking.channels / per_page)
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= pages:
        raise ValueError(f"page must be 1 to {pages} for {layer} at {per_page} per page, received {page!r}")
    projections = _projections(scan_dir, record, layer)
    first = (page - 1) * per_page
    units = [{"channel": channel, "top": _entries(record, ranking.top_ids, ranking.top_values, channel, projections)}
             for channel in range(first, min(first + per_page, ranking.channels))]
    return {"scan": record["id"], "layer": layer, "channels": ranking.channels, "k": ranking.k,
            "page": page, "per_page": per_page, "pages": pages, "units": units}


def unit_detail(scan_dir, layer: str, channel: int) -> dict:
    """One unit: {"scan", "layer", "channel", "k", "top": [entry…], "bottom": [entry…]} (bottom entries
    have no projection)."""
    record = store.load_scan(scan_dir)
    _check_layer(record, layer)
    ranking = load_rankings(scan_dir, layer)
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < ranking.channels:
        raise ValueError(f"channel must be 0 to {ranking.channels - 1} for {layer}, received {channel!r}")
    return {
        "scan": record["id"], "layer": layer, "channel": channel, "k": ranking.k,
        "top": _entries(record, ranking.top_ids, ranking.top_values, channel, _projections(scan_dir, record, layer)),
        "bottom": _entries(record, ranking.bottom_ids, ranking.bottom_values, channel),
    }


def describe_scan(scan_dir) -> dict:
    """The scan as a page header needs it: {"id", "created", "options", "layers", "images", "skipped",
    "progress"} (``skipped`` lists {"path", "reason"})."""
    record = store.load_scan(scan_dir)
    return {"id": record["id"], "created": record["created"], "options": record["options"],
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
