"""One chunk of a scan: its images through the network, their channel means, its partial rankings.

A chunk writes a thumbnail of every image, then ``chunks/<i>.npz`` last and atomically: the file is
the proof that the chunk is done. ``compute_chunk`` returns at once when it exists, so running a chunk
twice (a retried job, two workers racing) computes it at most once per finished run and never changes
the result.

The ``.npz`` holds, per layer ``L``: ``L/rows`` (float32 (n, C), the chunk's rows of the table) and
``L/top_ids``, ``L/top_values``, ``L/bottom_ids``, ``L/bottom_values`` (its :class:`Ranking`), plus
``ids`` (the chunk's image ids) and ``weights`` (the name of the engine's weights).
"""
import io
import os
import socket
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import store, topk
from .imagesets import load_scan_image
from .means import channel_means
from .plan import check_engine, options_of
from .prefetch import prefetched

THUMB_SIZE = 96
THUMB_QUALITY = 85


def thumbnail_jpeg(rgb: np.ndarray, size: int = THUMB_SIZE) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS).save(buffer, format="JPEG",
                                                                             quality=THUMB_QUALITY)
    return buffer.getvalue()


def compute_chunk(scan_dir, index: int, engine, record=None, progress=None, worker: str = "", job_id: str = "") -> dict:
    """Compute chunk ``index`` of the scan in ``scan_dir`` with a loaded engine, unless it is done.

    ``progress(done, total)`` follows the images of the chunk. Every run appends ``start`` and
    ``done`` (or ``skipped``) lines to ``executions.log``. Returns a summary dict.
    """
    scan_dir = Path(scan_dir)
    record = record or store.load_scan(scan_dir)
    if not 0 <= index < len(record["chunks"]):
        raise ValueError(f"chunk {index} does not exist: the scan has chunks 0 to {len(record['chunks']) - 1}")
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    identity = {"chunk": index, "worker": worker, "job": job_id}
    target = store.chunk_path(scan_dir, index)
    if target.is_file():
        store.append_execution(scan_dir, "skipped", **identity)
        return {"chunk": index, "skipped": True}
    options = options_of(record)
    check_engine(options, engine)
    start, stop = record["chunks"][index]
    store.append_execution(scan_dir, "start", images=stop - start, **identity)
    started = time.time()

    loading = []  # seconds the prefetch thread spent on each image, hidden behind the network's runs

    def load(image_id):
        began = time.perf_counter()
        rgb = load_scan_image(store.image_path(scan_dir, record, image_id), options.image_size,
                              options.layout.input_size)
        thumbnail = thumbnail_jpeg(rgb)
        loading.append(time.perf_counter() - began)
        return rgb, thumbnail

    thumbnails = []

    def images():
        for rgb, thumbnail in prefetched(load, range(start, stop)):
            thumbnails.append(thumbnail)
            yield rgb

    tables = channel_means(engine, images(), options.layers, progress, count=stop - start)
    computed = time.time()
    for offset, thumbnail in enumerate(thumbnails):
        store.write_bytes_atomically(scan_dir / store.thumb_name(start + offset), thumbnail)

    ids = np.arange(start, stop, dtype=np.int64)
    arrays = {"ids": ids, "weights": np.array(engine.weights_name)}
    for layer, rows in tables.items():
        arrays[f"{layer}/rows"] = rows
        arrays.update(topk.rank(rows, ids, options.k).arrays(f"{layer}/"))
    store.save_npz_atomically(target, arrays)
    finished = time.time()
    # network_seconds: the images' runs, with the reading and resizing overlapped (load_seconds of it)
    timings = {"load_seconds": round(sum(loading), 3), "network_seconds": round(computed - started, 3),
               "write_seconds": round(finished - computed, 3)}
    store.append_execution(scan_dir, "done", images=stop - start, started=started, seconds=round(finished - started, 3),
                           **timings, **identity)
    return {"chunk": index, "skipped": False, "images": stop - start, **timings}
