"""Per-client rate limits shared by every web process: Flask-Limiter, its counters in Redis, a 429
in the API's error shape past the limit.

Three budgets per client: ``submit`` for requests that change something (POST and DELETE: new jobs,
the upload form, cancels), ``files`` for the result pictures (a job's PNGs, a scan's thumbnails and
projections: immutable files, and a scan page of 512 units shows about 9000 of them) and ``read`` for
everything else (polls, archives, pages). Nobody is counted on ``/api/health`` (a monitor must see a
busy service) or ``/static``. Each budget is one Flask-Limiter application limit (shared by every
route) that applies only to its own kind of request.

Flask-Limiter's fixed window on Redis: a client's window opens with its first request and lasts
``RATE_LIMIT_WINDOW`` seconds; the counter is one Redis key per client and budget (one Lua script
increments it and sets its expiry, atomically), so every gunicorn process and every host share it.
Refused requests count too: a client that keeps hammering gains nothing. The storage uses the web
process's own connection pool (app.redis_client), with its short timeouts.

Who the client is: ``request.remote_addr``. ``create_app`` applies werkzeug's ``ProxyFix`` only when
``TRUSTED_PROXIES`` (VISNET_TRUSTED_PROXIES) says how many reverse proxies stand in front; with 0,
the default, ``X-Forwarded-For`` is ignored, so a client cannot pick a fresh identity by sending
one. IPv6 clients are counted per /64, the block one host usually holds.

When Redis does not answer, requests go through uncounted (Flask-Limiter's ``swallow_errors``): the
API answers 503 itself where it needs Redis, and pages keep loading.
"""
import ipaddress
import logging
import math
import time

import redis
from flask import current_app, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded

from app import errors, redis_client

_EXTENSION = "visnet.limiter"
KEY_PREFIX = "visnet:ratelimit"
UNCOUNTED_PATHS = frozenset({"/api/health"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FILE_ENDPOINTS = frozenset({"api.job_file", "scan_api.scan_file"})
LIMIT_SETTINGS = {"submit": "RATE_LIMIT_SUBMIT", "files": "RATE_LIMIT_FILES", "read": "RATE_LIMIT_READ"}


def client_key(remote_addr) -> str:
    """The identity a client is counted under: its IPv4 address, or the /64 of its IPv6 address."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return remote_addr or "unknown"  # a Unix socket peer, say: one shared budget
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def bucket_for(method: str, path: str, endpoint) -> str:
    """``submit``, ``files``, ``read``, or None for requests that are never counted."""
    if endpoint == "static" or path in UNCOUNTED_PATHS or method == "OPTIONS":
        return None
    if method in WRITE_METHODS:
        return "submit"
    return "files" if endpoint in FILE_ENDPOINTS else "read"


def _budget(bucket: str) -> ApplicationLimit:
    def limit() -> str:
        amount = current_app.config[LIMIT_SETTINGS[bucket]]
        return f"{amount} per {current_app.config['RATE_LIMIT_WINDOW']} second" if amount else ""  # 0: off

    def other_budget() -> bool:
        return bucket_for(request.method, request.path, request.endpoint) != bucket

    return ApplicationLimit(limit, scope=bucket, exempt_when=other_budget)


def _seconds_left(current) -> int:
    """Until the client's window closes; one Redis round trip."""
    return max(1, math.ceil(current.window.reset_time - time.time()))


def _refused(error: RateLimitExceeded):
    """The 429 in the API's error shape (a page outside /api), with Retry-After."""
    bucket, limit = error.limit.scope, error.limit.limit
    window = limit.get_expiry()
    try:
        retry_after = _seconds_left(current_app.extensions[_EXTENSION].current_limit)
    except redis.RedisError:
        retry_after = window
    what = "submissions" if bucket == "submit" else "requests"
    return errors.answer(429, f"too many {what} from your address: the limit is {limit.amount} per {window} s; "
                              f"try again in {retry_after} s", "rate_limited", {"Retry-After": str(retry_after)})


def add_headers(response):
    """after_request: tell a counted client where it stands. Written here, not by Flask-Limiter's
    ``headers_enabled``: that one puts Retry-After on every counted answer, over the queue cap's own
    (tests/app/test_queue_cap.py), and its X-RateLimit-Reset is a time of day, not the seconds left."""
    current = current_app.extensions[_EXTENSION].current_limit
    if current is None:
        return response
    try:
        seconds_left = _seconds_left(current)
    except redis.RedisError:  # gone since the request was counted
        return response
    response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(current.remaining)
    response.headers["X-RateLimit-Reset"] = str(seconds_left)
    return response


class _OneLineWhileRedisIsAway(logging.Filter):
    """Flask-Limiter logs a whole traceback for every request it lets through while Redis is away; the
    app.errors handler already says that Redis is down, so one line per request is enough here."""

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (redis.RedisError, OSError)):
            record.msg, record.args, record.exc_info = "not counted: Redis is not reachable (%s)", (error,), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_ONE_LINE = _OneLineWhileRedisIsAway()


def init_app(app):
    logging.getLogger("flask-limiter").addFilter(_ONE_LINE)  # once: the same filter is not added twice
    limiter = Limiter(
        lambda: client_key(request.remote_addr),
        application_limits=[_budget(bucket) for bucket in LIMIT_SETTINGS],
        # Unrouted requests (404, 405) have no endpoint, which Flask-Limiter would leave uncounted.
        request_identifier=lambda: request.endpoint or "unrouted",
        strategy="fixed-window",
        storage_uri="redis://",
        storage_options={"connection_pool": redis_client.connection_pool(app), "key_prefix": KEY_PREFIX},
        swallow_errors=True,
    )
    limiter.init_app(app)
    app.extensions[_EXTENSION] = limiter
    app.register_error_handler(RateLimitExceeded, _refused)
    app.after_request(add_headers)
