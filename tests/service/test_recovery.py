"""A job whose worker died mid-run (service.recovery), against a real Redis without worker processes.

The started job is made by RQ's own SimpleWorker methods (dequeue, execution, started registry), and
then its worker is simply gone, as after SIGKILL: no presence key. tests/integration/
test_fault_tolerance.py does the same with real processes and signals.
"""
import io
import math
import signal
import time
from pathlib import Path

import pytest
from rq import Queue, Retry, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from service import presence, recovery
from service.jobs import written
from tests.support.jobs import png_bytes
from tests.support.servers import RedisServer
from visnet import atomic


@pytest.fixture
def presence_settled(redis_conn):
    """Presence is not trusted in the first seconds of a Redis server (see presence.settled)."""
    deadline = time.monotonic() + presence.SETTLED_AFTER_SECONDS + 2
    while not presence.settled(redis_conn):
        assert time.monotonic() < deadline
        time.sleep(0.2)


def start_on_worker(connection, queue_name, worker_name):
    """Let a worker named ``worker_name`` take the next job and start it, the way RQ does; the worker
    then does nothing more, like one that was killed."""
    worker = SimpleWorker([Queue(queue_name, connection=connection)], connection=connection, name=worker_name)
    worker.register_birth()
    job, _ = worker.dequeue_job_and_maintain_ttl(timeout=1)
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    assert job.get_status() == JobStatus.STARTED
    return job


def post(client, data):
    response = client.post("/api/jobs", data={"image": (io.BytesIO(data), "photo.jpg")},
                           content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def test_a_job_whose_worker_died_is_retried_once_then_failed(app, client, redis_conn, images, presence_settled,
                                                             check_against_spec):
    data = images.photo_jpeg()
    queue_name = app.config["QUEUE_NAME"]
    job_id = post(client, data)
    assert Job.fetch(job_id, connection=redis_conn).retries_left == 1

    start_on_worker(redis_conn, queue_name, "killed-once")
    body = client.get(f"/api/jobs/{job_id}").get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, body)
    assert body["status"] == "queued" and body["progress"] is None
    assert body["message"].startswith("retrying (attempt 2 of 2): the worker running this job stopped before")
    assert "waiting for a worker" in body["message"]
    assert Queue(queue_name, connection=redis_conn).get_job_ids() == [job_id]
    assert StartedJobRegistry(queue_name, connection=redis_conn).get_job_ids() == []
    attempts = Job.fetch(job_id, connection=redis_conn).meta["attempts"]
    assert [attempt["worker"] for attempt in attempts] == ["killed-once"]

    presence.mark_alive(redis_conn, "killed-twice", {})
    start_on_worker(redis_conn, queue_name, "killed-twice")
    body = client.get(f"/api/jobs/{job_id}").get_json()
    assert body["status"] == "started" and body["message"].startswith("retrying (attempt 2 of 2)")
    presence.mark_gone(redis_conn, "killed-twice")
    body = client.get(f"/api/jobs/{job_id}").get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, body)
    assert body["status"] == "failed"
    assert body["message"] == ("the worker running this job stopped before it finished, on each of its 2 attempts; "
                               "submit again to retry")
    assert job_id in FailedJobRegistry(queue_name, connection=redis_conn).get_job_ids()
    assert StartedJobRegistry(queue_name, connection=redis_conn).get_job_ids() == []

    again = client.post("/api/jobs", data={"image": (io.BytesIO(data), "photo.jpg")},
                        content_type="multipart/form-data")
    assert again.status_code == 202 and again.get_json()["reused"] is False
    fresh = Job.fetch(job_id, connection=redis_conn)
    assert fresh.retries_left == 1 and "attempts" not in fresh.meta



def test_a_dead_attempts_partial_results_go_when_its_job_is_retried_or_failed(app, client, redis_conn, images,
                                                                              presence_settled):
    """A worker killed while writing leaves RESULTS_DIR/.tmp-<job id>-*; settling the job removes it."""
    queue_name, results = app.config["QUEUE_NAME"], Path(app.config["RESULTS_DIR"])
    job_id = post(client, images.photo_jpeg())
    another = results / f".tmp-{'0' * 32}-other"  # another job's: not this one's to remove
    another.mkdir(parents=True)

    def killed_while_writing(worker_name):
        start_on_worker(redis_conn, queue_name, worker_name)
        partial = atomic.partial_folder(results, job_id)
        (partial / "block1_pool_ch0.png").write_bytes(b"half a picture")
        return partial

    first = killed_while_writing("killed-once")
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "queued"
    assert not first.exists()
    second = killed_while_writing("killed-twice")
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "failed"
    assert not second.exists() and another.is_dir()


def start_writing(app, client, redis_conn, images, worker_name):
    """A job started on a live worker ``worker_name`` that has written and published its input.png, as
    service.jobs.photo does while it writes: (job id, the RQ job, its partial folder)."""
    job_id = post(client, images.photo_jpeg())
    presence.mark_alive(redis_conn, worker_name, {})
    job = start_on_worker(redis_conn, app.config["QUEUE_NAME"], worker_name)
    partial = atomic.partial_folder(app.config["RESULTS_DIR"], job_id)
    (partial / "input.png").write_bytes(png_bytes())
    job.meta[written.META_KEY] = written.record(partial, {"input": {"file": "input.png"}, "layers": []})
    job.save_meta()
    return job_id, job, partial


def test_a_running_attempts_pictures_are_listed_until_its_worker_dies(app, client, redis_conn, images,
                                                                     presence_settled):
    """What a live worker has published as written is listed and served; once it dies, the retried job lists
    nothing and its meta forgets them (its folder is gone)."""
    job_id, _, partial = start_writing(app, client, redis_conn, images, "writing")
    body = client.get(f"/api/jobs/{job_id}").get_json()
    assert body["status"] == "started" and body["files"] == [{"name": "input.png", "url": body["manifest"]["input"]["file_url"]}]
    assert client.get(body["files"][0]["url"]).data == png_bytes()

    presence.mark_gone(redis_conn, "writing")
    body = client.get(f"/api/jobs/{job_id}").get_json()
    assert body["status"] == "queued" and body["files"] == [] and body["manifest"] is None
    assert written.META_KEY not in Job.fetch(job_id, connection=redis_conn).meta and not partial.exists()
    assert client.get(f"/api/jobs/{job_id}/files/input.png").status_code == 404


def test_a_picture_asked_for_as_its_job_finishes_comes_from_the_finished_folder(app, client, redis_conn, images,
                                                                               presence_settled, monkeypatch):
    """The page asks for a picture the running job listed; between the web app's look in the finished folder and
    its read of the job's meta, the worker renames the folder into place and drops what it had published (as
    service.jobs.photo does when it finishes). The picture is served from the finished folder, not a 404 that
    the page would show as a broken image on the finished sheet."""
    from app.jobs import store as jobstore

    job_id, job, partial = start_writing(app, client, redis_conn, images, "finishing")
    fetch_job = jobstore.fetch_job

    def finishing_meanwhile(asked):
        if partial.exists():
            partial.rename(Path(app.config["RESULTS_DIR"]) / job_id)
            job.meta.pop(written.META_KEY)
            job.save_meta()
        return fetch_job(asked)

    monkeypatch.setattr(jobstore, "fetch_job", finishing_meanwhile)
    response = client.get(f"/api/jobs/{job_id}/files/input.png")
    assert response.status_code == 200 and response.data == png_bytes()
    presence.mark_gone(redis_conn, "finishing")


def test_resubmitting_a_job_whose_worker_died_reuses_the_retry(app, client, redis_conn, images, presence_settled):
    data = images.photo_jpeg()
    job_id = post(client, data)
    start_on_worker(redis_conn, app.config["QUEUE_NAME"], "gone")
    again = client.post("/api/jobs", data={"image": (io.BytesIO(data), "photo.jpg")},
                        content_type="multipart/form-data")
    assert again.status_code == 202 and again.get_json()["reused"] is True and again.get_json()["id"] == job_id
    assert again.get_json()["status"] == "queued" and "retrying" in again.get_json()["message"]
    assert Queue(app.config["QUEUE_NAME"], connection=redis_conn).count == 1


def test_a_live_workers_job_is_left_alone(app, client, redis_conn, images, presence_settled):
    job_id = post(client, images.photo_jpeg())
    presence.mark_alive(redis_conn, "alive", {})
    start_on_worker(redis_conn, app.config["QUEUE_NAME"], "alive")
    assert recovery.recover_queue(redis_conn, app.config["QUEUE_NAME"]) == {}
    body = client.get(f"/api/jobs/{job_id}").get_json()
    assert body["status"] == "started" and body["message"] is None


def test_the_workers_sweep_settles_a_lost_job_nobody_polls(app, client, redis_conn, images, presence_settled):
    queue_name = app.config["QUEUE_NAME"]
    lost = post(client, images.photo_jpeg())
    start_on_worker(redis_conn, queue_name, "gone")
    busy = post(client, images.photo_png())
    presence.mark_alive(redis_conn, "busy", {})
    start_on_worker(redis_conn, queue_name, "busy")

    sweeper = recovery.Sweeper(redis_conn, queue_name, interval=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while Job.fetch(lost, connection=redis_conn).get_status() != JobStatus.QUEUED:
            assert time.monotonic() < deadline, "the sweep did not requeue the lost job"
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert Job.fetch(busy, connection=redis_conn).get_status() == JobStatus.STARTED
    assert StartedJobRegistry(queue_name, connection=redis_conn).get_job_ids() == [busy]


def test_nothing_is_settled_right_after_redis_starts(tmp_path):
    """Keys may have expired while Redis was down; live workers beat again within seconds."""
    server = RedisServer(tmp_path / "redis").start()
    connection = server.client()
    try:
        Queue("q", connection=connection).enqueue_call(math.sqrt, args=(4,), **recovery.enqueue_options({}))
        job = start_on_worker(connection, "q", "maybe-alive")
        assert presence.settled(connection) is False
        assert recovery.recover_queue(connection, "q") == {}
        assert recovery.recover_job(connection, job) is False
        assert job.get_status() == JobStatus.STARTED
    finally:
        connection.close()
        server.kill()


def test_a_job_that_raised_is_not_retried(redis_conn, tmp_path):
    """The retry is for a lost worker: an exception (or a timeout) would only come again."""
    runs = tmp_path / "runs.txt"
    queue = Queue("raising", connection=redis_conn)
    job = queue.enqueue_call("tests.support.fault_jobs.note_then_fail", args=(str(runs),), **recovery.enqueue_options({}))
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        recovery.LostWorkerRetryWorker([queue], connection=redis_conn, name="raiser").work(burst=True)
    finally:
        for signum, handler in handlers.items():  # RQ installed its own
            signal.signal(signum, handler)
    assert runs.read_text() == "run\n"  # RQ's plain SimpleWorker would have run it twice
    assert job.get_status() == JobStatus.FAILED and queue.count == 0
    assert "this job always fails" in job.latest_result().exc_string


def test_a_cold_shutdown_retries_the_interrupted_job(redis_conn):
    """A second SIGTERM interrupts the running job: the worker's loss, so the job goes back to the queue."""
    queue = Queue("stopping", connection=redis_conn)
    job = queue.enqueue_call("tests.support.fault_jobs.signal_own_process_twice", args=(1.2, 30),
                             **recovery.enqueue_options({}))
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        recovery.LostWorkerRetryWorker([queue], connection=redis_conn, name="stopped-cold").work(burst=True)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert time.monotonic() - started < 20  # interrupted, not slept through
    job.refresh()
    assert job.get_status() == JobStatus.QUEUED and queue.get_job_ids() == [job.id]
    assert job.retries_left == 0
    assert recovery.attempts_message(job) == ("retrying (attempt 2 of 2): the worker running this job was shut down "
                                              "before it finished")


def test_jobs_outside_the_policy_keep_rqs_rules(redis_conn, tmp_path, presence_settled):
    """Dataset scan jobs, for one, retry on exceptions and reschedule dead workers' chunks themselves."""
    queue = Queue("theirs", connection=redis_conn)
    runs = tmp_path / "runs.txt"
    raising = queue.enqueue_call("tests.support.fault_jobs.note_then_fail", args=(str(runs),), retry=Retry(max=1))
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        recovery.LostWorkerRetryWorker([queue], connection=redis_conn, name="theirs").work(burst=True)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert runs.read_text() == "run\nrun\n" and raising.get_status() == JobStatus.FAILED

    queue.enqueue_call(math.sqrt, args=(4,), retry=Retry(max=1))
    orphan = start_on_worker(redis_conn, "theirs", "gone")
    assert recovery.recover_queue(redis_conn, "theirs") == {}
    assert recovery.recover_job(redis_conn, orphan) is False and orphan.get_status() == JobStatus.STARTED
