"""One deconvnet worker: builds the VGG16 graph and loads the weights once, then serves the RQ queue
without forking, so every job starts warm.

    .venv/bin/python worker.py              # REDIS_URL unset: the embedded Redis of the instance folder
    .venv/bin/python worker.py --supervise  # production: a supervisor restarts it when it dies, hangs
                                            # in native code, outgrows its memory or ends --max-jobs

Run as many as you like, on this host or others, against one Redis (README.md, "Running in
production"). The runtime is :mod:`service.worker`; the job functions are in :mod:`service.jobs`; ``service.supervisor`` is the supervisor and
``service.recovery`` retries the job of a worker that died. SIGTERM (or Ctrl-C) lets the running job
finish, then the worker exits (RQ's warm shutdown); a second one interrupts the job, which goes back
to the queue for another worker.
"""
import sys

from service.worker import main

if __name__ == "__main__":
    sys.exit(main())
