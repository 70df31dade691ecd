"""Photo to model input, per preprocessing convention, on hand-computed pixels."""
import numpy as np
import pytest

from visnet.chain.keras_config import ChainRefused
from visnet.chain.preprocess import check_preprocess, to_model_input

PIXEL = np.array([[[255, 0, 51]]], np.uint8)  # one RGB pixel


@pytest.mark.parametrize("mode, expected", [
    ("caffe", [51 - 103.939, 0 - 116.779, 255 - 123.68]),  # BGR, mean subtracted
    ("torch", [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225]),
    ("tf", [1, -1, 51 / 127.5 - 1]),
    ("unit", [1, 0, 0.2]),
    ("none", [255, 0, 51]),
])
def test_each_convention_on_one_pixel(mode, expected):
    np.testing.assert_allclose(to_model_input(PIXEL, mode)[0, 0], expected, rtol=1e-6, atol=1e-6)


def test_a_grey_model_gets_the_luma():
    np.testing.assert_allclose(to_model_input(PIXEL, "unit", channels=1)[0, 0], [(0.299 * 255 + 0.114 * 51) / 255],
                               rtol=1e-6)


def test_the_convention_is_checked_against_the_model():
    assert check_preprocess(None, 3, starts_with_own=True) == "none"
    with pytest.raises(ChainRefused, match="--preprocess caffe"):
        check_preprocess(None, 3, starts_with_own=False)
    with pytest.raises(ChainRefused, match="for colour models"):
        check_preprocess("caffe", 1, starts_with_own=False)
    with pytest.raises(ChainRefused, match="takes 4 input channels"):
        check_preprocess("unit", 4, starts_with_own=False)
