"""The service on its embedded Redis (``REDIS_URL`` unset), as ``make run`` runs it: gunicorn and a
supervised worker in a temporary instance folder, and the embedded server killed under them.

One worker for the module (TensorFlow loads once); the worker's Redis socket timeout is shortened
(VISNET_WORKER_REDIS_TIMEOUT) so that idling past it takes seconds.
"""
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
from rq import Queue
from rq.job import Job, JobStatus

from service import embedded_redis, recovery
from tests.support.paths import PROJECT_ROOT
from tests.support.servers import Gunicorn
from tests.support.waiting import wait_until
from tests.support.workers import SupervisedWorker

pytestmark = pytest.mark.integration

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
QUEUE = "visnet-embedded"
WORKER_REDIS_TIMEOUT = 2
# Before the fix RQ backed off 1, 2, 4 ... 60 s between failed blocking reads; a healthy pickup
# takes milliseconds (the issue asks for 0.2 s). One second is generous on a loaded machine.
PICKUP_LIMIT_SECONDS = 1.0


@pytest.fixture(scope="module")
def embedded_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded")
    ARTIFACTS.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    return {
        **env,
        "VISNET_INSTANCE_DIR": str(root / "instance"),
        "RESULTS_DIR": str(root / "results"),
        "UPLOAD_DIR": str(root / "uploads"),
        "VISNET_QUEUE": QUEUE,
        "VISNET_WEIGHTS": "hed",
        "VISNET_LOG_LEVEL": "INFO",
        "VISNET_WORKER_WARM_UP": "0",  # its test jobs never run the network
        "VISNET_WORKER_REDIS_TIMEOUT": str(WORKER_REDIS_TIMEOUT),
        "VISNET_RATE_LIMIT_SUBMIT": "100000",
        "VISNET_RATE_LIMIT_READ": "1000000",
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@pytest.fixture(scope="module")
def instance(embedded_env):
    folder = Path(embedded_env["VISNET_INSTANCE_DIR"])
    embedded_redis.ensure_server(folder)
    yield folder
    embedded_redis.stop_server(folder)


@pytest.fixture(scope="module")
def web(embedded_env, instance):
    server = Gunicorn(embedded_env, ARTIFACTS / "embedded-gunicorn.log").wait_ready()
    yield server
    server.stop()


def wait_until_redis(condition, timeout, what, interval=0.1):
    """wait_until, reading a ConnectionError (the embedded server is being restarted) as not yet."""
    return wait_until(condition, timeout, what, interval, ignoring=redis.ConnectionError)


@pytest.fixture(scope="module")
def supervisor(embedded_env, instance):
    with SupervisedWorker(embedded_env, ARTIFACTS / "embedded-supervisor.log") as process:
        yield process


@pytest.fixture
def connection(instance):
    client = redis.Redis.from_url(embedded_redis.url_for(instance), socket_timeout=5)
    yield client
    client.close()


def enqueue(connection, function, *args):
    """A tests.support.fault_jobs job under the service's retry policy (one retry, for a lost worker)."""
    return Queue(QUEUE, connection=connection).enqueue_call(
        f"tests.support.fault_jobs.{function}", args=args, job_id=uuid.uuid4().hex, timeout=120,
        failure_ttl=3600, result_ttl=3600, **recovery.enqueue_options({}))


def status(connection, job_id):
    return Job.fetch(job_id, connection=connection).get_status()


def kill_embedded_redis(instance) -> int:
    pid = int((embedded_redis.server_dir(instance) / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_until_redis(lambda: not embedded_redis.answers(embedded_redis.url_for(instance), timeout=0.2), 5,
               "the embedded Redis still answers")
    return pid


def test_an_idle_worker_picks_up_a_job_at_once(supervisor, connection):
    log_before = len(supervisor.log_text())
    time.sleep(3 * WORKER_REDIS_TIMEOUT + 1)  # idle past the socket timeout (and past redis-py's default 5 s)
    job = enqueue(connection, "sleep_then_report", 0)
    wait_until_redis(lambda: status(connection, job.id) == JobStatus.FINISHED, 30, "the job did not finish", 0.02)
    job = Job.fetch(job.id, connection=connection)
    pickup = (job.started_at - job.enqueued_at).total_seconds()
    idle_log = supervisor.log_text()[log_before:]
    assert "Timeout reading from socket" not in idle_log and "could not connect to Redis" not in idle_log, idle_log
    assert pickup < PICKUP_LIMIT_SECONDS, f"picked up {pickup:.2f} s after it was enqueued"


def test_killing_the_embedded_redis_loses_no_job(web, supervisor, instance, connection):
    worker = supervisor.wait_for_worker()
    running = enqueue(connection, "report_progress_while_sleeping", 5)  # 3.5 s left when Redis dies
    waiting = [enqueue(connection, "sleep_then_report", 0.2) for _ in range(5)]
    wait_until_redis(lambda: status(connection, running.id) == JobStatus.STARTED, 30, "the first job did not start")
    time.sleep(1.5)  # the append-only file is fsynced every second
    assert all(status(connection, job.id) == JobStatus.QUEUED for job in waiting)

    # The supervisor is held while the web side is tested: the first request after the kill must meet
    # a dead Redis, and the web processes alone must bring it back.
    os.kill(supervisor.process.pid, signal.SIGSTOP)
    try:
        old_pid = kill_embedded_redis(instance)
        started = time.monotonic()
        response = requests.get(f"{web.base}/api/jobs/{running.id}", timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "queue_unavailable" and elapsed < 5, (elapsed, response.text)

        def healthy():
            return requests.get(f"{web.base}/api/health", timeout=10).status_code == 200
        wait_until_redis(healthy, 20, "the web processes did not restart the embedded Redis", interval=0.3)
        assert embedded_redis._running_pid(embedded_redis.server_dir(instance)) not in (None, old_pid)
    finally:
        os.kill(supervisor.process.pid, signal.SIGCONT)

    def all_finished():
        return all(status(connection, job.id) == JobStatus.FINISHED for job in [running, *waiting])
    wait_until_redis(all_finished, 120, "not every job finished")
    for job in (Job.fetch(job.id, connection=connection) for job in [running, *waiting]):
        assert job.worker_name == worker["name"], "the worker was replaced"
        assert job.retries_left == 1 and not job.meta.get("attempts"), (job.id, job.retries_left, job.meta)
    progress = Job.fetch(running.id, connection=connection).meta["progress"]["stages"]
    assert next(stage for stage in progress if stage["name"] == "network")["done"] == 50
    assert requests.get(f"{web.base}/api/jobs/{running.id}", timeout=10).status_code == 200
    log = supervisor.log_text()
    assert "unhandled exception" not in log and "exited" not in log, log[-4000:]


def test_the_supervisor_restarts_a_dead_embedded_redis(supervisor, instance, connection):
    log_before = len(supervisor.log_text())
    kill_embedded_redis(instance)  # nobody asks the web processes anything
    restarted = "the embedded Redis server was not answering; started it again"
    wait_until_redis(lambda: restarted in supervisor.log_text()[log_before:],
               15, "the supervisor did not restart the embedded Redis")  # it logs once the server answers
    assert embedded_redis.answers(embedded_redis.url_for(instance))
    job = enqueue(connection, "sleep_then_report", 0)
    wait_until_redis(lambda: status(connection, job.id) == JobStatus.FINISHED, 60, "the job after the restart did not finish")
