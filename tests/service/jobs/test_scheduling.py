"""Scheduling a scan's jobs against a real Redis, without workers: what is enqueued, kept, replaced, and
when a scan gives up. Jobs are put in the states a worker would leave them in by hand."""
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import redis
from PIL import Image
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from service.jobs import scheduling
from service.jobs.scheduling import enqueue_scan, requeue_dead, resume_scan, scan_status
from visnet.scan import ScanOptions, create_scan, store
from visnet.scan.merge import merge_scan
from visnet.settings import PROJECT_ROOT, scan_queue_name

QUEUE = "scan-unit"
UNIT_DB = 3


@pytest.fixture
def connection(redis_instance):
    client = redis.Redis.from_url(f"{redis_instance['url']}?db={UNIT_DB}")
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def scan_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for index in range(7):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    scan_dir = tmp_path / store.new_scan_id()
    create_scan(scan_dir, folder, ScanOptions(layers="block1_pool", k=2, chunk_size=3, project_channels=3,
                                              project_block=2))
    return scan_dir


def write_chunk(scan_dir, index):
    """A finished chunk, as compute_chunk would leave it (values made up)."""
    from visnet.scan import topk

    record = store.load_scan(scan_dir)
    start, stop = record["chunks"][index]
    rows = np.arange((stop - start) * 64, dtype=np.float32).reshape(stop - start, 64)
    ids = np.arange(start, stop)
    store.save_npz_atomically(store.chunk_path(scan_dir, index), {
        "ids": ids, "block1_pool/rows": rows, **topk.rank(rows, ids, 2).arrays("block1_pool/")})


def pretend_started(connection, job_id, seconds_ago):
    """What a worker that took the job and then died leaves behind."""
    job = Job.fetch(job_id, connection=connection)
    Queue(QUEUE, connection=connection).remove(job)
    job.started_at = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    job.worker_name = "gone"
    job.set_status(JobStatus.STARTED)
    job.save()
    connection.zadd(StartedJobRegistry(QUEUE, connection=connection).key, {f"{job_id}:execution": time.time() + 600})
    return job


def current_jobs(connection, scan_dir):
    record = store.load_scan(scan_dir)
    stored = connection.hgetall(f"visnet:scan:{record['id']}:jobs")
    return {key.decode(): value.decode() for key, value in stored.items()}


def test_enqueue_makes_a_job_per_missing_chunk_and_a_merge_that_waits(connection, scan_dir):
    write_chunk(scan_dir, 1)
    summary = enqueue_scan(connection, QUEUE, scan_dir, job_timeout=77)
    assert summary["phase"] == "chunks" and summary["enqueued"] == ["chunk-00000", "chunk-00002"]
    jobs = current_jobs(connection, scan_dir)
    queue = Queue(QUEUE, connection=connection)
    assert queue.job_ids == [jobs["chunk-00000"], jobs["chunk-00002"]]
    merge = Job.fetch(jobs["merge"], connection=connection)
    assert merge.get_status() == JobStatus.DEFERRED and merge.allow_dependency_failures
    assert set(merge._dependency_ids) == {jobs["chunk-00000"], jobs["chunk-00002"]}
    chunk = Job.fetch(jobs["chunk-00000"], connection=connection)
    assert chunk.func_name == scheduling.CHUNK_FUNCTION and chunk.timeout == 77 and chunk.retries_left == 2
    assert chunk.args == (str(scan_dir.resolve()), 0)

    again = resume_scan(connection, scan_dir)
    assert again["enqueued"] == [] and again["kept"] == ["chunk-00000", "chunk-00002"]
    assert again["tail"] == jobs["merge"] and current_jobs(connection, scan_dir) == jobs
    status = scan_status(connection, scan_dir)
    assert status["jobs"]["pending"] == 3 and status["queue"] == QUEUE and status["chunks_done"] == 1


def test_a_dead_workers_job_is_replaced_at_the_front_and_the_merge_follows(connection, scan_dir):
    enqueue_scan(connection, QUEUE, scan_dir)
    before = current_jobs(connection, scan_dir)
    pretend_started(connection, before["chunk-00001"], seconds_ago=1)
    assert requeue_dead(connection, scan_dir) == {"dead": []}, "within the grace period it counts as running"
    connection.set(scheduling.lease_key(before["chunk-00000"]), "alive", ex=30)
    pretend_started(connection, before["chunk-00000"], seconds_ago=60)
    assert requeue_dead(connection, scan_dir) == {"dead": []}, "a job holding its lease is running"
    pretend_started(connection, before["chunk-00002"], seconds_ago=60)

    healed = requeue_dead(connection, scan_dir)
    assert healed["dead"] == [before["chunk-00002"]]
    assert healed["enqueued"] == ["chunk-00002"] and sorted(healed["kept"]) == ["chunk-00000", "chunk-00001"]
    after = current_jobs(connection, scan_dir)
    assert after["chunk-00002"].endswith("-chunk-00002-2")
    assert Queue(QUEUE, connection=connection).job_ids[0] == after["chunk-00002"]
    assert Job.fetch(before["merge"], connection=connection).get_status() == JobStatus.CANCELED
    merge = Job.fetch(after["merge"], connection=connection)
    assert set(merge._dependency_ids) == {before["chunk-00000"], before["chunk-00001"], after["chunk-00002"]}
    assert scan_status(connection, scan_dir)["jobs"]["running"] == 2


def test_after_the_merge_the_projection_blocks_are_scheduled(connection, scan_dir):
    for index in range(3):
        write_chunk(scan_dir, index)
    merge_scan(scan_dir)
    summary = enqueue_scan(connection, QUEUE, scan_dir)
    assert summary["phase"] == "projections"
    assert summary["enqueued"] == ["project-block1_pool-0-2", "project-block1_pool-2-3"]
    assert Job.fetch(summary["tail"], connection=connection).func_name == scheduling.FINISH_FUNCTION
    for start, stop in ((0, 2), (2, 3)):
        store.write_json_atomically(store.projection_marker(scan_dir, "block1_pool", start, stop), {"channels": {}})
    assert resume_scan(connection, scan_dir)["phase"] == "done"


def test_a_task_that_never_finishes_fails_the_scan(connection, scan_dir):
    enqueue_scan(connection, QUEUE, scan_dir, retries=0)
    for attempt in range(scheduling.MAX_ATTEMPTS):
        job = Job.fetch(current_jobs(connection, scan_dir)["chunk-00001"], connection=connection)
        job.meta["error"] = "OSError: disk on fire"
        job.save_meta()
        job.set_status(JobStatus.FAILED)
        summary = resume_scan(connection, scan_dir)
    expected = f"chunk-00001 was run {scheduling.MAX_ATTEMPTS} times without finishing: OSError: disk on fire"
    assert summary["failed"] == expected
    assert store.read_failure(scan_dir)["error"] == summary["failed"]
    assert resume_scan(connection, scan_dir, retry_failed=True)["enqueued"] == ["chunk-00001"]


def test_resume_needs_a_queue_for_a_scan_it_never_saw(connection, scan_dir):
    with pytest.raises(ValueError, match="never enqueued"):
        resume_scan(connection, scan_dir)
    assert resume_scan(connection, scan_dir, queue_name=QUEUE)["enqueued"] == ["chunk-00000", "chunk-00001",
                                                                              "chunk-00002"]
    with pytest.raises(ValueError, match="retries"):
        enqueue_scan(connection, QUEUE, scan_dir, retries=-1)


def test_the_cli_plans_and_enqueues_on_redis_url(connection, redis_instance, tmp_path, monkeypatch, capsys):
    from service.scans import main

    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(5):
        Image.new("RGB", (10, 10), (40 * index, 90, 200)).save(folder / f"{index}.jpg")
    monkeypatch.setenv("REDIS_URL", f"{redis_instance['url']}?db={UNIT_DB}")
    monkeypatch.setenv("VISNET_QUEUE", QUEUE)
    scan_id = store.new_scan_id()
    assert main([str(folder), "--layers", "block1_pool", "--chunk-size", "2", "--out", str(tmp_path / "results"),
                 "--scan-id", scan_id]) == 0
    scans_queue = scan_queue_name(QUEUE)  # the CLI enqueues on the scans' queue, served after the photos'
    assert f"enqueued on {scans_queue!r}: 3 new jobs in the chunks phase" in capsys.readouterr().out
    assert len(Queue(scans_queue, connection=connection).job_ids) == 3 and Queue(QUEUE, connection=connection).count == 0
    scan_dir = tmp_path / "results" / "scans" / scan_id
    assert main(["--status", str(scan_dir)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "pending" and status["jobs"]["pending"] == 4 and status["queue"] == scans_queue


def test_visnet_scan_enqueue_hands_over_to_service_scans(connection, redis_instance, tmp_path):
    """The previous release's spelling keeps working: ``python -m visnet.scan … --enqueue``."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        Image.new("RGB", (10, 10), (60 * index, 90, 200)).save(folder / f"{index}.jpg")
    env = {**os.environ, "REDIS_URL": f"{redis_instance['url']}?db={UNIT_DB}", "VISNET_QUEUE": QUEUE}
    done = subprocess.run([sys.executable, "-m", "visnet.scan", str(folder), "--layers", "block1_pool",
                           "--chunk-size", "2", "--out", str(tmp_path / "results"), "--enqueue"],
                          env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"enqueued on {scan_queue_name(QUEUE)!r}: 2 new jobs in the chunks phase" in done.stdout
