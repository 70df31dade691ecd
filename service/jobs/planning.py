"""The start (planning) job of an uploaded scan, and looking after a scan on every poll.

The web process stores the archive, then :func:`enqueue_start` enqueues :func:`service.jobs.scan.start`
by dotted path; the worker decodes the images, writes ``scan.json`` and enqueues the chunks
(service.jobs.scheduling). Until ``scan.json`` exists, :func:`watch_start` looks after the start job:
one whose worker died, or that Redis lost, is enqueued again (up to ``START_ATTEMPTS``); one that
failed fails the scan with the worker's message in ``failed.json``. Once planned, :func:`heal`
reschedules a dead worker's chunk and enqueues a scan whose start job died after planning but before
enqueuing anything. No Flask: the caller passes the queue settings.
"""
import logging
from pathlib import Path

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from service import presence
from service.jobs.errors import failed_job_message
from service.jobs.scheduling import PENDING, JobSettings, enqueue_scan, requeue_dead, scan_status
from visnet.scan import store

log = logging.getLogger(__name__)

START_FUNCTION = "service.jobs.scan.start"
START_ATTEMPTS = 3
WAITING_FOR_WORKER = "waiting for a worker: none is running right now"


def _start_key(scan_id: str) -> str:
    return f"visnet:scan-start:{scan_id}"


def enqueue_start(connection, settings: JobSettings, scan_id: str, folder: Path, options: dict,
                  max_image_pixels: int, attempt: int = 1, model: dict = None) -> Job:
    """Enqueue the planning of the scan in ``folder`` (its images in ``images/``) on
    ``settings.queue_name``, and remember it as the scan's start job. ``model``: a stored model's description
    (visnet.scan.layout.ChainLayout.describe), None for VGG16."""
    folder = Path(folder).resolve()
    job = Queue(settings.queue_name, connection=connection).enqueue_call(
        START_FUNCTION, args=(str(folder), str(folder / store.IMAGES_DIR), options),
        kwargs={"max_image_pixels": max_image_pixels, **({"model": model} if model else {})},
        job_id=f"scanstart-{scan_id}-{attempt}", timeout=settings.job_timeout,
        result_ttl=settings.result_ttl, failure_ttl=settings.failure_ttl,
        description=f"scan {scan_id} start", meta={"scan": scan_id, "task": "start"})
    connection.hset(_start_key(scan_id), mapping={"job": job.id, "attempts": attempt})
    connection.expire(_start_key(scan_id), max(settings.result_ttl, settings.failure_ttl))
    return job


def _start_job(connection, scan_id):
    """(job or None, attempts so far)."""
    raw = connection.hgetall(_start_key(scan_id))
    values = {key.decode(): value.decode() for key, value in raw.items()}
    job = None
    if values.get("job"):
        try:
            job = Job.fetch(values["job"], connection=connection)
        except NoSuchJobError:
            job = None
    return job, int(values.get("attempts") or 0)


def _waiting(connection):
    return None if presence.alive_workers(connection) else WAITING_FOR_WORKER


def watch_start(connection, settings: JobSettings, scan_id: str, folder: Path, options: dict,
                max_image_pixels: int, model: dict = None) -> dict:
    """What the start job is doing: {"state": "queued" | "running" | "failed" | "planned", "message",
    "progress", "live"}; enqueues it again when its worker died or Redis lost it."""
    with connection.lock(f"{_start_key(scan_id)}:lock", timeout=30, blocking_timeout=15):
        job, attempts = _start_job(connection, scan_id)
        status = job.get_status(refresh=False) if job is not None else None
        if (folder / store.SCAN_FILE).is_file():
            return {"state": "planned", "message": None, "progress": None, "live": status in PENDING or (
                status == JobStatus.STARTED and presence.is_alive(connection, job.worker_name))}
        if status in PENDING:
            return {"state": "queued", "message": _waiting(connection), "progress": None, "live": True}
        if status == JobStatus.STARTED and presence.is_alive(connection, job.worker_name):
            return {"state": "running", "message": None, "progress": job.meta.get("progress"), "live": True}
        if status == JobStatus.FAILED:
            message = f"planning failed: {failed_job_message(job, 'the planning job failed')}"
            store.write_failure(folder, message)
            return {"state": "failed", "message": message, "progress": None, "live": False}
        # The worker died, the job was canceled, or Redis no longer has it: plan again.
        if attempts >= START_ATTEMPTS:
            message = f"planning was interrupted {attempts} times (its worker stopped); upload the archive again"
            store.write_failure(folder, message)
            return {"state": "failed", "message": message, "progress": None, "live": False}
        log.info("scan %s: the planning job %s is gone (%s); enqueued again", scan_id, job and job.id, status)
        enqueue_start(connection, settings, scan_id, folder, options, max_image_pixels, attempts + 1, model)
        return {"state": "queued", "message": _waiting(connection), "progress": None, "live": True}


def heal(connection, settings: JobSettings, scan_id: str, folder: Path, options, max_image_pixels: int,
         model: dict = None) -> tuple:
    """Reschedule a dead worker's chunk, or enqueue an uploaded scan (``options`` of its upload; None
    for a CLI scan, which its own process or its ``--enqueue`` runs) whose start job died after
    planning. Returns (a message for the page or None, :func:`scan_status` after that)."""
    healed = requeue_dead(connection, folder)
    message = None
    if healed.get("dead"):
        log.info("scan %s: jobs of dead workers scheduled again: %s", scan_id, healed["dead"])
        message = "a worker stopped during this scan; its work was scheduled again"
    status = scan_status(connection, folder)
    if options is not None and status["queue"] is None and status["status"] not in ("done", "failed"):
        if not watch_start(connection, settings, scan_id, folder, options, max_image_pixels, model)["live"]:
            enqueue_scan(connection, settings.queue_name, folder, job_timeout=settings.job_timeout,
                         result_ttl=settings.result_ttl, failure_ttl=settings.failure_ttl)
            message = "the scan was planned but not enqueued (its worker stopped); it has been enqueued now"
            status = scan_status(connection, folder)
    return message, status
