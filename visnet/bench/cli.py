"""The streaming CLI (issue 14): ``python -m visnet deconv`` on 1 and on 6 photos, run as a subprocess.

Each run's wall time is from starting the interpreter to its exit, and its peak RSS is the child's own
high-water mark (VmHWM, written by the child at exit: not ``os.wait4``'s ``ru_maxrss``, which Linux carries over
from this process, so that both runs reported this process's own peak). A photo beyond the first
costs ``(T6 − T1) / 5``; it is compared with the warm single-photo time of the same five photos measured in
this process: ``engine.deconv`` on the photo, then :func:`visnet.outputs.write_deconv_outputs` and the input
photo, one after the other (no overlap). Targets: that ratio ≤ 1.1, and the 6-photo peak RSS at most
1.1 × the 1-photo one (memory does not grow with the number of photos).
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from visnet.bench.common import load_average
from visnet.settings import PROJECT_ROOT

PHOTO_COUNT = 6
QUICK_PHOTO_COUNT = 2  # the smoke run (--quick): one photo beyond the first is enough to exercise every figure
# scikit-image's bundled colour photos, chelsea first as in the other benchmarks
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
TARGET_PER_PHOTO_RATIO = 1.1  # a photo beyond the first, at most this × the warm single-photo time
TARGET_RSS_GROWTH = 1.1  # peak RSS of 6 photos, at most this × that of 1 photo


def write_photos(folder: Path, count: int = PHOTO_COUNT) -> list:
    """``count`` real photos as JPEG files in ``folder`` (their original sizes)."""
    from PIL import Image
    from skimage import data

    paths = []
    for name in PHOTOS[:count]:
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(data, name)()).save(path, quality=90)
        paths.append(path)
    return paths


def run_cli(paths, out: Path, layers: str, top_k: int, weights: str, project_root=PROJECT_ROOT) -> dict:
    """Run ``python -m visnet deconv`` on ``paths`` in a fresh interpreter: wall seconds and peak RSS (MiB)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project_root), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="visnet-bench-rss-") as scratch:
        peak_file = Path(scratch) / "peak"
        command = [sys.executable, "-c", _CLI_REPORTING_PEAK, str(peak_file), "deconv", *map(str, paths),
                   "--out", str(out), "--layers", layers, "--top-k", str(top_k), "--weights", weights,
                   "--device", "cpu"]
        with tempfile.TemporaryFile("w+") as log:  # a file, so that a full pipe cannot stall the child
            started = time.perf_counter()
            returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        cwd=project_root).returncode
            seconds = time.perf_counter() - started
            if returncode != 0 or not peak_file.exists():
                log.seek(0)
                raise RuntimeError(f"the CLI failed (exit {returncode}):\n{log.read()[-2000:]}")
        peak = float(peak_file.read_text())
    return {"photos": len(paths), "seconds": seconds, "peak_rss_mib": peak, "load_average_after": load_average()}


# ``python -m visnet ARGS`` that writes its own peak RSS (MiB) into the file named first, as it exits.
_CLI_REPORTING_PEAK = """
import atexit, runpy, sys
from pathlib import Path
peak_file = Path(sys.argv.pop(1))

def report():
    from visnet.bench.common import peak_rss_mib
    peak_file.write_text(str(peak_rss_mib()))

atexit.register(report)
sys.argv[0] = "visnet"
runpy.run_module("visnet", run_name="__main__", alter_sys=True)
"""


def warm_photo_seconds(engine, paths, layers: str, top_k: int, folder: Path) -> list:
    """Per photo, after one warm-up: its projection (with the CLI's defaults for the other options, such as
    ``seed``) then its writing, one after the other, in this process."""
    from visnet.methods import computation_options, parse_options
    from visnet.outputs import write_deconv_outputs, write_input_photo
    from visnet.preprocessing import prepare_photo

    options = computation_options(parse_options("deconv", {"layers": layers, "top_k": str(top_k)}))  # as the CLI

    def one(index, path):
        photo = prepare_photo(path)
        out = folder / f"{index}-{path.stem}"
        out.mkdir()
        result = engine.deconv(photo.rgb[None], **options)
        write_deconv_outputs(result, 0, photo.rgb, out, image_name=path.name,
                             input_photo=write_input_photo(photo, out, path.name))

    one("warm-up", paths[0])
    seconds = []
    for index, path in enumerate(paths):
        started = time.perf_counter()
        one(index, path)
        seconds.append(time.perf_counter() - started)
    return seconds


def time_cli(engine, weights: str, layers: str, top_k: int, project_root=PROJECT_ROOT,
             photos: int = PHOTO_COUNT) -> dict:
    """The CLI on 1 and on ``photos`` (2 or more) photos, and the warm single-photo times it is held to."""
    if not 2 <= photos <= len(PHOTOS):
        raise ValueError(f"photos must be between 2 and {len(PHOTOS)}, got {photos}")
    with tempfile.TemporaryDirectory(prefix="visnet-bench-cli-") as temporary:
        folder = Path(temporary)
        (folder / "photos").mkdir()
        paths = write_photos(folder / "photos", photos)
        warm = warm_photo_seconds(engine, paths, layers, top_k, folder) if engine is not None else None
        one = run_cli(paths[:1], folder / "one", layers, top_k, weights, project_root)
        many = run_cli(paths, folder / "many", layers, top_k, weights, project_root)
    beyond_first = (many["seconds"] - one["seconds"]) / (len(paths) - 1)
    record = {"layers": layers, "top_k": top_k, "one": one, "many": many,
              "per_photo_beyond_first_seconds": beyond_first,
              "rss_growth": many["peak_rss_mib"] / one["peak_rss_mib"]}
    if warm is not None:
        record["warm_photo_seconds"] = warm
        record["warm_photo_mean_seconds"] = sum(warm[1:]) / len(warm[1:])  # the photos beyond the first
        record["per_photo_ratio"] = beyond_first / record["warm_photo_mean_seconds"]
    return record


def cli_targets(record) -> list:
    count = record["many"]["photos"]
    return [
        {"target": f"CLI, each photo beyond the first (of {count}) ≤ 1.1 × the warm single-photo time "
                   "(compute + writing)",
         "measured": f"{record['per_photo_ratio']:.2f} × ({record['per_photo_beyond_first_seconds']:.2f} s against "
                     f"{record['warm_photo_mean_seconds']:.2f} s)",
         "value": record["per_photo_ratio"], "met": record["per_photo_ratio"] <= TARGET_PER_PHOTO_RATIO},
        {"target": f"CLI peak RSS does not grow with the photos: {count} photos ≤ 1.1 × 1 photo",
         "measured": f"{record['rss_growth']:.2f} × ({record['many']['peak_rss_mib']:.0f} MiB against "
                     f"{record['one']['peak_rss_mib']:.0f} MiB)",
         "value": record["rss_growth"], "met": record["rss_growth"] <= TARGET_RSS_GROWTH},
    ]


def cli_report(record) -> str:
    one, many = record["one"], record["many"]
    lines = [f"CLI (python -m visnet deconv --layers {record['layers']} --top-k {record['top_k']}, a subprocess):"]
    for run in (one, many):
        lines.append(f"  {run['photos']} photo(s): {run['seconds']:.2f} s ({run['seconds'] / run['photos']:.2f} s per photo, "
                     f"interpreter start and weights included), peak RSS {run['peak_rss_mib']:.0f} MiB, "
                     f"load1 {run['load_average_after'][0]:.2f}")
    lines.append(f"  each photo beyond the first: {record['per_photo_beyond_first_seconds']:.2f} s"
                 + (f"; warm single photo (compute + writing, in process): {record['warm_photo_mean_seconds']:.2f} s"
                    if "warm_photo_mean_seconds" in record else ""))
    return "\n".join(lines)
