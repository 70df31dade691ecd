"""A real ``python worker.py`` process for the tests that need one: started, waited for until it
announces itself in Redis, killed or stopped. Shared by the service tests and the scan tests."""
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from app import presence

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKER_READY_TIMEOUT = 300


class Worker:
    def __init__(self, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "worker.py")], cwd=PROJECT_ROOT,
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.connection = redis.Redis.from_url(env["REDIS_URL"])
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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        self.connection.close()
