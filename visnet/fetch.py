"""Downloading a known weights file into the models folder: resumable, verified by md5.

The file is streamed into ``.<name>.part`` beside the target and renamed onto the target only when its
md5 matches, so the target is never a partial download. A transfer that breaks off keeps what it
received: the same call asks the server for the rest (an HTTP ``Range: bytes=N-`` request) a few times,
and so does the next call, after an interruption or a Ctrl-C. A server that ignores ``Range`` sends the
whole file again, which then replaces the part. A file with the wrong md5 is deleted. Without network the
download fails at once (a refused or unresolvable connection is not retried) with instructions for an
offline install.

:func:`obtain_imagenet_for_auto` is what ``make run`` (service.serve) does before its worker resolves
``VISNET_WEIGHTS=auto``: download the ImageNet VGG16 with its classifier top if it is not there, or say in
one line why not and which weights ``auto`` falls back to.
"""
import fcntl
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .numbers import parse_whole_number
from .weights import KNOWN_WEIGHTS, WeightsError, describe_weights, file_md5, offline_instructions, resolve_weights

CHUNK_BYTES = 1 << 20
USER_AGENT = "visnet-fetch"
ATTEMPTS = 4  # transfers per call: the first and up to three resumptions, each after new bytes arrived
AUTO_NAME = "imagenet"  # what ``auto`` downloads: the ImageNet VGG16 with its classifier top
AUTO_TIMEOUT = 5  # seconds: ``make run`` falls back to the bundled weights quickly when offline


class FetchError(RuntimeError):
    """A download failed: no network, an HTTP error, an interrupted transfer or a wrong md5. ``reason``
    is the short cause, the message the whole story with what to do."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class _Broken(Exception):
    """One transfer ended early; ``progressed``: whether it added bytes to the part file."""

    def __init__(self, reason: str, progressed: bool):
        super().__init__(reason)
        self.progressed = progressed


def partial_path(target: Path) -> Path:
    """Where the download of ``target`` collects its bytes until the md5 is checked."""
    return target.with_name(f".{target.name}.part")


def fetch_weights(name, models_dir, *, url=None, md5=None, progress=None, timeout=10, attempts=ATTEMPTS) -> Path:
    """Download the known weights ``name`` to ``models_dir/<filename>`` and return that path.

    ``url`` and ``md5`` override the known ones (a mirror; the tests' local server). A file already there
    with the right md5 is kept and not downloaded again; one with another md5 is replaced once the new
    download is verified. ``progress(done_bytes, total_bytes)`` is called after every chunk (total is None
    when unknown; ``done`` counts the bytes a resumed download already had); by default a one-line bar
    with the rate and the time left is drawn on stderr. ``timeout`` (seconds) bounds the connection and
    every read; ``attempts`` is how many transfers one call makes while each brings new bytes.
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
                          f"without network here, {offline_instructions(name, target)}", reason)

    models_dir.mkdir(parents=True, exist_ok=True)
    part = partial_path(target)
    report = progress if progress is not None else StderrProgressBar(name)
    known_total = spec.size if url == spec.url else None
    try:
        with open(part, "ab") as out:
            _lock(out, part)  # held until the part is verified and renamed, or deleted
            try:
                _transfer_with_resumption(url, out, timeout, known_total, report, failure, attempts, part)
                _verify_and_rename(part, target, md5, url)
            except FetchError:
                if part.is_file() and part.stat().st_size == 0:  # nothing to resume: no file left behind
                    part.unlink()
                raise
    finally:
        if progress is None:
            report.finish()
    return target


def _lock(out, part: Path) -> None:
    """One download per part file: a second ``make run`` or fetch command must not write into it too."""
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FetchError(f"another download is writing {part}: wait for it to finish", "another download "
                         "is under way") from None


def _transfer_with_resumption(url, out, timeout, known_total, report, failure, attempts, part) -> None:
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, out, timeout, known_total, report, failure)
            return
        except _Broken as broken:
            if attempt == attempts or not broken.progressed:
                kept = os.fstat(out.fileno()).st_size
                raise failure(f"{broken}; the {kept:,} bytes received are kept in {part}, and the next fetch "
                              "resumes from there") from None


def _transfer(url, out, timeout, known_total, report, failure) -> None:
    """Append the rest of the file to ``out``: from byte N with ``Range: bytes=N-`` when it holds N bytes."""
    offset = os.fstat(out.fileno()).st_size
    response = _open(url, timeout, failure, offset)
    if isinstance(response, _Unsatisfiable):
        if response.total == offset:  # the part is the whole file: stopped after the last byte came
            report(offset, offset)
            return
        out.truncate(0)  # the part is longer than this file, or another file
        offset = 0
        response = _open(url, timeout, failure, 0)
    try:
        continues, total = _continuation(response, offset, failure)
        if not continues:  # a 200: the server sends the whole file
            out.truncate(0)
            offset = 0
            total = _content_length(response) or known_total
        done = offset
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as error:
                raise _Broken(f"the transfer broke off after {done:,} bytes ({error})", done > offset) from error
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            report(done, total)
        out.flush()
        if total is not None and done != total:
            raise _Broken(f"the transfer ended after {done:,} of {total:,} bytes", done > offset)
    finally:
        response.close()


class _Unsatisfiable:
    """The answer 416 to ``Range: bytes=N-``: N is not inside the file; ``total`` is its size when said."""

    def __init__(self, content_range):
        found = re.fullmatch(r"bytes \*/(\d+)", (content_range or "").strip())
        self.total = int(found.group(1)) if found else None


def _open(url: str, timeout: float, failure, offset: int):
    """The response, or an _Unsatisfiable for HTTP 416 to a Range request."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            unsatisfiable = _Unsatisfiable(error.headers.get("Content-Range"))
            error.close()
            return unsatisfiable
        raise failure(f"the server answered HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise failure(f"no connection ({error.reason})") from error
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise failure(f"no connection ({error})") from error


def _continuation(response, offset: int, failure) -> tuple:
    """``(True, the whole file's size or None)`` when ``response`` is a 206 that continues at ``offset``,
    ``(False, None)`` when it is the whole file."""
    if response.status != 206:
        return False, None
    found = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (response.headers.get("Content-Range") or "").strip())
    if found is None or int(found.group(1)) != offset:
        raise failure(f"asked for the bytes from {offset:,} on, the server sent the range "
                      f"{response.headers.get('Content-Range')!r}")
    return True, int(found.group(3)) if found.group(3) != "*" else None


def _content_length(response):
    try:
        length = parse_whole_number(response.headers.get("Content-Length"))
    except ValueError:  # absent or not a number: the download goes on without a total
        return None
    return length if length >= 0 else None


def _verify_and_rename(part: Path, target: Path, md5: str, url: str) -> None:
    got_md5 = file_md5(part)
    if got_md5 != md5:
        part.unlink()
        raise FetchError(
            f"the file downloaded from {url} for {target} has md5 {got_md5}; expected {md5}. "
            "It was deleted: the transfer was corrupted or the server sent another file",
            f"the download has md5 {got_md5}, not {md5}")
    with open(part, "rb+") as handle:
        os.fsync(handle.fileno())
    part.chmod(0o644)  # the web app may run as another user
    os.replace(part, target)


def obtain_imagenet_for_auto(models_dir, *, fetch=True, url=None, md5=None, progress=None,
                             timeout=AUTO_TIMEOUT) -> str:
    """Before a worker resolves ``VISNET_WEIGHTS=auto``: download the ImageNet VGG16 with its classifier
    top into ``models_dir`` unless it is there or ``fetch`` is False, and return one line for the log
    that says which weights ``auto`` now takes and why. Never raises for a failed download: ``auto``
    then takes what is there (the bundled hed weights at worst), and the line says so."""
    spec = KNOWN_WEIGHTS[AUTO_NAME]
    target = Path(models_dir) / spec.filename
    if target.is_file():
        return f"weights: {spec.in_words}, {target}"
    if not fetch:
        return f"VISNET_FETCH=0: not downloading the ImageNet VGG16; {_auto_fallback(models_dir)}"
    try:
        path = fetch_weights(AUTO_NAME, models_dir, url=url, md5=md5, progress=progress, timeout=timeout)
    except FetchError as error:
        return (f"could not download the ImageNet VGG16 from {url or spec.url} ({error.reason}); "
                f"{_auto_fallback(models_dir)}")
    return f"weights: {spec.in_words}, downloaded to {path}"


def _auto_fallback(models_dir) -> str:
    try:
        name, path = resolve_weights("auto", models_dir)
    except WeightsError as error:
        return f"and no other weights are there either: {error}"
    return f"serving {describe_weights(name, KNOWN_WEIGHTS[name].has_top)} from {path}"


class StderrProgressBar:
    """``label [#####-----] 12.3 / 56.2 MB  22%  4.1 MB/s  8 s left`` redrawn in place on stderr, at most
    ~10 times a second. The rate counts this run's bytes only (a resumed download's earlier bytes were
    not transferred now)."""

    WIDTH = 30

    def __init__(self, label: str, stream=None, min_interval: float = 0.1, clock=time.monotonic):
        self.label = label
        self.stream = stream
        self.min_interval = min_interval
        self.clock = clock
        self.last_draw = 0.0
        self.latest = None
        self.drawn = None
        self.start = None  # (time, bytes) of the first report
        self.drawn_width = 0

    def __call__(self, done: int, total) -> None:
        now = self.clock()
        if self.start is None:
            self.start = (now, done)
        elapsed = now - self.start[0]
        rate = (done - self.start[1]) / elapsed if elapsed > 0 else None
        self.latest = (done, total, rate)
        if now - self.last_draw < self.min_interval and done != total:
            return
        self.last_draw = now
        self._draw()

    def line(self, done: int, total, rate=None) -> str:
        """``rate`` in bytes per second, None while unknown."""
        if not total:
            return f"{self.label}  {self.figures(done, total, rate)}"
        filled = int(round(min(done / total, 1.0) * self.WIDTH))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"{self.label} [{bar}] {self.figures(done, total, rate)}"

    @staticmethod
    def figures(done: int, total, rate=None) -> str:
        """``12.3 / 56.2 MB  22%  4.1 MB/s  8 s left``: the line without its label and bar."""
        speed = f"  {rate / 1e6:.1f} MB/s" if rate else ""
        if not total:
            return f"{done / 1e6:.1f} MB{speed}"
        left = f"  {duration(max(total - done, 0) / rate)} left" if rate else ""
        return f"{done / 1e6:.1f} / {total / 1e6:.1f} MB {min(done / total, 1.0):4.0%}{speed}{left}"

    def finish(self) -> None:
        """Draw the last state if throttling skipped it, and end the line."""
        if self.latest is None:
            return
        if self.drawn != self.latest:
            self._draw()
        self._write("\n")

    def _draw(self) -> None:
        self.drawn = self.latest
        text = self.line(*self.latest)
        self._write("\r" + text.ljust(self.drawn_width))  # blanks what a longer previous line left
        self.drawn_width = len(text)

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text)
        stream.flush()


def duration(seconds: float) -> str:
    """``8 s``, ``2 min 05 s``, ``1 h 02 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
