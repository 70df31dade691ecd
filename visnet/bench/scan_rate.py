"""A scan's rate against its forward FLOP bound (issue 14): chunks as a worker runs them, in this process
and in processes pinned to one core each.

A chunk here is :func:`visnet.scan.chunks.compute_chunk` on real photo files (scikit-image's, JPEG, their
original sizes): reading and resizing on the prefetch thread, one ``session.run`` per image to
``block5_pool``, thumbnails, the chunk's tables; after one untimed warm-up chunk of one image. The bound is
the dense 3×3 convolution rate (:func:`visnet.bench.common.conv_throughput`) over the 30.69 GFLOP of one
forward pass. Two machines' worth of workers are simulated on this one: each worker is a process pinned to
its own core (``os.sched_setaffinity``) with TensorFlow's intra- and inter-op pools of one thread, started
together, and reading the scan's pass for one core (:mod:`visnet.scan.means`: blocks 3 and 4 by Winograd's
algorithm, fewer multiplications than the bound counts); each is held to the bound of one core, measured alone by
a process pinned the same way.
Target: every rate at least 0.9 × its bound.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from visnet.architecture import forward_flops
from visnet.bench.common import load_average
from visnet.settings import PROJECT_ROOT

SCAN_LAYERS = ("block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
TARGET_BOUND_RATIO = 0.9


def write_scan_photos(folder: Path, count: int) -> Path:
    """``count`` JPEG files of scikit-image's colour photos (cycled, original sizes) in ``folder``."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(getattr(data, PHOTOS[index % len(PHOTOS)])()).save(folder / f"{index:04d}.jpg", quality=90)
    return folder


def time_chunk(engine, photos: Path, work: Path, count: int) -> dict:
    """Images per second of one chunk of ``count`` photos from ``photos``, after a one-image warm-up chunk."""
    from visnet.scan.chunks import compute_chunk
    from visnet.scan.plan import ScanOptions, create_scan

    names = sorted(path.name for path in photos.iterdir())
    create_scan(work / "warm-up", photos, ScanOptions(layers=SCAN_LAYERS, chunk_size=1), images=names[:1])
    compute_chunk(work / "warm-up", 0, engine)
    create_scan(work / "timed", photos, ScanOptions(layers=SCAN_LAYERS, chunk_size=count), images=names[:count])
    started = time.perf_counter()
    summary = compute_chunk(work / "timed", 0, engine)
    seconds = time.perf_counter() - started
    return {"images": count, "seconds": seconds, "images_per_second": count / seconds,
            "prefetch_load_seconds": summary["load_seconds"]}


_PINNED_CHILD = """
import json, os, sys
cpu, photos, work, count, weights, repeats, batch = sys.argv[1:8]
os.sched_setaffinity(0, {int(cpu)})  # before TensorFlow starts its threads
from pathlib import Path
from visnet.bench.common import conv_throughput
from visnet.bench.scan_rate import time_chunk
from visnet.engine import Engine
record = {"cpu": int(cpu), "cores_usable": len(os.sched_getaffinity(0))}
if int(repeats):
    record["conv_rate_gflop_per_second"] = conv_throughput(int(repeats), batch=int(batch))["rate_gflop_per_second"]
engine = Engine.load(weights, device="cpu")
print("ready", flush=True)
sys.stdin.readline()  # all workers start their timed chunk together
record.update(time_chunk(engine, Path(photos), Path(work), int(count)))
print(json.dumps(record), flush=True)
"""


def pinned_workers(cpus, photos: Path, work: Path, count: int, weights: str, bound_repeats: int = 0,
                   batch: int = 4) -> list:
    """One process per core of ``cpus``, each pinned to it with one TensorFlow thread; their chunks start
    together. With ``bound_repeats``, each first measures its core's dense conv rate (alone, before the start)."""
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    processes, logs = [], []
    for cpu in cpus:
        log = tempfile.TemporaryFile("w+")  # a file, so that a full pipe cannot stall the child
        folder = work / f"cpu{cpu}"
        folder.mkdir(parents=True, exist_ok=True)
        processes.append(subprocess.Popen(
            [sys.executable, "-c", _PINNED_CHILD, str(cpu), str(photos), str(folder), str(count), weights,
             str(bound_repeats), str(batch)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            env=env, cwd=PROJECT_ROOT))
        logs.append(log)
    try:
        for process, log in zip(processes, logs):
            if process.stdout.readline().strip() != "ready":
                process.wait()
                log.seek(0)
                raise RuntimeError(f"a pinned scan worker failed (exit {process.returncode}):\n{log.read()[-2000:]}")
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        records = []
        for process, log in zip(processes, logs):
            line = process.stdout.readline()
            if process.wait() != 0 or not line.strip():
                log.seek(0)
                raise RuntimeError(f"a pinned scan worker failed (exit {process.returncode}):\n{log.read()[-2000:]}")
            records.append(json.loads(line))
    finally:
        for process, log in zip(processes, logs):
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    return records


def time_scan_rates(engine, weights: str, rate: float, count: int, pinned_count: int, repeats: int,
                    batch: int = 4, alone: bool = True) -> dict:
    """The chunk rate in this process (all cores) against ``rate``'s bound; one pinned worker with its own
    one-core bound; two pinned workers at once (when two cores are usable), each against that bound. Without
    ``alone`` (a smoke run) the two workers measure their cores' rates themselves, at the same time."""
    gflop = forward_flops(SCAN_LAYERS[-1]) / 1e9
    cores = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="visnet-bench-scan-") as temporary:
        work = Path(temporary)
        photos = write_scan_photos(work / "photos", max(count, pinned_count))
        here = time_chunk(engine, photos, work / "here", count)
        one = (pinned_workers(cores[:1], photos, work / "alone", pinned_count, weights, repeats, batch)[0]
               if alone or len(cores) < 2 else None)
        together = pinned_workers(cores[:2], photos, work / "together", pinned_count, weights,
                                  0 if one else repeats, batch) if len(cores) > 1 else []
    here.update(bound_images_per_second=rate / gflop, ratio=here["images_per_second"] / (rate / gflop))
    for record in [one, *together]:
        if record is not None:
            bound = (one or record)["conv_rate_gflop_per_second"] / gflop
            record.update(bound_images_per_second=bound, ratio=record["images_per_second"] / bound)
    return {"gflop_per_image": gflop, "layers": list(SCAN_LAYERS), "in_process": here, "one_core": one,
            "two_pinned": together, "load_average_after": load_average()}


def scan_rate_targets(figures) -> list:
    rows = [("one worker, all cores", figures["in_process"])]
    rows += [("one worker pinned to one core", figures["one_core"])] if figures["one_core"] else []
    rows += [(f"two workers pinned to a core each: core {record['cpu']}", record) for record in figures["two_pinned"]]
    return [{"target": f"scan rate ≥ {TARGET_BOUND_RATIO} × its forward FLOP bound, {what}",
             "measured": f"{record['ratio']:.2f} × ({record['images_per_second']:.2f} against "
                         f"{record['bound_images_per_second']:.2f} images/s)",
             "value": record["ratio"], "met": record["ratio"] >= TARGET_BOUND_RATIO} for what, record in rows]


def scan_rate_report(figures) -> str:
    here, alone = figures["in_process"], figures["one_core"]
    lines = [f"scan chunks (decode + resize on the prefetch thread, one run per image to {figures['layers'][-1]}, "
             f"{figures['gflop_per_image']:.2f} GFLOP per image, thumbnails, tables):",
             f"  one worker, all cores: {here['images']} images at {here['images_per_second']:.2f} images/s, bound "
             f"{here['bound_images_per_second']:.2f}: {here['ratio']:.2f} × (reading {here['prefetch_load_seconds']:.2f} s "
             "hidden behind the network)"]
    if alone:
        lines.append(f"  one core (dense rate {alone['conv_rate_gflop_per_second']:.1f} GFLOP/s, bound "
                     f"{alone['bound_images_per_second']:.2f} images/s): one pinned worker "
                     f"{alone['images_per_second']:.2f} images/s ({alone['ratio']:.2f} ×)")
    for record in figures["two_pinned"]:
        lines.append(f"  two pinned workers at once, core {record['cpu']}: {record['images_per_second']:.2f} images/s "
                     f"against {record['bound_images_per_second']:.2f} ({record['ratio']:.2f} ×)")
    if alone or figures["two_pinned"]:
        lines.append("  (a pinned worker computes blocks 3 and 4 by Winograd's F(2×2, 3×3), 2.25 × fewer "
                     "multiplications there than the bound counts: visnet.chain.ops)")
    lines.append(f"  load1 after {figures['load_average_after'][0]:.2f}")
    return "\n".join(lines)
