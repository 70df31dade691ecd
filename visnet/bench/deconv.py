"""``python -m visnet.bench``: how fast the deconvnet runs on this machine, against its dense FLOP bound.

    python -m visnet.bench                          # 5 repeats, writes bench-results/deconv.json
    python -m visnet.bench --repeats 9 --out bench-results/run.json --weights hed
    python -m visnet.bench --quick --repeats 1      # smoke run: same code paths, top-1, no warm-up, fewer photos
    python -m visnet.bench --skip cli,memory,scan   # the in-process table only

Workloads, on one real photo (scikit-image's ``chelsea``) on the CPU, each timed ``repeats`` times after
a warm-up run (median and min): the forward pass; the single-pass sweep for the top-3 features of the
five pool layers (15 reconstructions, "W15") and of all 18 layers (54); the per-layer mode for both; W15
with ``seed=both`` (each of the 15 channels also projects its single strongest activation, issue 12) and
with ``seed=max``, and the same 15 max seeds sent down the whole-frame sweep instead of their windows
(``Sweep(windowed=False)``); writing a job's files (:func:`visnet.outputs.write_deconv_outputs`, PNGs,
sheet and manifest) for W15 ``seed=both`` and for all 18 layers ``seed=both`` (``--layers all --top-k 3``),
each against its own compute time, with the writer's threads and serially; and the autodiff baseline, the same 15 reconstructions one at a time by
``tf.GradientTape`` (:class:`visnet.autodiff.AutodiffReference`). A max seed's FLOPs are those of its
windows (:func:`visnet.receptive_fields.max_projection_flops`); their dense FLOPs are a whole-map seed's.

The yardstick is the machine's own dense 3×3 convolution rate, measured in the same run on the 13
VGG16 conv shapes (``conv2d`` and ``conv2d_backprop_input``, batch 4); the faster of the two is the
rate. A workload's FLOP-bound time is its dense FLOP count over that rate. FLOPs count the 3×3
convolutions only (2 per multiply-add; pools, biases and ReLUs are left out): the forward pass is the
13 convs, and a reconstruction from layer L costs one transposed convolution per conv at or below L,
as many FLOPs as the forward conv. The sweep's first transposed convolution of a seed works on one
channel only (see :mod:`visnet.deconvnet`), so it does less than the dense count and can go below 1.0.

The machine may be shared, so every workload also records the CPU seconds of the whole process (all
threads) and the load average after it; a "cpu ratio" compares CPU time with the CPU-time rate of the
same convolutions, which other processes disturb less than wall time. A shared machine's speed also drifts
over the minutes a full run takes, so the two W15 targets are not read from the table: they come from
paired rounds (:func:`time_paired_rounds`), each timing the dense rate, the forward pass and W15 with each seed
one after another, and each judged on its own figures.

Peak memory is the process's peak RSS after each workload: a high-water mark of the whole process, so
it only grows. Worker-ready time is measured in fresh processes that import :mod:`visnet.engine`, call
``Engine.load`` and build the preset sweeps, as a worker does before its first job. The CLI itself runs as a
subprocess on 1 and 6 photos (:mod:`visnet.bench.cli`: time per photo beyond the first, and peak RSS). Peak RSS
per workload, each in a fresh process, with the sweep's memory budget and without it (:mod:`visnet.bench.memory`);
the scan's rate against its forward FLOP bound, in this process and in processes pinned to one core each
(:mod:`visnet.bench.scan_rate`). The service's upload → every PNG time is ``make measure``'s
(``scripts/measure_service.py``). The targets are printed as PASS/MISS lines; the benchmark never fails because of
them. The load average is recorded with every figure: on a busy 2-core machine the times are only as good as the
load lets them be.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from visnet.architecture import CONV_LAYERS, forward_flops, resolve_layers
from visnet.bench.cli import PHOTO_COUNT, QUICK_PHOTO_COUNT, cli_report, cli_targets, time_cli
from visnet.bench.common import (
    THROUGHPUT_BATCH,
    ConvRateProbe,
    benchmark_image,
    conv_throughput,
    format_loads,
    load_average,
    machine_info,
    peak_rss_mib,
    timed_runs,
    write_results,
)
from visnet.bench.memory import memory_report, memory_targets, time_memory
from visnet.bench.scan_rate import scan_rate_report, scan_rate_targets, time_scan_rates
from visnet.numbers import non_negative_argument
from visnet.preprocessing import to_network_input
from visnet.receptive_fields import max_projection_flops
from visnet.settings import PROJECT_ROOT, from_environment

DEFAULT_OUT = Path("bench-results") / "deconv.json"
TOP_K = 3
QUICK_TOP_K = 1
WORKER_READY_RUNS = 3
PER_LAYER_ALL_MAX_REPEATS = 3
MEMORY_MAX_REPEATS = 3
SCAN_IMAGES = 16
OPTIONAL_PARTS = ("cli", "writing", "memory", "scan")  # what --skip may leave out

PAIRED_ROUNDS = 5  # rounds of the paired W15 figures (the quick run: 1)
TARGET_FLOP_BOUND_RATIO = 1.15  # 15-reconstruction single pass, at most this × its FLOP-bound time
TARGET_WORKER_READY_SECONDS = 10.0
TARGET_MAX_SEEDS_EXTRA = 0.5  # W15 seed=both over seed=map: the extra max seeds, at most this × the map seeds' time
TARGET_WRITE_RATIO = 0.25  # writing a job's files, at most this × the compute time of the same job (issue 14)

# Run in a fresh interpreter: what a worker does before its first job. Prints one JSON line when ready.
_WORKER_READY_SCRIPT = """
import json, sys, time
started = time.perf_counter()
import visnet.engine
imported = time.perf_counter()
engine = visnet.engine.Engine.load(sys.argv[1], device="cpu", models_dir=sys.argv[2])
engine.build_presets()  # as a worker's warm-up does before its first job
ready = time.perf_counter()
from visnet.bench.common import peak_rss_mib
print(json.dumps({"import_seconds": imported - started, "load_seconds": ready - imported,
                  "peak_rss_mib": peak_rss_mib(), "sweeps_built": len(engine._sweeps)}), flush=True)
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m visnet.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=non_negative_argument, default=5, help="timed runs per workload (default 5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    parser.add_argument("--weights", default="hed", help="weights name or path (default hed)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: top-1 instead of top-3, no warm-up runs, 1 worker-ready run, "
                             "batch-1 conv throughput, 2-image scan chunks, the CLI on 1 and 2 photos")
    parser.add_argument("--scan-images", type=non_negative_argument, default=SCAN_IMAGES,
                        help=f"images per timed scan chunk (default {SCAN_IMAGES}; pinned workers: half)")
    parser.add_argument("--skip", default="", metavar="PARTS",
                        help=f"comma-separated parts to leave out: {', '.join(OPTIONAL_PARTS)}")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    args.skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    if args.skip - set(OPTIONAL_PARTS):
        parser.error(f"--skip: unknown part(s) {', '.join(sorted(args.skip - set(OPTIONAL_PARTS)))}; "
                     f"expected some of {', '.join(OPTIONAL_PARTS)}")
    if args.quick:
        args.scan_images = min(args.scan_images, 2)
    return args


# --------------------------------------------------------------------------- FLOPs of the workloads
# The forward pass is visnet.architecture.forward_flops; these add the deconv's own passes.

def reconstruction_flops(layer_name: str) -> int:
    """Dense FLOPs of projecting one seed at ``layer_name`` to pixel space: one transposed
    convolution per conv at or below it, each as costly as the forward conv."""
    return forward_flops(layer_name)


def sweep_flops(seed_layers) -> int:
    """One forward pass to ``block5_pool`` plus the reconstruction of every seed."""
    return forward_flops() + sum(reconstruction_flops(name) for name in seed_layers)


def max_seeds_flops(seed_layers) -> int:
    """The windowed projections of one single activation per seed (no forward pass)."""
    return sum(max_projection_flops(name) for name in seed_layers)


def autodiff_flops(seed_layers) -> int:
    """The baseline runs a forward pass to the seed's layer and the backward pass, once per seed."""
    return sum(forward_flops(name) + reconstruction_flops(name) for name in seed_layers)


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
    return workloads + time_max_seeds(engine, images, repeats, warm_up, top_k)


def time_max_seeds(engine, images, repeats: int, warm_up: bool, top_k: int) -> list:
    """W15 with single-activation seeds: seed=both and seed=max through the engine (windowed), and the
    same max seeds through the whole-frame sweep. ``dense_gflop`` is what the max seeds would cost dense."""
    from visnet.deconvnet import Sweep

    pools = resolve_layers("pools")
    seeds = [layer for layer in pools for _ in range(top_k)]
    dense_max_seeds = sum(reconstruction_flops(name) for name in seeds)
    workloads = []
    for seed, flops, dense_flops in (
            ("both", sweep_flops(seeds) + max_seeds_flops(seeds), sweep_flops(seeds) + dense_max_seeds),
            ("max", forward_flops() + max_seeds_flops(seeds), forward_flops() + dense_max_seeds)):
        timings = timed_runs(lambda: engine.deconv(images, layers=pools, top_k=top_k, seed=seed), repeats, warm_up)
        reconstructions = len(seeds) * (2 if seed == "both" else 1)
        workloads.append(_workload(f"single_pools_{seed}", f"single pass, W15 top-{top_k}, seed={seed}",
                                   timings, flops, reconstructions, dense_gflop=dense_flops / 1e9))
    model, sweep = engine.model, Sweep(engine.model, pools, windowed=False)
    feed = {model.images: to_network_input(images), **sweep.seed_feed("max")}
    feed.update({sweep.top_k[name]: top_k for name in pools})
    timings = timed_runs(lambda: model.run(sweep.outputs_for("max"), feed), repeats, warm_up)
    dense_flops = forward_flops() + dense_max_seeds
    workloads.append(_workload("dense_pools_max", f"W15 top-{top_k} max seeds, whole frames", timings,
                               dense_flops, len(seeds), dense_gflop=dense_flops / 1e9))
    return workloads


def time_paired_rounds(engine, images, top_k: int, rounds: int, batch: int) -> dict:
    """The two W15 targets, measured so that the machine's drift cannot decide them. A shared machine's speed
    moves by 15 % and more over the minutes of a full run (a 2-core Intel Xeon gave dense rates of 160, 203 and
    231 GFLOP/s in three runs of one evening, and in one of them W15 with ``seed=both`` timed faster than with
    ``seed=map``, a part of its work). Each round times, one after another, the dense rate (each op of
    :class:`visnet.bench.common.ConvRateProbe` once), the forward pass, and W15 with ``seed=map`` and with
    ``seed=both``; a round's FLOP-bound ratio and extra max-seed time use only its own figures, and the targets
    take the median over the rounds."""
    pools = resolve_layers("pools")
    seeds = [layer for layer in pools for _ in range(top_k)]
    gflop = sweep_flops(seeds) / 1e9
    model = engine.model
    feed = {model.images: to_network_input(images)}

    def seconds(function):
        return timed_runs(function, 1, warm_up=False).wall[0]

    probe = ConvRateProbe(batch)
    records = []
    try:
        probe.measure(1)  # warm-up: oneDNN picks its kernels on the first runs
        for _ in range(rounds):
            rate = probe.measure(1, warm_up=False)["rate_gflop_per_second"]
            forward = seconds(lambda: model.run(model.activations["block5_pool"], feed))
            single = seconds(lambda: engine.deconv(images, layers=pools, top_k=top_k))
            both = seconds(lambda: engine.deconv(images, layers=pools, top_k=top_k, seed="both"))
            records.append({"rate_gflop_per_second": rate, "forward_seconds": forward, "map_seconds": single,
                            "both_seconds": both, "flop_bound_ratio": single / (gflop / rate),
                            "max_seeds_extra": (both - single) / (single - forward)})
    finally:
        probe.close()
    return {"rounds": records, "reconstructions": len(seeds), "batch": batch,
            "flop_bound_ratio": statistics.median(record["flop_bound_ratio"] for record in records),
            "max_seeds_extra": statistics.median(record["max_seeds_extra"] for record in records),
            "load_average_after": load_average()}


def paired_report(paired) -> str:
    """One line per paired round, and the medians the targets take."""
    lines = ["paired rounds (the dense rate, the forward pass, W15 seed=map and seed=both, one after another; "
             "the two W15 targets take the medians):"]
    for index, record in enumerate(paired["rounds"], 1):
        lines.append(f"  round {index}: rate {record['rate_gflop_per_second']:.1f} GFLOP/s, forward "
                     f"{record['forward_seconds']:.3f} s, map {record['map_seconds']:.3f} s, both "
                     f"{record['both_seconds']:.3f} s: {record['flop_bound_ratio']:.2f} × the FLOP bound, extra "
                     f"max seeds {record['max_seeds_extra']:.2f} ×")
    lines.append(f"  medians: {paired['flop_bound_ratio']:.2f} × the FLOP bound, extra max seeds "
                 f"{paired['max_seeds_extra']:.2f} ×, load1 {paired['load_average_after'][0]:.2f}")
    return "\n".join(lines)


def time_writing(engine, images, repeats: int, warm_up: bool, top_k: int) -> dict:
    """Each job's compute (``Engine.deconv``) and the writing of its files into a fresh folder, with the
    writer's default threads and with one (serially), median of ``repeats``. ``write_ratio``: write / compute."""
    from visnet.outputs import write_deconv_outputs, write_workers

    jobs = {}
    for name, layers, description in (("pools_both", "pools", f"W15: top-{top_k} of 5 pools, seed=both"),
                                      ("all_both", "all", f"top-{top_k} of 18 layers, seed=both")):
        last = {}  # the last timed run's result is the one written (not computed once more)

        def compute_job():
            last.pop("result", None)  # one result held at a time
            last["result"] = engine.deconv(images, layers=layers, top_k=top_k, seed="both")

        compute = timed_runs(compute_job, repeats, warm_up)
        result = last["result"]
        record = {"description": description, "compute_seconds": statistics.median(compute.wall),
                  "workers": write_workers()}
        for key, workers in (("write", None), ("serial_write", 1)):
            with tempfile.TemporaryDirectory(prefix="visnet-bench-write-") as parent:
                folders = iter(range(repeats + 1))

                def write():
                    folder = Path(parent) / str(next(folders))
                    folder.mkdir()
                    write_deconv_outputs(result, 0, images[0], folder, workers=workers)
                    return folder

                timings = timed_runs(write, repeats, warm_up)
                record["files"] = sum(1 for path in Path(parent, "0").rglob("*") if path.is_file())
            record[f"{key}_seconds"] = statistics.median(timings.wall)
            record[f"{key}_ratio"] = record[f"{key}_seconds"] / record["compute_seconds"]
        record["load_average_after"] = load_average()
        jobs[name] = record
    return jobs


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
    # Its own fresh processes: the memory workloads' children load the engine but build no preset sweeps, which a
    # worker does before its first job, so their start-up is not a worker's (4-5 s short on a 2-core AMD EPYC).
    results["worker_ready"] = worker_ready(args.weights, settings.models_dir, 1 if args.quick else WORKER_READY_RUNS)
    results["machine"] = machine_info()

    engine = Engine.load(args.weights, device="cpu", models_dir=settings.models_dir)
    results["engine_ready_seconds_in_process"] = engine.ready_seconds
    images = benchmark_image()
    workloads = time_engine(engine, images, args.repeats, not args.quick, top_k)
    workloads.append(time_autodiff(engine, images, args.repeats, top_k))
    # issue 14's workloads: all 18 layers, top 3 (the quick run: the pools, top 1)
    if "cli" not in args.skip:
        results["cli"] = time_cli(engine, args.weights, "pools" if args.quick else "all", top_k,
                                  photos=QUICK_PHOTO_COUNT if args.quick else PHOTO_COUNT)
    if "writing" not in args.skip:
        results["writing"] = time_writing(engine, images, args.repeats, not args.quick, top_k)
    if "memory" not in args.skip:
        results["memory"] = time_memory(args.weights, top_k, settings.sweep_memory_mb,
                                        0 if args.quick else min(args.repeats, MEMORY_MAX_REPEATS),
                                        unlimited=not args.quick)

    # Throughput comes last, so that its buffers do not raise the workloads' peak RSS.
    batch = 1 if args.quick else THROUGHPUT_BATCH
    throughput = conv_throughput(args.repeats, batch=batch)
    results["conv_throughput"] = throughput
    rate, cpu_rate = throughput["rate_gflop_per_second"], throughput["rate_gflop_per_cpu_second"]
    results["paired"] = time_paired_rounds(engine, images, top_k, 1 if args.quick else PAIRED_ROUNDS, batch)
    if "scan" not in args.skip:
        results["scan"] = time_scan_rates(engine, args.weights, rate, args.scan_images, max(1, args.scan_images // 2),
                                          args.repeats, batch, alone=not args.quick)
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
    paired = results["paired"]
    ratio, extra, rounds = paired["flop_bound_ratio"], paired["max_seeds_extra"], len(paired["rounds"])
    ready = results["worker_ready"]["total_seconds"]
    return [
        {"target": f"{paired['reconstructions']}-reconstruction single pass ≤ 1.15 × dense FLOP-bound time",
         "measured": f"{ratio:.2f} × (median of {rounds} paired round(s))", "value": ratio,
         "met": ratio <= TARGET_FLOP_BOUND_RATIO},
        {"target": "worker-ready (import, build graph, load weights) ≤ 10 s",
         "measured": f"{ready:.2f} s", "value": ready, "met": ready <= TARGET_WORKER_READY_SECONDS},
        {"target": "W15 seed=both: the extra max seeds (both − map) ≤ 0.5 × the map seeds' time (map − forward)",
         "measured": f"{extra:.2f} × (median of {rounds} paired round(s))", "value": extra,
         "met": extra <= TARGET_MAX_SEEDS_EXTRA},
        *(cli_targets(results["cli"]) if "cli" in results else []),
    ] + [
        {"target": f"writing ≤ {TARGET_WRITE_RATIO} × compute, {job['description']}",
         "measured": f"{job['write_ratio']:.2f} × ({job['write_seconds']:.3f} s / {job['compute_seconds']:.3f} s)",
         "value": job["write_ratio"], "met": job["write_ratio"] <= TARGET_WRITE_RATIO}
        for job in results.get("writing", {}).values()
    ] + (memory_targets(results["memory"]) if "memory" in results else []) + (
        scan_rate_targets(results["scan"]) if "scan" in results else [])


# ------------------------------------------------------------------------------------- report

def format_report(results) -> str:
    machine, throughput, ready = results["machine"], results["conv_throughput"], results["worker_ready"]
    lines = [
        f"VisNet deconvnet benchmark: weights {results['weights']}, device cpu, {results['repeats']} repeats"
        + (" (QUICK smoke run: no warm-up, figures not meaningful)" if results["quick"] else ""),
        f"machine: {machine['cpu_model']}, {machine['cores']} cores ({machine['cores_usable']} usable), "
        f"TensorFlow {machine['tensorflow']}, oneDNN {machine['onednn']}",
        f"load average (1, 5, 15 min): before {format_loads(results['load_average_before'])}, "
        f"after {format_loads(results['load_average_after'])}",
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
        max_seeds_report(results["workloads"]),
        "",
        paired_report(results["paired"]),
    ]
    for part, report in (("cli", cli_report), ("writing", writing_report), ("memory", memory_report),
                         ("scan", scan_rate_report)):
        if part in results:
            lines += ["", report(results[part])]
    lines += [
        "",
        "service, upload → finished → every PNG fetched on a warm worker: `make measure` (scripts/measure_service.py)",
        "",
        "targets (issues 2, 12 and 14):",
    ]
    lines += [f"  {'PASS' if item['met'] else 'MISS'}  {item['target']}: {item['measured']}"
              for item in results["targets"]]
    return "\n".join(lines)


def writing_report(jobs) -> str:
    """One line per job: its files' write time (threads, and serially) against its compute time."""
    return "\n".join(
        f"write, {job['description']}: {job['files']} files in {job['write_seconds']:.3f} s with "
        f"{job['workers']} threads ({job['serial_write_seconds']:.3f} s serially), compute "
        f"{job['compute_seconds']:.3f} s: write / compute {job['write_ratio']:.2f} × (serially "
        f"{job['serial_write_ratio']:.2f} ×), load1 {job['load_average_after'][0]:.2f}"
        for job in jobs.values())


def max_seeds_report(by_name) -> str:
    """W15 with single-activation seeds beside W15 with whole maps, and the windows against dense FLOPs."""
    single, both, only_max = by_name["single_pools"], by_name["single_pools_both"], by_name["single_pools_max"]
    dense, forward = by_name["dense_pools_max"], by_name["forward"]
    windowed_gflop = only_max["gflop"] - forward["gflop"]
    dense_gflop = dense["gflop"] - forward["gflop"]
    return "\n".join([
        f"W15 seed=both / seed=map: {both['median_seconds'] / single['median_seconds']:.2f} × "
        f"({both['median_seconds']:.3f} s / {single['median_seconds']:.3f} s)",
        f"max projections of W15 (15 single activations): windowed {windowed_gflop:.1f} GFLOP against "
        f"{dense_gflop:.1f} GFLOP dense ({windowed_gflop / dense_gflop:.2f} ×); time beyond the forward pass: "
        f"windowed {only_max['median_seconds'] - forward['median_seconds']:.3f} s, whole-frame "
        f"{dense['median_seconds'] - forward['median_seconds']:.3f} s "
        f"({(dense['median_seconds'] - forward['median_seconds']) / (only_max['median_seconds'] - forward['median_seconds']):.2f} × faster windowed)",
    ])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.argv = argv
    results = run_benchmark(args)
    write_results(args.out, results)
    print(format_report(results))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
