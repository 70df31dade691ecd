"""gunicorn settings: ``python -m gunicorn -c gunicorn.conf.py`` serves ``wsgi:app``.

Address, process count and log level come from visnet.settings (VISNET_BIND, VISNET_WEB_WORKERS,
VISNET_LOG_LEVEL); the rest is fixed here because it follows from what the web process does. It never
computes: it checks an upload in memory, enqueues, answers polls and streams PNGs from disk, so every
request is short and a process is mostly waiting on sockets, Redis and the disk.

* Workers: VISNET_WEB_WORKERS processes (default 2), 4 threads each, so 8 requests at once by
  default. A slow client uploading 20 MiB holds one thread, not a process. One or two processes per
  core is plenty; more web processes do not make jobs faster (workers do, see README.md).
* Timeouts: a process that has not checked in for ``timeout`` seconds is killed and replaced; with
  threads that only happens when the whole process is stuck, so 60 s is generous. On SIGTERM, requests
  in flight get ``graceful_timeout`` seconds to finish (under Docker's 10 s before its SIGKILL).
  Redis calls time out on their own after 2 s (app.redis_client), answering 503.
* Recycling: each process is replaced after ``max_requests`` requests, with jitter so that they do
  not all restart at once; this bounds slow growth (allocator fragmentation, caches) at no cost, as a
  new process is ready in well under a second and requests in flight finish first.
* Long polls (GET /api/jobs/<id>?since=…&wait=…, app.jobs.long_poll) wait in at most half of a
  process's threads, so the other half always answers; one that finds no free thread answers at once.
  A stopping process (SIGTERM, or recycling) ends its waits within one 25 ms check: a wait may ask
  for 10 s, longer than ``graceful_timeout``, and would otherwise be cut off with no answer.
* No control socket: gunicorn (25.1+) otherwise opens one for ``gunicornc`` at
  ``$XDG_RUNTIME_DIR/gunicorn.ctl`` or ``~/.gunicorn/gunicorn.ctl``, one path for every instance of the
  user on the host, so one instance's shutdown deletes another's socket. Nothing here uses it; stop or
  reload gunicorn with signals (SIGTERM, SIGHUP) to its master.
"""
from visnet.settings import from_environment

_settings = from_environment()

wsgi_app = "wsgi:app"
bind = _settings.bind
workers = _settings.web_workers
worker_class = "gthread"
threads = 4
timeout = 60
graceful_timeout = 8
keepalive = 5
max_requests = 2000
max_requests_jitter = 200
loglevel = _settings.log_level.lower()
accesslog = "-"
errorlog = "-"
control_socket_disable = True


def post_worker_init(worker):
    """Runs in each worker process once it has loaded the app: long polls get half its threads, and stop
    waiting as soon as the worker stops being alive (gunicorn's SIGTERM handler, or max_requests)."""
    from app.jobs import long_poll

    long_poll.configure(worker.wsgi, slots=max(1, threads // 2), stopping=lambda: not worker.alive)
