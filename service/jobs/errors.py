"""A failed job's message, in words a user can act on.

A job's error is shown on the job page and in the API (``message``). A traceback line such as
``OSError: [Errno 28] No space left on device: '/srv/results/.tmp-…/block1_pool_ch3.png'`` says what
happened to a programmer; the user needs to know that the server's disk is full and that submitting
again later will work. This module maps the failures a job can meet on a healthy worker (a bad
option, the time limit, the results disk full, read-only or not writable) to such sentences. No
TensorFlow and no RQ import: the web process uses the same texts.

It is the one place a failed job's message is written: from the exception a job raised
(:func:`describe_failure`, in the worker), from what ended an attempt when the worker itself was lost,
shut down or killed (:func:`attempt_outcome` texts, :func:`lost_job_message`, in service.recovery and
service.supervisor), and from a failed job read back later (:func:`failed_job_message`, for the API's
photo jobs, scan planning and scan chunks).
"""
import errno
import os

# Only writing meets these, and a job writes nothing but its results.
_WRITE_PROBLEMS = {
    errno.ENOSPC: "no space left on the results disk",
    errno.EDQUOT: "the disk quota of the results folder is used up",
    errno.EROFS: "the results folder is on a read-only file system",
}
# These can come from reading the upload too: they are the results' fault only for a path in there.
_PATH_PROBLEMS = {
    errno.EACCES: "the worker may not write into the results folder (permission denied)",
    errno.EPERM: "the worker may not write into the results folder (operation not permitted)",
    errno.EIO: "the results disk reported an input/output error",
    errno.ENOTDIR: "a file stands where a results folder should be",
}


WORKER_LOST = "the worker running this job stopped before it finished"
WORKER_SHUT_DOWN = "the worker running this job was shut down before it finished"


def timeout_message(limit_seconds) -> str:
    return f"the job took longer than the limit of {limit_seconds} seconds (VISNET_JOB_TIMEOUT)"


def hung_message(limit_seconds) -> str:
    """A job that overran its limit in native code, where the worker could not interrupt it."""
    return f"{timeout_message(limit_seconds)}; the worker could not stop it and was replaced"


def over_memory_message(limit_mb) -> str:
    return f"the worker went over its memory limit of {limit_mb} MiB (VISNET_WORKER_MAX_MEMORY_MB) while running this job"


def lost_job_message(outcome: str, attempts: list) -> str:
    """The message of a job whose last attempt ended with ``outcome`` (its worker lost, shut down or
    killed, see above) and that has no retry left; ``attempts`` as recorded in ``job.meta``."""
    if len(attempts) > 1:
        return f"{outcome}, on each of its {len(attempts)} attempts; submit again to retry"
    return f"{outcome}; submit again to retry"


def exception_text(error: BaseException) -> str:
    """``Type: message``, for failures the sentences here do not cover."""
    return f"{type(error).__name__}: {error}"


def _results_problem(error: OSError, results_root):
    if error.errno in _WRITE_PROBLEMS:
        return _WRITE_PROBLEMS[error.errno]
    if error.errno in _PATH_PROBLEMS and results_root is not None and error.filename is not None:
        root = os.path.abspath(results_root)
        if os.path.commonpath([root, os.path.abspath(os.fsdecode(error.filename))]) == root:
            return _PATH_PROBLEMS[error.errno]
    return None


def describe_failure(error: BaseException, timeout_seconds=None, results_root=None) -> str:
    """One sentence for ``error``, raised by a job whose time limit is ``timeout_seconds`` and whose
    results go under ``results_root``."""
    if type(error).__name__ == "JobTimeoutException":  # rq.timeouts; matched by name, no RQ import needed
        return timeout_message(timeout_seconds)
    if isinstance(error, ValueError):  # the job's own checks: the message is written for the user
        return str(error)
    problem = _results_problem(error, results_root) if isinstance(error, OSError) else None
    if problem is not None:
        return (f"could not write the results: {problem}; nothing was kept, "
                "and the job can be submitted again once the server's disk is fixed")
    if isinstance(error, MemoryError):
        return "the worker ran out of memory running this job; try fewer layers or channels"
    return exception_text(error)


def failed_job_message(job, default: str = "the job failed") -> str:
    """The message of the failed RQ ``job``: the one its worker or a settler wrote into
    ``job.meta["error"]``; else the last line of RQ's record of the failure, in words where RQ's own
    failures (its time limit, an abandoned job) are meant; else ``default``."""
    if job.meta.get("error"):
        return str(job.meta["error"])
    try:
        result = job.latest_result()
    except Exception:  # a result that does not deserialise: the default says enough
        result = None
    lines = [line for line in (getattr(result, "exc_string", None) or "").strip().splitlines() if line.strip()]
    last = lines[-1][:300] if lines else ""
    if "JobTimeoutException" in last:
        return timeout_message(job.timeout)
    if "AbandonedJobError" in last or "stopped" in last.lower():
        return lost_job_message(WORKER_LOST, [])
    return last or default
