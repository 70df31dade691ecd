"""Which workers are alive, and what model they serve: a few Redis keys that workers write and the
web process reads, so that the web process can answer ``/api/model`` and ``/api/health`` without
TensorFlow; and a note of what ``make run`` does before its worker starts (a weights download).

A worker refreshes ``visnet:alive:<name>`` every few seconds with a short expiry. RQ's own worker
key outlives a killed worker by the job timeout; this one is gone seconds after the process is, so a
job whose worker died is retried or failed at once (service.recovery) instead of running for ever.
"""
import json
import threading

from redis.exceptions import ResponseError

from visnet.settings import DEFAULT_MODEL

ALIVE_PREFIX = "visnet:alive:"
MODEL_KEY = "visnet:model"
PREPARING_KEY = "visnet:preparing"
PREPARING_TTL_SECONDS = 30
ALIVE_TTL_SECONDS = 10
HEARTBEAT_SECONDS = 3
SETTLED_AFTER_SECONDS = 2 * HEARTBEAT_SECONDS


def publish_model(connection, info: dict):
    connection.set(MODEL_KEY, json.dumps(info))


def published_model(connection):
    raw = connection.get(MODEL_KEY)
    return json.loads(raw) if raw else None


def publish_preparing(connection, text: str):
    """What the service does before a worker can start (``make run`` downloading weights), for the pages;
    it expires unless refreshed, so a service killed meanwhile leaves no stale note."""
    connection.set(PREPARING_KEY, text, ex=PREPARING_TTL_SECONDS)


def preparing(connection):
    raw = connection.get(PREPARING_KEY)
    return raw.decode() if raw else None


def clear_preparing(connection):
    connection.delete(PREPARING_KEY)


def mark_alive(connection, name: str, info: dict):
    connection.set(ALIVE_PREFIX + name, json.dumps(info), ex=ALIVE_TTL_SECONDS)


def mark_gone(connection, name: str):
    connection.delete(ALIVE_PREFIX + name)


def is_alive(connection, name: str) -> bool:
    return bool(name) and bool(connection.exists(ALIVE_PREFIX + name))


def settled(connection) -> bool:
    """Whether a missing key means a dead worker: not in the first seconds after Redis (re)started,
    before the live workers have beaten again (their keys may have expired while it was down)."""
    try:
        uptime = int(connection.info("server").get("uptime_in_seconds", SETTLED_AFTER_SECONDS))
    except ResponseError:  # INFO refused (some managed Redis services): assume a long-running server
        return True
    return uptime >= SETTLED_AFTER_SECONDS


def alive_workers(connection) -> list:
    """[{"name": ..., plus what the worker published}] for every live worker, sorted by name."""
    keys = sorted(connection.scan_iter(match=ALIVE_PREFIX + "*", count=100))
    workers = []
    for key, raw in zip(keys, connection.mget(keys) if keys else []):
        if raw is None:
            continue  # expired between SCAN and MGET
        name = key.decode()[len(ALIVE_PREFIX):]
        workers.append({"name": name, **json.loads(raw)})
    return workers


def worker_model(worker: dict) -> str:
    """The model a live worker serves; a worker of an older version published none and serves VGG16."""
    return worker.get("model") or DEFAULT_MODEL


def alive_workers_of(connection, model: str) -> list:
    """The live workers that serve ``model``."""
    return [worker for worker in alive_workers(connection) if worker_model(worker) == model]


class Heartbeat:
    """Keeps ``visnet:alive:<name>`` fresh from a daemon thread while the worker runs jobs."""

    def __init__(self, connection, name: str, info: dict, interval: float = HEARTBEAT_SECONDS):
        self.connection, self.name, self.info, self.interval = connection, name, info, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visnet-heartbeat", daemon=True)

    def start(self):
        mark_alive(self.connection, self.name, self.info)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                mark_alive(self.connection, self.name, self.info)
            except Exception:  # Redis briefly away: the next beat tries again
                pass

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)
        try:
            mark_gone(self.connection, self.name)
        except Exception:
            pass
