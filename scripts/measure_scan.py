"""Measures the README's scan figures: the forward scan's images per second with 1 and 2 real workers.

For each worker count, in a temporary instance folder with its own embedded Redis:

1. writes ``--images`` real photos (random crops, flips and scales of scikit-image's colour photos,
   256 px, seeded), the same set for every run;
2. starts that many ``worker.py`` processes (hed weights, CPU) and waits until they are ready;
3. plans a scan to the five pooling layers with no projections (``--project-channels 0``: this measures
   the forward scan), enqueues its chunk jobs and waits for the merge;
4. stops the workers.

Then ``python -m visnet.bench.scan --scan <both scan folders>`` prints the in-process forward rate, the
machine's dense conv rate (the FLOP bound) and each scan's images/s over its busy time, each projected to
10,000 images. Worker start-up is not part of a scan's time.

    .venv/bin/python scripts/measure_scan.py [--images 256] [--workers 1 2] [--chunk-size 32]
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from app import presence  # noqa: E402
from service import embedded_redis
from service.jobs.scheduling import enqueue_scan  # noqa: E402
from service.serve import stop_process  # noqa: E402
from visnet.scan import ScanOptions, create_scan, scan_path, scan_progress  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "cat")
LAYERS = "block1_pool,block2_pool,block3_pool,block4_pool,block5_pool"
QUEUE = "scan-bench"


def write_photos(folder: Path, count: int, side: int = 256):
    from skimage import data

    rng = np.random.default_rng(9832)
    sources = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = sources[index % len(sources)]
        width, height = image.size
        crop_side = int(min(width, height) * rng.uniform(0.4, 1.0))
        left, top = int(rng.integers(0, width - crop_side + 1)), int(rng.integers(0, height - crop_side + 1))
        crop = image.crop((left, top, left + crop_side, top + crop_side)).resize((side, side), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(folder / f"{index:05d}.jpg", quality=90)


def start_workers(count: int, env: dict, logs: Path) -> list:
    processes = []
    for index in range(count):
        log = open(logs / f"worker{index}.log", "wb")
        processes.append(subprocess.Popen([sys.executable, str(PROJECT_ROOT / "worker.py")], cwd=PROJECT_ROOT,
                                          env=env, stdout=log, stderr=subprocess.STDOUT))
    connection = redis.Redis.from_url(env["REDIS_URL"])
    names = [f"visnet-{socket.gethostname()}-{process.pid}" for process in processes]
    deadline = time.monotonic() + 300
    while not all(presence.is_alive(connection, name) for name in names):
        if any(process.poll() is not None for process in processes) or time.monotonic() > deadline:
            raise RuntimeError(f"a worker did not start; see {logs}")
        time.sleep(0.2)
    return processes


def run_scan(workers: int, images: Path, root: Path, env: dict, chunk_size: int) -> Path:
    connection = redis.Redis.from_url(env["REDIS_URL"])
    processes = start_workers(workers, env, root)
    try:
        scan_dir = scan_path(root / "results" / "scans", f"{workers:032x}")
        create_scan(scan_dir, images, ScanOptions(layers=LAYERS, k=9, chunk_size=chunk_size, project_channels=0))
        started = time.monotonic()
        enqueue_scan(connection, QUEUE, scan_dir, job_timeout=3600)
        while (progress := scan_progress(scan_dir))["status"] not in ("done", "failed"):
            time.sleep(0.5)
        print(f"{workers} worker(s): {progress['status']} in {time.monotonic() - started:.1f} s wall, "
              f"{progress['images_per_second']} images/s over {progress['busy_seconds']} busy s", flush=True)
        if progress["status"] != "done":
            raise RuntimeError(f"the scan failed: {progress['error']}")
        return scan_dir
    finally:
        for process in processes:
            stop_process(process, "worker", timeout=60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunk-size", type=int, default=32)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="visnet-scan-bench-") as temporary:
        root = Path(temporary)
        write_photos(root / "images", args.images)
        url = embedded_redis.ensure_server(root / "instance")
        env = {**os.environ, "REDIS_URL": url, "RESULTS_DIR": str(root / "results"), "VISNET_QUEUE": QUEUE,
               "VISNET_INSTANCE_DIR": str(root / "instance"), "VISNET_WEIGHTS": "hed", "VISNET_DEVICE": "cpu",
               "VISNET_LOG_LEVEL": "WARNING", "TF_CPP_MIN_LOG_LEVEL": "2"}
        try:
            scans = [run_scan(count, root / "images", root, env, args.chunk_size) for count in args.workers]
        finally:
            embedded_redis.stop_server(root / "instance")
        return subprocess.call([sys.executable, "-m", "visnet.bench.scan", "--scan", *map(str, scans)],
                               cwd=PROJECT_ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
