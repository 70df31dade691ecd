"""Job functions for the fault tests, run by real workers (``python worker.py`` imports them as
``tests.support.fault_jobs`` by dotted path: its working folder is the project root). They misbehave the way
real jobs can (run long, hang where SIGALRM cannot reach, grow), mostly without TensorFlow, so the tests
control exactly when and how. Never enqueued by the service itself."""
import os
import signal
import time


def sleep_then_report(seconds: float) -> dict:
    """A slow but well-behaved job: sleeps in Python (interruptible by RQ's SIGALRM time limit); says which
    process ran it and when it ended (``time.time()``), so a test can tell that a stop came while it ran."""
    time.sleep(seconds)
    return {"pid": os.getpid(), "ended": time.time()}


def hang_in_native_code(seconds: float) -> dict:
    """Stuck where the time limit cannot reach, like a wedged kernel or driver call: SIGALRM is blocked
    for this thread, so RQ's timeout is never delivered, and the heartbeat thread keeps beating."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        time.sleep(seconds)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
    return {"pid": os.getpid()}


def take_the_graph_lock_then_sleep(seconds: float) -> dict:
    """Stopped by its time limit inside TensorFlow's graph lock, as a real job was while it built its sweeps: takes
    the lock of the engine's graph as TensorFlow does to add an op, and sleeps (interruptible) without giving it back,
    as when the limit's exception lands in TensorFlow's lock code. Until the graph is replaced, every session run waits
    for that lock."""
    from service.jobs import runtime

    runtime.engine().model.graph._mutation_lock().__enter__()  # never exited
    time.sleep(seconds)
    return {"pid": os.getpid()}


def hold_memory(megabytes: int, seconds: float) -> dict:
    """Grows the worker by ``megabytes`` of touched memory and holds it for ``seconds``."""
    block = b"\x01" * (megabytes * 1024 * 1024)  # written, so resident (a zeroed block might not be)
    time.sleep(seconds)
    return {"pid": os.getpid(), "held": len(block)}


def note_then_fail(path: str):
    """Appends a line to ``path`` (to count the runs), then raises ValueError."""
    with open(path, "a") as notes:
        notes.write("run\n")
    raise ValueError("this job always fails")


def signal_own_process_twice(pause: float, then_sleep: float) -> dict:
    """Sends SIGTERM to its own process twice, ``pause`` seconds apart (RQ ignores a repeat within a
    second), as an impatient operator would: the second is RQ's cold shutdown."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(pause)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(then_sleep)
    return {"pid": os.getpid()}


def report_progress_while_sleeping(seconds: float, steps: int = 50) -> dict:
    """Sleeps ``seconds`` in ``steps``, saving its progress (``job.save_meta`` through service.jobs.photo.Progress,
    as the real jobs do) after each: a Redis outage meets it in the middle of a write."""
    from rq import get_current_job

    from service.jobs.photo import Progress

    progress = Progress(get_current_job())
    for step in range(steps):
        progress.update("network", step, steps)
        time.sleep(seconds / steps)
    progress.update("network", steps, steps)
    return {"pid": os.getpid()}


def deconv_held_while_writing(gate: str, upload_path: str, results_root: str, job_key: str, options: dict) -> dict:
    """The real deconvnet job (service.jobs.photo.deconv), whose writer holds every feature's files but the
    first it starts until the file ``gate`` exists (at most two minutes): a test sees the job running with
    some of its pictures written, for as long as it likes."""
    import threading

    from service.jobs.photo import deconv
    from visnet import outputs

    original = outputs._write_feature_files
    started = threading.Lock()

    def held(*args):
        if not started.acquire(blocking=False):  # not the first feature
            deadline = time.monotonic() + 120
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.02)
        return original(*args)

    outputs._write_feature_files = held
    try:
        return deconv(upload_path, results_root, job_key, options)
    finally:
        outputs._write_feature_files = original
