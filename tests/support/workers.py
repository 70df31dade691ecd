"""A real ``python worker.py`` process for the tests that need one: started, waited for until it
announces itself in Redis, killed or stopped. Shared by the service tests and the scan tests."""
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from service import embedded_redis, presence
from service.serve import stop_process
from tests.support.paths import PROJECT_ROOT

WORKER_READY_TIMEOUT = 300
# The worker's entry points, run with the project root as working folder (compose.yaml and the
# Dockerfile use the same: tests/test_deployment.py checks).
WORKER_COMMAND = ["worker.py"]
SUPERVISED_WORKER_COMMAND = ["worker.py", "--supervise"]


def redis_url_of(env) -> str:
    """The Redis of a worker started with ``env``: REDIS_URL, or the embedded server of its instance folder."""
    return env.get("REDIS_URL") or embedded_redis.url_for(env["VISNET_INSTANCE_DIR"])


class Worker:
    def __init__(self, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, *WORKER_COMMAND], cwd=PROJECT_ROOT,
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.connection = redis.Redis.from_url(redis_url_of(env))
        self.name = f"visnet-{socket.gethostname()}-{self.process.pid}"
        self.ready_seconds = None

    def wait_ready(self, timeout=WORKER_READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")
            if presence.is_alive(self.connection, self.name):
                self.ready_seconds = time.monotonic() - self.started
                return self
            time.sleep(0.2)
        pytest.fail(f"the worker was not ready after {timeout} s:\n{self.log_text()[-4000:]}")

    def log_text(self):
        self.log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self):
        stop_process(self.process, "worker", timeout=30)
        self.log.close()
        self.connection.close()


@contextmanager
def running_worker(env, log_path):
    """A :class:`Worker` with ``env``, ready (in Redis), stopped on leaving."""
    process = Worker(env, log_path)
    try:
        yield process.wait_ready()
    finally:
        process.stop()


class SupervisedWorker:
    """``python worker.py --supervise [flags]``: the supervisor (no TensorFlow) and the workers it
    starts and replaces, named ``visnet-<host>-<supervisor pid>-<n>``."""

    def __init__(self, env, log_path, flags=()):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen([sys.executable, *SUPERVISED_WORKER_COMMAND, *flags],
                                        cwd=PROJECT_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.connection = redis.Redis.from_url(redis_url_of(env))
        self.name_prefix = f"visnet-{socket.gethostname()}-{self.process.pid}-"

    def __enter__(self):
        """Once its first worker is ready; the supervisor is stopped when the block ends."""
        try:
            self.wait_for_worker()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def live_workers(self) -> list:
        """Its workers whose presence key is fresh: [{"name", "pid", ...}]."""
        return [worker for worker in presence.alive_workers(self.connection)
                if worker["name"].startswith(self.name_prefix)]

    def wait_for_worker(self, other_than=(), timeout=WORKER_READY_TIMEOUT) -> dict:
        """The first live worker not named in ``other_than``, once it is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the supervisor exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")
            for worker in self.live_workers():
                if worker["name"] not in other_than:
                    return worker
            time.sleep(0.2)
        pytest.fail(f"no new worker was ready after {timeout} s:\n{self.log_text()[-4000:]}")

    def started_workers(self) -> dict:
        """{name: pid} of every worker it started, from its log ("started worker NAME (pid N)")."""
        started = {}
        for line in self.log_text().splitlines():
            if "started worker " in line and line.endswith(")"):
                name, pid = line.split("started worker ", 1)[1].split(" (pid ")
                started[name] = int(pid.rstrip(")"))
        return started

    def worker_pid(self, name) -> int:
        pid = self.started_workers().get(name)
        assert pid is not None, f"the supervisor's log does not show worker {name} starting"
        return pid

    def log_text(self):
        self.log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def stop(self, timeout=60):
        """SIGTERM (the running job finishes); past ``timeout``, SIGKILL to it and its workers."""
        if stop_process(self.process, "supervisor", timeout=timeout):
            kill_all(self.started_workers().values())
        self.log.close()
        self.connection.close()
        return self.process.returncode


def kill_all(pids):
    """SIGKILL to each of ``pids`` that is still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
