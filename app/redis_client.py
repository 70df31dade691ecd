"""The Redis connection of the web process: ``get_redis()``, ``close_redis()``, ``init_app(app)``.

``REDIS_URL`` unset means the embedded server under the instance folder (see app.embedded_redis).
Short socket timeouts make a vanished or hung Redis a quick 503, not a hung request: the web process
only sends small commands (no blocking ones), so 2 s is far beyond a healthy answer, and a request
that meets two timeouts (the rate limit, then the submission) still answers within about 4 s.
"""
import redis
from flask import current_app, g

from . import embedded_redis

_EXTENSION = "visnet.redis_pool"


def get_redis() -> redis.Redis:
    if "redis" not in g:
        g.redis = redis.Redis(connection_pool=current_app.extensions[_EXTENSION])
    return g.redis


def close_redis(error=None):
    client = g.pop("redis", None)
    if client is not None:
        client.close()


def init_app(app):
    if not app.config.get("REDIS_URL"):
        app.config["REDIS_URL"] = embedded_redis.ensure_server(app.instance_path)
    app.extensions[_EXTENSION] = redis.ConnectionPool.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=2, health_check_interval=30,
    )
    app.teardown_appcontext(close_redis)
