"""Reference projections of a chain by ``tf.GradientTape``: the independent check of
:mod:`visnet.chain.projection`.

A projection is the gradient of the kept activation (the seed: one channel, or its strongest activation)
with respect to the input when every ReLU's backward pass follows the rule (visnet.autodiff.relu_with_rule).
Max pools are ``tf.nn.max_pool2d``, whose gradient routes to the first maximum of each window and sums
over overlapping windows; average pools, convolutions and dense layers are differentiated by TensorFlow.
The max seed is found here with NumPy's ``argmax`` (first occurrence), not with the graph's own code.
"""
import numpy as np
import tensorflow as tf

from ..autodiff import relu_with_rule
from .ops import forward_without_switches


class ChainAutodiff:
    """An eager forward pass of ``chain`` with ReLU's backward pass set by ``rule``."""

    def __init__(self, chain, rule: str = "deconvnet"):
        self.chain, self.rule = chain, rule
        self._relu = relu_with_rule(rule)
        self._weights = {layer.name: {field: tf.constant(value) for field, value in layer.weights.items()}
                         for layer in chain.layers}

    def activation(self, images, layer: str):
        """The output of ``layer`` for ``images`` (already in the model's input space)."""
        for spec, signal in forward_without_switches(self.chain, images, self._weights, self._relu):
            if spec.name == layer:
                return signal
        raise ValueError(f"unknown layer {layer!r}")

    def project(self, images: np.ndarray, layer: str, channels, seed: str = "map") -> np.ndarray:
        """(N·M, *input shape): per image, per channel (image-major), the projection of that channel's map
        (``map``) or of its first strongest activation in row-major order (``max``)."""
        channels = list(channels)
        rows = tf.constant(np.repeat(np.asarray(images, np.float32), len(channels), axis=0))
        with tf.GradientTape() as tape:
            tape.watch(rows)
            activation = self.activation(rows, layer)
        values = activation.numpy()
        keep = np.zeros_like(values)
        for row, channel in enumerate(channels * len(images)):
            kept = keep[row, ..., channel]
            if seed == "max" and values.ndim == 4:
                kept[np.unravel_index(np.argmax(values[row, ..., channel]), kept.shape)] = 1
            else:
                kept[...] = 1
        return tape.gradient(activation, rows, output_gradients=tf.constant(values * keep)).numpy()
