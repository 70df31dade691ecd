"""Reference projections by TensorFlow autodiff, one feature map at a time.

A deconvnet reconstruction is the gradient of the masked activation (the seed map in its channel,
zeros elsewhere) with respect to the input, when the backward pass of every ReLU is replaced by a
ReLU of the incoming gradient (Simonyan et al., 2014, section 4; Springenberg et al., 2015). The
gradient of max pooling routes to the first maximum of each window, as the switches do. This module
computes that gradient with ``tf.GradientTape`` and the standard ops (``tf.nn.conv2d``,
``tf.nn.max_pool2d``): it is the independent check of :mod:`visnet.deconvnet` and the baseline of
the benchmark.
"""
import numpy as np
import tensorflow as tf

from .architecture import LAYERS, get_layer


def relu_with_rule(rule):
    @tf.custom_gradient
    def relu(x):
        def backward(dy):
            if rule == "deconvnet":
                return tf.nn.relu(dy)
            positive = tf.cast(x > 0, dy.dtype)
            return tf.nn.relu(dy) * positive if rule == "guided" else dy * positive
        return tf.nn.relu(x), backward
    return relu


class AutodiffReference:
    """An eager VGG16 over the same weights, with ReLU's backward pass set by ``rule``."""

    def __init__(self, weights, rule="deconvnet"):
        self.rule = rule
        self._relu = relu_with_rule(rule)
        self._convs = {name: (tf.constant(kernel), tf.constant(bias))
                       for name, (kernel, bias) in weights.convs.items()}
        self._projectors = {}

    def activation(self, images, layer_name):
        """Forward pass up to ``layer_name`` (images already in the network's input space)."""
        signal = images
        for layer in LAYERS:
            if layer.is_pool:
                signal = tf.nn.max_pool2d(signal, ksize=2, strides=2, padding="VALID")
            else:
                kernel, bias = self._convs[layer.name]
                signal = self._relu(tf.nn.bias_add(tf.nn.conv2d(signal, kernel, 1, "SAME"), bias))
            if layer.name == layer_name:
                return signal
        raise ValueError(f"unknown layer {layer_name!r}")

    def _projector(self, layer_name):
        if layer_name not in self._projectors:
            layer = get_layer(layer_name)

            @tf.function(input_signature=[tf.TensorSpec([1, 224, 224, 3], tf.float32),
                                          tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.int32)])
            def project(image, channel, unit):
                """The seed is the activation where ``keep`` is one: the channel's whole map when ``unit``
                is (-1, -1), else the single activation at ``unit`` (row, column)."""
                with tf.GradientTape() as tape:
                    tape.watch(image)
                    activation = self.activation(image, layer_name)
                keep = tf.reshape(tf.one_hot(channel, layer.channels), [1, 1, 1, layer.channels])
                rows = tf.range(layer.resolution)
                at_unit = tf.logical_and(tf.equal(rows[:, None], unit[0]), tf.equal(rows[None, :], unit[1]))
                where = tf.logical_or(tf.reduce_all(unit < 0), at_unit)
                keep *= tf.cast(where, tf.float32)[None, :, :, None]
                seed = tf.stop_gradient(activation) * keep
                return tape.gradient(activation, image, output_gradients=seed)[0]

            self._projectors[layer_name] = project
        return self._projectors[layer_name]

    def project(self, image_bgr, layer_name, channel, unit=None) -> np.ndarray:
        """The reconstruction (224, 224, 3) of one channel of one image (network input space): of its whole
        map, or of its single activation at ``unit`` (row, column)."""
        image = tf.constant(np.asarray(image_bgr, np.float32)[None])
        unit = tf.constant((-1, -1) if unit is None else tuple(unit), tf.int32)
        return self._projector(layer_name)(image, tf.constant(channel, tf.int32), unit).numpy()
