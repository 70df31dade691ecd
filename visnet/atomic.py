"""Writing a file so that a reader sees either nothing or the whole file.

The data goes to a hidden temporary name in the target's folder (same file system), which is then
renamed onto the target with ``os.replace``; on any failure the temporary is removed. Result PNGs,
manifests and scan files all go through here.

A whole result folder is written the same way: into ``<parent>/.tmp-<key>-<random>``
(:func:`partial_folder`), renamed into place when complete. A worker killed meanwhile leaves that
folder behind; :func:`partial_folders` finds an attempt's leftovers, and ``PARTIAL_PREFIX`` is how
cleanup tells them apart.
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path

PARTIAL_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_file(path):
    """Open a temporary beside ``path`` for binary writing; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the web process may be another user
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomically(path, data: bytes) -> Path:
    with atomic_file(path) as out:
        out.write(data)
    return Path(path)


def read_json_if_readable(path):
    """The JSON document at ``path``, or None where it is missing or does not parse: a record that
    may be absent or damaged, and that its readers can do without."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def partial_folder(parent, key: str) -> Path:
    """A new, private, empty folder ``parent/.tmp-<key>-<random>`` to write a result into."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{key}-", dir=parent))


def partial_folders(parent, key: str) -> list:
    """The folders :func:`partial_folder` made for ``key`` under ``parent`` that are still there."""
    return sorted(path for path in Path(parent).glob(f"{PARTIAL_PREFIX}{key}-*") if path.is_dir())
