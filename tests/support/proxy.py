"""nginx with the shipped ``deploy/nginx.conf`` for the tests: its directives read as numbers, and a real
nginx (Debian's package; ``.ci/run`` installs it) started under a temporary prefix on a free loopback
port, in front of a test gunicorn instead of compose's ``web:8000``."""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.paths import PROJECT_ROOT

NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx.conf"
COMPOSE_UPSTREAM = "server web:8000;"
COMPOSE_LISTEN = "listen 80;"
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def nginx_binary():
    """The nginx executable, or None where it is not installed (/usr/sbin is not on every PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def directives(text: str = None) -> dict:
    """{name: [argument string, …]} of every simple directive (``name args;``), comments removed."""
    text = NGINX_CONF.read_text() if text is None else text
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.fullmatch(r"([a-z_]+)\s+([^;{]*);", line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2).strip())
    return found


def size_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * SIZE_UNITS[unit.lower()]


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([smh]?)", value).groups()
    return int(number) * TIME_UNITS[unit]


def write_config(folder, upstream_port: int, listen_port: int) -> Path:
    """A main nginx.conf under ``folder`` that includes deploy/nginx.conf with the upstream and the
    listening address replaced (each must occur once), every path (pid, logs, temporary files) inside
    ``folder``. Returns the main file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    site = NGINX_CONF.read_text()
    for old, new in ((COMPOSE_UPSTREAM, f"server 127.0.0.1:{upstream_port};"),
                     (COMPOSE_LISTEN, f"listen 127.0.0.1:{listen_port};")):
        assert site.count(old) == 1, f"deploy/nginx.conf should hold {old!r} once"
        site = site.replace(old, new)
    (folder / "visnet.conf").write_text(site)
    # As root, nginx's workers would run as nobody, who cannot enter pytest's private temporary folder.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temporary = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in
                          ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = folder / "nginx.conf"
    main.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'};\n"
        f"events {{ worker_connections 512; }}\n"
        f"http {{\n{temporary}\n    access_log {folder / 'access.log'};\n    include {folder / 'visnet.conf'};\n}}\n")
    return main


def nginx_command(main: Path, *extra) -> list:
    return [nginx_binary(), "-e", "stderr", "-p", str(main.parent), "-c", str(main), *extra]


def check_config(main: Path) -> subprocess.CompletedProcess:
    """``nginx -t`` on the main file: parses it, resolves the upstream and opens its files."""
    return subprocess.run(nginx_command(main, "-t"), capture_output=True, text=True, timeout=30)


class Nginx:
    """A foreground nginx master; :meth:`stop` ends it (and its worker) by its own process id."""

    def __init__(self, folder, upstream_port: int):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.main = write_config(folder, upstream_port, self.port)
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout=15):
        self.process = subprocess.Popen(nginx_command(self.main), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not open its port")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown: the master ends its worker
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
