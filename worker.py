"""One deconvnet worker: builds the VGG16 graph and loads the weights once, then serves the RQ queue
without forking, so every job starts warm.

    .venv/bin/python worker.py            # REDIS_URL unset: the embedded Redis of the instance folder

Run as many as you like, on this host or others, against one Redis (README.md, "More workers").
The job function itself is ``visnet.jobs.deconv``.
"""
import argparse
import logging
import os
import socket
import sys
import time

import redis
from rq import Queue, SimpleWorker

from app import embedded_redis, presence
from visnet.settings import from_environment

log = logging.getLogger("visnet.worker")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--name", help="worker name (default: visnet-<host>-<pid>)")
    args = parser.parse_args(argv)

    settings = from_environment()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    redis_url = settings.redis_url or embedded_redis.ensure_server(settings.instance_dir)
    connection = redis.Redis.from_url(redis_url, health_check_interval=30)
    connection.ping()
    name = args.name or f"visnet-{socket.gethostname()}-{os.getpid()}"
    log.info("worker %s: loading the engine (weights=%s, device=%s)", name, settings.weights, settings.device)

    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines drown the worker's log
    from visnet.engine import get_engine  # TensorFlow: only here and in visnet.jobs

    engine = get_engine(settings.weights, settings.device, settings.models_dir)
    loaded = time.perf_counter()
    warm_up_seconds = engine.warm_up()  # the first run's cost, paid here rather than in a user's first job
    ready_seconds = time.perf_counter() - started
    info = engine.model_info()
    log.info("worker %s: engine loaded in %.1f s, warm-up pass %.1f s", name, loaded - started, warm_up_seconds)
    log.info("worker %s: ready in %.1f s on %s with weights %s (%s), classifier: %s",
             name, ready_seconds, info["device"], info["weights"], info["weights_path"],
             "yes" if info["has_classifier"] else "no")

    presence.publish_model(connection, {**info, "ready_seconds": round(ready_seconds, 2),
                                        "load_seconds": round(loaded - started, 2), "worker": name})
    heartbeat = presence.Heartbeat(connection, name, {
        "weights": info["weights"], "device": info["device"], "ready_seconds": round(ready_seconds, 2),
        "host": socket.gethostname(), "pid": os.getpid(),
    }).start()
    queue = Queue(settings.queue_name, connection=connection, default_timeout=settings.job_timeout)
    worker = SimpleWorker([queue], connection=connection, name=name)
    try:
        worker.work(burst=args.burst, logging_level=settings.log_level, with_scheduler=False)
    finally:
        heartbeat.stop()
        log.info("worker %s: stopped", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
