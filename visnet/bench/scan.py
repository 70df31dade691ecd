"""``python -m visnet.bench.scan``: how fast the forward scan runs on this machine, against its FLOP bound.

    python -m visnet.bench.scan                                  # in-process figures
    python -m visnet.bench.scan --scan RESULTS/scans/<id> …      # and finished scans' throughput

In this process: ``--images`` real images (scikit-image photos) through the scan's forward pass to
``block5_pool`` as a scan runs it (channel means of the five pools, one ``session.run`` per image),
median of ``--repeats``; and the machine's dense 3×3 convolution rate on the 13 VGG16 shapes
(:func:`visnet.bench.common.conv_throughput`, the yardstick of issue 2). The FLOP bound of the scan is that
rate over the 30.69 GFLOP of one forward pass. For each ``--scan`` folder: its images per second over the chunks' busy time (the workers that
took part are the distinct names in its executions log).

The projections of a scan: for ``--projection-images`` photos, ``--projection-units`` units of
``block3_pool`` each (a projection block), projected as a scan projects them (``max`` seeds: each unit's
single strongest activation, on its receptive field's window, :func:`visnet.scan.projection.project_images`)
against the whole-frame
projections of the same units (``map`` seeds, what scans did before), median of ``--repeats``; the target
is the max seeds at least 3× faster. Every figure is projected to 10,000 images
(the source scanned 9,832 Tiny ImageNet images). The load average is printed with the figures: on a
shared 2-core machine they are only as good as the load lets them be.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

from visnet.architecture import INPUT_SIZE, forward_flops
from visnet.bench.common import THROUGHPUT_BATCH, conv_throughput, load_average, machine_info
from visnet.numbers import non_negative_argument
from visnet.scan import store
from visnet.scan.progress import scan_progress
from visnet.settings import from_environment

LAYERS = ("block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool")
PROJECTED_IMAGES = 10_000
PROJECTION_LAYER = "block3_pool"
PROJECTION_TARGET = 3.0  # max seeds at least this many times faster than whole-frame projections


def sample_batch(count: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    from visnet.preprocessing import to_rgb_array

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]
    return np.stack([to_rgb_array(Image.fromarray(photos[index % len(photos)]), INPUT_SIZE) for index in range(count)])


def time_forward(engine, count: int, repeats: int) -> dict:
    from visnet.scan.means import channel_means

    images = sample_batch(count)
    channel_means(engine, images[:1], LAYERS)  # warm-up: kernel choice, buffers
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        channel_means(engine, images, LAYERS)
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    gflop = forward_flops(LAYERS) / 1e9
    return {"images": count, "repeats": repeats, "median_seconds": round(median, 3),
            "images_per_second": round(count / median, 3), "gflop_per_second": round(count * gflop / median, 1),
            "load_average_after": load_average()}


def time_projections(engine, count: int, units: int, repeats: int) -> dict:
    """Seconds per image to project ``units`` units of PROJECTION_LAYER: with max seeds inside their
    receptive fields (the scan's projections) and with whole-frame map seeds, on ``count`` photos."""
    from visnet.scan.projection import project_images

    images = sample_batch(count)
    chosen = list(range(0, 256, 256 // units))[:units]

    def max_seeds():  # as a projection block runs them: every image's units in one run
        project_images(engine, list(images), PROJECTION_LAYER, [chosen] * count, with_full=False)

    def whole_frame():
        for rgb in images:
            engine.deconv(rgb[None], layers=None, top_k=0, channels=[(PROJECTION_LAYER, unit) for unit in chosen],
                          seed="map")

    figures = {}
    for name, run in (("max_seeds", max_seeds), ("whole_frame", whole_frame)):
        run()  # warm-up: this sweep's kernels and buffers
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - started)
        figures[f"{name}_seconds_per_image"] = round(statistics.median(seconds) / count, 4)
    ratio = figures["whole_frame_seconds_per_image"] / figures["max_seeds_seconds_per_image"]
    return {"layer": PROJECTION_LAYER, "images": count, "units": units, "repeats": repeats, **figures,
            "speedup": round(ratio, 2), "target": PROJECTION_TARGET, "target_met": ratio >= PROJECTION_TARGET,
            "load_average_after": load_average()}


def scan_figures(scan_dir) -> dict:
    progress = scan_progress(scan_dir)
    done = [event for event in store.read_executions(scan_dir) if event.get("event") == "done"]
    layers = store.load_scan(scan_dir)["options"]["layers"]
    return {"scan": str(scan_dir), "workers": len({event.get("worker") for event in done}),
            "images": progress["images_total"], "layers": layers, "gflop_per_image": round(forward_flops(layers) / 1e9, 2),
            "images_per_second": progress["images_per_second"], "busy_seconds": progress["busy_seconds"]}


def hours(images_per_second) -> str:
    return f"{PROJECTED_IMAGES / images_per_second / 3600:.2f} h" if images_per_second else "-"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m visnet.bench.scan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=non_negative_argument, default=8, help="images through the forward pass (default 8)")
    parser.add_argument("--repeats", type=non_negative_argument, default=3, help="timed runs (default 3)")
    parser.add_argument("--projection-images", type=non_negative_argument, default=2,
                        help=f"photos whose {PROJECTION_LAYER} units are projected (default 2; 0: skip)")
    parser.add_argument("--projection-units", type=non_negative_argument, default=16,
                        help=f"{PROJECTION_LAYER} units projected per photo, a projection block (default 16)")
    parser.add_argument("--weights", default="hed", help="weights name or path (default hed)")
    parser.add_argument("--scan", nargs="*", default=[], metavar="SCAN_DIR", help="finished scans to report on")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    from visnet.engine import Engine

    settings = from_environment()
    before = load_average()
    engine = Engine.load(args.weights, device="cpu", models_dir=settings.models_dir)
    forward = time_forward(engine, args.images, args.repeats)
    rate = conv_throughput(args.repeats)["rate_gflop_per_second"]
    gflop = forward_flops(LAYERS) / 1e9
    bound = rate / gflop
    projections = (time_projections(engine, args.projection_images, max(1, min(args.projection_units, 256)),
                                    args.repeats) if args.projection_images else None)
    scans = [scan_figures(path) for path in args.scan]
    results = {"machine": machine_info(), "load_average_before": before, "forward": forward,
               "projections": projections,
               "conv_rate_gflop_per_second": round(rate, 1), "gflop_per_image": round(gflop, 2),
               "flop_bound_images_per_second": round(bound, 3), "scans": scans, "load_average_after": load_average()}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    machine = results["machine"]
    print(f"machine: {machine['cpu_model']}, {machine['cores']} cores, TensorFlow {machine['tensorflow']}; "
          f"load average before {before}, after {results['load_average_after']}")
    print(f"dense 3×3 conv rate (13 VGG16 shapes, batch {THROUGHPUT_BATCH}): {rate:.1f} GFLOP/s")
    print(f"forward pass to block5_pool: {gflop:.2f} GFLOP per image → FLOP bound {bound:.2f} images/s "
          f"({hours(bound)} for {PROJECTED_IMAGES:,} images)")
    print(f"{args.images} images through the scan's forward pass, one per run: {forward['median_seconds']:.2f} s = "
          f"{forward['images_per_second']:.2f} images/s, {forward['gflop_per_second']:.1f} GFLOP/s "
          f"({forward['images_per_second'] / bound:.0%} of the bound; {hours(forward['images_per_second'])} for "
          f"{PROJECTED_IMAGES:,} images)")
    if projections:
        print(f"scan projections at {projections['layer']}, {projections['units']} units × {projections['images']} "
              f"photos: max seeds {projections['max_seeds_seconds_per_image']:.3f} s per photo, whole-frame "
              f"{projections['whole_frame_seconds_per_image']:.3f} s → {projections['speedup']:.2f}× faster "
              f"(target ≥ {PROJECTION_TARGET:.0f}×: {'met' if projections['target_met'] else 'NOT met'})")
    for scan in scans:
        rate_images = scan["images_per_second"] or 0
        print(f"scan {scan['scan']}: {scan['workers']} worker(s), {scan['images']} images to "
              f"{scan['layers'][-1]} ({scan['gflop_per_image']} GFLOP each): {rate_images:.2f} images/s "
              f"({rate_images * scan['gflop_per_image'] / rate:.0%} of its FLOP bound; "
              f"{hours(rate_images)} for {PROJECTED_IMAGES:,} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
