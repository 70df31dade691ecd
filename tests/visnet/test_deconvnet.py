"""The deconvnet's building blocks on hand-checkable inputs (no pretrained weights needed)."""
import numpy as np
import pytest
import tensorflow as tf

from visnet.deconvnet import (
    join_per_image,
    single_channel_transposed_conv,
    split_seeds,
    transposed_conv,
    transposed_conv_as_forward,
    unpool,
    unpool_single_channel,
)
from visnet.graph import transposed_filters


def conv(image, kernel):
    return tf.nn.conv2d(image, kernel, strides=1, padding="SAME")


def test_identity_filter_conv_and_transposed_conv_return_the_input():
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 1, 0, 0] = 1
    image = np.random.default_rng(0).normal(size=(1, 10, 10, 1)).astype(np.float32)
    assert np.array_equal(transposed_conv(conv(image, kernel), kernel).numpy(), image)


def test_all_ones_filter_on_ones_gives_the_hand_computed_counts():
    kernel = np.ones((3, 3, 1, 1), np.float32)
    result = transposed_conv(conv(np.ones((1, 10, 10, 1), np.float32), kernel), kernel).numpy()[0, :, :, 0]
    assert result[0].tolist() == [25, 40, 45, 45, 45, 45, 45, 45, 40, 25]
    assert result[1].tolist() == [40, 64, 72, 72, 72, 72, 72, 72, 64, 40]
    assert (result[2:8, 2:8] == 81).all()
    assert np.array_equal(result, result.T) and np.array_equal(result, result[::-1, ::-1])


def test_transposed_conv_is_the_adjoint_of_conv():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    x = rng.normal(size=(2, 7, 6, 4)).astype(np.float32)
    y = rng.normal(size=(2, 7, 6, 5)).astype(np.float32)
    lhs = float(np.sum(conv(x, kernel).numpy() * y))
    rhs = float(np.sum(x * transposed_conv(y, kernel).numpy()))
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_the_transposed_conv_as_a_forward_conv_equals_the_transposed_conv():
    """A forward convolution with the flipped, channel-swapped filters is the gradient op's transposed convolution."""
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(3, 3, 6, 8)).astype(np.float32)
    signal = np.maximum(rng.normal(size=(3, 9, 11, 8)), 0).astype(np.float32)
    expected = transposed_conv(signal, kernel).numpy()
    got = transposed_conv_as_forward(signal, transposed_filters(kernel)).numpy()
    assert transposed_filters(kernel).shape == (3, 3, 8, 6)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_single_channel_transposed_conv_equals_the_dense_one_on_a_one_channel_map():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 6, 8)).astype(np.float32)
    maps = rng.normal(size=(3, 9, 11)).astype(np.float32)
    channels = np.array([5, 0, 5])
    dense = np.zeros((3, 9, 11, 8), np.float32)
    dense[np.arange(3), :, :, channels] = maps
    expected = transposed_conv(dense, kernel).numpy()
    got = single_channel_transposed_conv(maps, channels, transposed_filters(kernel)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def pool(x):
    return tf.nn.max_pool_with_argmax(x, 2, 2, "VALID", include_batch_in_index=True)


def test_switch_is_the_first_maximum_in_row_major_order():
    x = np.zeros((1, 2, 4, 1), np.float32)  # window 0: all zero; window 1: tie top-right/bottom-left
    x[0, 0, 3, 0] = x[0, 1, 2, 0] = 2.0
    _, switches = pool(x)
    assert switches.numpy().ravel().tolist() == [0, 3]  # top-left of window 0; top-right of window 1


def test_unpool_puts_each_value_at_its_switch_and_zeros_elsewhere():
    rng = np.random.default_rng(3)
    images = np.maximum(rng.normal(size=(2, 6, 8, 3)), 0).astype(np.float32)
    images[:, :2] = 0  # all-zero windows, the common case after ReLU
    _, switches = pool(images)
    seeds_per_image = 3
    values = rng.normal(size=(2 * seeds_per_image, 3, 4, 3)).astype(np.float32)
    got = unpool(values, switches).numpy()
    expected = np.zeros((2 * seeds_per_image, 6, 8, 3), np.float32)
    flat_switch = switches.numpy().reshape(2, -1)
    per_image = 6 * 8 * 3
    for row in range(len(values)):
        image = row // seeds_per_image
        target = expected[row].reshape(-1)
        target[flat_switch[image] - image * per_image] = values[row].reshape(-1)
    assert np.array_equal(got, expected)
    assert np.count_nonzero(got) == np.count_nonzero(values)


def test_unpool_single_channel_matches_unpool_of_the_one_channel_map():
    rng = np.random.default_rng(4)
    images = np.maximum(rng.normal(size=(2, 4, 6, 5)), 0).astype(np.float32)
    pooled, switches = pool(images)
    image_index, channels = np.array([1, 0, 1]), np.array([4, 2, 0])
    maps = rng.normal(size=(3, 2, 3)).astype(np.float32)
    dense = np.zeros((3, 2, 3, 5), np.float32)
    dense[np.arange(3), :, :, channels] = maps
    expected = np.stack([unpool(dense[i:i + 1], switches.numpy()[image_index[i]:image_index[i] + 1]
                                - image_index[i] * 4 * 6 * 5).numpy()[0, :, :, channels[i]] for i in range(3)])
    got = unpool_single_channel(maps, switches, image_index, channels).numpy()
    assert np.array_equal(got, expected)


def test_join_per_image_keeps_each_images_signals_together():
    first = np.array([[0], [1], [10], [11]])  # 2 images × 2 signals
    second = np.array([[2], [12]])  # 2 images × 1 signal
    assert join_per_image(2, first, second).numpy().ravel().tolist() == [0, 1, 2, 10, 11, 12]


def test_split_seeds_halves_each_images_seeds_and_joining_the_halves_gives_the_batch_back():
    signals = np.array([[0], [1], [2], [10], [11], [12]])  # 2 images × 3 signals
    index = np.array([0, 0, 0, 1, 1, 1])
    (first, first_index), (second, second_index) = split_seeds(2, signals, index)
    assert first.numpy().ravel().tolist() == [0, 10] and first_index.numpy().tolist() == [0, 1]
    assert second.numpy().ravel().tolist() == [1, 2, 11, 12] and second_index.numpy().tolist() == [0, 0, 1, 1]
    assert join_per_image(2, first, second).numpy().ravel().tolist() == signals.ravel().tolist()
    (empty, _), (whole, _) = split_seeds(2, signals[[0, 3]], index[[0, 3]])  # one seed each: the first half is empty
    assert empty.shape[0] == 0 and whole.numpy().ravel().tolist() == [0, 10]
