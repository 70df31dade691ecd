"""What every benchmark shares: the machine it runs on, its load, timing, the dense convolution rate
that is the yardstick of every FLOP bound, the benchmark photo, and writing the results.

The dense 3×3 convolution rate is measured on the 13 VGG16 conv shapes (``conv2d`` and
``conv2d_backprop_input``); FLOPs come from :mod:`visnet.architecture`'s FLOP model.
"""
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import NamedTuple

from visnet.architecture import CONV_LAYERS, INPUT_SIZE, conv_flops
from visnet.preprocessing import to_rgb_array
from visnet.settings import from_environment

THROUGHPUT_BATCH = 4


def peak_rss_mib() -> float:
    """This process's own peak RSS in MiB: Linux's VmHWM, the high-water mark of its address space.

    Not ``ru_maxrss``: Linux carries a process's ``ru_maxrss`` across fork and exec, so a child started by a
    process holding 2.3 GB reports at least 2.3 GB whatever it does itself (measured: a child that runs nothing
    reported its parent's 2316 MiB). VmHWM belongs to the address space, which exec replaces."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: the best there is (KiB)


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
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "onednn": onednn_state(),
        "gpus_visible": len(tf.config.list_physical_devices("GPU")),
    }


def onednn_state() -> str:
    """Whether this process's TensorFlow runs its oneDNN kernels, as TensorFlow itself says, and the setting.

    Unset, TensorFlow turns them on only on x86 CPUs with AVX-512 VNNI or BF16 or AMX; an AVX2 CPU runs Eigen's
    kernels (the benchmark said "on (default)" there, from the setting alone, until 2026-12-07)."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own test helpers read it here
        state = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    except (ImportError, AttributeError):
        state = "unknown"
    return f"{state} (TF_ENABLE_ONEDNN_OPTS={from_environment().onednn or 'unset'})"


class ConvRateProbe:
    """The dense 3×3 'same' convolution rate of this machine on the 13 VGG16 conv shapes, measurable again and
    again on one graph and session (:meth:`measure`; :func:`conv_throughput` measures it once).

    The graph holds, per shape, a ``conv2d`` and a ``conv2d_backprop_input`` on random variables; each op is run
    on its own (its output is not fetched) and timed, median of ``repeats``. The rate of each kind is its total
    FLOPs over the sum of its medians; the machine's rate is the faster kind's.
    """

    def __init__(self, batch: int = THROUGHPUT_BATCH):
        import tensorflow as tf

        def variable(shape, seed):
            return tf.compat.v1.Variable(tf.random.uniform(shape, -1.0, 1.0, seed=seed), trainable=False)

        self.batch = batch
        self.graph = tf.Graph()
        self.ops = {"forward": {}, "backprop_input": {}}
        with self.graph.as_default(), tf.device("/device:CPU:0"):
            for index, layer in enumerate(CONV_LAYERS):
                size = layer.resolution
                kernel = variable([3, 3, layer.in_channels, layer.channels], 3 * index)
                inputs = variable([batch, size, size, layer.in_channels], 3 * index + 1)
                gradients = variable([batch, size, size, layer.channels], 3 * index + 2)
                self.ops["forward"][layer.name] = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME").op
                self.ops["backprop_input"][layer.name] = tf.compat.v1.nn.conv2d_backprop_input(
                    [batch, size, size, layer.in_channels], kernel, gradients, strides=[1, 1, 1, 1], padding="SAME").op
            initialise = tf.compat.v1.global_variables_initializer()
        config = tf.compat.v1.ConfigProto(allow_soft_placement=True)  # as visnet.chain.graph.ChainGraph's session
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self.session.run(initialise)

    def measure(self, repeats: int, warm_up: bool = True) -> dict:
        results = {"batch": self.batch, "repeats": repeats}
        for kind, by_layer in self.ops.items():
            per_layer, total_flops, total_seconds, total_cpu = {}, 0, 0.0, 0.0
            for layer in CONV_LAYERS:
                timings = timed_runs(lambda: self.session.run(by_layer[layer.name]), repeats, warm_up)
                seconds, cpu = statistics.median(timings.wall), statistics.median(timings.cpu)
                flops = self.batch * conv_flops(layer)
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

    def close(self):
        self.session.close()


def conv_throughput(repeats: int, batch: int = THROUGHPUT_BATCH, warm_up: bool = True) -> dict:
    """Dense 3×3 'same' convolution rate of this machine on the 13 VGG16 conv shapes, measured once
    (:class:`ConvRateProbe`), median of ``repeats`` per op."""
    probe = ConvRateProbe(batch)
    try:
        return probe.measure(repeats, warm_up)
    finally:
        probe.close()


def benchmark_image():
    """scikit-image's ``chelsea`` (a real photo, 300×451) resized to 224×224 as the CLI would."""
    from PIL import Image
    from skimage import data

    return to_rgb_array(Image.fromarray(data.chelsea()), INPUT_SIZE)[None]


def write_results(out: Path, results: dict) -> Path:
    """The results as indented JSON at ``out``, its folder made if needed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return out


def format_loads(values) -> str:
    return " ".join(f"{value:.2f}" for value in values)
