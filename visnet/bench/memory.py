"""Peak memory per workload (issue 14): each deconv workload in a fresh interpreter, so that its peak RSS is
its own and not the high-water mark of everything the benchmark ran before it.

A child loads the engine with a sweep memory budget (``--sweep-memory-mb``; ``0`` here: no limit, the
one-run sweep), runs the workload once untimed and ``repeats`` times timed (``seed=both``, the CLI's
default) and reports its peak RSS after loading and at the end (its own VmHWM: :func:`visnet.bench.common.peak_rss_mib`), the median seconds and the
number of chunks the sweep ran in. The same workload under the default budget and without one gives the
budget's cost in time and its saving in memory, on the same machine in the same run. Targets: one photo's
54 reconstructions (``--layers all --top-k 3``) under 2 GB of peak RSS; and the bound README states for every
workload under a budget, the largest job there is (``--layers all --top-k 16``) included: peak RSS above the
loaded engine ≤ the budget + the job's results + ``FIXED_OVERHEAD_MIB``.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from visnet.bench.common import load_average
from visnet.methods import MAX_TOP_K
from visnet.settings import PROJECT_ROOT

TARGET_PEAK_RSS_MIB = 2000 * 1000 * 1000 / 2**20  # 2 GB
UNLIMITED = 0
# What a budgeted job holds above the loaded engine besides its largest chunk's working memory (the budget) and its
# results: TensorFlow's oneDNN allocator keeps a BFC pool that never shrinks (the forward pass's working memory, and
# fragmentation between chunks of different shapes). Measured on the largest job (all 18 layers, top 16, 288
# reconstructions, 204 MiB of results) at budgets of 128, 256, 512, 896 and 1536 MiB: 656, 576, 589, 328 and 114 MiB
# (2-core AMD EPYC, AVX-512). It grows as the budget shrinks (more chunks, more fragmentation). On a 2-core Intel Xeon
# (AVX-512, AMX), at the smallest budgets the settings allow: 506, 460 and 463 MiB at 1, 32 and 128 MiB (494, 376
# and 172 chunks), 379 MiB at the default 896.
FIXED_OVERHEAD_MIB = 700

_CHILD = """
import json, statistics, sys, time
started = time.perf_counter()
from visnet.engine import Engine
imported = time.perf_counter()
from visnet.bench.common import benchmark_image, peak_rss_mib
from visnet.sweep_chunks import MIB, plan_chunks
weights, layers, top_k, budget, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
engine = Engine.load(weights, device="cpu", memory_budget_mb=budget or 2**40)
loaded = peak_rss_mib()
print(json.dumps({"import_seconds": imported - started, "load_seconds": time.perf_counter() - imported,
                  "peak_rss_mib": loaded}), flush=True)
images = benchmark_image()
result = engine.deconv(images, layers=layers, top_k=top_k, seed="both")
seconds = []
for _ in range(repeats):
    started = time.perf_counter()
    engine.deconv(images, layers=layers, top_k=top_k, seed="both")
    seconds.append(time.perf_counter() - started)
chunks = plan_chunks({name: top_k for name in result.layers}, 1, engine.memory_budget_mb * MIB, "both")
held = [array for features in result.images[0].layers.values() for feature in features
        for array in (feature.reconstruction, feature.max_reconstruction, feature.activation) if array is not None]
print(json.dumps({"loaded_peak_rss_mib": loaded, "peak_rss_mib": peak_rss_mib(),
                  "results_mib": sum(array.nbytes for array in held) / MIB,
                  "median_seconds": statistics.median(seconds) if seconds else None, "chunks": len(chunks),
                  "reconstructions": sum(len(features) for features in result.images[0].layers.values())}))
"""


def measure(weights: str, layers: str, top_k: int, budget_mb: int, repeats: int) -> dict:
    """One workload in a fresh interpreter under ``budget_mb`` (0: no limit)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile("w+") as log:  # a file, so that a full pipe cannot stall the child
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", _CHILD, weights, layers, str(top_k), str(budget_mb),
                                    str(repeats)], stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                                   cwd=PROJECT_ROOT)
        ready = process.stdout.readline()
        total = time.perf_counter() - started
        last = process.communicate()[0].strip()
        if process.returncode != 0 or not last:
            log.seek(0)
            raise RuntimeError(f"the memory benchmark's child failed (exit {process.returncode}):\n{log.read()[-2000:]}")
    record = json.loads(last)
    record["ready"] = {**json.loads(ready), "total_seconds": total}
    record.update({"layers": layers, "top_k": top_k, "budget_mb": budget_mb or None, "repeats": repeats,
                   "load_average_after": load_average()})
    return record


def time_memory(weights: str, top_k: int, budget_mb: int, repeats: int, unlimited: bool = True) -> dict:
    """W15 (the pools) and all 18 layers under ``budget_mb``; with ``unlimited`` (the full run), also all 18 layers
    without a budget, and the largest job there is (all 18 layers, top ``MAX_TOP_K``) under the budget."""
    runs = {"pools": measure(weights, "pools", top_k, budget_mb, repeats),
            "all": measure(weights, "all", top_k, budget_mb, repeats)}
    if unlimited:
        runs["all_one_run"] = measure(weights, "all", top_k, UNLIMITED, repeats)
        runs["largest"] = measure(weights, "all", MAX_TOP_K, budget_mb, min(repeats, 1))
    return runs


def over_bound_mib(run) -> float:
    """How far a budgeted run's peak RSS above its loaded engine is from the stated bound, budget + results +
    ``FIXED_OVERHEAD_MIB`` (negative: under it)."""
    above_engine = run["peak_rss_mib"] - run["loaded_peak_rss_mib"]
    return above_engine - (run["budget_mb"] + run["results_mib"] + FIXED_OVERHEAD_MIB)


def memory_targets(runs) -> list:
    every = runs["all"]
    targets = [{"target": f"peak RSS of one photo's {every['reconstructions']} features (all 18 layers, seed=both) "
                          "< 2 GB",
                "measured": f"{every['peak_rss_mib']:.0f} MiB", "value": every["peak_rss_mib"],
                "met": every["peak_rss_mib"] < TARGET_PEAK_RSS_MIB}]
    budgeted = {name: run for name, run in runs.items() if run["budget_mb"] and "results_mib" in run}
    if budgeted:
        worst = max(budgeted, key=lambda name: over_bound_mib(budgeted[name]))
        run = budgeted[worst]
        names = ", ".join(f"{each['layers']} top-{each['top_k']}" for each in budgeted.values())
        targets.append({
            "target": f"peak RSS above the loaded engine <= budget + results + {FIXED_OVERHEAD_MIB} MiB, every "
                      f"budgeted workload ({names})",
            "measured": f"closest: {run['layers']} top-{run['top_k']}, "
                        f"{run['peak_rss_mib'] - run['loaded_peak_rss_mib']:.0f} MiB against "
                        f"{run['budget_mb']} + {run['results_mib']:.0f} + {FIXED_OVERHEAD_MIB}",
            "value": over_bound_mib(run), "met": over_bound_mib(run) <= 0})
    return targets


def memory_report(runs) -> str:
    lines = ["peak RSS per workload, each in a fresh process (engine loaded, one untimed run, then the timed ones; "
             "seed=both):"]
    for run in runs.values():
        budget = f"budget {run['budget_mb']} MiB" if run["budget_mb"] else "no budget (one run)"
        time_text = f", median {run['median_seconds']:.2f} s of {run['repeats']}" if run["median_seconds"] else ""
        lines.append(f"  {run['layers']}, top-{run['top_k']} ({run['reconstructions']} features), {budget}: "
                     f"{run['chunks']} chunk(s), peak RSS {run['peak_rss_mib']:.0f} MiB (engine loaded "
                     f"{run['loaded_peak_rss_mib']:.0f} MiB; results {run.get('results_mib', 0):.0f} MiB){time_text}, "
                     f"load1 {run['load_average_after'][0]:.2f}")
    if "all_one_run" in runs and runs["all"]["median_seconds"] and runs["all_one_run"]["median_seconds"]:
        chunked, one = runs["all"], runs["all_one_run"]
        lines.append(f"  all 18 layers, chunked / one run: time {chunked['median_seconds'] / one['median_seconds']:.2f} ×, "
                     f"peak RSS {chunked['peak_rss_mib'] / one['peak_rss_mib']:.2f} ×")
    return "\n".join(lines)
