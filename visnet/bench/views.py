"""``python -m visnet.bench.views``: occlusion and activation maximisation on this machine.

    python -m visnet.bench.views                      # writes bench-results/views.json
    python -m visnet.bench.views --channels 4 --repeats 3

Occlusion at (size 50, stride 10) on one real 224×224 photo: the number of forward passes, the time and
the occluded images per second, against the forward pass's FLOP bound (the machine's dense 3×3
convolution rate, measured in the same run by :func:`visnet.bench.common.conv_throughput`, over the 30.69
GFLOP of one forward pass). Activation maximisation with the default options (block4_conv3, 5
octaves of 8 steps, 44 to 224 px, jitter, L2 decay and blur): seconds per channel, all channels optimised
as one batch.
Figures only: nothing is asserted.
"""
import argparse
import statistics
import time
from pathlib import Path

from visnet.architecture import forward_flops
from visnet.bench.common import benchmark_image, conv_throughput, load_average, machine_info, write_results
from visnet.numbers import non_negative_argument

DEFAULT_OUT = Path("bench-results") / "views.json"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m visnet.bench.views", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=non_negative_argument, default=3, help="occlusion runs (median reported), default 3")
    parser.add_argument("--channels", type=non_negative_argument, default=1, help="channels maximised together, default 1")
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from visnet.engine import Engine
    from visnet.views import run_view

    results = {"command": "python -m visnet.bench.views", "load_average_before": load_average(),
               "machine": machine_info()}
    engine = Engine.load(args.weights, device="cpu")
    engine.warm_up()
    rate = conv_throughput(repeats=3)["rate_gflop_per_second"]
    bound_images_per_second = rate * 1e9 / forward_flops()
    rgb = benchmark_image()[0]  # one 224×224 photo

    run_view(engine, "occlusion", rgb, {"sizes": "50:10"})  # warm-up: builds the view's ops once
    runs = [run_view(engine, "occlusion", rgb, {"sizes": "50:10"}) for _ in range(args.repeats)]
    seconds = statistics.median(run.timings["occlusion_50x10_seconds"] for run in runs)
    occluded_images = runs[0].data["settings"][0]["occluded_images"]
    occlusion = {
        "size": 50, "stride": 10, "occluded_images": occluded_images,
        "forward_passes": runs[0].timings["occlusion_50x10_forward_passes"], "median_seconds": seconds,
        "images_per_second": occluded_images / seconds,
        "flop_bound_images_per_second": bound_images_per_second,
    }
    occlusion["fraction_of_bound"] = occlusion["images_per_second"] / bound_images_per_second

    channels = ",".join(str(channel) for channel in range(args.channels))
    started = time.perf_counter()
    maximised = run_view(engine, "activation-max", None, {"layer": "block4_conv3", "channels": channels})
    activation_max = {"layer": "block4_conv3", "channels": args.channels,
                      "seconds": time.perf_counter() - started,
                      "seconds_per_channel": maximised.data["seconds_per_channel"],
                      "session_runs": maximised.data["session_runs"]}

    results.update(conv_rate_gflop_per_second=rate, occlusion=occlusion, activation_max=activation_max,
                   load_average_after=load_average())
    write_results(args.out, results)
    print(f"dense conv rate {rate:.1f} GFLOP/s → forward-pass bound {bound_images_per_second:.2f} images/s")
    print(f"occlusion 50×10: {occlusion['occluded_images']} occluded images, {occlusion['forward_passes']} forward "
          f"passes (batches of 32, plus the unoccluded image), median {seconds:.2f} s, "
          f"{occlusion['images_per_second']:.2f} images/s = {occlusion['fraction_of_bound']:.0%} of the bound")
    print(f"activation maximisation, block4_conv3, {args.channels} channel(s), defaults: "
          f"{activation_max['seconds_per_channel']:.1f} s per channel ({activation_max['session_runs']} session runs)")
    print(f"load average before {results['load_average_before']}, after {results['load_average_after']}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
