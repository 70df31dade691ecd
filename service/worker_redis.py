"""The Redis connection of a worker (``worker.py``): it waits for Redis rather than failing, and its
blocking wait for a job always ends before its socket times out.

One connection pool serves the whole worker: RQ's dequeue and its bookkeeping around each job, the
job's progress writes (``job.save_meta``), the presence heartbeat and the sweeper.

* **Waiting.** A command that meets a lost connection or a timeout is sent again, after a pause that
  grows to a second, for as long as Redis is away (redis-py's ``Retry`` with no limit). Without it, the
  error escapes from a job's ``save_meta`` (the job fails and, under service.recovery's policy, is not
  retried) and from RQ's bookkeeping (``prepare_job_execution``, ``handle_execution_ended``,
  ``handle_job_success``), which RQ's work loop answers with "unhandled exception, quitting": a
  restart of Redis would cost the running job and the worker. With it, the job and the worker carry
  on where they were once Redis answers again (service.embedded_redis restarts the embedded server; an
  external one comes back from its append-only file). A job's time limit still applies while it
  waits: RQ's SIGALRM interrupts the pause. Retrying a write whose answer was lost may apply it twice;
  RQ's writes are states, registry entries and counters, where that does no harm.
* **Timeouts.** Every connection gets the same explicit socket timeout (VISNET_WORKER_REDIS_TIMEOUT),
  and the worker's blocking dequeue lasts half of it (``LostWorkerRetryWorker.dequeue_timeout``). RQ
  instead raises the pool's timeout only for connections opened after the worker is built; the one
  that pinged Redis before kept redis-py's 5 s, so RQ's 405 s blocking read failed after 5 s and RQ
  backed off for up to 60 s between reads, leaving a new job waiting that long.
"""
import logging

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger("visnet.worker")

BACKOFF_CAP_SECONDS = 1.0
BACKOFF_BASE_SECONDS = 0.05


class _WaitForRedis(ExponentialBackoff):
    """redis-py's exponential backoff, which also says in the log that the worker waits for Redis."""

    def compute(self, failures: int) -> float:
        if failures == 1:
            log.warning("Redis does not answer; waiting for it (the command is sent again until it does)")
        return super().compute(failures)


def until_redis_answers() -> Retry:
    return Retry(_WaitForRedis(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS), retries=-1)


def a_few_tries() -> Retry:
    """For the worker's last writes as it exits: Redis may be gone for good by then."""
    return Retry(ExponentialBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS), retries=3)


def connect(url: str, socket_timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=min(socket_timeout, 5),
                                health_check_interval=30, retry=until_redis_answers())


def dequeue_timeout(socket_timeout: float) -> float:
    """How long one blocking read for a job lasts: well within the socket timeout, so that an idle
    worker's read always gets its (empty) answer instead of a timeout error."""
    return max(0.1, round(socket_timeout / 2, 1))
