"""Faults survived, with real processes: a Redis started with deploy/redis.conf (crashed, stopped and
started again on the same port), gunicorn started as in production, and ``python worker.py --supervise``
whose workers the tests kill, freeze, hang and bloat.

The module is one story in order, because each worker start costs 15-30 s of TensorFlow loading:
every worker the supervisor replaces serves the next test. Each test still checks only what it
caused, so one can run alone (-k), only slower.
"""
import io
import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import requests
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry, StartedJobRegistry

from service import presence, recovery
from tests.support.paths import PROJECT_ROOT
from tests.support.servers import Gunicorn, RedisServer, process_alive
from tests.support.waiting import wait_until
from tests.support.workers import SupervisedWorker

pytestmark = pytest.mark.integration

EXAMPLES = PROJECT_ROOT / "static" / "examples"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
QUEUE = "visnet-faults"
MAX_JOBS = 2
HANG_GRACE = 2
MEMORY_LIMIT_MB = 2500  # a loaded worker holds about 1 GB, 1.8 GB at most after the largest deconv job


# --- the servers ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def durable_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("durable-redis"), PROJECT_ROOT / "deploy" / "redis.conf").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_env(durable_redis, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    ARTIFACTS.mkdir(exist_ok=True)
    return {
        **os.environ,
        "REDIS_URL": durable_redis.url(0),
        "RESULTS_DIR": str(root / "results"),
        "UPLOAD_DIR": str(root / "uploads"),
        "VISNET_INSTANCE_DIR": str(root / "instance"),
        "VISNET_QUEUE": QUEUE,
        "VISNET_WEIGHTS": "hed",
        "VISNET_LOG_LEVEL": "INFO",
        "VISNET_WORKER_WARM_UP": "0",  # the test jobs here never run the network: workers start 5 s sooner
        "VISNET_RATE_LIMIT_SUBMIT": "100000",
        "VISNET_RATE_LIMIT_READ": "1000000",
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@pytest.fixture(scope="module")
def web(fault_env):
    server = Gunicorn(fault_env, ARTIFACTS / "faults-gunicorn.log").wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def supervisor(fault_env):
    flags = ["--max-jobs", str(MAX_JOBS), "--hang-grace", str(HANG_GRACE), "--max-memory-mb", str(MEMORY_LIMIT_MB)]
    with SupervisedWorker(fault_env, ARTIFACTS / "faults-supervisor.log", flags) as process:
        yield process


@pytest.fixture
def rq_connection(durable_redis):
    connection = durable_redis.client()
    yield connection
    connection.close()


# --- helpers ----------------------------------------------------------------------------------

def post_photo(web, name, **options):
    data = (EXAMPLES / name).read_bytes()
    return requests.post(f"{web.base}/api/jobs", files={"image": (name, io.BytesIO(data), "image/jpeg")},
                         data=options, timeout=30)


def job_document(web, job_id):
    response = requests.get(f"{web.base}/api/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_document(web, job_id, done, timeout, what):
    """Poll the API until ``done(document)``; return that document."""
    def document_when_done():
        document = job_document(web, job_id)
        return document if done(document) else None
    return wait_until(document_when_done, timeout, what)


def ended(document):
    return document["status"] in ("finished", "failed", "canceled")


def enqueue_test_job(connection, function, *args, timeout=600):
    """A tests.support.fault_jobs job with the service's retry policy and an id the API accepts."""
    return Queue(QUEUE, connection=connection).enqueue_call(
        f"tests.support.fault_jobs.{function}", args=args, job_id=uuid.uuid4().hex, timeout=timeout,
        failure_ttl=3600, result_ttl=3600, **recovery.enqueue_options({}))


def rq_status(connection, job_id):
    return Job.fetch(job_id, connection=connection).get_status()


def started_by(connection, job_id, timeout=300, other_than=()):
    """Wait until the job runs on a live worker not named in ``other_than``; return that worker's
    presence entry (name, pid)."""
    def running_worker():
        job = Job.fetch(job_id, connection=connection)
        if job.get_status() != JobStatus.STARTED or job.worker_name in other_than:
            return None
        return next((worker for worker in presence.alive_workers(connection) if worker["name"] == job.worker_name),
                    None)
    return wait_until(running_worker, timeout, f"job {job_id} never started on a live worker", interval=0.05)


# --- Redis: persistence and outages -------------------------------------------------------------

def test_queued_jobs_survive_a_redis_crash(web, durable_redis, fault_env, request):
    response = post_photo(web, "chelsea.jpg", layers="block1_pool", top_k="1")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued" and "waiting for a worker" in response.json()["message"]

    durable_redis.kill()  # SIGKILL: only what the append-only file holds comes back
    durable_redis.start()
    document = job_document(web, job_id)
    assert document["status"] == "queued" and document["queue_position"] == 0, document

    request.getfixturevalue("supervisor")  # the first worker starts only now and finds the job
    document = wait_for_document(web, job_id, ended, 300, "the queued job did not finish")
    assert document["status"] == "finished", document
    assert {"summary.png", "manifest.json"} <= set(os.listdir(Path(fault_env["RESULTS_DIR"]) / job_id))


def test_redis_outage_while_the_web_app_runs(web, durable_redis, supervisor, fault_env):
    uploads = Path(fault_env["UPLOAD_DIR"])
    uploads_before = sorted(os.listdir(uploads))
    web_workers = web.worker_pids()
    assert len(web_workers) == 2

    def refused_quickly(limit_seconds, photo="astronaut.jpg"):
        started = time.monotonic()
        response = post_photo(web, photo, layers="block2_pool", top_k="1")
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "queue_unavailable" and elapsed < limit_seconds, elapsed

    durable_redis.process.send_signal(signal.SIGSTOP)  # hung: connections open, no answers
    try:
        refused_quickly(6, "coffee.jpg")  # the web app's Redis timeouts (2 s per command)
    finally:
        durable_redis.process.send_signal(signal.SIGCONT)
    durable_redis.stop()
    for _ in range(4):  # enough to reach both web workers
        refused_quickly(2)
    health = requests.get(f"{web.base}/api/health", timeout=10)
    assert health.status_code == 503 and health.json()["redis"]["reachable"] is False
    assert requests.get(f"{web.base}/", timeout=10).status_code == 200  # the upload page needs no Redis
    assert sorted(os.listdir(uploads)) == uploads_before  # no upload kept, no temporary left
    assert web.worker_pids() == web_workers and web.process.poll() is None

    durable_redis.start()
    response = post_photo(web, "astronaut.jpg", layers="block2_pool", top_k="1")
    assert response.status_code == 202, response.text
    document = wait_for_document(web, response.json()["id"], ended, 180, "the job after the outage did not finish")
    assert document["status"] == "finished", document
    assert web.worker_pids() == web_workers


# --- workers: recycling, death, hangs, memory, shutdown ----------------------------------------

def test_a_worker_is_replaced_after_its_max_jobs(supervisor, rq_connection):
    def served_by_one_worker():
        registry = FinishedJobRegistry(QUEUE, connection=rq_connection)
        counts = {}
        for job in Job.fetch_many(registry.get_job_ids(), connection=rq_connection):
            if job is not None and job.worker_name and job.worker_name.startswith(supervisor.name_prefix):
                counts[job.worker_name] = counts.get(job.worker_name, 0) + 1
        return next((name for name, count in counts.items() if count >= MAX_JOBS), None)

    while (worn_out := served_by_one_worker()) is None:
        job = enqueue_test_job(rq_connection, "sleep_then_report", 0)
        wait_until(lambda: rq_status(rq_connection, job.id) == JobStatus.FINISHED, 300, "a quick job did not finish")
    wait_until(lambda: f"worker {worn_out} exited (status 0)" in supervisor.log_text(), 60,
               f"worker {worn_out} did not exit after {MAX_JOBS} jobs")
    assert supervisor.wait_for_worker(other_than={worn_out})["name"] != worn_out
    assert not process_alive(supervisor.worker_pid(worn_out))
    # VISNET_WORKER_WARM_UP=0: each worker took jobs without the warm-up pass, and said so
    assert f"worker {worn_out}: engine loaded in" in supervisor.log_text()
    assert "warm-up pass" not in supervisor.log_text() and "warm-up skipped" in supervisor.log_text()


def test_a_job_whose_worker_is_killed_is_retried_and_finishes(web, supervisor, rq_connection, fault_env):
    # The two deepest pools: the whole forward pass and two sweeps, a few seconds of work on a loaded machine
    # (the kill comes within a tenth of a second of the start); every layer would double the retry's time.
    response = post_photo(web, "coffee.jpg", layers="block4_pool,block5_pool", top_k="1")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    victim = started_by(rq_connection, job_id)
    os.kill(victim["pid"], signal.SIGKILL)

    retrying = wait_for_document(web, job_id, lambda document: "retrying" in (document["message"] or ""), 30,
                                 "the API never said that the job is retried")
    assert retrying["status"] in ("queued", "started"), retrying
    assert retrying["message"].startswith("retrying (attempt 2 of 2): the worker running this job stopped")

    document = wait_for_document(web, job_id, ended, 300, "the retried job did not finish")
    assert document["status"] == "finished", document
    record = json.loads((Path(fault_env["RESULTS_DIR"]) / job_id / "job.json").read_text())
    assert [attempt["worker"] for attempt in record["attempts"]] == [victim["name"]]
    assert record["worker"] != victim["name"]
    assert StartedJobRegistry(QUEUE, connection=rq_connection).get_job_ids() == []


def test_a_job_whose_worker_dies_twice_ends_failed(web, supervisor, rq_connection):
    job = enqueue_test_job(rq_connection, "sleep_then_report", 300)
    first = started_by(rq_connection, job.id)
    os.kill(first["pid"], signal.SIGKILL)
    second = started_by(rq_connection, job.id, other_than={first["name"]})
    assert "retrying (attempt 2 of 2)" in job_document(web, job.id)["message"]
    os.kill(second["pid"], signal.SIGSTOP)  # frozen this time: its heartbeat goes silent
    try:
        document = wait_for_document(web, job.id, ended, presence.ALIVE_TTL_SECONDS + 30,
                                     "the job of the frozen worker did not fail")
        # Whoever noticed first failed the job (this API poll, or the supervisor as it killed the
        # frozen worker); the supervisor replaces the worker in any case.
        wait_until(lambda: f"killing worker {second['name']}" in supervisor.log_text(), 30,
                   "the supervisor did not kill the frozen worker")
    finally:
        if process_alive(second["pid"]):
            os.kill(second["pid"], signal.SIGCONT)
    assert document["status"] == "failed", document
    assert "stopped before it finished, on each of its 2 attempts" in document["message"]
    assert rq_status(rq_connection, job.id) == JobStatus.FAILED
    assert "its heartbeat has stopped" in supervisor.log_text()
    assert StartedJobRegistry(QUEUE, connection=rq_connection).get_job_ids() == []


def test_a_job_stuck_in_native_code_fails_and_a_fresh_worker_takes_the_next(web, supervisor, rq_connection):
    stuck = enqueue_test_job(rq_connection, "hang_in_native_code", 600, timeout=2)
    worker = started_by(rq_connection, stuck.id)
    document = wait_for_document(web, stuck.id, ended, 2 + HANG_GRACE + 20, "the stuck job did not fail")
    assert document["status"] == "failed", document
    assert "took longer than the limit of 2 seconds" in document["message"]
    assert "replaced" in document["message"]
    assert f"killing worker {worker['name']}" in supervisor.log_text() and not process_alive(worker["pid"])

    following = enqueue_test_job(rq_connection, "sleep_then_report", 0)
    wait_until(lambda: rq_status(rq_connection, following.id) == JobStatus.FINISHED, 300, "the next job did not finish")
    finished = Job.fetch(following.id, connection=rq_connection)
    assert finished.worker_name != worker["name"] and finished.return_value()["pid"] != worker["pid"]


def test_a_worker_over_its_memory_limit_is_replaced(web, supervisor, rq_connection):
    greedy = enqueue_test_job(rq_connection, "hold_memory", MEMORY_LIMIT_MB, 300)
    worker = started_by(rq_connection, greedy.id)
    document = wait_for_document(web, greedy.id, ended, 60, "the job over the memory limit did not fail")
    assert document["status"] == "failed", document
    assert f"memory limit of {MEMORY_LIMIT_MB} MiB" in document["message"]
    assert f"killing worker {worker['name']}" in supervisor.log_text() and not process_alive(worker["pid"])
    supervisor.wait_for_worker(other_than={worker["name"]})


def test_sigterm_lets_the_running_job_finish_then_everything_exits(supervisor, rq_connection):
    """Last: it stops the supervisor, as ``docker stop`` would."""
    worker = supervisor.wait_for_worker()
    job = enqueue_test_job(rq_connection, "sleep_then_report", 2)
    assert started_by(rq_connection, job.id)["name"] == worker["name"]
    stop_requested = time.time()
    supervisor.process.send_signal(signal.SIGTERM)
    assert supervisor.process.wait(60) == 0
    finished = Job.fetch(job.id, connection=rq_connection)
    assert finished.get_status() == JobStatus.FINISHED and finished.return_value()["pid"] == worker["pid"]
    assert finished.return_value()["ended"] > stop_requested  # the job was still running when SIGTERM came
    assert not process_alive(worker["pid"])
    log = supervisor.log_text()
    assert "warm shut down requested" in log
    assert log.count("started worker") == log[:log.index("passing SIGTERM")].count("started worker")  # no new one
    assert presence.alive_workers(rq_connection) == []
