"""Per-client rate limits shared by every web process: counters in Redis, a 429 past the limit.

Three budgets per client: ``submit`` for requests that change something (POST and DELETE: new jobs,
the upload form, cancels), ``files`` for the result pictures (a job's PNGs, a scan's thumbnails and
projections: immutable files, and a scan page of 512 units shows about 9000 of them) and ``read`` for
everything else (polls, archives, pages). Nobody
is counted on ``/api/health`` (a monitor must see a busy service) or ``/static``.

A client's window opens with its first request and lasts ``RATE_LIMIT_WINDOW`` seconds. The counter
is one Redis key per client and budget, so every gunicorn process and every host share it; one
MULTI/EXEC (``SET key 0 EX window NX``, ``INCR``, ``PTTL``) opens the window, counts the request and
reads when the window closes, atomically. Refused requests count too: a client that keeps
hammering gains nothing.

Who the client is: ``request.remote_addr``. ``create_app`` applies werkzeug's ``ProxyFix`` only when
``TRUSTED_PROXIES`` (VISNET_TRUSTED_PROXIES) says how many reverse proxies stand in front; with 0,
the default, ``X-Forwarded-For`` is ignored, so a client cannot pick a fresh identity by sending
one. IPv6 clients are counted per /64, the block one host usually holds.

When Redis does not answer, requests go through uncounted: the API answers 503 itself where it
needs Redis, and pages keep loading.
"""
import ipaddress
import logging
import math
from dataclasses import dataclass

import redis
from flask import current_app, g, request

from app.errors import ApiError
from app.redis_client import get_redis

log = logging.getLogger(__name__)

KEY_PREFIX = "visnet:ratelimit:"
UNCOUNTED_PATHS = frozenset({"/api/health"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FILE_ENDPOINTS = frozenset({"api.job_file", "scan_api.scan_file"})
LIMIT_SETTINGS = {"submit": "RATE_LIMIT_SUBMIT", "files": "RATE_LIMIT_FILES", "read": "RATE_LIMIT_READ"}


@dataclass(frozen=True)
class Verdict:
    bucket: str
    limit: int
    count: int
    reset_seconds: float  # until this client's window closes

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_seconds))


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


def count_request(connection, bucket: str, client: str, limit: int, window: int) -> Verdict:
    """Count one request of ``client`` in ``bucket`` and say whether it is within ``limit``."""
    key = f"{KEY_PREFIX}{bucket}:{client}"
    pipeline = connection.pipeline(transaction=True)
    pipeline.set(key, 0, ex=window, nx=True)
    pipeline.incr(key)
    pipeline.pttl(key)
    _, hits, milliseconds_left = pipeline.execute()
    reset = milliseconds_left / 1000 if milliseconds_left > 0 else window
    return Verdict(bucket, limit, int(hits), reset)


def _limit_for(bucket: str) -> int:
    return current_app.config[LIMIT_SETTINGS[bucket]]


def check_request():
    """before_request: count the request and refuse it with a 429 past the client's limit."""
    bucket = bucket_for(request.method, request.path, request.endpoint)
    if bucket is None:
        return
    limit = _limit_for(bucket)
    if not limit:
        return
    window = current_app.config["RATE_LIMIT_WINDOW"]
    try:
        verdict = count_request(get_redis(), bucket, client_key(request.remote_addr), limit, window)
    except redis.RedisError as error:
        log.warning("rate limit not checked, Redis unavailable: %s", error)
        return
    g.rate_limit = verdict
    if not verdict.allowed:
        what = "submissions" if bucket == "submit" else "requests"
        raise ApiError(429, f"too many {what} from your address: the limit is {limit} per {window} s; "
                            f"try again in {verdict.retry_after} s", "rate_limited",
                       headers={"Retry-After": str(verdict.retry_after)})


def add_headers(response):
    """after_request: tell a counted client where it stands."""
    verdict = g.get("rate_limit")
    if verdict is not None:
        response.headers["X-RateLimit-Limit"] = str(verdict.limit)
        response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
        response.headers["X-RateLimit-Reset"] = str(verdict.retry_after)
    return response


def init_app(app):
    app.before_request(check_request)
    app.after_request(add_headers)
