"""The queue cap: with ``QUEUE_CAP`` jobs or more waiting, a new job is refused with a 503 and a
``Retry-After`` that estimates when the queue will be under the cap again.

Jobs that already exist (finished, or pending under the same id) are still answered: the check
runs in ``jobstore.submit`` after those, and before the upload is stored. The cap is soft: the
count and the enqueue are not one atomic step, so simultaneous submissions can pass it by as many
requests as run at once, which the cap's purpose (bounded waiting, bounded Redis) tolerates.

The estimate: the jobs that must start before the queue is under the cap, times the median
duration of the queue's last finished jobs (RQ records ``started_at`` and ``ended_at``), divided by
the live workers; clamped to [MIN_RETRY_SECONDS, MAX_RETRY_SECONDS].
"""
import math
import statistics

from rq.job import Job
from rq.registry import FinishedJobRegistry

from app.errors import ApiError
from service import presence

DEFAULT_JOB_SECONDS = 10.0  # before any job has finished: a default deconv job on a CPU takes 2–5 s
RECENT_JOBS = 20
MIN_RETRY_SECONDS = 5
MAX_RETRY_SECONDS = 3600


def recent_job_seconds(queue, sample: int = RECENT_JOBS):
    """Median run time of the queue's last ``sample`` finished jobs, or None when there are none."""
    registry = FinishedJobRegistry(queue=queue)
    job_ids = registry.get_job_ids(-sample, -1, cleanup=False)
    durations = [(job.ended_at - job.started_at).total_seconds()
                 for job in Job.fetch_many(job_ids, connection=queue.connection)
                 if job is not None and job.started_at and job.ended_at]
    return statistics.median(durations) if durations else None


def retry_after_seconds(queue, queued: int, cap: int) -> int:
    workers = len(presence.alive_workers(queue.connection))
    seconds_per_job = recent_job_seconds(queue) or DEFAULT_JOB_SECONDS
    must_start = queued - cap + 1
    estimate = must_start * seconds_per_job / max(workers, 1)
    return int(min(MAX_RETRY_SECONDS, max(MIN_RETRY_SECONDS, math.ceil(estimate))))


def check_capacity(queue, cap: int):
    """ApiError 503 with ``Retry-After`` when ``queue`` holds ``cap`` queued jobs or more."""
    queued = queue.count
    if queued < cap:
        return
    retry = retry_after_seconds(queue, queued, cap)
    raise ApiError(503, f"the queue is full ({queued} jobs waiting, the limit is {cap}); nothing was stored, "
                        f"try again in about {retry} s", "queue_full", headers={"Retry-After": str(retry)})
