"""Checking uploaded bytes before anything is stored or enqueued, and storing them.

Sniffing, the allow-list and the decoding checks are visnet.images (shared with the scans); this
module maps its refusals to HTTP statuses and codes, takes the pixel limit from the app's config,
and stores the upload. Stored names are generated from the content hash; the client's file name is
never used.
"""
import errno
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from visnet import images
from visnet.images import ALLOWED_NAMES

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


def check_image(data: bytes, max_pixels: int) -> CheckedImage:
    """Bytes → CheckedImage, or ImageRejected with the HTTP status, a code and a readable message."""
    if not data:
        raise ImageRejected(400, "empty_file", "the uploaded file is empty")
    try:
        image_format, width, height, _ = images.decode_checked(data, max_pixels)
    except images.NotAnAllowedImage:
        raise ImageRejected(415, "unsupported_format",
                            f"the file is not an image in an accepted format ({ALLOWED_NAMES}); "
                            "formats are recognised by content, not by file name") from None
    except images.TooManyPixels as error:
        raise ImageRejected(413, "image_too_large", str(error)) from None
    except images.NoPixels:
        raise ImageRejected(422, "corrupt_image", "the image has no pixels") from None
    except images.Undecodable as error:
        raise _undecodable(error) from None
    extension = next(known.extension for known in images.FORMATS if known.name == image_format)
    return CheckedImage(data, image_format, extension, width, height, hashlib.sha256(data).hexdigest())


def _undecodable(error: images.Undecodable) -> ImageRejected:
    if error.metadata_too_large:
        return ImageRejected(422, "metadata_too_large",
                             "the PNG's compressed text metadata (zTXt or iTXt chunks) expands past the "
                             f"decoder's limit of {images.TEXT_CHUNK_LIMIT_MIB} MiB a chunk "
                             f"({images.TEXT_MEMORY_LIMIT_MIB} MiB in all) and is refused as "
                             "a possible decompression bomb; save the image without that metadata")
    return ImageRejected(422, "corrupt_image", f"the {error.format} file could not be decoded ({error.cause}); "
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
