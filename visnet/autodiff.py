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


def _relu_with_rule(rule):
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
        self._relu = _relu_with_rule(rule)
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
            channels = get_layer(layer_name).channels

            @tf.function(input_signature=[tf.TensorSpec([1, 224, 224, 3], tf.float32),
                                          tf.TensorSpec([], tf.int32)])
            def project(image, channel):
                with tf.GradientTape() as tape:
                    tape.watch(image)
                    activation = self.activation(image, layer_name)
                keep = tf.reshape(tf.one_hot(channel, channels), [1, 1, 1, channels])
                seed = tf.stop_gradient(activation) * keep
                return tape.gradient(activation, image, output_gradients=seed)[0]

            self._projectors[layer_name] = project
        return self._projectors[layer_name]

    def project(self, image_bgr, layer_name, channel) -> np.ndarray:
        """The reconstruction (224, 224, 3) of one channel of one image (network input space)."""
        image = tf.constant(np.asarray(image_bgr, np.float32)[None])
        return self._projector(layer_name)(image, tf.constant(channel, tf.int32)).numpy()
