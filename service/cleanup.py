"""Expiry: results, uploads and finished scans older than ``RETENTION_HOURS`` are deleted.

    .venv/bin/python -m service.cleanup                 # once, with VISNET_RETENTION_HOURS
    .venv/bin/python -m service.cleanup --hours 1 --dry-run

What goes, by modification time (the age of what is on disk, not of the Redis records):

* ``RESULTS_DIR/<job id>/``: a finished job's folder (its mtime is when the worker wrote it), and
  the finished RQ record of that id, so the API then answers 404 "expired" rather than "files
  missing";
* ``UPLOAD_DIR/<sha256>.<ext>``: an upload, unless a queued, deferred, scheduled or running job
  reads it (``uploads.store`` refreshes the mtime when a new job reuses an upload);
* ``RESULTS_DIR/scans/<scan id>/``: a scan that is done or failed and whose newest file is older
  than the retention (an uploaded scan whose planning failed counts as failed); a scan still in
  progress stays, whatever its age;
* leftovers of interrupted writes: ``UPLOAD_DIR/.upload-*`` files older than the retention, and
  ``RESULTS_DIR/.tmp-*`` folders (a job's result while it is written, see visnet.atomic) whose mtime
  is older than the job timeout plus ``PARTIAL_MARGIN_SECONDS``, whatever the retention. A running
  job's folder is always younger: the job made it after it started, and no job runs past its time
  limit plus the supervisor's hang grace (under a minute) before it is stopped or its worker killed.
  (A settled dead worker's job loses its folder at once: service.recovery.)

The web processes run it in the background (app.cleanup starts a :class:`PeriodicCleanup`): a daemon
thread in each process wakes a few times per ``CLEANUP_INTERVAL`` and runs the cleanup only when it
wins ``SET … NX EX interval`` in Redis (:func:`run_if_due`), so the whole cluster cleans once per
interval and no request waits for it.
"""
import argparse
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import DeferredJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from service import embedded_redis
from visnet.atomic import PARTIAL_PREFIX
from visnet.numbers import decimal_argument
from visnet.settings import from_environment, model_queue_name

log = logging.getLogger(__name__)

JOB_FOLDER = re.compile(r"[0-9a-f]{32}")
UPLOAD_FILE = re.compile(r"[0-9a-f]{64}\.[a-z]{3,4}")
SCAN_ENDED = ("done", "failed")
FIRST_CHECK_SECONDS = 10.0
CHECKS_PER_INTERVAL = 4
PARTIAL_MARGIN_SECONDS = 300  # past the job timeout: more than the hang grace (default 30 s, advised under 60)


def _lock_key(queue_name):
    return f"visnet:cleanup:{queue_name}:lock"


def last_run_key(queue_name):
    return f"visnet:cleanup:{queue_name}:last"


# --- what is in use ----------------------------------------------------------------------------

def photo_queues(connection, queue_name) -> list:
    """VGG16's photo queue and every stored model's that RQ knows of (visnet.settings.model_queue_name)."""
    prefix = model_queue_name(queue_name, "")  # "<queue>-model-"
    return [Queue(queue_name, connection=connection)] + [
        queue for queue in Queue.all(connection=connection) if queue.name.startswith(prefix)]


def uploads_in_use(connection, queue_name) -> set:
    """Names of the uploads that queued, deferred, scheduled or running jobs of the photo queues will read."""
    job_ids = set()
    for queue in photo_queues(connection, queue_name):
        job_ids.update(queue.get_job_ids())
        for registry in (StartedJobRegistry, DeferredJobRegistry, ScheduledJobRegistry):
            job_ids.update(registry(queue=queue).get_job_ids(cleanup=False))
    names = set()
    for job in Job.fetch_many(sorted(job_ids), connection=connection):
        if job is None:
            continue
        name = (job.meta.get("image") or {}).get("name")
        if not name:
            try:
                name = Path(str(job.args[0])).name if job.args else None
            except Exception:  # arguments that do not deserialise: not one of ours
                name = None
        if name:
            names.add(name)
    return names


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for root, directories, files in os.walk(folder):
        for name in directories + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                pass
    return newest


def _scan_has_ended(scan_dir: Path) -> bool:
    from visnet.scan import store
    from visnet.scan.progress import scan_progress  # numpy only; no TensorFlow

    if not (scan_dir / store.SCAN_FILE).exists() and (scan_dir / store.FAILED_FILE).is_file():
        return True  # an upload whose planning failed (every image greyscale, say): it never had a scan.json
    try:
        return scan_progress(scan_dir)["status"] in SCAN_ENDED
    except Exception as error:  # no or damaged scan.json: not ours to judge, keep it
        log.info("cleanup: keeping %s, its state cannot be read (%s)", scan_dir, error)
        return False


# --- deleting ----------------------------------------------------------------------------------

class _Sweep:
    """Deletes what is older than a cutoff and keeps the tally."""

    def __init__(self, cutoff: float, dry_run: bool):
        self.cutoff, self.dry_run = cutoff, dry_run
        self.deleted = {"results": [], "uploads": [], "scans": [], "partial": []}
        self.kept_in_use = 0
        self.errors = []

    def is_old(self, path: Path, cutoff=None) -> bool:
        try:
            return path.lstat().st_mtime < (self.cutoff if cutoff is None else cutoff)
        except FileNotFoundError:
            return False

    def delete(self, kind: str, path: Path):
        if not self.dry_run:
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                return
            except OSError as error:
                self.errors.append(f"{path}: {error}")
                log.warning("cleanup: could not delete %s: %s", path, error)
                return
        self.deleted[kind].append(path.name)

    def report(self) -> dict:
        return {"dry_run": self.dry_run, "cutoff": self.cutoff,
                **{kind: sorted(names) for kind, names in self.deleted.items()},
                "kept_in_use": self.kept_in_use, "errors": self.errors}


def _forget_finished_job(connection, job_id: str):
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return
    if job.get_status(refresh=False) == JobStatus.FINISHED:
        job.delete()


def run_cleanup(results_dir, upload_dir, connection, queue_name, max_age_seconds: float,
                job_timeout: float = 0, now: float = None, dry_run: bool = False) -> dict:
    """Delete what has expired (see the module docstring); return what went, by kind."""
    now = time.time() if now is None else now
    sweep = _Sweep(now - max_age_seconds, dry_run)
    results_dir, upload_dir = Path(results_dir), Path(upload_dir)
    in_use = uploads_in_use(connection, queue_name)  # before looking at the files: a new job only adds
    partial_cutoff = now - job_timeout - PARTIAL_MARGIN_SECONDS  # no attempt writes for longer

    if results_dir.is_dir():
        for path in results_dir.iterdir():
            if JOB_FOLDER.fullmatch(path.name) and path.is_dir() and sweep.is_old(path):
                sweep.delete("results", path)
                if not dry_run:
                    _forget_finished_job(connection, path.name)
            elif path.name.startswith(PARTIAL_PREFIX) and sweep.is_old(path, partial_cutoff):
                sweep.delete("partial", path)
        scans = results_dir / "scans"
        if scans.is_dir():
            for path in scans.iterdir():
                if (JOB_FOLDER.fullmatch(path.name) and path.is_dir() and not path.is_symlink()
                        and _newest_mtime(path) < sweep.cutoff and _scan_has_ended(path)):
                    sweep.delete("scans", path)

    if upload_dir.is_dir():
        for path in upload_dir.iterdir():
            if UPLOAD_FILE.fullmatch(path.name) and sweep.is_old(path):
                if path.name in in_use:
                    sweep.kept_in_use += 1
                else:
                    sweep.delete("uploads", path)
            elif path.name.startswith(".upload-") and sweep.is_old(path):
                sweep.delete("partial", path)
    return sweep.report()


# --- once per interval across the cluster ------------------------------------------------------

def run_if_due(connection, results_dir, upload_dir, queue_name, retention_hours: float, interval: float,
               job_timeout: float = 0):
    """Run the cleanup unless some process (here or on another host) has within ``interval`` s; the
    report, or None when it was not this process's turn."""
    me = f"{socket.gethostname()}:{os.getpid()}"
    if not connection.set(_lock_key(queue_name), me, nx=True, ex=max(1, int(interval))):
        return None
    started = time.monotonic()
    report = run_cleanup(results_dir, upload_dir, connection, queue_name, retention_hours * 3600,
                         job_timeout=job_timeout)
    summary = {"by": me, "finished_at": time.time(), "seconds": round(time.monotonic() - started, 3),
               **{kind: len(report[kind]) for kind in ("results", "uploads", "scans", "partial")},
               "kept_in_use": report["kept_in_use"], "errors": len(report["errors"])}
    connection.set(last_run_key(queue_name), json.dumps(summary))
    if any(summary[kind] for kind in ("results", "uploads", "scans", "partial")):
        log.info("cleanup: %s", summary)
    return report


class PeriodicCleanup:
    """A daemon thread that calls ``run_due()`` (a :func:`run_if_due` with its arguments bound) a few
    times per interval."""

    def __init__(self, run_due, interval: float):
        self.run_due, self.interval = run_due, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visnet-cleanup", daemon=True)

    def start(self, first_check: float = FIRST_CHECK_SECONDS):
        self._first_check = min(first_check, self.interval)
        self._thread.start()
        return self

    def _run(self):
        delay = self._first_check
        while not self._stop.wait(delay):
            try:
                self.run_due()
            except Exception:  # Redis away, a disk error: the next turn tries again
                log.exception("cleanup failed")
            delay = max(1.0, self.interval / CHECKS_PER_INTERVAL)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Delete results, uploads and finished scans older than the "
                                                 "retention (VISNET_RETENTION_HOURS).")
    parser.add_argument("--hours", type=decimal_argument, help="retention in hours (default: VISNET_RETENTION_HOURS)")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    args = parser.parse_args(argv)
    if args.hours is not None and not args.hours > 0:
        parser.error("--hours must be greater than 0")
    settings = from_environment()
    connection = redis.Redis.from_url(settings.redis_url or embedded_redis.ensure_server(settings.instance_dir))
    hours = settings.retention_hours if args.hours is None else args.hours
    report = run_cleanup(settings.results_dir, settings.upload_dir, connection, settings.queue_name, hours * 3600,
                         job_timeout=settings.job_timeout, dry_run=args.dry_run)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
