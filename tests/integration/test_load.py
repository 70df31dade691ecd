"""A small run of scripts/load_test.py against the session's gunicorn (two processes) and worker:
mixed uploads, polls, PNG and archive downloads; no 5xx but 503, the queue drains with RQ's started
registry empty, and the web processes' memory stays flat after the warm-up requests."""
import json
import subprocess
import sys

import pytest

from tests.support.paths import ARTIFACTS, EXAMPLES, PROJECT_ROOT

pytestmark = pytest.mark.integration

WEB_GROWTH_LIMIT_MIB = 24


def test_a_small_load_run(live_server, worker):
    report_path = ARTIFACTS / "load-test.json"
    command = [sys.executable, str(PROJECT_ROOT / "scripts" / "load_test.py"), "--base", live_server,
               "--requests", "400", "--time-limit", "60", "--concurrency", "4", "--warmup", "100",
               "--photos", str(EXAMPLES / "coffee.jpg"), str(EXAMPLES / "chelsea.jpg"), "--option-sets", "2",
               "--drain-timeout", "180", "--json", str(report_path)]
    finished = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=400)
    assert report_path.is_file(), finished.stdout + finished.stderr
    report = json.loads(report_path.read_text())
    summary = finished.stdout[-3000:] + finished.stderr[-3000:]

    assert report["unexpected_statuses"] == {}, summary
    assert all(status in ("200", "202", "503") for status in report["statuses"]), summary
    assert report["rate_limited"] == 0
    assert set(report["latency"]) == {"upload", "poll", "file", "archive", "health"}, summary
    assert report["drained"] and report["started_registry_after_drain"] == 0, summary
    assert report["queue_after_drain"]["length"] == 0
    assert report["jobs"]["new_finished"] == report["jobs"]["new"], report["jobs"]["new_unfinished"]
    web, workers = report["memory"]["web"], report["memory"]["worker"]
    assert web["processes_seen"] >= 3, web  # the master and two processes, found from the port
    assert workers["processes_seen"] >= 1 and workers["largest"]["end_mib"] > 0, workers
    assert web["largest"]["growth_after_warmup_mib"] < WEB_GROWTH_LIMIT_MIB, web
    assert finished.returncode == 0, summary
