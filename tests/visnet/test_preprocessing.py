"""How a photo becomes the network's 224×224 input (visnet.preprocessing.prepare_photo): ``fit`` squash resizes
the whole photo, crop its centred square; each equals the same computation written out with numpy and Pillow."""
import io

import numpy as np
import pytest
from PIL import Image

from visnet.preprocessing import prepare_photo


def _png(width, height) -> tuple:
    """A photo of width × height with distinct left, centre and right (or top, centre and bottom) as PNG bytes
    (lossless, so the expected arrays are exact), and its pixels."""
    rows, columns = np.mgrid[0:height, 0:width]
    pixels = np.stack([columns * 255 // max(width - 1, 1), rows * 255 // max(height - 1, 1),
                       (rows + columns) % 256], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue(), pixels


def _resized(pixels) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((224, 224), Image.BILINEAR))


@pytest.mark.parametrize("width, height", [(451, 300), (300, 451), (225, 224)])
def test_crop_is_the_centred_square_resized(width, height):
    data, pixels = _png(width, height)
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    photo = prepare_photo(data, fit="crop")
    np.testing.assert_array_equal(photo.rgb, _resized(pixels[top:top + side, left:left + side]))
    assert photo.original_size == (width, height) and not photo.squashed
    assert photo.describe()["note"].startswith(f"The photo is {width}×{height}; its centre {side}×{side} square")


def test_squash_resizes_the_whole_photo_and_says_so():
    data, pixels = _png(451, 300)
    photo = prepare_photo(data)  # squash is the default, the source's behaviour
    np.testing.assert_array_equal(photo.rgb, _resized(pixels))
    assert photo.fit == "squash" and photo.squashed
    described = photo.describe()
    assert described["original_size"] == [451, 300] and described["size"] == [224, 224] and described["squashed"]
    assert described["note"] == ("The photo is 451×300; it was squashed to 224×224 (fit squash), so shapes are "
                                 "stretched 1.50× along its width. fit crop keeps their proportions.")
    assert not np.array_equal(photo.rgb, prepare_photo(data, fit="crop").rgb)


def test_a_square_photo_is_the_same_either_way_and_has_no_note():
    data, pixels = _png(300, 300)
    squash, crop = prepare_photo(data, fit="squash"), prepare_photo(data, fit="crop")
    np.testing.assert_array_equal(squash.rgb, crop.rgb)
    np.testing.assert_array_equal(squash.rgb, _resized(pixels))
    assert squash.describe()["note"] is None and not squash.squashed


def test_an_unknown_fit_is_refused_naming_the_choices():
    data, _ = _png(10, 10)
    with pytest.raises(ValueError, match="fit must be one of squash, crop, got 'stretch'"):
        prepare_photo(data, fit="stretch")
