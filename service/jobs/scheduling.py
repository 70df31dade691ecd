"""A scan as RQ jobs: one job per chunk, a merge that waits for them, then one job per projection block.

The folder is the truth: a chunk, the merge or a projection block is done when its file exists, and
every job returns at once when it finds its output. Redis only remembers which job currently stands
for each task (``visnet:scan:<id>:jobs``), how often each task was enqueued, and the queue settings,
so that any process can schedule what is missing:

* :func:`enqueue_scan` (and :func:`resume_scan`, the same with the stored settings) enqueues a job for
  every missing task that has no live job, and a tail job that depends on all of them
  (``Dependency(allow_failure=True)``): ``merge`` after the chunks, ``finish`` after the projection
  blocks. A tail that finds tasks still missing (a chunk that failed for good, a worker that died)
  schedules again; a task enqueued ``MAX_ATTEMPTS`` times fails the scan (``failed.json``).
* A job holds a lease (``visnet:scan:lease:<job id>``, ``LEASE_SECONDS``, refreshed by a thread) while
  it runs. A job that RQ still calls *started* but whose lease has expired belonged to a worker that
  died: every chunk job looks for such jobs when it starts and has them scheduled again, and so does
  :func:`resume_scan`. RQ itself would notice only after the job timeout (its started registry keeps a
  killed SimpleWorker's job for ``timeout + 60`` s) and then retry it (``Retry``): harmless, as the
  retried job finds the chunk done.

A unit that someone opens in the browser gets its own small job, :func:`unit_projection` (task
``unit-<layer>-<unit>``, at the front of the scans' queue), tracked like the others.

After every worker and the web process restarted, ``resume_scan(connection, scan_dir)`` is all it takes;
finished chunks are never computed again. This module does not import TensorFlow: the web process
enqueues the jobs of :mod:`service.jobs.scan` by dotted path.
"""
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Dependency, Job, JobStatus
from rq.registry import StartedJobRegistry

from service.jobs.errors import failed_job_message
from visnet.scan import store
from visnet.scan.plan import projection_blocks
from visnet.scan.progress import scan_progress

CHUNK_FUNCTION = "service.jobs.scan.run_chunk"
MERGE_FUNCTION = "service.jobs.scan.merge"
PROJECT_FUNCTION = "service.jobs.scan.project"
FINISH_FUNCTION = "service.jobs.scan.finish"
UNIT_FUNCTION = "service.jobs.scan.project_one"

KEY_PREFIX = "visnet:scan:"
LEASE_SECONDS = 10
LEASE_REFRESH_SECONDS = 3
MAX_ATTEMPTS = 3
LOCK_SECONDS = 60

PENDING = frozenset({JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.CREATED})


@dataclass(frozen=True)
class JobSettings:
    queue_name: str
    job_timeout: int = 600
    result_ttl: int = 86400
    failure_ttl: int = 86400
    retries: int = 2

    def __post_init__(self):
        if not self.queue_name:
            raise ValueError("queue_name must be a non-empty string")
        for name in ("job_timeout", "result_ttl", "failure_ttl"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, received {getattr(self, name)!r}")
        if not 0 <= int(self.retries) <= 10:
            raise ValueError(f"retries must be 0 to 10, received {self.retries!r}")


def _key(scan_id: str, name: str) -> str:
    return f"{KEY_PREFIX}{scan_id}:{name}"


def lease_key(job_id: str) -> str:
    return f"{KEY_PREFIX}lease:{job_id}"


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


# --- leases -----------------------------------------------------------------------------------------

class Lease:
    """While a job runs, keep ``visnet:scan:lease:<job id>`` alive from a daemon thread. Without a job
    (the in-process CLI) it does nothing."""

    def __init__(self, job):
        self.job = job
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.job is not None:
            self._refresh()
            self._thread = threading.Thread(target=self._run, name="visnet-scan-lease", daemon=True)
            self._thread.start()
        return self

    def _refresh(self):
        self.job.connection.set(lease_key(self.job.id), self.job.worker_name or "", ex=LEASE_SECONDS)

    def _run(self):
        while not self._stop.wait(LEASE_REFRESH_SECONDS):
            try:
                self._refresh()
            except Exception:  # a Redis hiccup: the next refresh may succeed; the job goes on either way
                pass

    def __exit__(self, *exc):
        if self.job is not None:
            self._stop.set()
            self._thread.join(LEASE_REFRESH_SECONDS + 1)
            try:
                self.job.connection.delete(lease_key(self.job.id))
            except Exception:
                pass
        return False


def job_state(connection, job) -> str:
    """"pending", "running", "dead" (started, but its lease is gone), or "ended" (finished, failed,
    stopped, canceled) for an RQ job; "missing" for None."""
    if job is None:
        return "missing"
    status = job.get_status(refresh=False)
    if status in PENDING:
        return "pending"
    if status == JobStatus.STARTED:
        if connection.exists(lease_key(job.id)):
            return "running"
        started = job.started_at.timestamp() if job.started_at else 0.0
        return "running" if time.time() - started < LEASE_SECONDS else "dead"
    return "ended"


# --- scheduling -------------------------------------------------------------------------------------

def _tasks(scan_dir, record):
    """(phase, [(task, function, args)], (tail task, tail function)) of what is missing now, or None."""
    scan_dir = str(Path(scan_dir).resolve())
    if not store.is_merged(scan_dir):
        done = set(store.done_chunks(scan_dir, record))
        missing = [(f"chunk-{index:05d}", CHUNK_FUNCTION, (scan_dir, index))
                   for index in range(len(record["chunks"])) if index not in done]
        return "chunks", missing, ("merge", MERGE_FUNCTION)
    missing = [(f"project-{layer}-{start}-{stop}", PROJECT_FUNCTION, (scan_dir, layer, start, stop))
               for layer, start, stop in projection_blocks(record)
               if not store.projection_marker(scan_dir, layer, start, stop).is_file()]
    if not missing:
        return None
    return "projections", missing, ("finish", FINISH_FUNCTION)


def _stored_settings(connection, scan_id):
    raw = connection.hgetall(_key(scan_id, "settings"))
    if not raw:
        return None
    values = {_text(key): _text(value) for key, value in raw.items()}
    return JobSettings(values["queue_name"], *(int(values[name]) for name in
                                               ("job_timeout", "result_ttl", "failure_ttl", "retries")))


def _fetch(connection, job_ids) -> list:
    """The jobs of ``job_ids`` in one round trip; None for an empty id or a job Redis no longer has."""
    wanted = [job_id for job_id in job_ids if job_id]
    found = dict(zip(wanted, Job.fetch_many(wanted, connection=connection))) if wanted else {}
    return [found.get(job_id) if job_id else None for job_id in job_ids]


def _current_jobs(connection, scan_id) -> dict:
    return {_text(task): _text(job_id) for task, job_id in connection.hgetall(_key(scan_id, "jobs")).items()}


def _enqueue(connection, queue, settings, scan_id, task, function, args, depends_on=None, tail=False,
             at_front=False):
    """Enqueue one task under a new job id. A task enqueued again (its job died or failed) goes to the
    front of the queue, so that a scan is not held up waiting for its last chunk; so does ``at_front``."""
    attempt = connection.hincrby(_key(scan_id, "attempts"), task, 1)
    retries = 1 if tail else settings.retries
    job = queue.enqueue_call(
        function, args=args, job_id=f"scan-{scan_id}-{task}-{attempt}", timeout=settings.job_timeout,
        result_ttl=settings.result_ttl, failure_ttl=settings.failure_ttl,
        retry=Retry(max=retries) if retries else None, depends_on=depends_on,
        at_front=at_front or (attempt > 1 and not tail),
        description=f"scan {scan_id} {task}", meta={"scan": scan_id, "task": task})
    connection.hset(_key(scan_id, "jobs"), task, job.id)
    return job


def _schedule(connection, scan_dir, settings: JobSettings) -> dict:
    record = store.load_scan(scan_dir)
    scan_id = record["id"]
    summary = {"scan": scan_id, "phase": None, "enqueued": [], "kept": [], "tail": None, "failed": None}
    failure = store.read_failure(scan_dir)
    if failure is not None:
        summary["failed"] = failure["error"]
        return summary
    planned = _tasks(scan_dir, record)
    if planned is None:
        summary["phase"] = "done"
        return summary
    phase, tasks, (tail_task, tail_function) = planned
    summary["phase"] = phase
    queue = Queue(settings.queue_name, connection=connection, default_timeout=settings.job_timeout)
    current = _current_jobs(connection, scan_id)
    fetched = _fetch(connection, [current.get(task) for task, _, _ in tasks] + [current.get(tail_task)])
    dependencies = []
    for (task, function, args), job in zip(tasks, fetched):
        state = job_state(connection, job)
        if state in ("pending", "running"):
            summary["kept"].append(task)
            dependencies.append(job.id)
            continue
        attempts = int(_text(connection.hget(_key(scan_id, "attempts"), task)) or 0)
        if attempts >= MAX_ATTEMPTS:
            reason = failed_job_message(job, default="") if job is not None else ""
            message = f"{task} was run {attempts} times without finishing" + (f": {reason}" if reason else "")
            store.write_failure(scan_dir, message)
            summary["failed"] = message
            return summary
        job = _enqueue(connection, queue, settings, scan_id, task, function, args)
        summary["enqueued"].append(task)
        dependencies.append(job.id)

    tail = fetched[-1]
    tail_state = job_state(connection, tail)
    if summary["enqueued"] or tail_state not in ("pending", "running"):
        if tail_state == "pending":
            try:
                tail.cancel()
            except (InvalidJobOperation, NoSuchJobError):
                pass
        depends_on = Dependency(jobs=dependencies, allow_failure=True) if dependencies else None
        tail = _enqueue(connection, queue, settings, scan_id, tail_task, tail_function,
                        (str(Path(scan_dir).resolve()),), depends_on=depends_on, tail=True)
    summary["tail"] = tail.id
    return summary




def schedule(connection, scan_dir, settings: JobSettings = None) -> dict:
    """Enqueue whatever the scan is missing (see the module docstring), under a per-scan lock.

    ``settings`` default to the ones stored by :func:`enqueue_scan`. Returns {"scan", "phase"
    ("chunks", "projections" or "done"), "enqueued": [task…], "kept": [task…], "tail": job id,
    "failed": message or None}.
    """
    record = store.load_scan(scan_dir)
    scan_id = record["id"]
    if settings is None:
        settings = _stored_settings(connection, scan_id)
        if settings is None:
            raise ValueError(f"scan {scan_id} was never enqueued here: pass the queue name")
    else:
        connection.hset(_key(scan_id, "settings"), mapping={k: str(v) for k, v in asdict(settings).items()})
    with connection.lock(_key(scan_id, "lock"), timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS):
        return _schedule(connection, scan_dir, settings)


def enqueue_scan(connection, queue_name: str, scan_dir, job_timeout: int = 600, result_ttl: int = 86400,
                 failure_ttl: int = 86400, retries: int = 2) -> dict:
    """Enqueue a planned scan (:func:`visnet.scan.plan.create_scan`) on ``queue_name``: one job per
    chunk not yet done, and the merge after them. Safe to call again: live jobs are kept."""
    settings = JobSettings(queue_name, job_timeout, result_ttl, failure_ttl, retries)
    return schedule(connection, scan_dir, settings)


def resume_scan(connection, scan_dir, queue_name: str = None, retry_failed: bool = False, **job_settings) -> dict:
    """Schedule again whatever is missing, e.g. after workers died or everything was restarted. Jobs that
    are still queued or running are kept, finished chunks are never redone. ``queue_name`` (and
    ``job_timeout`` …) default to what :func:`enqueue_scan` stored; ``retry_failed`` clears a failed
    scan's failure and attempt counts first."""
    record = store.load_scan(scan_dir)
    if retry_failed:
        (Path(scan_dir) / store.FAILED_FILE).unlink(missing_ok=True)
        connection.delete(_key(record["id"], "attempts"))
    settings = None
    if queue_name is not None:
        settings = JobSettings(queue_name, **job_settings)
    return schedule(connection, scan_dir, settings)


def _unit_task(layer: str, unit: int) -> str:
    return f"unit-{layer}-{int(unit)}"


def unit_projection(connection, scan_dir, layer: str, unit: int, settings: JobSettings = None) -> dict:
    """Where the on-demand projection of one unit stands (:func:`service.jobs.scan.project_one`):
    {"state": "done" | "queued" | "running" | "failed" | "missing", "message"}. With ``settings`` (the
    scans' queue), a missing one, or one whose worker died, is enqueued at the front of the queue, as a
    small job of the scan; a job that is queued or running is reused, so opening a unit twice costs one
    projection. A unit enqueued ``MAX_ATTEMPTS`` times without finishing is failed, with the reason; the
    scan goes on."""
    record = store.load_scan(scan_dir)
    scan_id = record["id"]
    task = _unit_task(layer, unit)
    if store.unit_marker(scan_dir, layer, unit).is_file():
        return {"state": "done", "message": None}
    with connection.lock(_key(scan_id, "lock"), timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS):
        job = _fetch(connection, [_current_jobs(connection, scan_id).get(task)])[0]
        state = job_state(connection, job)
        if state in ("pending", "running"):
            return {"state": "queued" if state == "pending" else "running", "message": None}
        if store.unit_marker(scan_dir, layer, unit).is_file():  # finished while we looked
            return {"state": "done", "message": None}
        attempts = int(_text(connection.hget(_key(scan_id, "attempts"), task)) or 0)
        reason = failed_job_message(job, default="") if job is not None and job.is_failed else ""
        if attempts >= MAX_ATTEMPTS:
            return {"state": "failed", "message": f"the projection of {layer} unit {unit} was tried {attempts} "
                                                  "times without finishing" + (f": {reason}" if reason else "")}
        if settings is None:
            return {"state": "missing", "message": reason or None}
        queue = Queue(settings.queue_name, connection=connection, default_timeout=settings.job_timeout)
        _enqueue(connection, queue, settings, scan_id, task, UNIT_FUNCTION,
                 (str(Path(scan_dir).resolve()), layer, int(unit)), at_front=True)
        return {"state": "queued", "message": None}


def requeue_dead(connection, scan_dir) -> dict:
    """Schedule again if one of this scan's jobs is started in RQ but its worker is gone (its lease
    expired). Cheap when nothing is wrong: it reads only the queue's started registry."""
    record = store.load_scan(scan_dir)
    settings = _stored_settings(connection, record["id"])
    if settings is None:
        return {"dead": []}
    prefix = f"scan-{record['id']}-"
    registry = StartedJobRegistry(settings.queue_name, connection=connection)
    ids = [job_id for job_id in registry.get_job_ids(cleanup=False) if job_id.startswith(prefix)]
    dead = [job.id for job in Job.fetch_many(ids, connection=connection) if job_state(connection, job) == "dead"]
    if not dead:
        return {"dead": []}
    return {"dead": dead, **schedule(connection, scan_dir, settings)}


def scan_status(connection, scan_dir) -> dict:
    """:func:`visnet.scan.progress.scan_progress` plus what the queue knows: {"jobs": {"pending",
    "running", "dead", "ended"} counts over the current jobs of unfinished tasks, "running": [{"task",
    "worker", "progress"}], "images_in_flight", "queue"}."""
    progress = scan_progress(scan_dir)
    record = store.load_scan(scan_dir)
    scan_id = record["id"]
    settings = _stored_settings(connection, scan_id)
    planned = _tasks(scan_dir, record)
    tasks = ([task for task, _, _ in planned[1]] + [planned[2][0]]) if planned else []
    current = _current_jobs(connection, scan_id)
    counts = {"pending": 0, "running": 0, "dead": 0, "ended": 0, "missing": 0}
    running, in_flight = [], 0
    jobs = _fetch(connection, [current.get(task) for task in tasks])
    for task, job in zip(tasks, jobs):
        state = job_state(connection, job)
        counts[state] += 1
        if state == "running":
            meta = job.meta.get("progress") or {}
            in_flight += int(meta.get("done", 0)) if task.startswith("chunk-") else 0
            running.append({"task": task, "worker": job.worker_name, "progress": meta})
    return {**progress, "jobs": counts, "running": running, "images_in_flight": in_flight,
            "queue": settings.queue_name if settings else None}
