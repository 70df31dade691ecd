"""Downloading a known weights file into the models folder, verified by md5.

The file is streamed in chunks into a temporary file beside the target, its md5 computed on the way,
and renamed onto the target only when the md5 matches, so the target is never a partial download.
Without network the download fails at once (no retries) with instructions for an offline install.
"""
import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .numbers import parse_whole_number
from .weights import KNOWN_WEIGHTS, file_md5, offline_instructions

CHUNK_BYTES = 1 << 20
USER_AGENT = "visnet-fetch"


class FetchError(RuntimeError):
    """A download failed: no network, an HTTP error, an interrupted transfer or a wrong md5."""


def fetch_weights(name, models_dir, *, url=None, md5=None, progress=None, timeout=10) -> Path:
    """Download the known weights ``name`` to ``models_dir/<filename>`` and return that path.

    ``url`` and ``md5`` override the known ones. A file already there with the right md5 is kept and
    not downloaded again; one with another md5 is replaced once the new download is verified.
    ``progress(done_bytes, total_bytes)`` is called after every chunk (total is None when unknown);
    by default a one-line bar is drawn on stderr. ``timeout`` (seconds) bounds the connection and
    every read.
    """
    spec = KNOWN_WEIGHTS.get(name)
    downloadable = [known for known, candidate in KNOWN_WEIGHTS.items() if candidate.url]
    if spec is None or spec.url is None:
        raise ValueError(f"cannot fetch weights {name!r}; expected one of {', '.join(downloadable)}")
    url = url or spec.url
    md5 = (md5 or spec.md5).lower()
    models_dir = Path(models_dir)
    target = models_dir / spec.filename
    if target.is_file() and file_md5(target) == md5:
        return target

    def failure(reason: str) -> FetchError:
        return FetchError(f"could not download {name!r} from {url} to {target}: {reason}. To install it "
                          f"without network here, {offline_instructions(name, target)}")

    models_dir.mkdir(parents=True, exist_ok=True)
    response = _open(url, timeout, failure)
    total = _content_length(response) or (spec.size if url == spec.url else None)
    report = progress if progress is not None else StderrProgressBar(name)
    try:
        _download_verified(response, target, md5, total, report, failure)
    finally:
        response.close()
        if progress is None:
            report.finish()
    return target


def _open(url: str, timeout: float, failure):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        raise failure(f"the server answered HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise failure(f"no connection ({error.reason})") from error
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise failure(f"no connection ({error})") from error


def _content_length(response):
    try:
        length = parse_whole_number(response.headers.get("Content-Length"))
    except ValueError:  # absent or not a number: the download goes on without a total
        return None
    return length if length >= 0 else None


def _download_verified(response, target: Path, md5: str, total, report, failure) -> None:
    """Stream into a temporary file in the target's folder (so the rename is atomic), then rename."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temporary = Path(temporary)
    try:
        with os.fdopen(handle, "wb") as out:
            done, got_md5 = _copy_with_md5(response, out, total, report, failure)
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done != total:
            raise failure(f"the transfer ended after {done:,} of {total:,} bytes")
        if got_md5 != md5:
            raise FetchError(
                f"the file downloaded from {response.geturl()} for {target} has md5 {got_md5}; expected {md5}. "
                "It was discarded: the transfer was corrupted or the server sent another file"
            )
        temporary.chmod(0o644)  # mkstemp creates 0600; the web app may run as another user
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _copy_with_md5(response, out, total, report, failure) -> tuple:
    digest, done = hashlib.md5(), 0
    while True:
        try:
            chunk = response.read(CHUNK_BYTES)
        except (OSError, http.client.HTTPException) as error:
            raise failure(f"the transfer broke off after {done:,} bytes ({error})") from error
        if not chunk:
            return done, digest.hexdigest()
        out.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        report(done, total)


class StderrProgressBar:
    """``label [#####-----]  12.3 / 56.2 MB  22%`` redrawn in place on stderr, at most ~10 times a second."""

    WIDTH = 30

    def __init__(self, label: str, stream=None, min_interval: float = 0.1):
        self.label = label
        self.stream = stream
        self.min_interval = min_interval
        self.last_draw = 0.0
        self.latest = None
        self.drawn = None

    def __call__(self, done: int, total) -> None:
        self.latest = (done, total)
        now = time.monotonic()
        if now - self.last_draw < self.min_interval and done != total:
            return
        self.last_draw = now
        self._draw()

    def line(self, done: int, total) -> str:
        if not total:
            return f"{self.label}  {done / 1e6:.1f} MB"
        fraction = min(done / total, 1.0)
        filled = int(round(fraction * self.WIDTH))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"{self.label} [{bar}] {done / 1e6:.1f} / {total / 1e6:.1f} MB {fraction:4.0%}"

    def finish(self) -> None:
        """Draw the last state if throttling skipped it, and end the line."""
        if self.latest is None:
            return
        if self.drawn != self.latest:
            self._draw()
        self._write("\n")

    def _draw(self) -> None:
        self.drawn = self.latest
        self._write("\r" + self.line(*self.latest))

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text)
        stream.flush()
