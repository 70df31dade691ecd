"""Which job a job was made from (``from_job``: a projected channel, a tab's method, a rule toggle) and the
jobs made from it, so that the job page links both ways.

A job's id is a hash of its photo and options, so one job can be reached from several others: its parent
is the first job it was made from (a job first uploaded directly has none, and keeps none), and a parent
lists every job whose parent it is. Both live in Redis beside the RQ jobs, for as long as results are kept
(``RETENTION_HOURS``). They are a convenience of the pages: when Redis cannot answer, a finished job is
still described, without them.
"""
import logging

import redis
from flask import current_app, url_for

from app.redis_client import get_redis

log = logging.getLogger(__name__)


def _parent_key(job_id: str) -> str:
    return f"visnet:lineage:parent:{job_id}"


def _children_key(job_id: str) -> str:
    return f"visnet:lineage:children:{job_id}"


def record(parent_id, child_id: str, method: str) -> None:
    """Note that ``child_id`` (running ``method``) was made from ``parent_id``, or from a photo upload when
    ``parent_id`` is empty, unless it already has its origin noted or is the parent itself (the same options
    again). A job first made from an upload is marked too, so that it never gains a parent later."""
    if parent_id == child_id:
        return
    connection = get_redis()
    expiry = max(1, int(current_app.config["RETENTION_HOURS"] * 3600))
    try:  # the job is enqueued already: a Redis that fails now costs the links, not the job
        if connection.set(_parent_key(child_id), parent_id or "", nx=True, ex=expiry) and parent_id:
            pipe = connection.pipeline()
            pipe.hset(_children_key(parent_id), child_id, method)
            pipe.expire(_children_key(parent_id), expiry)
            pipe.execute()
    except redis.RedisError as error:
        log.warning("lineage of job %s not recorded: %s", child_id, error)


def forget(job_id: str) -> None:
    """A deleted job leaves its parent's children and loses its own links; the jobs made from it keep their
    parent link, which answers 404 like any deleted job."""
    connection = get_redis()
    try:
        parent = connection.get(_parent_key(job_id))
        pipe = connection.pipeline()
        if parent:
            pipe.hdel(_children_key(parent.decode() if isinstance(parent, bytes) else parent), job_id)
        pipe.delete(_parent_key(job_id), _children_key(job_id))
        pipe.execute()
    except redis.RedisError as error:
        log.warning("lineage of deleted job %s not removed: %s", job_id, error)


def _link(job_id: str, method: str = None) -> dict:
    link = {"id": job_id, "page": url_for("pages.job", job_id=job_id), "self": url_for("api.job", job_id=job_id)}
    return {**link, "method": method} if method is not None else link


def read_into(pipe, job_id: str) -> None:
    """Adds to the Redis pipeline ``pipe`` the reads :func:`describe` makes (a cheap check that they changed)."""
    pipe.get(_parent_key(job_id))
    pipe.hgetall(_children_key(job_id))


def describe(job_id: str) -> dict:
    """``{"parent": {id, page, self} or None, "children": [{id, method, page, self}]}``; children in the
    order of their ids (stable from one poll to the next)."""
    try:
        connection = get_redis()
        parent = connection.get(_parent_key(job_id))
        children = connection.hgetall(_children_key(job_id))
    except redis.RedisError as error:
        log.warning("lineage of job %s unavailable: %s", job_id, error)
        return {"parent": None, "children": []}
    parent = parent.decode() if isinstance(parent, bytes) else parent
    pairs = sorted((key.decode() if isinstance(key, bytes) else key, value.decode() if isinstance(value, bytes)
                    else value) for key, value in children.items())
    return {"parent": _link(parent) if parent else None,
            "children": [_link(child, method) for child, method in pairs]}
