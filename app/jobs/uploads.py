"""Checking uploaded bytes before anything is stored or enqueued.

The format is read from the magic bytes against an allow-list before any decoder runs, and Pillow is
then told to use that one decoder only. The pixel count comes from the header and is checked before
the pixels are decoded, so a decompression bomb costs a header read. ``Image.load()`` decodes the
whole stream, which is what catches a truncated file (``verify()`` does not decode JPEG data).
A PNG's colour profile is dropped before decoding (visnet.preprocessing.without_icc_profile): it is
never used, and Pillow's limit for compressed text refused profiles over 1 MiB.
Stored names are generated from the content hash; the client's file name is never used.
"""
import errno
import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from visnet.preprocessing import without_icc_profile

# (Pillow format, stored extension, test on the first bytes)
ALLOWED_FORMATS = (
    ("JPEG", "jpg", lambda head: head.startswith(b"\xff\xd8\xff")),
    ("PNG", "png", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n")),
    ("GIF", "gif", lambda head: head[:6] in (b"GIF87a", b"GIF89a")),
    ("WEBP", "webp", lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP"),
)
ALLOWED_NAMES = ", ".join(name for name, _, _ in ALLOWED_FORMATS)
# Decoding for validation only needs to touch every byte, not to produce full-size pixels.
_DRAFT_SIZE = (512, 512)


# A full disk, or a used-up quota: the client can try again later, and nothing was kept.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


class UploadDiskFull(Exception):
    """``store`` found no room for the upload; it left no file behind."""


class ImageRejected(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    extension: str
    width: int
    height: int
    sha256: str

    @property
    def stored_name(self) -> str:
        return f"{self.sha256}.{self.extension}"


def sniff_format(data: bytes):
    head = data[:16]
    for name, extension, matches in ALLOWED_FORMATS:
        if matches(head):
            return name, extension
    return None


def check_image(data: bytes, max_pixels: int) -> CheckedImage:
    """Bytes → CheckedImage, or ImageRejected with the HTTP status, a code and a readable message."""
    if not data:
        raise ImageRejected(400, "empty_file", "the uploaded file is empty")
    sniffed = sniff_format(data)
    if sniffed is None:
        raise ImageRejected(415, "unsupported_format",
                            f"the file is not an image in an accepted format ({ALLOWED_NAMES}); "
                            "formats are recognised by content, not by file name")
    pillow_format, extension = sniffed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            decoded = without_icc_profile(data) if pillow_format == "PNG" else data
            with Image.open(io.BytesIO(decoded), formats=[pillow_format]) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageRejected(413, "image_too_large",
                                        f"the image is {width}×{height} = {width * height:,} pixels; "
                                        f"the limit is {max_pixels:,}")
                if width < 1 or height < 1:
                    raise ImageRejected(422, "corrupt_image", "the image has no pixels")
                if pillow_format == "JPEG":
                    image.draft(None, _DRAFT_SIZE)
                image.load()
    except ImageRejected:
        raise
    except Image.DecompressionBombError as error:
        raise ImageRejected(413, "image_too_large", f"the image has too many pixels: {error}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            Image.DecompressionBombWarning) as error:
        raise _undecodable(pillow_format, error) from None
    return CheckedImage(data, pillow_format, extension, width, height, hashlib.sha256(data).hexdigest())


def _undecodable(pillow_format: str, error: Exception) -> ImageRejected:
    if isinstance(error, ValueError) and ("MAX_TEXT_CHUNK" in str(error) or "MAX_TEXT_MEMORY" in str(error)):
        return ImageRejected(422, "metadata_too_large",
                             "the PNG's compressed text metadata (zTXt or iTXt chunks) expands past the "
                             f"decoder's limit of {PngImagePlugin.MAX_TEXT_CHUNK // (1024 * 1024)} MiB a chunk "
                             f"({PngImagePlugin.MAX_TEXT_MEMORY // (1024 * 1024)} MiB in all) and is refused as "
                             "a possible decompression bomb; save the image without that metadata")
    return ImageRejected(422, "corrupt_image", f"the {pillow_format} file could not be decoded ({error}); "
                                               "it may be truncated or damaged")


def store(checked: CheckedImage, upload_dir) -> tuple:
    """Write the image under its generated name unless it is there already; (path, created).

    A file already there gets a fresh modification time: service.cleanup deletes uploads by age, and
    one that a new job is about to read is in use again. A full disk raises UploadDiskFull, with
    the partly written temporary file removed."""
    upload_dir = Path(upload_dir)
    path = upload_dir / checked.stored_name
    if path.exists():
        try:
            os.utime(path)
            return path, False
        except FileNotFoundError:
            pass  # deleted by the cleanup just now: written again below
    temporary = None
    try:
        upload_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".upload-", dir=upload_dir)
        with os.fdopen(handle, "wb") as file:
            file.write(checked.data)
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in _NO_ROOM:
            raise UploadDiskFull(f"the server's upload disk is full ({os.strerror(error.errno).lower()}); "
                                 "nothing was stored, try again later") from None
        raise
    return path, True
