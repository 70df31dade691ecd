"""``make run``: the embedded Redis (unless REDIS_URL is set), one supervised worker and gunicorn, in the
foreground; Ctrl-C stops them all.

    .venv/bin/python -m service.serve

Stopping: the first Ctrl-C (or SIGTERM) is a warm stop: gunicorn finishes its requests and the
worker its running job (up to the job's time limit; the supervisor kills a worker stuck past it),
then everything exits. A second Ctrl-C forces it: the worker interrupts its job, which goes back to
the queue (RQ's cold shutdown, service.recovery), and gunicorn quits at once. The children run in
process groups of their own, so a Ctrl-C in the terminal (SIGINT to the whole foreground group)
reaches only this process, which passes each request on exactly once; a child also gets SIGTERM
should this process die.

Weights: with ``VISNET_WEIGHTS=auto`` (the default) and ``VISNET_FETCH`` not 0, the ImageNet VGG16 with its
classifier top is downloaded into the models folder first, when it is not there, with a progress bar in
this terminal (visnet.fetch.obtain_imagenet_for_auto); offline, that fails within seconds and ``auto``
falls back to the bundled hed weights, which one log line says. The service waits for the download rather
than starting on hed and switching: a switch would restart the worker under running jobs, and the first
minutes' results would be edge-detector pictures that a user took for the ImageNet ones; waiting is one
code path. gunicorn starts first, so the pages say what is happening: the download's figures (bytes,
rate, time left, as on the terminal's bar) until the worker starts, then which weights are in use and what
that means, as every manifest does. A Ctrl-C during the download stops everything; the next start
resumes the download.
"""
import logging
import os
import signal
import subprocess
import sys
import time

import redis
from redis.exceptions import RedisError

from service import embedded_redis, presence
from service.supervisor import die_with_parent
from visnet.fetch import StderrProgressBar, obtain_imagenet_for_auto
from visnet.settings import PROJECT_ROOT, from_environment

log = logging.getLogger("visnet.serve")

FORCED_STOP_SECONDS = 30  # after a second stop request, how long before what is left is killed


def stop_process(process, name="process", timeout=15) -> bool:
    """SIGTERM (a worker finishes its job, gunicorn its requests), then SIGKILL after ``timeout`` s; True
    when it had to be killed."""
    if process.poll() is not None:
        return False
    log.info("stopping %s (pid %d)", name, process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return True


def _keep_embedded_redis(instance_dir):
    """Start the embedded server again if it died (the supervisor and the web processes do too)."""
    try:
        if embedded_redis.restart_if_dead(instance_dir):
            log.warning("the embedded Redis server was not answering; started it again")
    except RuntimeError as error:  # hung rather than dead, or it cannot start: the next round tries again
        log.error("%s", error)


def _start(command) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=PROJECT_ROOT, process_group=0,
                            preexec_fn=die_with_parent if sys.platform == "linux" else None)


def stop_children(web, worker, stop_requests, warm_seconds: float):
    """Stop gunicorn and the worker's supervisor together, as the module docstring says;
    ``stop_requests()`` is how many stop requests have arrived so far (this one included)."""
    for process in (web, worker):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    log.info("stopping: the running job, if any, finishes first (Ctrl-C again to interrupt it)")
    forced = False
    deadline = time.monotonic() + warm_seconds
    while web.poll() is None or worker.poll() is None:
        if not forced and stop_requests() > 1:
            forced = True
            log.info("stopping now: the running job goes back to the queue")
            if worker.poll() is None:
                # The supervisor's second request (its worker's cold shutdown), as SIGINT: a second SIGTERM that
                # arrived before the supervisor handled the first would merge with it (signals of one kind are
                # not queued), as when both Ctrl-C came within one turn of the loop in main().
                worker.send_signal(signal.SIGINT)
            if web.poll() is None:
                web.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
            deadline = min(deadline, time.monotonic() + FORCED_STOP_SECONDS)
        if time.monotonic() > deadline:
            for process, name in ((web, "gunicorn"), (worker, "worker")):
                if process.poll() is None:
                    log.warning("%s did not stop in time: killing it", name)
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            break
        time.sleep(0.1)


class DownloadNote:
    """The terminal's progress bar, and the same figures for the pages (service.presence), at most once a
    second: what ``make run`` is waiting for before its worker starts."""

    INTERVAL_SECONDS = 1.0

    def __init__(self, connection, bar=None, clock=time.monotonic):
        self.connection = connection
        self.bar = bar or StderrProgressBar("imagenet")
        self.clock = clock
        self.published = None

    def __call__(self, done: int, total) -> None:
        self.bar(done, total)
        now = self.clock()
        if self.published is not None and now - self.published < self.INTERVAL_SECONDS and done != total:
            return
        self.published = now
        try:
            presence.publish_preparing(self.connection, "downloading the ImageNet VGG16 (Keras) before the worker "
                                       f"starts: {self.bar.figures(*self.bar.latest)}")
        except RedisError:  # the terminal still shows it; the page only misses the figures
            pass

    def finish(self) -> None:
        self.bar.finish()
        try:
            presence.clear_preparing(self.connection)
        except RedisError:
            pass


def prepare_weights(settings, progress=None):
    """With ``VISNET_WEIGHTS=auto``: the ImageNet download (or why not, and what ``auto`` takes instead) as
    the module docstring says, before the worker starts; the line to log. None for any other weights."""
    if settings.weights.strip().lower() != "auto":
        return None
    return obtain_imagenet_for_auto(settings.models_dir, fetch=settings.fetch, url=settings.weights_url,
                                    md5=settings.weights_md5, progress=progress)


def main():
    try:
        settings = from_environment()
    except ValueError as error:  # a setting that cannot be used: said in one line, not a traceback
        raise SystemExit(f"python -m service.serve: {error}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started_redis = False
    if settings.redis_url is None:
        started_redis = not embedded_redis.answers(embedded_redis.url_for(settings.instance_dir))
        url = embedded_redis.ensure_server(settings.instance_dir)
        log.info("embedded Redis at %s", url)
    else:
        log.info("Redis at %s", settings.redis_url)

    # The children find the same embedded server through the instance folder. The worker runs under its
    # supervisor (service.supervisor), which replaces it when it hangs, grows or dies; it starts once the
    # weights are there, and meanwhile the pages show the download's figures.
    web = _start([sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py")])
    log.info("open http://%s/ (the worker needs a little while to load the model; Ctrl-C stops everything)",
             settings.bind)
    note = DownloadNote(redis.Redis.from_url(settings.redis_url or url, socket_connect_timeout=2, socket_timeout=2))
    try:
        try:
            weights_line = prepare_weights(settings, progress=note)
        finally:
            note.finish()  # the bar's last line, and the pages' note cleared, before anything else is logged
    except KeyboardInterrupt:
        log.info("stopped during the weights download; the next start resumes it")
        stop_process(web, "gunicorn")
        if started_redis:
            embedded_redis.stop_server(settings.instance_dir)
        return 130
    if weights_line:
        log.info("%s", weights_line)
    worker = _start([sys.executable, str(PROJECT_ROOT / "worker.py"), "--supervise"])

    stop_requests = []  # one signal each (list.append: a second signal cannot tear it)

    def request_stop(signum, frame):
        stop_requests.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    exit_code = 0
    worker_reported = False
    try:
        while not stop_requests:
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
        # The supervisor stops a job at its time limit plus the hang grace; beyond that, something is wrong.
        stop_children(web, worker, lambda: len(stop_requests),
                      warm_seconds=settings.job_timeout + settings.worker_hang_grace + FORCED_STOP_SECONDS)
        if started_redis:
            embedded_redis.stop_server(settings.instance_dir)
            log.info("embedded Redis stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
