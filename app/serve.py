"""``make run``: the embedded Redis (unless REDIS_URL is set), one supervised worker and gunicorn, in the
foreground; Ctrl-C stops them all.

    .venv/bin/python -m app.serve
"""
import logging
import signal
import subprocess
import sys
import time

from visnet.settings import PROJECT_ROOT, from_environment

from . import embedded_redis

log = logging.getLogger("visnet.serve")


def stop_process(process, name="process", timeout=15):
    """SIGTERM (a worker finishes its job, gunicorn its requests), then SIGKILL after ``timeout`` s."""
    if process.poll() is not None:
        return
    log.info("stopping %s (pid %d)", name, process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _keep_embedded_redis(instance_dir):
    """Start the embedded server again if it died (the supervisor and the web processes do too)."""
    try:
        if embedded_redis.restart_if_dead(instance_dir):
            log.warning("the embedded Redis server was not answering; started it again")
    except RuntimeError as error:  # hung rather than dead, or it cannot start: the next round tries again
        log.error("%s", error)


def main():
    settings = from_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started_redis = False
    if settings.redis_url is None:
        started_redis = not embedded_redis.answers(embedded_redis.url_for(settings.instance_dir))
        url = embedded_redis.ensure_server(settings.instance_dir)
        log.info("embedded Redis at %s", url)
    else:
        log.info("Redis at %s", settings.redis_url)

    # The children find the same embedded server through the instance folder. The worker runs under its
    # supervisor (app.supervisor), which replaces it when it hangs, grows or dies.
    worker = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "worker.py"), "--supervise"], cwd=PROJECT_ROOT)
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py")],
                           cwd=PROJECT_ROOT)
    log.info("open http://%s/ (the worker needs a little while to load the model; Ctrl-C stops everything)",
             settings.bind)

    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    exit_code = 0
    worker_reported = False
    try:
        while not stopping:
            if web.poll() is not None:
                log.error("gunicorn exited with status %s", web.returncode)
                exit_code = 1
                break
            if settings.redis_url is None:
                _keep_embedded_redis(settings.instance_dir)
            if worker.poll() is not None and not worker_reported:
                # The page and the API keep answering; jobs wait until a worker runs again.
                log.error("the worker exited with status %s; start another with: .venv/bin/python worker.py",
                          worker.returncode)
                worker_reported = True
            time.sleep(0.5)
    finally:
        stop_process(web, "gunicorn")
        stop_process(worker, "worker", timeout=30)
        if started_redis:
            embedded_redis.stop_server(settings.instance_dir)
            log.info("embedded Redis stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
