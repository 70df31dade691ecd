"""Stopping ``make run`` (``python -m service.serve``) the way a user does: Ctrl-C in its terminal, which
sends SIGINT to the whole foreground process group (or SIGTERM to the group, as a process manager
may). Once: the running job finishes and keeps its retry, then everything exits. Twice: the job is interrupted, goes back to the queue, and everything
exits at once. Each test stops a whole service of its own (against a Redis server of its own, so the job's
record can be read after the service is gone); as its worker loads TensorFlow for 10-15 s, the services of the
module's tests start ahead (ServicePool: two load together; three at once took 40 s each on 2 cores) and each
test takes one that is loading or ready."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Queue
from rq.job import Job, JobStatus

from service import presence, recovery
from service.serve import FORCED_STOP_SECONDS
from tests.support.paths import PROJECT_ROOT
from tests.support.servers import RedisServer, free_port
from tests.support.weights_origin import closed_port_url
from tests.support.workers import WORKER_READY_TIMEOUT, kill_all

pytestmark = pytest.mark.integration

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
QUEUE = "visnet-stopping"


class Service:
    """``python -m service.serve`` in a process group of its own, as a shell starts a foreground job."""

    def __init__(self, tmp_path, log_name):
        self.redis = RedisServer(tmp_path / "redis").start()
        self.port = free_port()
        self.connection = self.redis.client()
        env = {**os.environ, "REDIS_URL": self.redis.url(0), "RESULTS_DIR": str(tmp_path / "results"),
               "UPLOAD_DIR": str(tmp_path / "uploads"), "VISNET_INSTANCE_DIR": str(tmp_path / "instance"),
               "VISNET_QUEUE": QUEUE, "VISNET_BIND": f"127.0.0.1:{self.port}",
               # auto, with no ImageNet file and its server unreachable: make run falls back to hed at once
               "VISNET_WEIGHTS": "auto", "VISNET_MODELS_DIR": str(tmp_path / "models"),
               "VISNET_WEIGHTS_URL": closed_port_url(), "VISNET_FETCH": "1",
               "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
               "VISNET_WEB_WORKERS": "1", "VISNET_CLEANUP_INTERVAL": "0", "PYTHONUNBUFFERED": "1",
               "VISNET_WORKER_WARM_UP": "0",  # the test jobs never run the network: the worker is ready 8 s sooner
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / log_name
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "service.serve"], cwd=PROJECT_ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, process_group=0)

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def rename_log(self, log_name):
        """Name the log after the test that took this service (the process keeps writing to it)."""
        self.log.flush()
        self.log_path = self.log_path.replace(ARTIFACTS / log_name)

    def wait_for_worker(self) -> dict:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"service.serve exited:\n{self.log_text()[-4000:]}"
            workers = presence.alive_workers(self.connection)
            if workers:
                return workers[0]
            time.sleep(0.2)
        pytest.fail(f"no worker was ready after {WORKER_READY_TIMEOUT} s:\n{self.log_text()[-4000:]}")

    def start_job(self, seconds: float, worker: dict) -> Job:
        job = Queue(QUEUE, connection=self.connection).enqueue_call(
            "tests.support.fault_jobs.sleep_then_report", args=(seconds,), timeout=600, **recovery.enqueue_options({}))
        deadline = time.monotonic() + 30
        while job.get_status() != JobStatus.STARTED:
            assert time.monotonic() < deadline, f"the job did not start:\n{self.log_text()[-4000:]}"
            time.sleep(0.05)
        job.refresh()
        assert job.worker_name == worker["name"]
        return job

    def descendants(self) -> set:
        """Every process started under service.serve (its children and theirs), from /proc."""
        parents = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
        found, frontier = set(), {self.process.pid}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
            found |= frontier
        return found

    def ctrl_c(self, signum=signal.SIGINT):
        """What a terminal does (SIGINT), or a process manager stopping the group (SIGTERM): the signal
        goes to every process of the foreground group."""
        os.killpg(self.process.pid, signum)

    def close(self):
        children = self.descendants()  # found before service.serve goes: then they would belong to init
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        kill_all(children | self.descendants())
        self.log.close()
        self.connection.close()
        self.redis.stop()


def still_running(pids, timeout=10) -> list:
    """Those of ``pids`` still running after up to ``timeout`` s (a zombie waiting for init counts as gone)."""
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                running.append(pid)
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


class ServicePool:
    """Services started ahead of the tests that will stop them: a test takes the oldest (loading or ready) and
    one more starts for each later test that needs one, up to ``spares`` at a time, so that their workers load
    TensorFlow together instead of one after another."""

    def __init__(self, tmp_path_factory, needed: int, spares: int = 1):
        self.tmp_path_factory, self.needed, self.spares = tmp_path_factory, needed, spares
        self.waiting, self.started = [], 0

    def _start(self) -> Service:
        self.started += 1
        return Service(self.tmp_path_factory.mktemp("stopping"), f"stopping-service-{self.started}.log")

    def take(self, log_name) -> Service:
        service = self.waiting.pop(0) if self.waiting else self._start()
        self.needed -= 1
        while len(self.waiting) < min(self.needed, self.spares):
            self.waiting.append(self._start())
        service.rename_log(log_name)
        return service

    def close(self):
        for service in self.waiting:
            service.close()


@pytest.fixture(scope="module")
def service_pool(tmp_path_factory, request):
    needed = sum(1 for item in request.session.items
                 if item.module is request.module and "service" in getattr(item, "fixturenames", ()))
    pool = ServicePool(tmp_path_factory, needed)
    yield pool
    pool.close()


@pytest.fixture
def service(service_pool, request):
    started = service_pool.take(f"stopping-{request.node.name}.log")
    yield started
    started.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_one_stop_request_lets_the_running_job_finish_and_keep_its_retry(service, signum):
    worker = service.wait_for_worker()
    job = service.start_job(3, worker)
    children = service.descendants()
    stop_requested = time.time()
    service.ctrl_c(signum)
    assert service.process.wait(120) == 0, service.log_text()[-4000:]
    job = Job.fetch(job.id, connection=service.connection)
    assert job.get_status() == JobStatus.FINISHED, service.log_text()[-4000:]
    assert job.return_value()["pid"] == worker["pid"]
    assert job.return_value()["ended"] > stop_requested  # the job was still running when the stop came
    assert job.retries_left == 1 and "attempts" not in job.meta
    assert still_running(children | {worker["pid"]}) == []
    log = service.log_text()
    assert "cold shut down" not in log
    # The one request reached the worker once: before, the supervisor had it from the terminal's group
    # and again from service.serve, and only RQ's dropping of a repeat within 1 s saved the job.
    assert log.count("passing SIGTERM to the worker") == 1, log[-4000:]


def test_a_second_ctrl_c_interrupts_the_job_and_stops_at_once(service):
    worker = service.wait_for_worker()
    job = service.start_job(300, worker)
    children = service.descendants()
    service.ctrl_c()
    time.sleep(0.3)  # an impatient user: well within RQ's one second in which it drops a repeat
    service.ctrl_c()
    forced = time.monotonic()
    assert service.process.wait(90) == 0, service.log_text()[-4000:]
    assert time.monotonic() - forced < FORCED_STOP_SECONDS  # the job had 300 s to go; the cold stop, not a kill
    assert still_running(children | {worker["pid"]}) == []
    job = Job.fetch(job.id, connection=service.connection)
    assert job.get_status() == JobStatus.QUEUED and Queue(QUEUE, connection=service.connection).get_job_ids() == [job.id]
    log = service.log_text()
    assert "cold shut down" in log and "did not stop in time" not in log, log[-4000:]
    # The ImageNet download failed at once, and one line said so and what auto serves instead.
    assert worker["weights"] == "hed"
    fallback = [line for line in log.splitlines() if "could not download the ImageNet VGG16" in line]
    assert len(fallback) == 1 and "no connection" in fallback[0], log[-4000:]
    assert "; serving HED edge-detector VGG16 (fine-tuned on BSDS500 for edges;" in fallback[0]
