"""Jobs whose worker died while running them: retried once, then failed with a message.

A worker killed mid-job (SIGKILL, the OOM killer, a lost host) leaves its job ``started`` in Redis.
RQ notices such an abandoned job only when its StartedJobRegistry entry expires, the job timeout plus a
minute after it started (over ten minutes by default). The presence keys of :mod:`service.presence` vanish
seconds after a worker does, so three places settle the job at once instead:

* the web process, when somebody polls or resubmits that job (:func:`recover_job`);
* every worker, sweeping its queue every few seconds (:class:`Sweeper`);
* the supervisor (``python worker.py --supervise``), the moment its child dies or is killed
  (:func:`settle`, which knows the worker is dead without waiting for its key to expire).

The service's jobs are enqueued with :func:`enqueue_options`: ``Retry(max=1)`` and a mark in their
meta. Settling spends that same retry budget, as RQ's own late cleanup would: the first death puts
the job back on its queue, the second fails it with a message. Each attempt is recorded in
``job.meta["attempts"]`` for the API. A marked job that *raised* is not retried
(:class:`LostWorkerRetryWorker`): its exception would come again, and a timeout would cost another
full time limit. Unmarked jobs keep RQ's own rules: dataset scan jobs, for one, retry on exceptions
and reschedule a dead worker's chunk through their leases (service.jobs.scheduling); only when the
supervisor kills a worker for a reason of the job's own (a hang, its memory) is any job failed.

Settling also deletes what the ended attempt half-wrote: a photo job writes into
``RESULTS_DIR/.tmp-<job id>-*`` (visnet.atomic.partial_folder) and renames it when complete, so such
a folder of a job that is settled belongs to a dead attempt. (A job that raised, ran out of time or
was interrupted by a cold shutdown removes its own.)

A worker that is alive but cut off from Redis for longer than the presence expiry looks dead too, and
its job may then run twice. That is harmless: a job's id is the hash of its input, its result folder
appears by one atomic rename, and the second run finds the first's result. Right after a Redis restart
nobody settles anything until the workers have had time to beat again (:func:`presence.settled`).

RQ's own mechanisms, and what is still written here (RQ 3.0.0). RQ's ``Retry`` is the retry budget,
``Job.retry`` requeues and ``record_job_failure`` fails, so those are RQ's. Hand-written is *when*:
RQ's ``StartedJobRegistry.cleanup`` retries or fails an abandoned job only once its entry expires (the
time limit plus a minute), and its job callbacks (``on_failure``, ``on_stopped``) run in the worker,
which is gone when the job is lost, or from that same late cleanup. The tested behaviour they lack:
a killed worker's job is requeued within seconds, through its presence key, and fails with a
message and its attempts after the second loss (tests/service/test_recovery.py,
tests/integration/test_worker_loss.py, test_fault_tolerance.py); and a job that raised is not retried
while a lost worker's is (LostWorkerRetryWorker; RQ's ``Retry`` retries both alike).
"""
import logging
import shutil
import threading

from redis.exceptions import LockError, RedisError
from rq import Queue, Retry, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.registry import StartedJobRegistry
from rq.utils import now, utcformat

from service import presence, worker_redis
from service.jobs import written
from service.jobs.errors import WORKER_LOST, WORKER_SHUT_DOWN, lost_job_message
from visnet.atomic import partial_folders

log = logging.getLogger(__name__)

RETRY = Retry(max=1)
POLICY_KEY, POLICY = "retry_policy", "lost-worker"
SWEEP_SECONDS = 5
_LOCK = "visnet:recover:{}"


class LostWorkerRetryWorker(SimpleWorker):
    """RQ's non-forking worker, except that a job that raised (or ran out of time) fails at once:
    its ``Retry`` is kept for a lost worker (see the module docstring). Given the ``socket_timeout`` of
    its connection (service.worker_redis), it waits for jobs in blocking reads that end within it. A cold shutdown (a second
    SIGTERM or Ctrl-C) interrupts the job with SystemExit: that is the worker's loss, so the job is
    retried like one whose worker died."""

    _stopping_cold = False

    def __init__(self, *args, socket_timeout: float = None, **kwargs):
        self.socket_timeout = socket_timeout  # the connection's (service.worker_redis); before RQ reads it
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self):
        if self.socket_timeout is None:
            return super().dequeue_timeout
        return worker_redis.dequeue_timeout(self.socket_timeout)

    @property
    def connection_timeout(self):
        # RQ raises the pool's socket timeout to this for connections opened later, never for the one
        # already open: the connection's own timeout, chosen above the dequeue's, is left as it is.
        return super().connection_timeout if self.socket_timeout is None else self.socket_timeout

    def request_force_stop(self, signum, frame):
        self._stopping_cold = True
        super().request_force_stop(signum, frame)  # raises SystemExit, unless it ignores a double signal
        self._stopping_cold = False

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):
        if under_policy(job):  # other jobs keep RQ's rules
            if not self._stopping_cold:
                job.retries_left = 0
            elif job.should_retry:
                _record_attempt(job, WORKER_SHUT_DOWN)  # saved as RQ requeues the job
            else:
                job.meta["error"] = lost_job_message(WORKER_SHUT_DOWN, _record_attempt(job, WORKER_SHUT_DOWN))
                job.save_meta()
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                   exc_string=exc_string, execution=execution)


def enqueue_options(meta: dict) -> dict:
    """``retry`` and ``meta`` arguments of ``enqueue_call`` for a job under this module's policy."""
    return {"retry": RETRY, "meta": {**meta, POLICY_KEY: POLICY}}


def under_policy(job) -> bool:
    return job.meta.get(POLICY_KEY) == POLICY


def attempts_message(job) -> str:
    """For a job that is running or waiting again: why, and which attempt this is."""
    attempts = job.meta.get("attempts") or []
    if not attempts:
        return None
    total = len(attempts) + 1 + (job.retries_left or 0)
    return f"retrying (attempt {len(attempts) + 1} of {total}): {attempts[-1]['outcome']}"


def settle(connection, job_id: str, outcome: str, retry: bool = True, worker: str = None,
           known_dead: bool = False):
    """Requeue (when ``retry`` and the job has a retry left) or fail the started job ``job_id``
    whose worker is gone; ``outcome`` says what happened, as in :data:`WORKER_LOST`.

    Acts only when the job is still started (by ``worker``, when given), unless ``known_dead`` its
    worker's presence key is gone, and, unless it is to fail (``retry`` false), it is under this
    module's policy. Returns "requeued", "failed", or None when there was nothing to do (another
    process got there first, the worker lives, the job is not ours, or the lock was busy)."""
    lock = connection.lock(_LOCK.format(job_id), timeout=10, blocking_timeout=5)
    try:
        if not lock.acquire():
            return None
    except LockError:
        return None
    try:
        try:
            job = Job.fetch(job_id, connection=connection)
        except NoSuchJobError:
            return None
        if job.get_status(refresh=False) != JobStatus.STARTED:
            return None
        if worker is not None and job.worker_name != worker:
            return None
        if retry and not under_policy(job):
            return None
        if not known_dead and presence.is_alive(connection, job.worker_name):
            return None
        return _settle(connection, job, outcome, retry)
    finally:
        try:
            lock.release()
        except LockError:
            pass  # expired meanwhile: nothing to release


def _record_attempt(job, outcome) -> list:
    """Append the attempt that just ended to ``job.meta["attempts"]`` (saved with the job)."""
    attempts = list(job.meta.get("attempts") or [])
    attempts.append({"worker": job.worker_name, "outcome": outcome,
                     "started_at": utcformat(job.started_at) if job.started_at else None,
                     "ended_at": utcformat(now())})
    job.meta["attempts"] = attempts
    job.meta.pop("progress", None)  # the next attempt starts from the beginning
    job.meta.pop(written.META_KEY, None)  # its pictures so far: removed with its folder
    return attempts


def _remove_partial_results(job):
    """Delete the ended attempt's half-written result folders; the job's arguments say where they are:
    ``(upload_path, results_root, job_key, ...)`` for service.jobs.photo' photo jobs, the only ones with any."""
    try:
        args = job.args
        if len(args) < 3 or args[2] != job.id or not isinstance(args[1], str):
            return
        folders = partial_folders(args[1], job.id)
    except Exception as error:  # arguments that do not deserialise, an unreadable folder
        log.debug("job %s: no partial results looked for: %s", job.id, error)
        return
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("job %s: removed the partial results %s of the attempt that ended", job.id, folder)


def _settle(connection, job, outcome, retry):
    _remove_partial_results(job)  # before a requeue: the next attempt's folder must not be taken for it
    attempts = _record_attempt(job, outcome)
    registry = StartedJobRegistry(job.origin, connection=connection)
    if retry and job.should_retry:
        job.meta.pop("error", None)
        with connection.pipeline() as pipeline:
            registry.remove_executions(job, pipeline=pipeline)
            job.retry(Queue(job.origin, connection=connection), pipeline)  # saves the job, meta included
            pipeline.execute()
        log.warning("job %s: %s (%s); requeued for attempt %d", job.id, outcome, job.worker_name,
                    len(attempts) + 1)
        return "requeued"
    job.meta["error"] = lost_job_message(outcome, attempts)
    job.save_meta()
    with connection.pipeline() as pipeline:
        registry.remove_executions(job, pipeline=pipeline)
        record_job_failure(job, f"visnet: {job.meta['error']}", pipeline)
        pipeline.execute()
    log.warning("job %s: %s (%s); failed after %d attempt(s)", job.id, outcome, job.worker_name, len(attempts))
    return "failed"


def is_lost(connection, job) -> bool:
    """Under the policy, started, and its worker's presence key is gone while presence can be trusted."""
    return (under_policy(job) and job.get_status(refresh=False) == JobStatus.STARTED
            and not presence.is_alive(connection, job.worker_name)
            and presence.settled(connection))


def recover_job(connection, job) -> bool:
    """Settle ``job`` if its worker is lost; True when something changed (fetch the job again)."""
    if not is_lost(connection, job):
        return False
    return settle(connection, job.id, WORKER_LOST, worker=job.worker_name) is not None


def started_jobs(connection, queue_name: str) -> list:
    """The jobs in ``queue_name``'s StartedJobRegistry (left alone: RQ's cleanup is not run here)."""
    registry = StartedJobRegistry(queue_name, connection=connection)
    ids = registry.get_job_ids(cleanup=False)
    return [job for job in Job.fetch_many(ids, connection=connection) if job is not None]


def recover_queue(connection, queue_name: str) -> dict:
    """Settle every started job of ``queue_name`` whose worker is lost; {job id: "requeued"|"failed"}."""
    done = {}
    if not presence.settled(connection):
        return done
    for job in started_jobs(connection, queue_name):
        if is_lost(connection, job):
            action = settle(connection, job.id, WORKER_LOST, worker=job.worker_name)
            if action:
                done[job.id] = action
    return done


class Sweeper:
    """Runs :func:`recover_queue` every few seconds from a daemon thread of a worker, so a dead
    worker's job is retried even when nobody is looking at it."""

    def __init__(self, connection, queue_name: str, interval: float = SWEEP_SECONDS):
        self.connection, self.queue_name, self.interval = connection, queue_name, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visnet-sweeper", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while True:
            try:
                recover_queue(self.connection, self.queue_name)
            except RedisError as error:  # Redis briefly away: the next sweep tries again
                log.debug("sweep skipped: %s", error)
            except Exception:
                log.exception("sweep failed")
            if self._stop.wait(self.interval):
                return

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)
