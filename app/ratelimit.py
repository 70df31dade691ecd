"""Per-client rate limits shared by every web process: a fixed window counted in Redis, a 429 in the API's
error shape past the limit.

Three budgets per client: ``submit`` for requests that change something (POST and DELETE: new jobs,
the upload form, cancels), ``files`` for the result pictures (a job's PNGs, a scan's thumbnails and
projections: immutable files, and a scan page of 512 units shows about 9000 of them) and ``read`` for
everything else (polls, archives, pages). Nobody is counted on ``/api/health`` (a monitor must see a
busy service) or ``/static``.

A fixed window: a client's window for a budget opens with its first request and lasts ``RATE_LIMIT_WINDOW``
seconds. Its counter is one Redis key per client and budget, and one Lua script (:data:`COUNT_SCRIPT`) increments
it, gives it its expiry when it opens the window and returns the count and the milliseconds left, atomically and
in one round trip: every gunicorn process and every host share the count, and the answer's ``X-RateLimit-*``
headers need nothing more. Refused requests count too: a client that keeps hammering gains nothing. The counter
uses the web process's own connection pool (app.redis_client), with its short timeouts. Flask-Limiter counted them
before, with three Redis commands and its own bookkeeping a request. The CPU of serving one PNG, in one process
(2-core AMD EPYC, 600 requests): 0.38–0.46 ms with the limits off, 0.90–1.02 ms with Flask-Limiter, 0.59–0.77 ms
with this counter; in a gunicorn process, 1.9–2.4 ms against 1.0–1.3 ms a PNG, and 6.2 against 2.4 ms a poll.

Who the client is: ``request.remote_addr``. ``create_app`` applies werkzeug's ``ProxyFix`` only when
``TRUSTED_PROXIES`` (VISNET_TRUSTED_PROXIES) says how many reverse proxies stand in front; with 0,
the default, ``X-Forwarded-For`` is ignored, so a client cannot pick a fresh identity by sending
one. IPv6 clients are counted per /64, the block one host usually holds.

When Redis does not answer, requests go through uncounted, with one log line each: the API answers 503 itself
where it needs Redis, and pages keep loading.
"""
import ipaddress
import logging
import math

import redis
from flask import current_app, request

from app import errors, redis_client

log = logging.getLogger(__name__)

KEY_PREFIX = "visnet:ratelimit"
UNCOUNTED_PATHS = frozenset({"/api/health"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FILE_ENDPOINTS = frozenset({"api.job_file", "scan_api.scan_file"})
LIMIT_SETTINGS = {"submit": "RATE_LIMIT_SUBMIT", "files": "RATE_LIMIT_FILES", "read": "RATE_LIMIT_READ"}
# KEYS[1]: the client's counter of one budget; ARGV[1]: the window in seconds. Returns {count, milliseconds left}.
# A counter found without an expiry (none should be) gets the window again, so that it cannot block a client for good.
COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1]) * 1000
end
return {count, left}
"""
_SCRIPT = "visnet.ratelimit_script"
_STANDING = "visnet.rate_limit"  # in the request's environ: its (limit, count, seconds left), for the headers


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


def count(bucket: str, client: str, window: int) -> tuple:
    """Count one request of ``client`` against ``bucket``: (the count in the window, seconds until it closes)."""
    script = current_app.extensions[_SCRIPT]
    counted, milliseconds = script(keys=[f"{KEY_PREFIX}:{bucket}:{client}"], args=[window],
                                  client=redis_client.get_redis())
    return int(counted), max(1, math.ceil(int(milliseconds) / 1000))


def check():
    """before_request: count the request against its budget; past the limit, the 429 (a page outside /api) with
    Retry-After."""
    bucket = bucket_for(request.method, request.path, request.endpoint)
    limit = current_app.config[LIMIT_SETTINGS[bucket]] if bucket else 0
    if not limit:  # uncounted, or the budget is off (0)
        return None
    window = current_app.config["RATE_LIMIT_WINDOW"]
    try:
        counted, seconds_left = count(bucket, client_key(request.remote_addr), window)
    except (redis.RedisError, OSError) as error:
        log.warning("not counted: Redis is not reachable (%s)", error)
        return None
    request.environ[_STANDING] = (limit, counted, seconds_left)
    if counted <= limit:
        return None
    what = "submissions" if bucket == "submit" else "requests"
    return errors.answer(429, f"too many {what} from your address: the limit is {limit} per {window} s; "
                              f"try again in {seconds_left} s", "rate_limited", {"Retry-After": str(seconds_left)})


def add_headers(response):
    """after_request: tell a counted client where it stands (``X-RateLimit-Reset``: the seconds left in its
    window). Not ``Retry-After``, which only a 429 carries (and a full queue's 503: app.queue_cap)."""
    standing = request.environ.get(_STANDING)
    if standing is not None:
        limit, counted, seconds_left = standing
        response.headers["X-RateLimit-Limit"] = str(limit)
        response.headers["X-RateLimit-Remaining"] = str(max(0, limit - counted))
        response.headers["X-RateLimit-Reset"] = str(seconds_left)
    return response


def init_app(app):
    # The script's SHA is sent (EVALSHA) and the script itself only when a server does not know it yet.
    app.extensions[_SCRIPT] = redis.Redis(connection_pool=redis_client.connection_pool(app)).register_script(
        COUNT_SCRIPT)
    app.before_request(check)
    app.after_request(add_headers)
