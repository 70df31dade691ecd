"""visnet.images: the one allow-list, sniffed from content, with the pixel limit read from the header."""
import io

import numpy as np
import pytest
from PIL import Image

from visnet import images
from visnet.scan.imagesets import IMAGE_SUFFIXES, inspect_image


def encoded(pillow_format: str, size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 10)).save(buffer, pillow_format)
    return buffer.getvalue()


@pytest.mark.parametrize("image_format", images.FORMATS, ids=lambda image_format: image_format.name)
def test_every_allowed_format_is_sniffed_and_decoded(image_format, tmp_path):
    data = encoded(image_format.name)
    assert images.sniff_format(data) is image_format
    assert images.decode_checked(data, 10_000)[:3] == (image_format.name, 40, 30)
    path = tmp_path / f"picture{image_format.suffixes[0]}"
    path.write_bytes(data)
    assert inspect_image(path) is False  # the scans decode it the same way
    assert set(image_format.suffixes) <= set(IMAGE_SUFFIXES)


def test_the_allow_list_is_named_once():
    assert images.ALLOWED_NAMES == "JPEG, PNG, GIF, WebP or BMP"
    assert images.IMAGE_SUFFIXES == (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp")


@pytest.mark.parametrize("pillow_format", ["TIFF", "PDF", "ICO", "PPM"])
def test_other_formats_are_refused_before_a_decoder_runs(pillow_format):
    data = encoded(pillow_format)
    assert images.sniff_format(data) is None
    with pytest.raises(images.NotAnAllowedImage, match="not a JPEG, PNG, GIF, WebP or BMP file"):
        images.open_checked(data, 10_000)


def test_the_pixel_limit_and_truncation_have_their_own_errors():
    data = encoded("PNG", (100, 100))
    with pytest.raises(images.TooManyPixels, match="100×100 = 10,000 pixels; the limit is 9,999"):
        images.decode_checked(data, 9_999)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(buffer, "JPEG")
    with pytest.raises(images.Undecodable, match="does not decode .*truncated") as refused:
        images.decode_checked(buffer.getvalue()[:buffer.tell() * 2 // 3], 100_000)
    assert refused.value.format == "JPEG" and not refused.value.metadata_too_large
