"""Jobs as the web process sees them: submit (deduplicated by content hash), describe, cancel, delete.

A job's id is the hash of its image bytes and normalised options. A finished job is its folder
``RESULTS_DIR/<id>/`` (written atomically by the worker), so it outlives its Redis record; a pending
or failed one is the RQ job of the same id. The job function is enqueued by dotted path: this module
never imports TensorFlow. Polling or resubmitting a job whose worker died mid-run retries it once or
fails it (service.recovery), so no job stays "started" for ever.
"""
import hashlib
import io
import json
import re
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Iterator

from flask import current_app, url_for
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from app import models, queue_cap
from app.errors import ApiError
from app.file_urls import file_urls
from app.jobs import lineage, uploads
from app.jobs.forms import ViewOptions
from app.redis_client import get_redis
from service import presence, recovery
from service.jobs import written
from service.jobs.enqueue import enqueue_photo_job
from service.jobs.errors import failed_job_message
from visnet import results
from visnet.atomic import PARTIAL_PREFIX
from visnet.methods import DEFAULT_METHOD
from visnet.settings import DEFAULT_MODEL

JOB_ID = re.compile(r"[0-9a-f]{32}")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.png")
ARCHIVE_BLOCK = 256 * 1024
QUEUED = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.CREATED)
PENDING = (*QUEUED, JobStatus.STARTED)


def get_queue(model: str = None) -> Queue:
    """The photo queue of ``model`` (default: VGG16's, named QUEUE_NAME; app.models.queue_name)."""
    config = current_app.config
    return Queue(models.queue_name(model), connection=get_redis(), default_timeout=config["JOB_TIMEOUT"])


def results_dir() -> Path:
    return Path(current_app.config["RESULTS_DIR"])


def result_dir(job_id: str) -> Path:
    """The folder of a finished job; 404 for anything that is not a well-formed id."""
    if not JOB_ID.fullmatch(job_id or ""):
        raise ApiError(404, f"no job {job_id[:40]!r}: job ids are 32 hexadecimal characters", "job_not_found")
    return results_dir() / job_id


def is_finished(job_id: str) -> bool:
    return results.is_complete(result_dir(job_id))


def fetch_job(job_id: str):
    """The RQ job, read in one go: use ``get_status(refresh=False)`` so that its status and worker
    name come from the same snapshot."""
    try:
        return Job.fetch(job_id, connection=get_redis())
    except NoSuchJobError:
        return None


def _recovered(job):
    """The job again after settling it if its worker died mid-run (retried once, then failed; see
    service.recovery), or as it was."""
    if job is not None and recovery.recover_job(get_redis(), job):
        return fetch_job(job.id)
    return job


# --- submitting -------------------------------------------------------------------------------

def submit(checked: uploads.CheckedImage, options) -> dict:
    """Enqueue a job unless the same one is finished or pending. Returns the Job document plus
    ``reused`` (True when nothing new was enqueued). ``options`` is JobOptions or ViewOptions."""
    job_id = options.job_key(checked.sha256)
    method = options.method if isinstance(options, ViewOptions) else DEFAULT_METHOD
    queue = get_queue(options.model["name"] if options.model else None)
    if is_finished(job_id):
        return {**describe(job_id), "reused": True}
    connection = get_redis()
    config = current_app.config
    # Two identical uploads at once must not both enqueue: the check and the enqueue go together. They
    # take milliseconds; the short expiry frees a lock whose request gave up while Redis hung (the
    # SET reaches Redis when it wakes up, and nobody releases it).
    with connection.lock(f"visnet:submit:{job_id}", timeout=10, blocking_timeout=5):
        job = _recovered(fetch_job(job_id))
        if job is not None and job.get_status(refresh=False) in PENDING:
            return {**describe(job_id), "reused": True}
        queue_cap.check_capacity(queue, config["QUEUE_CAP"])  # a new job: refused when the queue is full
        if job is not None:
            job.delete()  # failed, canceled or orphaned: start over under the same id
        try:
            path, created = uploads.store(checked, config["UPLOAD_DIR"])
        except uploads.UploadDiskFull as error:
            raise ApiError(507, str(error), "insufficient_storage") from None
        try:
            enqueue_photo_job(queue, job_id, path, results_dir(), method, options.as_dict(),
                              {"sha256": checked.sha256, "name": checked.stored_name},
                              deconv=not isinstance(options, ViewOptions), timeout=config["JOB_TIMEOUT"],
                              result_ttl=config["RESULT_TTL"], failure_ttl=config["FAILURE_TTL"], model=options.model)
        except BaseException:
            if created:
                path.unlink(missing_ok=True)
            raise
    return {**describe(job_id), "reused": False}


def source_image(job_id: str) -> uploads.CheckedImage:
    """The stored upload of an existing job, for a follow-up job on the same image."""
    record = _job_record(job_id)  # 404 for a malformed id
    if record is None:
        job = fetch_job(job_id)
        record = job.meta if job is not None else {}
    name = record.get("image", {}).get("name", "")
    path = Path(current_app.config["UPLOAD_DIR"]) / name
    if not name or not re.fullmatch(r"[0-9a-f]{64}\.[a-z]{3,4}", name) or not path.is_file():
        raise ApiError(404, f"from_job: no stored image for job {job_id[:40]!r}", "job_not_found")
    return uploads.check_image(path.read_bytes(), current_app.config["MAX_IMAGE_PIXELS"])


# --- describing -------------------------------------------------------------------------------

def job_model(job_id: str):
    """The stored model a job ran or waits to run on ({"name", "sha256"}), from its record or its RQ job; None
    for a VGG16 job and for an unknown one."""
    record = _job_record(job_id)
    if record is None:
        job = fetch_job(job_id)
        record = job.meta if job is not None else {}
    return record.get("model")


def _job_record(job_id: str):
    return results.read_job_record(result_dir(job_id))


def _links(job_id: str) -> dict:
    return {
        "self": url_for("api.job", job_id=job_id),
        "page": url_for("pages.job", job_id=job_id),
        "archive": url_for("api.archive", job_id=job_id),
    }


def _with_urls(value, url):
    """The manifest with ``<key>_url`` next to every PNG file name it mentions (``url(name)``: app.file_urls)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key] = _with_urls(item, url)
            if isinstance(item, str) and FILE_NAME.fullmatch(item):
                out[f"{key}_url"] = url(item)
        return out
    if isinstance(value, list):
        return [_with_urls(item, url) for item in value]
    return value


def _picture_names(value) -> list:
    """Every PNG file name a manifest mentions, sorted."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return sorted({name for item in value for name in _picture_names(item)})
    return [value] if isinstance(value, str) and FILE_NAME.fullmatch(value) else []


def _files(names, url) -> list:
    return [{"name": name, "url": url(name)} for name in names]


def _finished_document(job_id: str) -> dict:
    folder = result_dir(job_id)
    manifest = results.read_manifest(folder)
    record = _job_record(job_id) or {}
    files = [path.name for path in results.pictures(folder) if FILE_NAME.fullmatch(path.name)]
    url = file_urls("api.job_file", job_id=job_id)
    return {
        "id": job_id, "status": "finished", "message": None,
        "method": record.get("method") or manifest.get("method") or DEFAULT_METHOD,
        "model": (record.get("model") or {}).get("name") or DEFAULT_MODEL,
        "options": record.get("options"),
        "progress": record.get("progress"),
        "queue_position": None,
        "manifest": _with_urls(manifest, url),
        "files": _files(files, url),
        "timings": record.get("timings") or manifest.get("timings"),
        "links": _links(job_id),
    }


def describe(job_id: str) -> dict:
    """The Job document of the API (see app.openapi.builder), or ApiError 404."""
    return with_revision({**_state_document(job_id), **lineage.describe(job_id)})


def with_revision(document: dict) -> dict:
    """``document`` with its ``revision``: a hash of everything else in it, so that it changes whenever
    anything a client acts on does (status, progress, files written, message, queue position, children),
    and no worker has to count anything."""
    content = {key: value for key, value in document.items() if key not in ("revision", "reused")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return {**content, "revision": hashlib.blake2b(text.encode(), digest_size=8).hexdigest()}


def change_marker(job_id: str) -> tuple:
    """What a job's document is read from and that its worker or a follow-up job changes: whether its result
    folder is complete, the status and meta (progress, files written, attempts, error) of its RQ job, its
    lineage. One stat and one Redis round trip, several times cheaper than :func:`describe`: a long poll
    (app.jobs.long_poll) compares it often and describes the job again only when it moved. What it leaves out
    (queue position, whether a worker is alive) the long poll picks up by describing now and then anyway."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.hmget(Job.key_for(job_id), "status", "meta")
    lineage.read_into(pipe, job_id)
    return is_finished(job_id), *pipe.execute()


def _state_document(job_id: str) -> dict:
    if is_finished(job_id):
        return _finished_document(job_id)
    job = _recovered(fetch_job(job_id))
    if job is None:
        raise ApiError(404, f"no job {job_id}: it never existed, has expired or was deleted", "job_not_found")
    status = job.get_status(refresh=False)
    document = {
        "id": job_id, "status": status.value, "message": None,
        "method": job.meta.get("method") or DEFAULT_METHOD,
        "model": (job.meta.get("model") or {}).get("name") or DEFAULT_MODEL,
        "options": job.meta.get("options"),
        "progress": job.meta.get("progress"),
        "queue_position": None, "manifest": None, "files": [], "timings": None,
        "links": _links(job_id),
    }
    connection = get_redis()
    if status in QUEUED:
        document["status"] = "queued"
        document["queue_position"] = job.get_position()
        model = document["model"]
        waiting = None if presence.alive_workers_of(connection, model) else (
            "waiting for a worker: none is running right now" if model == DEFAULT_MODEL
            else f"waiting for a worker of model {model}: none is running right now")
        document["message"] = "; ".join(filter(None, [recovery.attempts_message(job), waiting])) or None
    elif status == JobStatus.STARTED:
        # Its worker lives (a dead one's job was settled above), or Redis restarted moments ago and
        # presence cannot tell yet: the next poll knows.
        document["message"] = recovery.attempts_message(job)
        so_far = written.read(job.meta, results_dir(), job_id)
        if so_far is not None:  # the pictures written so far, each served as soon as it is listed
            url = file_urls("api.job_file", job_id=job_id)
            document["manifest"] = _with_urls(so_far[1], url)
            document["files"] = _files(_picture_names(so_far[1]), url)
    elif status == JobStatus.FINISHED:
        # Redis says finished but the folder is gone (deleted by hand, or another host's disk).
        document["status"] = "failed"
        document["message"] = "the job finished but its result files are missing; submit again"
    elif status == JobStatus.FAILED:
        document["message"] = failed_job_message(job)
    else:  # canceled, stopped
        document["status"] = "canceled"
        document["message"] = "the job was canceled"
    return document


def cancel(job_id: str) -> dict:
    """Cancel a queued job: it never runs, and stays (status canceled) until it expires or is deleted."""
    if is_finished(job_id):
        raise ApiError(409, "the job has finished; there is nothing to cancel", "not_cancellable")
    _cancel_queued(_existing_job(job_id))
    return describe(job_id)


def delete(job_id: str) -> dict:
    """Remove a job and its results, so that it is a 404 from then on: a queued job leaves its queue with it (it
    never runs), a running one is a 409 (its worker would write its results after). Returns the Job document
    as it stood when it went. The stored photo stays: other jobs may share it, and cleanup expires it.

    The RQ job goes in one transaction, its queue entry and registries with it, so that a long poll waiting on it
    (app.jobs.long_poll) reads it as it was or not at all: canceling it first showed a poll a canceled job for the
    moment before it went, which it answered instead of the 404."""
    document = describe(job_id)  # 404 for a job that is not there
    job = fetch_job(job_id)
    if job is not None and document["status"] != "finished":
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED:
            raise ApiError(409, "the job is running; delete it once it has finished or failed", "not_deletable")
        if status in QUEUED:
            document = with_revision({**document, "status": "canceled", "queue_position": None,
                                      "message": "the job was canceled and deleted"})
    if job is not None:
        with job.connection.pipeline() as transaction:
            job.delete(pipeline=transaction)
            transaction.execute()
    _remove_folder(result_dir(job_id))
    lineage.forget(job_id)
    return document


def _existing_job(job_id: str) -> Job:
    job = fetch_job(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}: it never existed, has expired or was deleted", "job_not_found")
    return job


def _cancel_queued(job: Job) -> None:
    status = job.get_status(refresh=False)
    if status not in QUEUED:
        raise ApiError(409, f"the job is {status.value}; only a queued job can be canceled", "not_cancellable")
    try:
        job.cancel()
    except InvalidJobOperation as error:
        raise ApiError(409, str(error), "not_cancellable") from None


def _remove_folder(folder: Path) -> None:
    """Out of sight in one rename (a poll sees the whole result or none), then deleted; what a failure leaves
    behind carries the partial-write prefix, which cleanup sweeps."""
    trash = folder.with_name(f"{PARTIAL_PREFIX}deleted-{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        folder.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


# --- files ------------------------------------------------------------------------------------

def finished_dir(job_id: str) -> Path:
    folder = result_dir(job_id)
    if is_finished(job_id):
        return folder
    _existing_job(job_id)
    raise ApiError(409, "the job has not finished yet", "not_finished")


def picture(job_id: str, name: str):
    """A finished job's picture ``name`` (its path), or one a running job has listed as written (its bytes,
    read at once: the job may rename its folder into place any moment); ApiError 404 for anything else."""
    folder = result_dir(job_id)
    if FILE_NAME.fullmatch(name or ""):
        if (folder / name).is_file():
            return folder / name
        job = fetch_job(job_id)
        so_far = written.read(job.meta, results_dir(), job_id) if job is not None else None
        if so_far is not None and name in _picture_names(so_far[1]):
            try:
                return (so_far[0] / name).read_bytes()
            except FileNotFoundError:  # renamed into place meanwhile
                pass
        # The job may have finished since the first look: its worker renames the folder into place, then drops
        # what it had published as written, so a picture the page was told of is in the finished folder.
        if (folder / name).is_file():
            return folder / name
    raise ApiError(404, f"no file {name[:80]!r} in job {job_id}", "file_not_found")


class _ZipPipe(io.RawIOBase):
    """A write-only, unseekable file that hands on what zipfile writes to it, piece by piece: the ZIP
    is streamed (with data descriptors) and never held whole in memory."""

    def __init__(self):
        super().__init__()
        self._pieces = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._pieces.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        pieces, self._pieces = self._pieces, []
        return b"".join(pieces)


def archive(job_id: str) -> Iterator[bytes]:
    """manifest.json and every PNG of a finished job as one ZIP (PNGs are stored, not recompressed),
    generated ARCHIVE_BLOCK bytes at a time as the response is sent. 404 or 409 before anything is sent."""
    folder = finished_dir(job_id)
    members = [(folder / results.MANIFEST_FILE, zipfile.ZIP_DEFLATED)]
    members += [(path, zipfile.ZIP_STORED) for path in results.pictures(folder)]

    def generate():
        pipe = _ZipPipe()
        with zipfile.ZipFile(pipe, "w") as archive_file:
            for path, compression in members:
                info = zipfile.ZipInfo.from_file(path, f"{job_id}/{path.name}")
                info.compress_type = compression
                with open(path, "rb") as source, archive_file.open(info, "w") as target:
                    while block := source.read(ARCHIVE_BLOCK):
                        target.write(block)
                        yield pipe.take()
                yield pipe.take()
        yield pipe.take()  # the central directory

    return generate()
