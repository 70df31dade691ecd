"""Long polling of a job: ``GET /api/jobs/<id>?since=<revision>&wait=<seconds>`` answers as soon as the job's
document differs from the revision the client already has, or after ``wait`` seconds with it unchanged.

The request waits in its own thread, re-checking every ``CHECK_SECONDS``: each check reads only what the
document is made from and its worker changes (app.jobs.store.change_marker: one stat and one Redis round trip,
about 0.2 ms against about 1 ms for the whole document), and the document is described again only when that
moved, or every ``FULL_CHECK_SECONDS`` for what the marker leaves out (the queue position, a worker's
presence, settling a job whose worker died). Redis has keyspace notifications and pub/sub, but both need a
connection held per waiting request and a server configured for them; a check this cheap needs neither.

A gunicorn process has a few threads (gunicorn.conf.py), so at most ``slots`` requests of a process wait at
once (half its threads; ``LONG_POLL_SLOTS``): a request that finds them all taken answers at once, as a plain
poll, and its client keeps its own schedule. A process that is stopping (gunicorn's SIGTERM, or its recycling
after max_requests) ends its waits within one check, so that a long poll never holds up a shutdown.
"""
import math
import re
import threading
import time

import redis
from flask import current_app

from app.errors import ApiError
from app.jobs import store
from visnet.numbers import parse_decimal

MAX_WAIT_SECONDS = 10
CHECK_SECONDS = 0.025
FULL_CHECK_SECONDS = 1.0
REVISION = re.compile(r"[0-9a-f]{16}")
_EXTENSION = "visnet.long_polls"


class WaitSlots:
    """How many long polls of this process may wait at once, and whether the process is stopping."""

    def __init__(self, slots: int, stopping=lambda: False):
        self.slots = threading.BoundedSemaphore(slots) if slots > 0 else None
        self.stopping = stopping

    def try_take(self) -> bool:
        return self.slots is not None and self.slots.acquire(blocking=False)

    def give_back(self) -> None:
        self.slots.release()


def init_app(app):
    app.extensions[_EXTENSION] = WaitSlots(app.config["LONG_POLL_SLOTS"])


def configure(app, slots: int, stopping) -> None:
    """In a server's process (gunicorn.conf.py): ``slots`` waits at once, none once ``stopping()`` is true."""
    app.extensions[_EXTENSION] = WaitSlots(slots, stopping)


def read_parameters(args) -> tuple:
    """``(since, wait)`` of a request's query: a revision or None, seconds (0 when absent); ApiError 400 for
    anything else, an empty value included."""
    since, raw_wait = args.get("since"), args.get("wait")
    if since is not None and not REVISION.fullmatch(since):
        raise ApiError(400, f"since: {since[:40]!r} is not a revision (16 hexadecimal characters, the `revision` "
                            "of a Job document)", "invalid_parameter")
    if raw_wait is None:
        return since, 0.0
    try:
        wait = parse_decimal(raw_wait)
    except ValueError:
        wait = math.nan
    if not 0 <= wait <= MAX_WAIT_SECONDS:  # nan included
        raise ApiError(400, f"wait: {raw_wait[:20]!r} is not a number of seconds from 0 to {MAX_WAIT_SECONDS}",
                       "invalid_parameter")
    return since, wait


def describe_when_changed(job_id: str, since, wait: float) -> dict:
    """The job's document: at once unless its revision is still ``since``; then as soon as it is not, or after
    ``wait`` seconds (earlier if this process is stopping or has no free slot)."""
    marker = store.change_marker(job_id)  # before the document: a change between the two is then seen
    document = store.describe(job_id)
    if since != document["revision"] or wait <= 0:
        return document
    polls = current_app.extensions[_EXTENSION]
    if not polls.try_take():
        return document
    try:
        return _wait_for_change(job_id, since, marker, time.monotonic() + wait, polls.stopping)
    finally:
        polls.give_back()


def _wait_for_change(job_id, since, marker, deadline, stopping) -> dict:
    described_at = time.monotonic()
    while not stopping():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(CHECK_SECONDS, left))
        try:
            now_marker = store.change_marker(job_id)
        except redis.RedisError:
            break  # answered below as a plain poll would be: a 503, or a finished job without Redis
        if now_marker == marker and time.monotonic() - described_at < FULL_CHECK_SECONDS:
            continue
        marker, described_at = now_marker, time.monotonic()
        document = store.describe(job_id)
        if document["revision"] != since:
            return document
    return store.describe(job_id)
