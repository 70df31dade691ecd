"""The one image sniffer and decoder: photo uploads (app.jobs.uploads) and scans (visnet.scan.imagesets).

The allow-list is ``FORMATS``: JPEG, PNG, GIF, WebP and BMP. These are the raster formats that
browsers display and that photo collections and datasets come in (the scan test sets hold BMP
files); each has one well-worn Pillow decoder. Everything else is refused before any decoder runs,
whatever its file name: TIFF (many codecs and pages), PDF, EPS and SVG (programs or vector
drawings that need other renderers), and anything Pillow would otherwise guess at.

Checking an image happens in steps, each before the costly one:

1. the format is read from the first bytes (``sniff_format``) and Pillow is told to use that one
   decoder only;
2. a PNG's colour profile is dropped (visnet.preprocessing.without_icc_profile): it is never used,
   and Pillow's limit for compressed text refuses profiles over 1 MiB;
3. the pixel count comes from the header and is checked against the caller's limit before any pixel
   is decoded, so a decompression bomb costs a header read (``open_checked``). Pillow's own bomb
   warning is ignored because that limit is the one that applies; its bomb error (twice its limit)
   still refuses;
4. ``Image.load()`` decodes the whole stream, which is what catches a truncated file (``verify()``
   does not decode JPEG data) (``decode_checked``).

Every refusal is an :class:`UnreadableImage`; its subclasses say why, so that the web layer can map
each to its HTTP status.
"""
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .preprocessing import without_icc_profile


@dataclass(frozen=True)
class ImageFormat:
    name: str  # Pillow's format name, the one decoder it may use
    label: str  # as people write it
    extension: str  # of a stored upload
    suffixes: tuple  # file names that may hold it (scan folders are listed by name)
    matches: Callable  # test on the first HEAD_BYTES bytes


FORMATS = (
    ImageFormat("JPEG", "JPEG", "jpg", (".jpg", ".jpeg"), lambda head: head.startswith(b"\xff\xd8\xff")),
    ImageFormat("PNG", "PNG", "png", (".png",), lambda head: head.startswith(b"\x89PNG\r\n\x1a\n")),
    ImageFormat("GIF", "GIF", "gif", (".gif",), lambda head: head[:6] in (b"GIF87a", b"GIF89a")),
    ImageFormat("WEBP", "WebP", "webp", (".webp",), lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP"),
    ImageFormat("BMP", "BMP", "bmp", (".bmp",), lambda head: head[:2] == b"BM"),
)
HEAD_BYTES = 16
ALLOWED_NAMES = ", ".join(image_format.label for image_format in FORMATS[:-1]) + f" or {FORMATS[-1].label}"
IMAGE_SUFFIXES = tuple(suffix for image_format in FORMATS for suffix in image_format.suffixes)
# Decoding to check an image only needs to touch every byte, not to produce full-size pixels.
_DRAFT_SIZE = (512, 512)


class UnreadableImage(ValueError):
    """A file that is not an allowed image, or does not decode."""


class NotAnAllowedImage(UnreadableImage):
    """The first bytes are none of ``FORMATS``; no decoder ran."""


class NoPixels(UnreadableImage):
    """The header gives a width or a height of 0."""


class TooManyPixels(UnreadableImage):
    """More pixels than the caller's limit, read from the header (or refused by Pillow as a bomb)."""


class Undecodable(UnreadableImage):
    """The decoder of the sniffed format failed; ``format`` and ``cause`` say which and why."""

    def __init__(self, message: str, image_format: str, cause: Exception):
        super().__init__(message)
        self.format, self.cause = image_format, cause

    @property
    def metadata_too_large(self) -> bool:
        """Refused for compressed text (zTXt, iTXt) past Pillow's decompression-bomb limit."""
        return isinstance(self.cause, ValueError) and any(
            name in str(self.cause) for name in ("MAX_TEXT_CHUNK", "MAX_TEXT_MEMORY"))


TEXT_CHUNK_LIMIT_MIB = PngImagePlugin.MAX_TEXT_CHUNK // (1024 * 1024)
TEXT_MEMORY_LIMIT_MIB = PngImagePlugin.MAX_TEXT_MEMORY // (1024 * 1024)
_DECODER_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def sniff_format(head: bytes):
    """The :class:`ImageFormat` that the first bytes name, or None."""
    head = bytes(head[:HEAD_BYTES])
    return next((image_format for image_format in FORMATS if image_format.matches(head)), None)


def open_checked(source, max_pixels: int) -> Image.Image:
    """Open a path or bytes with the decoder its magic bytes name, after checking the header's pixel
    count; the caller decodes (``load()``) and closes it. Raises an :class:`UnreadableImage`."""
    if isinstance(source, (bytes, bytearray)):
        head, stream = bytes(source[:HEAD_BYTES]), io.BytesIO(source)
    else:
        with open(source, "rb") as handle:
            head = handle.read(HEAD_BYTES)
        stream = source
    image_format = sniff_format(head)
    if image_format is None:
        raise NotAnAllowedImage(f"not a {ALLOWED_NAMES} file (first bytes {head[:8]!r})")
    if image_format.name == "PNG":  # Pillow inflates a colour profile on open and refuses one over 1 MiB
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        stream = io.BytesIO(without_icc_profile(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the caller's limit applies
            image = Image.open(stream, formats=[image_format.name])
    except Image.DecompressionBombError as error:
        raise TooManyPixels(f"the image has too many pixels: {error}") from None
    except _DECODER_ERRORS as error:
        raise Undecodable(f"unreadable {image_format.name}: {error}", image_format.name, error) from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise TooManyPixels(f"the image is {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,}")
    if width < 1 or height < 1:
        image.close()
        raise NoPixels(f"the image is {width}×{height} pixels: it has no pixels")
    return image


def decode_checked(source, max_pixels: int, check=None) -> tuple:
    """Open as :func:`open_checked`, then decode every byte (which catches truncation); returns
    ``(format, width, height, checked)`` with ``checked`` what ``check(image)`` returned on the decoded
    image (None without ``check``). A JPEG is decoded at a reduced size unless ``check`` needs its
    pixels. Raises an :class:`UnreadableImage`."""
    image = open_checked(source, max_pixels)
    image_format, (width, height) = image.format, image.size
    try:
        if image_format == "JPEG" and check is None:
            image.draft(None, _DRAFT_SIZE)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            checked = None if check is None else check(image)
        return image_format, width, height, checked
    except Image.DecompressionBombError as error:
        raise TooManyPixels(f"the image has too many pixels: {error}") from None
    except _DECODER_ERRORS as error:
        raise Undecodable(f"the {image_format} file does not decode ({error}); it may be truncated or damaged",
                          image_format, error) from None
    finally:
        image.close()
