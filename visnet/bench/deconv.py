"""``python -m visnet.bench``: how fast the deconvnet runs on this machine, against its dense FLOP bound.

    python -m visnet.bench                          # 5 repeats, writes bench-results/deconv.json
    python -m visnet.bench --repeats 9 --out bench-results/run.json --weights hed
    python -m visnet.bench --quick --repeats 1      # smoke run: same code paths, top-1, no warm-up

Workloads, on one real photo (scikit-image's ``chelsea``) on the CPU, each timed ``repeats`` times after
a warm-up run (median and min): the forward pass; the single-pass sweep for the top-3 features of the
five pool layers (15 reconstructions) and of all 18 layers (54); the per-layer mode for both; and the
autodiff baseline, the same 15 reconstructions one at a time by ``tf.GradientTape``
(:class:`visnet.autodiff.AutodiffReference`).

The yardstick is the machine's own dense 3×3 convolution rate, measured in the same run on the 13
VGG16 conv shapes (``conv2d`` and ``conv2d_backprop_input``, batch 4); the faster of the two is the
rate. A workload's FLOP-bound time is its dense FLOP count over that rate. FLOPs count the 3×3
convolutions only (2 per multiply-add; pools, biases and ReLUs are left out): the forward pass is the
13 convs, and a reconstruction from layer L costs one transposed convolution per conv at or below L,
as many FLOPs as the forward conv. The sweep's first transposed convolution of a seed works on one
channel only (see :mod:`visnet.deconvnet`), so it does less than the dense count and can go below 1.0.

The machine may be shared, so every workload also records the CPU seconds of the whole process (all
threads) and the load average after it; a "cpu ratio" compares CPU time with the CPU-time rate of the
same convolutions, which other processes disturb less than wall time.

Peak memory is the process's peak RSS after each workload: a high-water mark of the whole process, so
it only grows. Worker-ready time is measured in fresh processes that import :mod:`visnet.engine` and
call ``Engine.load``. The targets of issue 2 are printed as PASS/MISS lines; the benchmark never
fails because of them. The load average is recorded with every figure: on a busy 2-core machine the
times are only as good as the load lets them be.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from visnet.architecture import CONV_LAYERS, INPUT_SIZE, LAYERS, conv_flops, get_layer, resolve_layers
from visnet.numbers import non_negative_argument
from visnet.preprocessing import to_network_input, to_rgb_array
from visnet.settings import PROJECT_ROOT, from_environment

DEFAULT_OUT = Path("bench-results") / "deconv.json"
TOP_K = 3
QUICK_TOP_K = 1
THROUGHPUT_BATCH = 4
WORKER_READY_RUNS = 3
PER_LAYER_ALL_MAX_REPEATS = 3

TARGET_FLOP_BOUND_RATIO = 1.15  # 15-reconstruction single pass, at most this × its FLOP-bound time
TARGET_SPEEDUP = 2.0  # single pass over the autodiff baseline, at least
TARGET_WORKER_READY_SECONDS = 10.0

# Run in a fresh interpreter: what a worker does before its first job. Prints one JSON line when ready.
_WORKER_READY_SCRIPT = """
import json, resource, sys, time
started = time.perf_counter()
import visnet.engine
imported = time.perf_counter()
visnet.engine.Engine.load(sys.argv[1], device="cpu", models_dir=sys.argv[2])
ready = time.perf_counter()
print(json.dumps({"import_seconds": imported - started, "load_seconds": ready - imported,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m visnet.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=non_negative_argument, default=5, help="timed runs per workload (default 5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    parser.add_argument("--weights", default="hed", help="weights name or path (default hed)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: top-1 instead of top-3, no warm-up runs, 1 worker-ready run, "
                             "batch-1 conv throughput")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


# ----------------------------------------------------------------------------------------- FLOPs

def forward_flops(up_to: str = "block5_pool") -> int:
    """Dense FLOPs of the forward pass of one image through every conv at or below ``up_to``."""
    last = LAYERS.index(get_layer(up_to))
    return sum(conv_flops(layer) for layer in LAYERS[: last + 1])


def reconstruction_flops(layer_name: str) -> int:
    """Dense FLOPs of projecting one seed at ``layer_name`` to pixel space: one transposed
    convolution per conv at or below it, each as costly as the forward conv."""
    return forward_flops(layer_name)


def sweep_flops(seed_layers) -> int:
    """One forward pass to ``block5_pool`` plus the reconstruction of every seed."""
    return forward_flops() + sum(reconstruction_flops(name) for name in seed_layers)


def autodiff_flops(seed_layers) -> int:
    """The baseline runs a forward pass to the seed's layer and the backward pass, once per seed."""
    return sum(forward_flops(name) + reconstruction_flops(name) for name in seed_layers)


# ----------------------------------------------------------------------------------- measuring

def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load_average() -> list:
    return [round(value, 2) for value in os.getloadavg()]


class Timings(NamedTuple):
    """Per run: wall-clock seconds, and CPU seconds of the whole process (all its threads)."""

    wall: list
    cpu: list


def timed_runs(function, repeats: int, warm_up: bool = True) -> Timings:
    """Time ``repeats`` calls of ``function``, after one untimed call if ``warm_up``.

    CPU time is recorded beside wall time because this machine is shared: a run that waited for a
    core shows a wall time well above its CPU time over the cores it could have used.
    """
    if warm_up:
        function()
    timings = Timings([], [])
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        timings.cpu.append(time.process_time() - cpu)
        timings.wall.append(time.perf_counter() - wall)
    return timings


def machine_info() -> dict:
    import tensorflow as tf

    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    onednn = from_environment().onednn
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        # TensorFlow enables oneDNN by default on x86 Linux; TF_ENABLE_ONEDNN_OPTS=0 turns it off.
        "onednn": "off" if onednn == "0" else ("on" if onednn else "on (default)"),
        "gpus_visible": len(tf.config.list_physical_devices("GPU")),
    }


def conv_throughput(repeats: int, batch: int = THROUGHPUT_BATCH, warm_up: bool = True) -> dict:
    """Dense 3×3 'same' convolution rate of this machine on the 13 VGG16 conv shapes.

    One small graph holds, per shape, a ``conv2d`` and a ``conv2d_backprop_input`` on random
    variables; each op is run on its own (its output is not fetched) and timed, median of
    ``repeats``. The rate of each kind is its total FLOPs over the sum of its medians.
    """
    import tensorflow as tf

    def variable(shape, seed):
        return tf.compat.v1.Variable(tf.random.uniform(shape, -1.0, 1.0, seed=seed), trainable=False)

    graph = tf.Graph()
    ops = {"forward": {}, "backprop_input": {}}
    with graph.as_default(), tf.device("/device:CPU:0"):
        for index, layer in enumerate(CONV_LAYERS):
            size = layer.resolution
            kernel = variable([3, 3, layer.in_channels, layer.channels], 3 * index)
            inputs = variable([batch, size, size, layer.in_channels], 3 * index + 1)
            gradients = variable([batch, size, size, layer.channels], 3 * index + 2)
            ops["forward"][layer.name] = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME").op
            ops["backprop_input"][layer.name] = tf.compat.v1.nn.conv2d_backprop_input(
                [batch, size, size, layer.in_channels], kernel, gradients, strides=[1, 1, 1, 1], padding="SAME").op
        initialise = tf.compat.v1.global_variables_initializer()
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True)  # as visnet.graph.VGG16Graph's session
    results = {"batch": batch, "repeats": repeats}
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        session.run(initialise)
        for kind, by_layer in ops.items():
            per_layer, total_flops, total_seconds, total_cpu = {}, 0, 0.0, 0.0
            for layer in CONV_LAYERS:
                timings = timed_runs(lambda: session.run(by_layer[layer.name]), repeats, warm_up)
                seconds, cpu = statistics.median(timings.wall), statistics.median(timings.cpu)
                flops = batch * conv_flops(layer)
                per_layer[layer.name] = {"median_seconds": seconds, "median_cpu_seconds": cpu,
                                         "gflop": flops / 1e9, "gflop_per_second": flops / seconds / 1e9}
                total_flops += flops
                total_seconds += seconds
                total_cpu += cpu
            results[kind] = {"gflop_per_second": total_flops / total_seconds / 1e9,
                             "gflop_per_cpu_second": total_flops / total_cpu / 1e9,
                             "seconds": total_seconds, "cpu_seconds": total_cpu,
                             "gflop": total_flops / 1e9, "layers": per_layer}
    best = max(("forward", "backprop_input"), key=lambda kind: results[kind]["gflop_per_second"])
    results["rate_gflop_per_second"] = results[best]["gflop_per_second"]
    results["rate_from"] = best
    results["rate_gflop_per_cpu_second"] = results[best]["gflop_per_cpu_second"]
    return results


def worker_ready(weights: str, models_dir, runs: int) -> dict:
    """Import, weights and graph in fresh processes: ``total`` runs from starting the interpreter to
    the engine being ready (interpreter start-up included, shutdown not)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    records = []
    for _ in range(runs):
        # stderr (TensorFlow's start-up log) goes to a file, so that a full pipe cannot stall the child.
        with tempfile.TemporaryFile("w+") as log:
            started = time.perf_counter()
            process = subprocess.Popen([sys.executable, "-c", _WORKER_READY_SCRIPT, weights, str(models_dir)],
                                       stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=PROJECT_ROOT)
            line = process.stdout.readline()
            total = time.perf_counter() - started
            process.communicate()
            if not line.strip():
                log.seek(0)
                raise RuntimeError(f"the worker-ready process failed (exit {process.returncode}):\n"
                                   f"{log.read()[-2000:]}")
        record = json.loads(line)
        record["total_seconds"] = total
        records.append(record)
    summary = {"runs": runs, "load_average_after": load_average()}
    for key in ("import_seconds", "load_seconds", "total_seconds", "peak_rss_mib"):
        summary[key] = statistics.median(record[key] for record in records)
    summary["samples"] = records
    return summary


# ---------------------------------------------------------------------------------- workloads

def benchmark_image():
    """scikit-image's ``chelsea`` (a real photo, 300×451) resized to 224×224 as the CLI would."""
    from PIL import Image
    from skimage import data

    return to_rgb_array(Image.fromarray(data.chelsea()), INPUT_SIZE)[None]


def _workload(name, description, timings, flops, reconstructions, **extra) -> dict:
    """One workload's figures; the FLOP-bound columns are filled in once the rate is measured."""
    record = {
        "name": name,
        "description": description,
        "reconstructions": reconstructions,
        "repeats": len(timings.wall),
        "seconds": timings.wall,
        "median_seconds": statistics.median(timings.wall),
        "min_seconds": min(timings.wall),
        "cpu_seconds": timings.cpu,
        "median_cpu_seconds": statistics.median(timings.cpu),
        "flops": flops,
        "gflop": flops / 1e9,
        "peak_rss_mib": peak_rss_mib(),
        "load_average_after": load_average(),
    }
    record.update(extra)
    return record


def time_engine(engine, images, repeats: int, warm_up: bool, top_k: int) -> list:
    """The forward pass and the deconv workloads through ``Engine``, as it serves the CLI and jobs."""
    model = engine.model
    feed = {model.images: to_network_input(images)}
    pools, every_layer = resolve_layers("pools"), resolve_layers("all")
    timings = timed_runs(lambda: model.run(model.activations["block5_pool"], feed), repeats, warm_up)
    workloads = [_workload("forward", "forward pass to block5_pool, 1 image", timings, forward_flops(), 0)]
    for name, layers, mode, runs, description in (
            ("single_pools", pools, "single", repeats, f"single pass, top-{top_k} of 5 pools"),
            ("single_all", every_layer, "single", repeats, f"single pass, top-{top_k} of 18 layers"),
            ("per_layer_pools", pools, "per-layer", repeats, f"per-layer, top-{top_k} of 5 pools"),
            ("per_layer_all", every_layer, "per-layer", min(repeats, PER_LAYER_ALL_MAX_REPEATS),
             f"per-layer, top-{top_k} of 18 layers")):
        seeds = [layer for layer in layers for _ in range(top_k)]
        timings = timed_runs(lambda: engine.deconv(images, layers=layers, top_k=top_k, mode=mode), runs, warm_up)
        workloads.append(_workload(name, description, timings, sweep_flops(seeds), len(seeds)))
    return workloads


def time_autodiff(engine, images, repeats: int, top_k: int) -> dict:
    """The baseline: the channels the sweep picks for the pools, projected one at a time by
    GradientTape. Each layer's tf.function is traced once first, untimed (that is its warm-up)."""
    from visnet.autodiff import AutodiffReference

    picked = engine.deconv(images, layers="pools", top_k=top_k, mode="single").images[0].layers
    seeds = [(layer, feature.channel) for layer, features in picked.items() for feature in features]
    reference = AutodiffReference(engine.weights)
    image_bgr = to_network_input(images[0])
    for layer in picked:
        reference.project(image_bgr, layer, 0)

    def project_all():
        return [reference.project(image_bgr, layer, channel) for layer, channel in seeds]

    timings = timed_runs(project_all, repeats, warm_up=False)
    return _workload("autodiff_pools", f"autodiff, same {len(seeds)}, 1 tape each", timings,
                     autodiff_flops([layer for layer, _ in seeds]), len(seeds),
                     channels=[[layer, channel] for layer, channel in seeds])


def run_benchmark(args) -> dict:
    from visnet.engine import Engine

    top_k = QUICK_TOP_K if args.quick else TOP_K
    settings = from_environment()
    results = {
        "command": " ".join(["python -m visnet.bench"] + list(args.argv)),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": args.weights,
        "device": "cpu",
        "repeats": args.repeats,
        "quick": args.quick,
        "top_k": top_k,
        "load_average_before": load_average(),
    }
    # Fresh processes first, while this one holds no TensorFlow threads or memory.
    results["worker_ready"] = worker_ready(args.weights, settings.models_dir, 1 if args.quick else WORKER_READY_RUNS)
    results["machine"] = machine_info()

    engine = Engine.load(args.weights, device="cpu", models_dir=settings.models_dir)
    results["engine_ready_seconds_in_process"] = engine.ready_seconds
    images = benchmark_image()
    workloads = time_engine(engine, images, args.repeats, not args.quick, top_k)
    workloads.append(time_autodiff(engine, images, args.repeats, top_k))

    # Throughput comes last, so that its buffers do not raise the workloads' peak RSS.
    throughput = conv_throughput(args.repeats, batch=1 if args.quick else THROUGHPUT_BATCH)
    results["conv_throughput"] = throughput
    rate, cpu_rate = throughput["rate_gflop_per_second"], throughput["rate_gflop_per_cpu_second"]
    for record in workloads:
        record["flop_bound_seconds"] = record["gflop"] / rate
        record["ratio_to_flop_bound"] = record["median_seconds"] / record["flop_bound_seconds"]
        # The same ratio in CPU time: less sensitive to other processes, blind to idle cores.
        record["cpu_ratio_to_flop_bound"] = record["median_cpu_seconds"] / (record["gflop"] / cpu_rate)
    results["workloads"] = {record["name"]: record for record in workloads}
    results["peak_rss_mib"] = peak_rss_mib()
    results["load_average_after"] = load_average()
    results["targets"] = targets(results)
    return results


def targets(results) -> list:
    by_name = results["workloads"]
    single, baseline = by_name["single_pools"], by_name["autodiff_pools"]
    ratio = single["ratio_to_flop_bound"]
    speedup = baseline["median_seconds"] / single["median_seconds"]
    ready = results["worker_ready"]["total_seconds"]
    return [
        {"target": f"{single['reconstructions']}-reconstruction single pass ≤ 1.15 × dense FLOP-bound time",
         "measured": f"{ratio:.2f} ×", "value": ratio, "met": ratio <= TARGET_FLOP_BOUND_RATIO},
        {"target": f"single pass ≥ 2 × faster than the autodiff baseline ({single['reconstructions']} "
                   "reconstructions)",
         "measured": f"{speedup:.2f} × faster", "value": speedup, "met": speedup >= TARGET_SPEEDUP},
        {"target": "worker-ready (import, build graph, load weights) ≤ 10 s",
         "measured": f"{ready:.2f} s", "value": ready, "met": ready <= TARGET_WORKER_READY_SECONDS},
    ]


# ------------------------------------------------------------------------------------- report

def format_report(results) -> str:
    machine, throughput, ready = results["machine"], results["conv_throughput"], results["worker_ready"]
    lines = [
        f"VisNet deconvnet benchmark: weights {results['weights']}, device cpu, {results['repeats']} repeats"
        + (" (QUICK smoke run: no warm-up, figures not meaningful)" if results["quick"] else ""),
        f"machine: {machine['cpu_model']}, {machine['cores']} cores ({machine['cores_usable']} usable), "
        f"TensorFlow {machine['tensorflow']}, oneDNN {machine['onednn']}",
        f"load average (1, 5, 15 min): before {_loads(results['load_average_before'])}, "
        f"after {_loads(results['load_average_after'])}",
        "",
        f"dense 3×3 conv throughput, 13 VGG16 shapes, batch {throughput['batch']}: "
        f"conv2d {throughput['forward']['gflop_per_second']:.1f} GFLOP/s, "
        f"conv2d_backprop_input {throughput['backprop_input']['gflop_per_second']:.1f} GFLOP/s",
        f"machine rate (the faster of the two): {throughput['rate_gflop_per_second']:.1f} GFLOP/s "
        f"({throughput['rate_gflop_per_cpu_second']:.1f} GFLOP per CPU-second)",
        f"  {'layer (size, Cin→Cout)':<28} {'conv2d GFLOP/s':>15} {'backprop-input GFLOP/s':>23}",
    ]
    for layer in CONV_LAYERS:
        shape = f"{layer.name} ({layer.resolution}, {layer.in_channels}→{layer.channels})"
        lines.append(f"  {shape:<28} {throughput['forward']['layers'][layer.name]['gflop_per_second']:>15.1f} "
                     f"{throughput['backprop_input']['layers'][layer.name]['gflop_per_second']:>23.1f}")
    lines += [
        "",
        f"{'workload':<36} {'recs':>4} {'runs':>4} {'median s':>9} {'min s':>7} {'GFLOP':>7} "
        f"{'bound s':>8} {'ratio':>6} {'cpu s':>7} {'cpu ratio':>9} {'peak RSS MiB':>12} {'load1':>5}",
    ]
    for record in results["workloads"].values():
        lines.append(
            f"{record['description']:<36} {record['reconstructions']:>4} {record['repeats']:>4} "
            f"{record['median_seconds']:>9.3f} {record['min_seconds']:>7.3f} {record['gflop']:>7.1f} "
            f"{record['flop_bound_seconds']:>8.3f} {record['ratio_to_flop_bound']:>6.2f} "
            f"{record['median_cpu_seconds']:>7.3f} {record['cpu_ratio_to_flop_bound']:>9.2f} "
            f"{record['peak_rss_mib']:>12.0f} {record['load_average_after'][0]:>5.2f}")
    lines += [
        "ratio = median / FLOP-bound time; cpu s = median CPU seconds of the process (all threads);",
        "cpu ratio = the same ratio in CPU time against the CPU-time rate; peak RSS = process high-water mark",
        "",
        f"worker ready, fresh process, median of {ready['runs']}: import {ready['import_seconds']:.2f} s, "
        f"load + build {ready['load_seconds']:.2f} s, total {ready['total_seconds']:.2f} s "
        f"(interpreter start included), peak RSS {ready['peak_rss_mib']:.0f} MiB",
        "",
        "targets (issue 2):",
    ]
    lines += [f"  {'PASS' if item['met'] else 'MISS'}  {item['target']}: {item['measured']}"
              for item in results["targets"]]
    return "\n".join(lines)


def _loads(values) -> str:
    return " ".join(f"{value:.2f}" for value in values)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.argv = argv
    results = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(format_report(results))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
