"""The worker's runtime (``worker.py`` runs it): the engine loaded and warmed once, presence, the
sweeper of other workers' lost jobs, and RQ's non-forking worker on the photo queue, then the scans'.

Jobs enqueued under the dotted paths of the previous release (``visnet.jobs.deconv``, …) still run:
:class:`RenamedFunctionsJob` maps them to their new modules. Drop the map one release later."""

import argparse
import logging
import os
import socket
import time

from rq import Queue
from rq.job import Job
from rq.timeouts import JobTimeoutException

from service import embedded_redis, presence, recovery, worker_redis
from service.jobs import runtime
from visnet.numbers import non_negative_argument
from visnet.settings import DEFAULT_MODEL, from_environment, worker_queue_names
from visnet.weights import WeightsError

log = logging.getLogger("visnet.worker")

NO_WEIGHTS = 2  # the exit status of a worker whose model's weights are missing or unreadable

DESCRIPTION = ("One deconvnet worker: builds the graph of its model (VISNET_MODEL, default vgg16) and loads the "
               "weights once, then serves the model's RQ queue without forking, so every job starts warm.")

# The job functions' dotted paths of the previous release: a job queued before an upgrade still runs.
RENAMED_JOB_FUNCTIONS = {
    "visnet.jobs.deconv": "service.jobs.photo.deconv",
    "visnet.jobs.view": "service.jobs.photo.view",
    **{f"visnet.scan.jobs.{name}": f"service.jobs.scan.{name}"
       for name in ("start", "run_chunk", "merge", "project", "finish")},
}


class RenamedFunctionsJob(Job):
    """RQ's job, reading a renamed job function's old dotted path as its new one."""

    @property
    def func_name(self):
        name = Job.func_name.fget(self)
        return RENAMED_JOB_FUNCTIONS.get(name, name)

    @func_name.setter
    def func_name(self, value):
        Job.func_name.fset(self, value)


def served_queues(settings) -> tuple:
    """The queues a worker of ``settings.model`` serves: its model's photo queue, then that model's scans' (served
    when no photo waits). VGG16's are the queue named VISNET_QUEUE and ``<queue>-scans``, as before models."""
    return worker_queue_names(settings.queue_name, settings.model)


def load_engine(settings):
    """The engine of the model the worker serves (TensorFlow is imported here)."""
    from visnet.engine import load_model_engine

    return load_model_engine(settings.model, settings)


class EngineWorker(recovery.LostWorkerRetryWorker):
    """Runs ``between_jobs(interrupted)`` after each job, once RQ has saved the job's outcome: the engine's renewal
    (:func:`engine_renewal`), which no user then waits for. ``interrupted`` says that the job's time limit stopped it
    (RQ's JobTimeoutException, raised by SIGALRM wherever the job was)."""

    def __init__(self, *args, between_jobs=None, **kwargs):
        self.between_jobs = between_jobs
        self._interrupted = False
        super().__init__(*args, **kwargs)

    def handle_exception(self, job, *exc_info):
        self._interrupted = self._interrupted or isinstance(exc_info[1], JobTimeoutException)
        super().handle_exception(job, *exc_info)

    def execute_job(self, job, queue):
        self._interrupted = False
        super().execute_job(job, queue)
        if self.between_jobs is not None:
            self.between_jobs(interrupted=self._interrupted)


def build_worker(connection, settings, name, between_jobs=None) -> EngineWorker:
    """The RQ worker on :func:`served_queues`."""
    queues = [Queue(queue_name, connection=connection, default_timeout=settings.job_timeout,
                    job_class=RenamedFunctionsJob)
              for queue_name in served_queues(settings)]
    return EngineWorker(queues, connection=connection, name=name, job_class=RenamedFunctionsJob,
                        socket_timeout=settings.worker_redis_timeout, between_jobs=between_jobs)


def engine_renewal(engine, settings, name):
    """What the worker runs between jobs: a fresh graph for the engine, warmed up as at the worker's start, after a
    job its time limit interrupted, and for VGG16's engine once its graph has grown past visnet.engine.GRAPH_OPS_LIMIT.

    A time limit's exception lands wherever the job is, also in the middle of building the graph's ops. Once it
    left TensorFlow's graph lock taken (a job of every layer in per-layer mode, stopped at 2 s while it built its
    sweeps): every later job waited for that lock until its own limit, and the worker served nothing again. It can
    also leave a sweep with some of its branches built. A fresh graph has neither; the weights are kept."""
    grown = getattr(engine, "renew_if_grown", None)

    def between_jobs(interrupted=False):
        if interrupted:
            seconds = engine.renew(warm_up=settings.worker_warm_up)
            log.warning("worker %s: a job was stopped by its time limit, maybe half-way through a change to the "
                        "engine's graph; started on a fresh graph, with its warm-up, in %.1f s", name, seconds)
            return
        seconds = grown(warm_up=settings.worker_warm_up) if grown is not None else None
        if seconds is not None:
            log.info("worker %s: the engine's graph had grown with the layer sets of past jobs; renewed, "
                     "with its warm-up, in %.1f s", name, seconds)

    return between_jobs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="worker.py", description=DESCRIPTION)
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--name", help="worker name (default: visnet-<host>-<pid>)")
    parser.add_argument("--max-jobs", type=non_negative_argument, default=None, metavar="N",
                        help="exit after N jobs (the supervisor then starts a fresh worker)")
    parser.add_argument("--supervise", action="store_true",
                        help="run a supervisor that starts this worker and restarts it when it exits, stops "
                             "heartbeating, overruns a job's time limit or exceeds its memory limit")
    parser.add_argument("--max-memory-mb", type=non_negative_argument, default=None, metavar="MB",
                        help="with --supervise: the worker's RSS limit (default VISNET_WORKER_MAX_MEMORY_MB)")
    parser.add_argument("--hang-grace", type=non_negative_argument, default=None, metavar="SECONDS",
                        help="with --supervise: how long past a job's time limit a worker is killed as hung "
                             "(default VISNET_WORKER_HANG_GRACE)")
    args = parser.parse_args(argv)

    try:
        settings = from_environment()
    except ValueError as error:  # a setting that cannot be used: said in one line, not a traceback
        parser.error(str(error))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.supervise:
        if args.burst or args.name:
            parser.error("--supervise names its workers and keeps them running: no --burst or --name")
        from service.supervisor import supervise

        return supervise(settings, max_jobs=args.max_jobs, max_memory_mb=args.max_memory_mb,
                         hang_grace=args.hang_grace)
    redis_url = settings.redis_url or embedded_redis.ensure_server(settings.instance_dir)
    connection = worker_redis.connect(redis_url, settings.worker_redis_timeout)  # waits while Redis is away
    connection.ping()
    name = args.name or f"visnet-{socket.gethostname()}-{os.getpid()}"
    log.info("worker %s: loading the engine (model=%s, weights=%s, device=%s)", name, settings.model,
             settings.weights if settings.model == DEFAULT_MODEL else "the model's own", settings.device)

    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines drown the worker's log
    try:
        engine = load_engine(settings)  # TensorFlow: only here and in the job functions
    except WeightsError as error:  # no weights file (it says which fetch command gets one), or a broken one
        log.error("worker %s: cannot serve model %s: %s", name, settings.model, error)
        return NO_WEIGHTS
    runtime.install(engine)  # the job functions' engine (service.jobs)
    loaded = time.perf_counter()
    if settings.worker_warm_up:
        warm_up_seconds = engine.warm_up()  # the first run's cost, paid here rather than in a user's first job
        log.info("worker %s: engine loaded in %.1f s, warm-up pass %.1f s", name, loaded - started, warm_up_seconds)
    else:
        log.info("worker %s: engine loaded in %.1f s, warm-up skipped (VISNET_WORKER_WARM_UP=0): the first job "
                 "pays for the first run", name, loaded - started)
    ready_seconds = time.perf_counter() - started
    info = engine.model_info()
    log.info("worker %s: ready in %.1f s on %s with weights %s (%s), classifier: %s",
             name, ready_seconds, info["device"], info["weights"], info["weights_path"],
             "yes" if info["has_classifier"] else "no")

    if settings.model == DEFAULT_MODEL:  # /api/model describes VGG16's workers
        presence.publish_model(connection, {**info, "ready_seconds": round(ready_seconds, 2),
                                            "load_seconds": round(loaded - started, 2), "worker": name})
    heartbeat = presence.Heartbeat(connection, name, {
        "model": settings.model, "weights": info["weights"], "device": info["device"],
        "ready_seconds": round(ready_seconds, 2), "host": socket.gethostname(), "pid": os.getpid(),
    }).start()
    sweeper = recovery.Sweeper(connection, served_queues(settings)[0]).start()  # other workers' lost jobs
    worker = build_worker(connection, settings, name, between_jobs=engine_renewal(engine, settings, name))
    try:
        worker.work(burst=args.burst, logging_level=settings.log_level, with_scheduler=False,
                    max_jobs=args.max_jobs)
    finally:
        connection.set_retry(worker_redis.a_few_tries())  # exiting: no more waiting for Redis
        sweeper.stop()
        heartbeat.stop()
        log.info("worker %s: stopped", name)
    return 0
