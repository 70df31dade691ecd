"""Disks that are full: a tmpfs a few KiB large (root ignores file permissions, but not a full file
system). Mounting needs root; where it is not allowed, the test is skipped and says why."""
import contextlib
import subprocess

import pytest


@contextlib.contextmanager
def tiny_tmpfs(mount_point, size: str):
    """A tmpfs of ``size`` (mount's spelling: "8k") mounted on ``mount_point`` (created) for the block."""
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}), so no disk can be made full: "
                    "run the tests as root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 8 KiB: too small for a photo upload or one result PNG."""
    with tiny_tmpfs(tmp_path / "small-disk", "8k") as mount_point:
        yield mount_point
