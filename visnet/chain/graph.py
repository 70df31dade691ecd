"""A chain model as a TF1-style graph: one ``tf.compat.v1`` Graph and Session, built once.

One builder for every model: VGG16 (:class:`VGG16Graph`, the graph of VGG16's own engine), VGG19 and every
stored model are chains (:class:`~visnet.chain.spec.Chain`) built here. Every max pool is
``tf.nn.max_pool_with_argmax`` with the batch folded into the index, pinned where :func:`visnet.graph.resolve_placement` says, so its switches are there for the
deconvnet. In a window the switch is the first maximum in row-major order, as the MaxPool gradient of
the autodiff reference routes it; windows may overlap.

What needs no switches (occlusion, a scan's channel means) can run a second forward pass built beside it on
first use, :meth:`ChainGraph.unswitched_activations`: the same values, with plain max pools; and a scan on one
core a third, :meth:`ChainGraph.winograd_activations`, faster for one image there.
"""
import re

import numpy as np
import tensorflow as tf

from ..architecture import CLASSIFIER_LAYERS, LAYERS
from ..graph import SessionGraph, resolve_placement, transposed_filters
from .ops import forward_without_switches, has_relu, linear_forward, max_pool_with_switches, winograd_filters
from .vgg import vgg_chain


class ChainGraph(SessionGraph):
    """The forward network of ``chain``, every tensor addressed by layer name: ``images`` (placeholder,
    N × the chain's input shape), ``activations`` (each layer's output, after its ReLU), ``pre_activations``
    (before the ReLU, for layers with one), ``switches`` (argmax of each max pool), ``weights`` (per layer, its
    arrays as variables), and ``logits`` and ``probabilities`` when the chain ends in a softmax."""

    def __init__(self, chain, device: str = "auto", gpu_available=None):
        self.chain = chain
        self._passes_without_switches = {}
        self.placement = resolve_placement(device, gpu_available)
        self.graph = tf.Graph()
        initial_values = {}
        with self.graph.as_default(), tf.device(self.placement.compute):
            self.images = tf.compat.v1.placeholder(tf.float32, [None, *chain.input_shape], name="images")
            self._build(initial_values)
            self._build_more(initial_values)
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
                        signal, self.switches[layer.name] = max_pool_with_switches(layer, signal)
                elif layer.kind == "softmax":
                    self.logits = signal
                    signal = self.probabilities = tf.nn.softmax(signal, name="probabilities")
                else:
                    signal = linear_forward(layer, signal, weights)
                if has_relu(layer):
                    self.pre_activations[layer.name] = signal
                    signal = tf.nn.relu(signal)
                self.activations[layer.name] = tf.identity(signal, name="activation")

    def _build_more(self, initial_values: dict):
        """What a subclass adds to the graph before the session initialises its variables."""

    def unswitched_activations(self) -> dict:
        """Every layer's output by name (the classifier's too), from a second forward pass whose max pools are
        plain ``tf.nn.max_pool2d``: the same values as ``activations``, bit for bit (the same ops on the same
        inputs, and a maximum is exact), without the argmax only a deconvnet needs. A run that fetches only these
        computes no switches, and ``max_pool_with_argmax`` is the slow part of a batch-1 forward pass: a scan's
        two lanes took 7.1 images/s this way against 5.4–6.2 (2-core Intel Xeon). Built on first use, on the
        graph's variables."""
        return self._forward_without_switches(winograd=False)

    def winograd_activations(self) -> dict:
        """Every layer's output by name, from a forward pass for a scan on one core: plain max pools, as
        :meth:`unswitched_activations`, and the convolutions that :func:`visnet.chain.ops.winograd_fits` allows
        (VGG16's blocks 3 and 4) by Winograd's algorithm; why and how much faster: :mod:`visnet.chain.ops`. The
        values agree with ``activations`` to rounding, not bit for bit. Built on first use, on the graph's variables
        and on the transformed filters of those convolutions, variables made from the kernels then (VGG16: 52 MB)."""
        return self._forward_without_switches(winograd=True)

    def _forward_without_switches(self, winograd: bool) -> dict:
        passes = self._passes_without_switches
        if winograd not in passes:
            created = []

            def transformed_filters(layer):
                # A variable made from the kernel's once: transforming 512 × 512 filters at every run would cost
                # 1–2 ms of the 5 the layer saves. 16/9 of the layer's weights.
                with tf.name_scope(layer.name):
                    variable = tf.compat.v1.Variable(winograd_filters(self.weights[layer.name]["kernel"]),
                                                     trainable=False, name="winograd_filters")
                created.append(variable)
                return variable

            with self.graph.as_default(), tf.device(self.placement.compute), \
                    tf.name_scope("winograd" if winograd else "unswitched"):
                filters_of = transformed_filters if winograd else None
                built = {layer.name: signal for layer, signal in forward_without_switches(
                    self.chain, self.images, self.weights, winograd_filters_of=filters_of)}
                if created:
                    self.session.run([variable.initializer for variable in created])
            passes[winograd] = built
        return passes[winograd]

    @property
    def unswitched_probabilities(self):
        """``probabilities`` from :meth:`unswitched_activations`: the output of the chain's softmax (None without one)."""
        softmax = [layer.name for layer in self.chain.layers if layer.kind == "softmax"]
        return self.unswitched_activations()[softmax[-1]] if softmax else None


class VGG16Graph(ChainGraph):
    """VGG16 built as one chain (:func:`visnet.chain.vgg.vgg_chain` of ``weights``), with what VGG16's engine reads:

    ``images`` (N×224×224×3), ``activations`` (the 13 post-ReLU conv outputs and the 5 pool outputs),
    ``pre_activations`` (the conv outputs before ReLU), ``switches`` (argmax of each pool), ``kernels``,
    ``transposed_filters`` (:func:`visnet.graph.transposed_filters`: single-channel seeds and max seeds' windows)
    and, with a classifier top,
    ``logits``, ``probabilities`` and ``classifier_activations`` (``fc1`` and ``fc2`` after their ReLU,
    ``predictions``: the logits). The same ops as any chain, so its numbers are the chain's."""

    def __init__(self, weights, device: str = "auto", gpu_available=None):
        super().__init__(vgg_chain(weights, "vgg16"), device, gpu_available)

    def _build_more(self, initial_values: dict):
        features = [layer.name for layer in LAYERS]
        convs = [layer.name for layer in LAYERS if not layer.is_pool]
        self.classifier_activations = {name: self.activations[name] for name, _, _ in CLASSIFIER_LAYERS
                                       if self.logits is not None}
        self.activations = {name: self.activations[name] for name in features}
        self.pre_activations = {name: self.pre_activations[name] for name in convs}
        self.kernels = {name: self.weights[name]["kernel"] for name in convs}
        self.transposed_filters = {}
        for name in convs:
            with tf.name_scope(name):
                self.transposed_filters[name] = _variable(
                    "transposed_filters", transposed_filters(self.chain.layer(name).weights["kernel"]), initial_values)

    @property
    def has_top(self) -> bool:
        return self.logits is not None


def _variable(name: str, value: np.ndarray, initial_values: dict):
    """A variable initialised from a fed placeholder: the weights stay out of the GraphDef (2 GB limit)."""
    value = np.asarray(value, dtype=np.float32)
    initial = tf.compat.v1.placeholder(tf.float32, value.shape, name=f"{name}_initial")
    initial_values[initial] = value
    return tf.compat.v1.Variable(initial, trainable=False, name=name)
