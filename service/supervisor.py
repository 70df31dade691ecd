"""``python worker.py --supervise``: one worker process, kept running and kept in bounds.

Why: a non-forking worker enforces a job's time limit with SIGALRM, which Python acts on only between
bytecodes, so a job stuck in native code (a TensorFlow kernel, a GPU driver call) is never interrupted,
and the worker's heartbeat thread keeps beating all the while. Nor does anything recycle a worker that
slowly grows, or restart one that crashed. The supervisor is a small process without TensorFlow that
runs ``python worker.py --name <name> --max-jobs N`` as its child and checks it every second:

* the child exited: the job it was running, if any, is retried once or failed (service.recovery); then a
  new child starts, at once if the old one had been ready, after a growing pause of up to a minute
  when children keep dying before they are ready (Redis unreachable, a broken install);
* its job overran: started longer ago than the job's time limit plus the grace (``--hang-grace``)
  → SIGKILL; the job fails with the time-limit message (no retry: it would hang again); a new child;
* its memory (RSS) went over the limit (``--max-memory-mb``) → SIGKILL; its job fails saying so;
  a new child;
* its presence key vanished after it was ready (the whole process frozen) → SIGKILL; its job is
  retried; a new child. A child that is not ready after STARTUP_SECONDS is killed too.

With the embedded Redis (``REDIS_URL`` unset) it also checks every second that the server answers and
starts it again when it is dead (service.embedded_redis.restart_if_dead); the worker meanwhile waits for
it (service.worker_redis) and carries on with its job.

SIGTERM or SIGINT is passed to the child once as SIGTERM (RQ's warm shutdown: the running job finishes,
then the worker exits); the supervisor waits for it, still killing it if it hangs, and exits without
starting another. A second signal is passed on as well (RQ's cold shutdown: the job is interrupted and
goes back to the queue for the next worker), at least a second after the first, as RQ takes a repeat
within a second for a duplicate and drops it; later ones are not passed on. The child has its own
process group, so a Ctrl-C in a terminal reaches it once, through the supervisor; on Linux it also
gets SIGTERM should the supervisor die.

RQ's ``WorkerPool`` (``rq worker-pool``, RQ 3.0.0) was considered: it forks N workers, respawns those
that exit and sends each one SIGINT on a stop. It lacks the tested behaviours above: killing a child
whose job hangs past its limit, or whose memory or frozen presence says so, and failing or retrying
that job at once (tests/integration/test_fault_tolerance.py, test_worker_loss.py); the pause between
children that die before they are ready; a second stop request passed on as a cold stop past RQ's
duplicate window (tests/integration/test_stopping.py); and restarting the embedded Redis
(tests/integration/test_embedded_redis_faults.py). One worker per supervisor suits a TensorFlow worker
that loads the model once; run more supervisors for more workers.
"""
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

import redis
from redis.exceptions import RedisError
from rq.utils import now

from service import embedded_redis, presence, recovery
from service.jobs import errors
from visnet.settings import DEFAULT_MODEL, PROJECT_ROOT, worker_queue_names

log = logging.getLogger("visnet.supervisor")

POLL_SECONDS = 1.0
STARTUP_SECONDS = 600  # importing TensorFlow, reading the weights, building the graph, warm-up
MAX_PAUSE_SECONDS = 60
RQ_ABANDONS_AFTER_SECONDS = 60  # past its time limit, a non-forking worker's job leaves RQ's started registry
COLD_STOP_AFTER_SECONDS = 1.5  # RQ ignores a second SIGTERM within 1 s of handling the first
FROZEN_SECONDS = 5  # how long a ready child's presence key may stay gone (it expires 10 s after a beat)
_PR_SET_PDEATHSIG = 1


def die_with_parent():  # runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def rss_bytes(pid: int) -> Optional[int]:
    """Resident memory of ``pid`` from /proc (Linux); None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class Child:
    """One ``python worker.py`` process and what the supervisor knows about it."""

    def __init__(self, name: str, max_jobs: int):
        command = [sys.executable, str(PROJECT_ROOT / "worker.py"), "--name", name]
        if max_jobs:
            command += ["--max-jobs", str(max_jobs)]
        self.name = name
        self.started = time.monotonic()
        self.ready = False  # its presence key has appeared
        self.missing_since = None  # when its presence key was first found gone after it was ready
        self.settled = False  # killed by the supervisor, which settled its job with the reason
        self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, process_group=0,
                                        preexec_fn=die_with_parent if sys.platform == "linux" else None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def age(self) -> float:
        return time.monotonic() - self.started

    def signal(self, signum):
        if self.alive():
            os.kill(self.pid, signum)

    def kill(self):
        """SIGKILL to the child's whole process group, then reap it."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


class Supervisor:
    def __init__(self, connection, queue_name: str, default_timeout: int, max_jobs: int = 0,
                 max_memory_mb: int = 0, hang_grace: int = 30, poll_seconds: float = POLL_SECONDS,
                 embedded_redis_instance=None, model: str = DEFAULT_MODEL):
        self.connection, self.queue_name, self.default_timeout = connection, queue_name, default_timeout
        self.model = model  # its workers' (VISNET_MODEL): which queues they serve
        self.embedded_redis_instance = embedded_redis_instance  # the instance folder; None: an external Redis
        self.max_jobs, self.max_memory_mb, self.hang_grace = max_jobs, max_memory_mb, hang_grace
        self.poll_seconds = poll_seconds
        self.stop_signals = []  # SIGTERM or SIGINT, as they arrive
        self.stopping = False  # the first has been passed on
        self.warm_stop_sent_at = None
        self.cold_stop_sent = False  # the second has been passed on
        self.child: Optional[Child] = None
        self.generation = 0
        self.pause = 0.0

    # --- signals ---------------------------------------------------------------------------------

    def request_stop(self, signum, frame):
        # Only noted (list.append cannot be torn by a second signal arriving meanwhile); the loop acts.
        self.stop_signals.append(signum)

    def _pass_on_stop_requests(self):
        """The first request as SIGTERM to the child (warm), the second as another SIGTERM (cold) once RQ
        will take it for one."""
        if self.stop_signals and not self.stopping:
            self.stopping = True
            self.warm_stop_sent_at = time.monotonic()
            log.info("supervisor: %s: passing SIGTERM to the worker, which finishes its job and exits",
                     signal.Signals(self.stop_signals[0]).name)
            if self.child is not None:
                self.child.signal(signal.SIGTERM)
        if self._cold_stop_pending() and time.monotonic() - self.warm_stop_sent_at >= COLD_STOP_AFTER_SECONDS:
            self.cold_stop_sent = True
            log.info("supervisor: %s again: the worker interrupts its job, which goes back to the queue",
                     signal.Signals(self.stop_signals[1]).name)
            if self.child is not None:
                self.child.signal(signal.SIGTERM)

    def _cold_stop_pending(self) -> bool:
        return len(self.stop_signals) > 1 and not self.cold_stop_sent

    def _sleep(self):
        """``poll_seconds``, cut short when a stop request is to be passed on."""
        until, requests = time.monotonic() + self.poll_seconds, len(self.stop_signals)
        while time.monotonic() < until and len(self.stop_signals) == requests and not self._cold_stop_pending():
            time.sleep(min(0.1, self.poll_seconds))
        if self._cold_stop_pending():
            time.sleep(0.1)

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        restart_at = time.monotonic()
        while True:
            self._keep_embedded_redis()
            self._pass_on_stop_requests()
            if self.child is None:
                if self.stopping:
                    log.info("supervisor: stopped")
                    return 0
                if time.monotonic() >= restart_at:
                    self._start_child()
            elif not self.child.alive():
                restart_at = time.monotonic() + self._after_exit(self.child)
                self.child = None
                continue
            else:
                self._inspect(self.child)
            self._sleep()

    def _keep_embedded_redis(self):
        if self.embedded_redis_instance is None:
            return
        try:
            if embedded_redis.restart_if_dead(self.embedded_redis_instance):
                log.warning("supervisor: the embedded Redis server was not answering; started it again")
        except Exception as error:  # hung rather than dead, or it cannot start: the next round tries again
            log.error("supervisor: could not restart the embedded Redis server: %s", error)

    def _start_child(self):
        self.generation += 1
        name = f"visnet-{socket.gethostname()}-{os.getpid()}-{self.generation}"
        self.child = Child(name, self.max_jobs)
        log.info("supervisor: started worker %s (pid %d)", name, self.child.pid)

    def _inspect(self, child: Child):
        limit = self.max_memory_mb * 1024 * 1024
        rss = rss_bytes(child.pid) if limit else None
        if rss is not None and rss > limit:
            self._replace(child, errors.over_memory_message(self.max_memory_mb), retry=False,
                          why=f"its memory ({rss // 2**20} MiB) is over the limit of {self.max_memory_mb} MiB")
            return
        try:
            if not child.ready:
                child.ready = presence.is_alive(self.connection, child.name)
                if not child.ready and child.age() > STARTUP_SECONDS:
                    self._replace(child, errors.WORKER_LOST, retry=True,
                                  why=f"it was not ready after {STARTUP_SECONDS} s")
                return
            job = self._job_of(child)
            if job is not None and job.started_at is not None:
                limit_seconds = job.timeout or self.default_timeout
                running = (now() - job.started_at).total_seconds()
                if limit_seconds > 0 and running > limit_seconds + self.hang_grace:
                    self._replace(child, errors.hung_message(limit_seconds), retry=False,
                                  why=f"job {job.id} has run {running:.0f} s, over its limit of {limit_seconds} s "
                                      f"plus {self.hang_grace} s")
                    return
            if self.stopping or presence.is_alive(self.connection, child.name) or not presence.settled(self.connection):
                child.missing_since = None  # a stopping worker drops its key a moment before it exits
            elif child.missing_since is None:
                child.missing_since = time.monotonic()
            elif time.monotonic() - child.missing_since > FROZEN_SECONDS:
                self._replace(child, errors.WORKER_LOST, retry=True,
                              why=f"its heartbeat has stopped for over {presence.ALIVE_TTL_SECONDS + FROZEN_SECONDS} s")
        except RedisError as error:  # Redis away: the child's state is unknown, not bad
            log.debug("supervisor: cannot check worker %s: %s", child.name, error)

    def _job_of(self, child: Child):
        for queue_name in worker_queue_names(self.queue_name, self.model):  # the queues worker.py serves
            for job in recovery.started_jobs(self.connection, queue_name):
                if job.worker_name == child.name:
                    return job
        return None

    def _replace(self, child: Child, outcome: str, retry: bool, why: str):
        """Kill ``child``; settle its job with ``outcome`` now, while the reason is known."""
        log.warning("supervisor: killing worker %s (pid %d): %s", child.name, child.pid, why)
        child.kill()
        self._settle_job(child, outcome, retry)
        child.settled = True

    def _settle_job(self, child: Child, outcome: str, retry: bool):
        try:
            job = self._job_of(child)
            if job is not None:
                action = recovery.settle(self.connection, job.id, outcome, retry=retry, worker=child.name,
                                         known_dead=True)
                log.warning("supervisor: job %s of worker %s %s", job.id, child.name, action or "left alone")
            presence.mark_gone(self.connection, child.name)
        except RedisError as error:  # the workers' sweep settles it once Redis is back
            log.warning("supervisor: could not settle the job of worker %s: %s", child.name, error)

    def _after_exit(self, child: Child) -> float:
        """Settle the job of a child that exited; return the pause before the next one starts."""
        code = child.process.returncode
        if not child.ready:  # it may have become ready since the last look
            try:
                child.ready = presence.is_alive(self.connection, child.name)
            except RedisError:
                pass
        if not child.settled:
            self._settle_job(child, errors.WORKER_LOST, retry=True)
        if self.stopping:
            log.info("supervisor: worker %s exited (status %s)", child.name, code)
            return 0.0
        if child.ready or code == 0:
            self.pause = 0.0
        else:  # died before it was ready: it may well die again (Redis unreachable, a broken install)
            self.pause = min(MAX_PAUSE_SECONDS, max(1.0, 2 * self.pause))
        log.warning("supervisor: worker %s exited (status %s) after %.0f s; starting another%s", child.name, code,
                    child.age(), f" in {self.pause:.0f} s" if self.pause else "")
        return self.pause


def supervise(settings, max_jobs=None, max_memory_mb=None, hang_grace=None) -> int:
    """Run the supervisor until SIGTERM or SIGINT; flags override the VISNET_WORKER_* settings."""
    redis_url = settings.redis_url or embedded_redis.ensure_server(settings.instance_dir)
    connection = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    supervisor = Supervisor(
        connection, settings.queue_name, settings.job_timeout, model=settings.model,
        max_jobs=settings.worker_max_jobs if max_jobs is None else max_jobs,
        max_memory_mb=settings.worker_max_memory_mb if max_memory_mb is None else max_memory_mb,
        hang_grace=settings.worker_hang_grace if hang_grace is None else hang_grace,
        embedded_redis_instance=None if settings.redis_url else settings.instance_dir,
    )
    if supervisor.hang_grace >= RQ_ABANDONS_AFTER_SECONDS:
        log.warning("supervisor: a hang grace of %d s lets RQ take a stuck job for abandoned and retry it "
                    "before the worker is replaced; use less than %d s", supervisor.hang_grace,
                    RQ_ABANDONS_AFTER_SECONDS)
    log.info("supervisor (pid %d): max %s jobs per worker, memory limit %s, hang grace %d s", os.getpid(),
             supervisor.max_jobs or "unlimited",
             f"{supervisor.max_memory_mb} MiB" if supervisor.max_memory_mb else "none", supervisor.hang_grace)
    try:
        return supervisor.run()
    finally:
        if supervisor.child is not None and supervisor.child.alive():
            supervisor.child.kill()
        connection.close()
