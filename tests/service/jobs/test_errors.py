"""A failed job's message (service.jobs.errors), and the atomic writer on a full disk: nothing partial."""
import errno
import os

import pytest
from rq.timeouts import JobTimeoutException

from service.jobs.errors import (
    WORKER_LOST,
    describe_failure,
    failed_job_message,
    hung_message,
    lost_job_message,
    timeout_message,
)
from visnet import atomic


def test_a_timeout_says_the_limit():
    message = describe_failure(JobTimeoutException("Task exceeded maximum timeout value (5 seconds)"), 5)
    assert message == "the job took longer than the limit of 5 seconds (VISNET_JOB_TIMEOUT)"


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "no space left on the results disk"),
    (errno.EDQUOT, "quota"),
    (errno.EROFS, "read-only file system"),
])
def test_a_refused_write_says_what_is_wrong_with_the_disk(code, words, tmp_path):
    error = OSError(code, os.strerror(code), str(tmp_path / "results" / ".tmp-x" / "a.png"))
    message = describe_failure(error, 600, tmp_path / "results")
    assert message.startswith("could not write the results: ") and words in message and "submitted again" in message
    assert str(tmp_path) not in message  # no server paths for the user


def test_a_permission_problem_is_the_results_folders_only_inside_it(tmp_path):
    inside = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "results" / "job"))
    outside = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "uploads" / "photo.jpg"))
    assert "permission denied" in describe_failure(inside, 600, tmp_path / "results")
    assert describe_failure(outside, 600, tmp_path / "results").startswith("PermissionError:")


def test_a_bad_option_is_its_own_message():
    assert describe_failure(ValueError("top_k 9 exceeds the 8 channels"), 600) == "top_k 9 exceeds the 8 channels"


class FullDisk:
    """A file object whose writes fail as on a full disk, like a real one after its first block."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def test_a_full_disk_leaves_neither_the_file_nor_its_temporary(tmp_path, monkeypatch):
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError) as raised:
        atomic.write_bytes_atomically(tmp_path / "out" / "a.png", b"\x89PNG" * 1000)
    assert raised.value.errno == errno.ENOSPC
    assert list((tmp_path / "out").iterdir()) == []


class FailedJob:
    """What failed_job_message reads of an RQ job: its meta, its time limit, its latest result."""

    def __init__(self, meta=None, exc_string=None, timeout=600):
        self.meta, self.timeout = meta or {}, timeout
        self._result = None if exc_string is None else type("Result", (), {"exc_string": exc_string})()

    def latest_result(self):
        return self._result


def test_a_failed_job_is_described_by_one_builder():
    trace = "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
    assert failed_job_message(FailedJob({"error": "top_k 9 exceeds the 8 channels"}, trace + "ValueError: x")) \
        == "top_k 9 exceeds the 8 channels"
    assert failed_job_message(FailedJob(exc_string=trace + "rq.timeouts.JobTimeoutException: Task exceeded", timeout=5)) \
        == timeout_message(5)
    assert failed_job_message(FailedJob(exc_string="Moved to FailedJobRegistry, due to AbandonedJobError, at now")) \
        == lost_job_message(WORKER_LOST, []) == f"{WORKER_LOST}; submit again to retry"
    assert failed_job_message(FailedJob(exc_string=trace + "OSError: disk on fire\n\n")) == "OSError: disk on fire"
    assert failed_job_message(FailedJob()) == "the job failed"
    assert failed_job_message(FailedJob(), default="") == ""
    assert lost_job_message(WORKER_LOST, [{}, {}]) == f"{WORKER_LOST}, on each of its 2 attempts; submit again to retry"
    assert hung_message(30) == f"{timeout_message(30)}; the worker could not stop it and was replaced"
