"""A scan's folder: where every file lives, and writing them so that a reader sees all or nothing.

    <scan dir>/
      scan.json                  the plan: options, images (id = index), skipped images, chunks
      images/                    the extracted ZIP upload (folder scans point at their folder instead)
      chunks/00000.npz           per chunk: its rows of every layer's table and its partial rankings
      thumbs/<id>.jpg            what the network saw, downscaled (written by the chunk jobs)
      executions.log             one JSON line per chunk event (start, done, skipped), for progress
      table_<layer>.npy          after the merge: float32 (N, C) mean activation of every image × channel
      topk.npz, topk.json        after the merge: top-k and bottom-k of every channel, and the weights the
                                 chunks were computed on (topk.json last: the merge is done when it exists)
      projections/<layer>/…      after the merge: projections of the top images, one
                                 ``block_<start>-<stop>.json`` marker per finished block of projected units
                                 and one ``unit_<unit>.json`` per unit projected on demand (:mod:`.projection`)
      failed.json                a scan that gave up: {"error": …}

``scan.json`` is written once, when the scan is planned; where a scan stands is read from the other
files (:func:`visnet.scan.progress.scan_progress`), so no process ever rewrites a shared status.

Every file is written to a temporary name in its folder and renamed into place (``os.replace``), so a
chunk is either done or absent, and two workers that happen to compute the same chunk write the same
bytes.
"""
import json
import os
import re
import secrets
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_file, read_json_if_readable, write_bytes_atomically
from ..methods import SCAN_ID
from . import topk
from .layout import FILE_SAFE_LAYER

SCANS_FOLDER = "scans"  # under RESULTS_DIR: one folder per scan
SCAN_FILE = "scan.json"
CHUNKS_DIR = "chunks"
THUMBS_DIR = "thumbs"
PROJECTIONS_DIR = "projections"
EXECUTIONS_LOG = "executions.log"
TOPK_NPZ = "topk.npz"
TOPK_JSON = "topk.json"
FAILED_FILE = "failed.json"
IMAGES_DIR = "images"

# Files a web page may ask for, relative to the scan folder. A projection's folder is a scanned layer's name
# (VGG16's, or a stored model's), which never starts with a dot.
SERVABLE = re.compile(r"thumbs/\d{1,9}\.jpg"
                      rf"|projections/{FILE_SAFE_LAYER.pattern}/\d{{1,4}}_\d{{1,3}}_(full|crop|patch)\.png"
                      r"|topk\.json|scan\.json")


def new_scan_id() -> str:
    return secrets.token_hex(16)


def scans_root(results_dir) -> Path:
    """Where the service keeps its scans: ``RESULTS_DIR/scans``."""
    return Path(results_dir) / SCANS_FOLDER


def scan_path(scans_root, scan_id: str) -> Path:
    """``scans_root/scan_id`` for a well-formed id (32 hexadecimal characters); ValueError otherwise."""
    if not isinstance(scan_id, str) or not SCAN_ID.fullmatch(scan_id):
        raise ValueError(f"scan ids are 32 hexadecimal characters, received {str(scan_id)[:40]!r}")
    return Path(scans_root) / scan_id


# --- names --------------------------------------------------------------------------------------

def chunk_path(scan_dir, index: int) -> Path:
    return Path(scan_dir) / CHUNKS_DIR / f"{int(index):05d}.npz"


def table_path(scan_dir, layer: str) -> Path:
    return Path(scan_dir) / f"table_{layer}.npy"


def thumb_name(image_id: int) -> str:
    return f"{THUMBS_DIR}/{int(image_id)}.jpg"


def projection_names(layer: str, channel: int, rank: int) -> dict:
    """The three pictures of one (unit, rank) projection, relative to the scan folder: ``full`` (the
    projection of the unit's whole map, full frame), ``crop`` (the projection of its strongest activation,
    inside that activation's receptive field) and ``patch`` (the image inside the same window)."""
    stem = f"{PROJECTIONS_DIR}/{layer}/{int(channel)}_{int(rank)}"
    return {"full": f"{stem}_full.png", "crop": f"{stem}_crop.png", "patch": f"{stem}_patch.png"}


def projection_marker(scan_dir, layer: str, start: int, stop: int) -> Path:
    """The marker of a finished block: positions ``start`` … ``stop - 1`` of the layer's projected units."""
    return Path(scan_dir) / PROJECTIONS_DIR / layer / f"block_{int(start)}-{int(stop)}.json"


def unit_marker(scan_dir, layer: str, unit: int) -> Path:
    """The marker of one unit projected on demand."""
    return Path(scan_dir) / PROJECTIONS_DIR / layer / f"unit_{int(unit)}.json"


def resolve_file(scan_dir, name: str) -> Path:
    """The path of a servable file of a scan (thumbnails, projections, topk.json, scan.json); raises
    FileNotFoundError for any other name or a file not (yet) written."""
    if not isinstance(name, str) or not SERVABLE.fullmatch(name):
        raise FileNotFoundError(f"{str(name)[:80]!r} is not a file a scan serves")
    path = Path(scan_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} does not exist (yet)")
    return path


# --- atomic writes --------------------------------------------------------------------------------

def temporary_path(path) -> Path:
    """A unique hidden name next to ``path``, for writing it and then ``os.replace``-ing it into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_json_atomically(path, document) -> Path:
    return write_bytes_atomically(path, (json.dumps(document, indent=1) + "\n").encode())


def save_npz_atomically(path, arrays: dict) -> Path:
    with atomic_file(path) as out:
        np.savez(out, **arrays)
    return Path(path)


# --- reading --------------------------------------------------------------------------------------

def load_scan(scan_dir) -> dict:
    """``scan.json``; FileNotFoundError when the folder holds no scan."""
    path = Path(scan_dir) / SCAN_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no scan in {str(scan_dir)!r} (no {SCAN_FILE})") from None


def image_root(scan_dir, record: dict) -> Path:
    root = Path(record["image_root"])
    return root if root.is_absolute() else Path(scan_dir) / root


def image_path(scan_dir, record: dict, image_id: int) -> Path:
    return image_root(scan_dir, record) / record["images"][image_id]


def done_chunks(scan_dir, record: dict) -> list:
    return [index for index in range(len(record["chunks"])) if chunk_path(scan_dir, index).is_file()]


def read_chunk(scan_dir, index: int, layers) -> tuple:
    """({layer: rows}, {layer: Ranking}, ids) of a finished chunk (the format is in :mod:`.chunks`)."""
    with np.load(chunk_path(scan_dir, index)) as arrays:
        rows = {layer: arrays[f"{layer}/rows"] for layer in layers}
        rankings = {layer: topk.Ranking.from_arrays(arrays, f"{layer}/") for layer in layers}
        return rows, rankings, arrays["ids"]


def chunk_weights(scan_dir, index: int):
    """The name of the weights a finished chunk was computed on; None for a chunk of an older version."""
    with np.load(chunk_path(scan_dir, index)) as arrays:
        return str(arrays["weights"]) if "weights" in arrays.files else None


def merged_weights(scan_dir) -> list:
    """The weights the chunks of a merged scan were computed on (sorted names: one, unless workers on
    different weights shared the scan); [] for a scan merged by an older version or not merged yet."""
    try:
        with np.load(Path(scan_dir) / TOPK_NPZ) as arrays:
            return [str(name) for name in arrays["weights"]] if "weights" in arrays.files else []
    except FileNotFoundError:
        return []


def is_merged(scan_dir) -> bool:
    return (Path(scan_dir) / TOPK_JSON).is_file()


def read_failure(scan_dir):
    return read_json_if_readable(Path(scan_dir) / FAILED_FILE)


def write_failure(scan_dir, message: str) -> None:
    write_json_atomically(Path(scan_dir) / FAILED_FILE, {"error": message, "time": time.time()})


# --- the executions log ---------------------------------------------------------------------------

def append_execution(scan_dir, event: str, **fields) -> None:
    """One JSON line: ``{"event": "start" | "done" | "skipped", "time": …, …}``. A single ``write`` to a
    file opened with O_APPEND, so lines from concurrent workers on one host never interleave."""
    line = json.dumps({"event": event, "time": time.time(), "pid": os.getpid(), **fields}) + "\n"
    descriptor = os.open(Path(scan_dir) / EXECUTIONS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def read_executions(scan_dir) -> list:
    try:
        text = (Path(scan_dir) / EXECUTIONS_LOG).read_text()
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash
    return events
