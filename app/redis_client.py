"""The Redis connection of the web process: ``get_redis()``, ``close_redis()``, ``init_app(app)``.

``REDIS_URL`` unset means the embedded server under the instance folder (see service.embedded_redis).
Short socket timeouts make a vanished or hung Redis a quick 503, not a hung request: the web process
only sends small commands (no blocking ones), so 2 s is far beyond a healthy answer, and a request
that meets two timeouts (the rate limit, then the submission) still answers within about 4 s.

A request that finds the embedded server dead answers 503 at once and leaves a restart behind it, in
a background thread (:func:`restart_embedded_server`): the request is not held up by the restart, a
monitor sees the outage it polled into, and the next requests find Redis back without an operator.
(The supervisor and ``make run`` restart it too; service.embedded_redis's file lock lets one of them
start it.) An external ``REDIS_URL`` is never started from here.
"""
import logging
import threading

import redis
from flask import current_app, g

from service import embedded_redis

log = logging.getLogger(__name__)

_EXTENSION = "visnet.redis_pool"
_EMBEDDED = "visnet.embedded_redis"  # the instance folder, when the app uses the embedded server
_restarting = threading.Lock()  # one restart at a time per process


def get_redis() -> redis.Redis:
    if "redis" not in g:
        g.redis = redis.Redis(connection_pool=current_app.extensions[_EXTENSION])
    return g.redis


def close_redis(error=None):
    client = g.pop("redis", None)
    if client is not None:
        client.close()


def connection_pool(app) -> redis.ConnectionPool:
    """The pool ``get_redis`` draws from, for extensions that keep their own client (the rate limits)."""
    return app.extensions[_EXTENSION]


def init_app(app):
    if not app.config.get("REDIS_URL"):
        app.config["REDIS_URL"] = embedded_redis.ensure_server(app.instance_path)
        app.extensions[_EMBEDDED] = app.instance_path
    app.extensions[_EXTENSION] = redis.ConnectionPool.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=2, health_check_interval=30,
    )
    app.teardown_appcontext(close_redis)


def restart_embedded_server():
    """After a Redis error in a request: start the embedded server again, from a background thread, if
    it is dead. Returns at once; nothing to do for an external Redis or while a restart runs."""
    instance = current_app.extensions.get(_EMBEDDED)
    if instance is None or not _restarting.acquire(blocking=False):
        return
    threading.Thread(target=_restart, args=(instance,), name="visnet-redis-restart", daemon=True).start()


def _restart(instance):
    try:
        if embedded_redis.restart_if_dead(instance):
            log.warning("the embedded Redis server was not answering; started it again")
    except Exception:  # hung rather than dead, or it cannot start: the next failing request tries again
        log.exception("could not restart the embedded Redis server")
    finally:
        _restarting.release()
