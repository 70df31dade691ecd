"""A failed job's message (service.jobs.errors), and the atomic writer on a full disk: nothing partial."""
import errno
import os

import pytest
from rq.timeouts import JobTimeoutException

from service.jobs.errors import describe_failure
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
