"""A chain model as a TF1-style graph: one ``tf.compat.v1`` Graph and Session, built once.

The same design as :class:`visnet.graph.VGG16Graph`, from a :class:`~visnet.chain.spec.Chain` instead of
VGG16's fixed layout: every max pool is ``tf.nn.max_pool_with_argmax`` with the batch folded into the
index, pinned where :func:`visnet.graph.resolve_placement` says, so its switches are there for the
deconvnet. In a window the switch is the first maximum in row-major order, as the MaxPool gradient of
the autodiff reference routes it; windows may overlap.
"""
import re

import numpy as np
import tensorflow as tf

from ..graph import SessionGraph, resolve_placement
from .ops import has_relu, linear_forward, window_arguments


class ChainGraph(SessionGraph):
    """The forward network of ``chain``, every tensor addressed by layer name: ``images`` (placeholder,
    N × the chain's input shape), ``activations`` (each layer's output, after its ReLU), ``pre_activations``
    (before the ReLU, for layers with one), ``switches`` (argmax of each max pool), ``weights`` (per layer, its
    arrays as variables), and ``logits`` and ``probabilities`` when the chain ends in a softmax."""

    def __init__(self, chain, device: str = "auto", gpu_available=None):
        self.chain = chain
        self.placement = resolve_placement(device, gpu_available)
        self.graph = tf.Graph()
        initial_values = {}
        with self.graph.as_default(), tf.device(self.placement.compute):
            self.images = tf.compat.v1.placeholder(tf.float32, [None, *chain.input_shape], name="images")
            self._build(initial_values)
            initialise = tf.compat.v1.variables_initializer(tf.compat.v1.global_variables())
        config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self.session.run(initialise, feed_dict=initial_values)

    def _build(self, initial_values: dict):
        self.activations, self.pre_activations, self.switches, self.weights = {}, {}, {}, {}
        self.logits = self.probabilities = None
        signal = self.images
        for index, layer in enumerate(self.chain.layers):
            with tf.name_scope(f"{index}_{re.sub(r'[^A-Za-z0-9_.-]', '_', layer.name)}"):
                weights = {field: _variable(field, value, initial_values) for field, value in layer.weights.items()}
                self.weights[layer.name] = weights
                if layer.kind == "max_pool":
                    with tf.device(self.placement.switches):
                        signal, self.switches[layer.name] = tf.nn.max_pool_with_argmax(
                            signal, **window_arguments(layer), include_batch_in_index=True,
                            name="max_pool_with_argmax")
                elif layer.kind == "softmax":
                    self.logits = signal
                    signal = self.probabilities = tf.nn.softmax(signal, name="probabilities")
                else:
                    signal = linear_forward(layer, signal, weights)
                if has_relu(layer):
                    self.pre_activations[layer.name] = signal
                    signal = tf.nn.relu(signal)
                self.activations[layer.name] = tf.identity(signal, name="activation")


def _variable(name: str, value: np.ndarray, initial_values: dict):
    """A variable initialised from a fed placeholder: the weights stay out of the GraphDef (2 GB limit)."""
    value = np.asarray(value, dtype=np.float32)
    initial = tf.compat.v1.placeholder(tf.float32, value.shape, name=f"{name}_initial")
    initial_values[initial] = value
    return tf.compat.v1.Variable(initial, trainable=False, name=name)
