"""The final step of the forward scan: chunk files → the full tables and the merged rankings.

The merge writes ``table_<layer>.npy`` (float32 (N, C), row i = image i: compact and memory-mappable)
from the chunks' rows, merges the chunks' partial rankings (:func:`visnet.scan.topk.merge`), checks
them against a brute-force ranking of the table it just wrote, and writes ``topk.npz`` (with each unit's
mean and standard deviation over the images, :mod:`.units`) and, last,
``topk.json``. Once merged, :func:`top_images` answers "which images most excite channel c" from the
stored table without the network.
"""
from pathlib import Path

import numpy as np

from . import store, topk
from .plan import options_of

MEASURE = "post-relu-mean"  # what every value of a scan is: an image's mean of a channel's post-ReLU map
UNRECORDED = "unrecorded"  # the weights of a chunk written before chunks named theirs


class ChunksMissing(RuntimeError):
    def __init__(self, missing):
        self.missing = list(missing)
        shown = ", ".join(map(str, self.missing[:10])) + (" …" if len(self.missing) > 10 else "")
        super().__init__(f"{len(self.missing)} chunks are not done yet: {shown}")


def merge_scan(scan_dir, verify: bool = True) -> dict:
    """Merge a scan whose chunks are all done (ChunksMissing otherwise). Idempotent."""
    scan_dir = Path(scan_dir)
    record = store.load_scan(scan_dir)
    if store.is_merged(scan_dir):
        return {"merged": True, "reused": True}
    options = options_of(record)
    chunk_count = len(record["chunks"])
    missing = sorted(set(range(chunk_count)) - set(store.done_chunks(scan_dir, record)))
    if missing:
        raise ChunksMissing(missing)
    count = len(record["images"])
    partials = {layer: [] for layer in options.layers}
    paths = {}
    tables = {}
    try:
        for layer in options.layers:
            paths[layer] = store.temporary_path(store.table_path(scan_dir, layer))
            tables[layer] = np.lib.format.open_memmap(paths[layer], mode="w+", dtype=np.float32,
                                                      shape=(count, options.layout.unit_count(layer)))
        for index, (start, stop) in enumerate(record["chunks"]):
            rows, rankings, ids = store.read_chunk(scan_dir, index, options.layers)
            if not np.array_equal(ids, np.arange(start, stop)):
                raise RuntimeError(f"chunk {index} holds images {ids[:1]}… instead of {start} to {stop - 1}")
            for layer in options.layers:
                tables[layer][start:stop] = rows[layer]
                partials[layer].append(rankings[layer])
        for layer in options.layers:
            tables[layer].flush()
        merged = {layer: topk.merge(partials[layer], options.k) for layer in options.layers}
        if verify:
            for layer in options.layers:
                if not merged[layer].equals(topk.brute_force(tables[layer], options.k)):
                    raise RuntimeError(f"the merged ranking of {layer} differs from the table's brute force")
        del tables
        for layer, path in paths.items():
            path.replace(store.table_path(scan_dir, layer))
    except BaseException:
        for path in paths.values():
            path.unlink(missing_ok=True)
        raise

    from .units import statistics_arrays

    # A chunk of an older version names no weights: alone they leave the scan's weights unknown ([]), beside
    # named ones they make it a mix that no distinctive ranking uses (visnet.distinctive).
    weights = sorted({store.chunk_weights(scan_dir, index) or UNRECORDED for index in range(chunk_count)})
    weights = [] if weights == [UNRECORDED] else weights
    arrays = {"k": np.int64(options.k), "weights": np.array(weights, dtype=str)}
    for layer, ranking in merged.items():
        arrays.update(ranking.arrays(f"{layer}/"))
        arrays.update({f"{layer}/{name}": values for name, values in
                       statistics_arrays(load_table(scan_dir, layer)).items()})
    store.save_npz_atomically(scan_dir / store.TOPK_NPZ, arrays)
    store.write_json_atomically(scan_dir / store.TOPK_JSON, {**rankings_document(record, merged), "weights": weights})
    return {"merged": True, "reused": False, "images": count, "chunks": chunk_count}


def rankings_document(record: dict, merged: dict) -> dict:
    """topk.json: per layer, per channel (list index), the top and bottom image ids and their values, each an
    image's mean of the channel's post-ReLU map (``measure``)."""
    layers = {}
    for layer, ranking in merged.items():
        layers[layer] = {
            "channels": ranking.channels,
            "top_ids": ranking.top_ids.T.tolist(), "top_values": ranking.top_values.T.tolist(),
            "bottom_ids": ranking.bottom_ids.T.tolist(), "bottom_values": ranking.bottom_values.T.tolist(),
        }
    return {"id": record["id"], "k": options_of(record).k, "images": len(record["images"]), "measure": MEASURE,
            "layers": layers}


def load_rankings(scan_dir, layer: str) -> topk.Ranking:
    """The merged ranking of one layer (from topk.npz)."""
    record = store.load_scan(scan_dir)
    if layer not in options_of(record).layers:
        raise ValueError(f"layer {layer!r} was not scanned; this scan has {', '.join(options_of(record).layers)}")
    if not store.is_merged(scan_dir):
        raise FileNotFoundError("the scan is not merged yet")
    with np.load(Path(scan_dir) / store.TOPK_NPZ) as arrays:
        return topk.Ranking.from_arrays(arrays, f"{layer}/")


def load_table(scan_dir, layer: str) -> np.ndarray:
    """The (N, C) table of a merged scan, memory-mapped read-only."""
    path = store.table_path(scan_dir, layer)
    if not path.is_file():
        raise FileNotFoundError(f"no table for {layer!r}: the layer was not scanned or the scan is not merged")
    return np.load(path, mmap_mode="r")


def top_images(scan_dir, layer: str, channel: int, k: int = 9, bottom: bool = False) -> list:
    """The ``k`` images that most (``bottom``: least) excite ``channel`` of ``layer``, from the stored
    table: [{"id", "path", "mean"}], ordered by (mean desc, id asc) (bottom: mean asc, id asc)."""
    record = store.load_scan(scan_dir)
    table = load_table(scan_dir, layer)
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < table.shape[1]:
        raise ValueError(f"channel must be 0 to {table.shape[1] - 1} for {layer}, received {channel!r}")
    column = np.ascontiguousarray(table[:, channel])[:, None]
    ranking = topk.rank(column, np.arange(len(column)), k)
    ids, values = (ranking.bottom_ids, ranking.bottom_values) if bottom else (ranking.top_ids, ranking.top_values)
    return [{"id": int(image_id), "path": record["images"][int(image_id)], "mean": float(value)}
            for image_id, value in zip(ids[:, 0], values[:, 0])]
