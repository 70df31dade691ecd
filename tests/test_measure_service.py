"""scripts/measure_service.py's figures (`make measure`): the target as a ratio, and the CPU it charges to each
process. The measuring run itself (a worker, gunicorn, Chromium) is a separate command, not a test."""
import importlib.util
import subprocess
import sys
import time

import pytest

from visnet.settings import PROJECT_ROOT

_SPEC = importlib.util.spec_from_file_location("measure_service", PROJECT_ROOT / "scripts" / "measure_service.py")
measure_service = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(measure_service)


def _run(compute, fetched, cpu=None):
    return {"fetched": fetched, "finished": fetched - 0.1, "files": 62, "requests": 70, "cpu": cpu,
            "timings": {"network_seconds": compute, "total_seconds": compute + 0.2, "write_seconds": 0.15},
            "queued": 0.01, "picked_up": 0.02, "ended": compute + 0.25}


def test_the_ratio_target_is_compute_plus_the_margin_on_the_issues_machine():
    assert measure_service.TARGET_RATIO == pytest.approx((0.9 + 0.3) / 0.9)


def test_runs_are_judged_against_the_target_in_seconds_and_as_a_ratio():
    # On a machine twice as slow: 0.5 s over 2 s of compute misses the 0.3 s but is within 1.33 × compute; the
    # last run is within neither.
    runs = [_run(2.0, 2.5), _run(2.0, 2.6), _run(1.0, 1.25), _run(1.0, 1.4)]
    figures = measure_service.api_figures(runs)
    assert figures["meets_target"] == 1
    assert figures["meets_target_ratio"] == 3
    assert figures["fetched_over_compute"] == pytest.approx(1.275)  # the median of 1.25, 1.3, 1.25 and 1.4


def test_cpu_is_medianed_per_process():
    runs = [_run(2.0, 2.5, {"worker": 3.0, "web": 0.2, "client": 0.1}),
            _run(2.0, 2.5, {"worker": 5.0, "web": 0.4, "client": 0.3}),
            _run(2.0, 2.5, {"worker": 4.0, "web": 0.3, "client": 0.2})]
    assert measure_service.api_figures(runs)["cpu_seconds"] == {"worker": 4.0, "web": 0.3, "client": 0.2}


def test_cpu_seconds_counts_a_process_and_its_children():
    # A parent that starts a child spinning for 0.5 s of CPU, waits for it, then sleeps: the child's CPU is
    # counted while it runs and, once it has ended, through the parent's counters. Waited for until 0.45 s: the
    # counters are in clock ticks, and their sum came to 0.39999999999999997 for a spin of 0.4 s.
    script = ("import subprocess, sys, time\n"
              "subprocess.run([sys.executable, '-c', 'import time\\nend = time.process_time() + 0.5\\n"
              "while time.process_time() < end: pass'])\n"
              "time.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while measure_service.cpu_seconds(parent.pid) < 0.45 and time.monotonic() < deadline:
            time.sleep(0.05)
        spent = measure_service.cpu_seconds(parent.pid)
        assert 0.45 <= spent < 5
    finally:
        parent.kill()
        parent.wait()
    assert measure_service.cpu_seconds(parent.pid) == 0.0  # gone: nothing to count
