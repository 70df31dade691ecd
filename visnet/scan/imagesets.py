"""The images of a scan: a folder on the server, or a ZIP upload extracted safely into the scan folder.

An image's id is its index in the sorted list of the kept images' relative paths (POSIX separators,
sorted by code point), so the same folder and options always give the same ids.

Greyscale images can be skipped, as Zeiler & Fergus did for their ImageNet scans: modes 1, L, LA, I,
I;16 and F, and colour images whose three channels are equal at every pixel.

A ZIP upload is streamed member by member to disk, 1 MiB at a time, with every size counted as it is
decompressed, never trusted from the header: a member's name must stay inside the destination, the
number of members, each member's size, the total size and each member's compression ratio are
bounded, and a member is kept only if its magic bytes are one of the allowed formats and its header's
pixel count is within the limit (both checks are :mod:`visnet.images`, shared with photo uploads). No pixel is decoded here (the web process extracts uploads): planning
the scan (:func:`visnet.scan.plan.create_scan`) decodes every image once and reports those that do not
decode. Anything else that is not an image (folders, ``__MACOSX``, text files) is skipped and reported.
"""
import io
import os
import shutil
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ..architecture import INPUT_SIZE
from ..images import (
    ALLOWED_NAMES,
    HEAD_BYTES,
    IMAGE_SUFFIXES,
    UnreadableImage,
    decode_checked,
    open_checked,
    sniff_format,
)
from ..preprocessing import load_image

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
_READ_BLOCK = 1 << 20


class UnsafeArchive(ValueError):
    """The upload is refused as a whole: a member escapes the folder, a limit is exceeded, or the file
    is not a readable ZIP. The message says which member and which limit."""


@dataclass(frozen=True)
class ZipLimits:
    max_members: int = 50_000  # entries of any kind, read from the central directory
    max_images: int = 20_000
    max_member_bytes: int = 32 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_ratio: int = 200  # decompressed / compressed bytes of one member
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class Extracted:
    images: list = field(default_factory=list)  # relative POSIX paths under the destination, sorted
    skipped: list = field(default_factory=list)  # [{"name", "reason"}]
    total_bytes: int = 0


# --- listing and inspecting -------------------------------------------------------------------

def list_images(folder) -> list:
    """Relative POSIX paths of the image files under ``folder`` (by suffix), sorted. Hidden files and
    folders (names starting with '.') and ``__MACOSX`` are left out; symlinked folders are not followed."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist or is not a folder")
    found = []
    for directory, folders, files in os.walk(root):
        folders[:] = [name for name in folders if not name.startswith(".") and name != "__MACOSX"]
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append((Path(directory) / name).relative_to(root).as_posix())
    return sorted(found)


def is_greyscale(image: Image.Image) -> bool:
    """True for a grey mode, or for a colour image whose R, G and B are equal at every pixel (decodes it)."""
    if image.mode in GREY_MODES:
        return True
    rgb = np.asarray(image.convert("RGB"))
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def inspect_image(path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> bool:
    """Decode the whole file (which catches truncation) and say whether it is greyscale.
    Raises UnreadableImage."""
    return decode_checked(path, max_pixels, check=is_greyscale)[3]


def load_scan_image(path, image_size: int = INPUT_SIZE, input_size: int = INPUT_SIZE) -> np.ndarray:
    """What the network sees: the image resized to ``image_size`` × ``image_size`` (bilinear, EXIF
    orientation applied, as :func:`visnet.preprocessing.load_image`) and, when larger than the
    network's ``input_size`` × ``input_size`` (VGG16's 224 × 224), its central crop of that size. RGB uint8
    (input_size, input_size, 3)."""
    rgb = load_image(path, image_size)
    offset = (image_size - input_size) // 2
    return np.ascontiguousarray(rgb[offset:offset + input_size, offset:offset + input_size])


# --- ZIP uploads --------------------------------------------------------------------------------

def safe_member_path(name: str) -> PurePosixPath:
    """The relative path a member may be written to; raises UnsafeArchive for an absolute path, a drive,
    a '..' component, a control character or an over-long name."""
    if "\x00" in name or any(unicodedata.category(char) == "Cc" for char in name):
        raise UnsafeArchive(f"member {name!r}: control characters in the name")
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise UnsafeArchive(f"member {name!r}: absolute path")
    parts = [part for part in normalised.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise UnsafeArchive(f"member {name!r}: '..' would leave the scan folder")
    if not parts or len(normalised) > 1024 or any(len(part.encode()) > 255 for part in parts):
        raise UnsafeArchive(f"member {name[:80]!r}: empty or over-long name")
    return PurePosixPath(*parts)


def _skip_reason(info: zipfile.ZipInfo, relative: PurePosixPath):
    if info.is_dir():
        return "folder"
    if any(part.startswith(".") or part == "__MACOSX" for part in relative.parts):
        return "hidden file"
    kind = (info.external_attr >> 16) & 0o170000
    if kind and kind != 0o100000:
        return "not a regular file (link or device)"
    if info.flag_bits & 0x1:
        return "encrypted"
    if not relative.name.lower().endswith(IMAGE_SUFFIXES):
        return "not an image (by its name)"
    return None


class _MemberReader:
    """A member's decompressed bytes, block by block, counted as they come (the header's sizes may
    lie). Raises UnsafeArchive past a limit, or when the archive itself is broken."""

    def __init__(self, stream, info, limits: ZipLimits, budget: int):
        self.stream, self.info, self.limits = stream, info, limits
        self.cap, self.size = min(limits.max_member_bytes, budget), 0

    def read(self) -> bytes:
        try:
            block = self.stream.read(_READ_BLOCK)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as error:
            raise UnsafeArchive(f"member {self.info.filename!r}: {error}") from None
        self.size += len(block)
        if self.size > self.cap:
            which = "member size" if self.cap == self.limits.max_member_bytes else "total size"
            raise UnsafeArchive(f"member {self.info.filename!r}: decompresses to more than the {which} "
                                f"limit ({self.cap} bytes)")
        if self.size > self.limits.max_ratio * max(self.info.compress_size, 1) and self.size > _READ_BLOCK:
            raise UnsafeArchive(f"member {self.info.filename!r}: compression ratio above {self.limits.max_ratio} "
                                "(a decompression bomb?)")
        return block


def _open_member(archive, info):
    try:
        return archive.open(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as error:
        raise UnsafeArchive(f"member {info.filename!r}: {error}") from None


def _stream_member(archive, info, target: Path, limits: ZipLimits, budget: int) -> int:
    """Stream one member to ``target`` if its first bytes are an allowed format; returns its size.
    Raises UnreadableImage (nothing written) for a member that is not, UnsafeArchive for the whole
    upload; an OSError while writing (a full disk) propagates, and no partial file is left."""
    with _open_member(archive, info) as stream:
        reader = _MemberReader(stream, info, limits, budget)
        block = reader.read()
        if sniff_format(block[:HEAD_BYTES]) is None:
            raise UnreadableImage(f"not a {ALLOWED_NAMES} file (first bytes {block[:8]!r})")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, "xb") as handle:
                while block:
                    handle.write(block)
                    block = reader.read()
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    return reader.size


def extract_zip(source, dest_dir, limits: ZipLimits = ZipLimits()) -> Extracted:
    """Extract the images of a ZIP (path, bytes or binary file object) into ``dest_dir``, which must not
    exist yet, without decoding them. Raises UnsafeArchive for the whole upload, or OSError when
    ``dest_dir`` cannot be written (a full disk), and removes ``dest_dir`` either way; members that are
    simply not images are skipped and listed in ``Extracted.skipped``. ``total_bytes`` counts what was
    decompressed, skipped images included."""
    dest = Path(dest_dir)
    if dest.exists():
        raise ValueError(f"extraction folder {str(dest)!r} already exists")
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UnsafeArchive(f"not a readable ZIP file: {error}") from None
    dest.mkdir(parents=True)
    root = dest.resolve()
    result, written = Extracted(), set()
    try:
        with archive:
            members = archive.infolist()
            if len(members) > limits.max_members:
                raise UnsafeArchive(f"{len(members)} members, more than the limit of {limits.max_members}")
            for info in members:
                relative = safe_member_path(info.filename)
                reason = _skip_reason(info, relative)
                if reason is None and relative.as_posix().casefold() in written:
                    reason = "duplicate name"
                if reason is not None:
                    if not info.is_dir():
                        result.skipped.append({"name": info.filename, "reason": reason})
                    continue
                if len(result.images) >= limits.max_images:
                    raise UnsafeArchive(f"more than the limit of {limits.max_images} images")
                target = (root / relative).resolve()
                if not target.is_relative_to(root):
                    raise UnsafeArchive(f"member {info.filename!r}: would leave the scan folder")
                try:
                    result.total_bytes += _stream_member(archive, info, target, limits,
                                                         limits.max_total_bytes - result.total_bytes)
                    open_checked(target, limits.max_image_pixels).close()  # the header only: no pixel decoded
                except UnreadableImage as error:
                    target.unlink(missing_ok=True)
                    result.skipped.append({"name": info.filename, "reason": str(error)})
                    continue
                written.add(relative.as_posix().casefold())
                result.images.append(relative.as_posix())
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    result.images.sort()
    return result

