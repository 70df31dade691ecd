"""The scan API tests' uploads (small ZIPs of generated PNGs), checks and a finished scan written by
hand (chunk files, merge, projections) without a worker: shared by tests/app/scans."""

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rq import Queue

from visnet.scan import ScanOptions, create_scan, store, topk
from visnet.scan.merge import merge_scan
from visnet.scan.units import projected_units
from visnet.settings import scan_queue_name

POOLS = ["block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool"]


def png(seed: int, size=(40, 30)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def make_zip(members: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def good_zip() -> bytes:
    return make_zip({"a.png": png(1), "b.png": png(2), "sub/c.png": png(3), "sub/d.png": png(4),
                     "readme.txt": b"not an image", "__MACOSX/._a.png": b"resource fork"})


def upload(client, data: bytes = None, filename="images.zip", **fields):
    form = dict(fields)
    if data is not None:
        form["archive"] = (io.BytesIO(data), filename)
    return client.post("/api/scans", data=form, content_type="multipart/form-data")


def scans_root(app) -> Path:
    return Path(app.config["RESULTS_DIR"]) / "scans"


def queued_ids(app, redis_conn) -> list:
    return Queue(scan_queue_name(app.config["QUEUE_NAME"]), connection=redis_conn).job_ids


@pytest.fixture
def no_scan_stored(app, redis_conn):
    def check():
        root = scans_root(app)
        assert not root.exists() or list(root.iterdir()) == []
        assert queued_ids(app, redis_conn) == []
        assert list(redis_conn.scan_iter(match="rq:job:*")) == []
    return check


LAYERS = ("block1_pool", "block2_pool")  # 64 and 128 units


K = 3


def _thumbnail(seed) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((96, 96, 3), seed * 20 % 256, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def build_finished_scan(root: Path, count=7, weights="hed") -> tuple:
    """A scan as the workers leave it: chunks (random distinct means) computed on ``weights`` (a name; a
    list: chunk i on weights[i % len]; None: chunks of a version that did not record them), thumbnails, the
    merge and the projection blocks (crops and patches: ``max`` seeds) of the two units of each layer with the
    highest top activation (visnet.scan.units.projected_units). Returns (scan id, folder, {layer: table})."""
    scan_id = store.new_scan_id()
    folder = root / scan_id
    images = folder / "images"
    images.mkdir(parents=True)
    for index in range(count):
        (images / f"img{index}.png").write_bytes(png(index, (16, 16)))
    options = ScanOptions(layers=",".join(LAYERS), k=K, chunk_size=3, project_channels=2, project_block=2)
    record = create_scan(folder, images, options)
    (folder / "upload.json").write_text(json.dumps({
        "id": scan_id, "created": record["created"], "options": options.as_dict(),
        "archive": {"images": count, "bytes": 1, "skipped": []}}))
    rng = np.random.default_rng(7)
    tables = {layer["name"]: rng.permutation(count * layer["channels"]).reshape(count, -1).astype(np.float32) / 10
              for layer in record["layers"]}
    for index, (start, stop) in enumerate(record["chunks"]):
        ids = np.arange(start, stop)
        arrays = {"ids": ids}
        named = weights if weights is None or isinstance(weights, str) else weights[index % len(weights)]
        if named is not None:
            arrays["weights"] = np.array(named)
        for layer, table in tables.items():
            arrays[f"{layer}/rows"] = table[start:stop]
            arrays.update(topk.rank(table[start:stop], ids, K).arrays(f"{layer}/"))
        store.save_npz_atomically(store.chunk_path(folder, index), arrays)
        store.append_execution(folder, "done", chunk=index, images=stop - start, started=time.time() - 0.5, worker="w")
    for image_id in range(count):
        (folder / store.thumb_name(image_id)).write_bytes(_thumbnail(image_id))
    merge_scan(folder)
    for layer in LAYERS:
        channels = {}
        for channel in projected_units(folder, layer):
            channels[str(channel)] = []
            for rank in range(K):
                names = {**store.projection_names(layer, channel, rank), "full": None}
                for name in (names["crop"], names["patch"]):
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    (folder / name).write_bytes(png(rank, (8, 8)))
                channels[str(channel)].append({"rank": rank, "image": 0, **names})
        store.write_json_atomically(store.projection_marker(folder, layer, 0, 2),
                                    {"layer": layer, "start": 0, "stop": 2, "channels": channels})
    return scan_id, folder, tables


@pytest.fixture
def finished(app):
    return build_finished_scan(scans_root(app))
