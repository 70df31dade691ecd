"""visnet.png: the "Up"-filtered PNG encoder behind visnet.display.encode_png."""
import io
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data

from tests.support.images import png_chunks
from visnet import png


def idat_lines(encoded: bytes, height: int) -> np.ndarray:
    """The decompressed image data of a PNG, as (height, 1 + row bytes)."""
    body = b"".join(data for kind, data in png_chunks(encoded) if kind == b"IDAT")
    return np.frombuffer(zlib.decompress(body), dtype=np.uint8).reshape(height, -1)


def test_up_filter_subtracts_the_row_above_modulo_256_by_hand():
    array = np.array([[10, 200], [5, 255], [250, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(png.up_filtered_rows(array), [[2, 10, 200], [2, 251, 55], [2, 245, 1]])


@pytest.mark.parametrize("shape", [(1, 1), (1, 9, 3), (7, 1, 4), (13, 17), (13, 17, 3), (13, 17, 4)])
def test_every_shape_round_trips_through_pillows_decoder_bit_for_bit(shape):
    array = np.random.default_rng(sum(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    encoded = png.encode(array, compress_level=1)
    with Image.open(io.BytesIO(encoded)) as image:
        image.load()
        assert image.size == (shape[1], shape[0])
        np.testing.assert_array_equal(np.asarray(image), array)
    lines = idat_lines(encoded, shape[0])
    assert (lines[:, 0] == png.FILTER_UP).all()


def test_a_non_contiguous_view_is_encoded_as_its_pixels():
    photo = data.astronaut()
    view = photo[10:110:2, ::-1]  # strided and reversed
    with Image.open(io.BytesIO(png.encode(view, compress_level=1))) as image:
        np.testing.assert_array_equal(np.asarray(image), view)


def test_a_real_photo_compresses_as_well_as_pillows_adaptive_filters_and_is_read_back_the_same():
    photo = data.chelsea()
    ours = png.encode(photo, compress_level=1)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG", compress_level=1)
    assert len(ours) <= 1.05 * len(buffer.getvalue())
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(ours))), photo)
