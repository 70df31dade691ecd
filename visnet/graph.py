"""VGG16 as a TF1-style graph: one ``tf.compat.v1`` Graph and Session per process, built once.

Input: a batch of 224×224 images already in the network's input space (BGR, ImageNet mean
subtracted; see :mod:`visnet.preprocessing`). Every max pool is ``tf.nn.max_pool_with_argmax`` with
the batch folded into the index, so the switches of every pool are available to the deconvnet.
Within a 2×2 window the switch is the first maximum in row-major order (top-left, top-right,
bottom-left, bottom-right), the same rule as the MaxPool gradient that the autodiff reference uses.
"""
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .architecture import CLASSIFIER_LAYERS, INPUT_CHANNELS, INPUT_SIZE, LAYERS

DEVICE_POLICIES = ("auto", "gpu", "cpu", "mostly-cpu")
CPU = "/device:CPU:0"
GPU = "/device:GPU:0"


def gpu_visible() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


@dataclass(frozen=True)
class Placement:
    """Where the graph's ops go. ``switches`` is where the argmax pools are pinned."""

    policy: str
    compute: str
    switches: str

    @property
    def wants_gpu(self) -> bool:
        return GPU in (self.compute, self.switches)


def resolve_placement(policy: str = "auto", gpu_available=None) -> Placement:
    """Map a device policy to op devices.

    ``auto`` puts the whole graph on the GPU when one is visible (argmax pools pinned to it
    explicitly) and on the CPU otherwise; ``gpu`` asks for the GPU even when none is visible (soft
    placement then runs it on the CPU); ``cpu`` keeps everything on the CPU; ``mostly-cpu`` keeps
    everything on the CPU except the argmax pools, the small-GPU mode of the source design.
    """
    if policy not in DEVICE_POLICIES:
        raise ValueError(f"unknown device policy {policy!r}; expected one of {', '.join(DEVICE_POLICIES)}")
    if policy == "auto":
        has_gpu = gpu_visible() if gpu_available is None else gpu_available
        device = GPU if has_gpu else CPU
        return Placement(policy, device, device)
    if policy == "gpu":
        return Placement(policy, GPU, GPU)
    if policy == "mostly-cpu":
        return Placement(policy, CPU, GPU)
    return Placement(policy, CPU, CPU)


def seed_filters(kernel: np.ndarray) -> np.ndarray:
    """Per output channel, the 3×3 filter flipped for a transposed convolution, as (Cout, 9, Cin).

    Row ``c`` lets a single-channel seed map skip the dense transposed convolution: see
    :func:`visnet.deconvnet.single_channel_transposed_conv`.
    """
    flipped = kernel[::-1, ::-1]  # (3, 3, Cin, Cout)
    return np.ascontiguousarray(flipped.transpose(3, 0, 1, 2).reshape(kernel.shape[3], 9, kernel.shape[2]))


class SessionGraph:
    """What every model graph offers over its ``graph`` and ``session`` (VGG16Graph, visnet.chain.graph.ChainGraph)."""

    def op_devices(self) -> dict:
        """Requested device of every op, by op type: what the placement tests inspect."""
        devices = {}
        for op in self.graph.get_operations():
            devices.setdefault(op.type, set()).add(op.device)
        return devices

    def run(self, fetches, feed_dict=None):
        return self.session.run(fetches, feed_dict=feed_dict)

    def close(self):
        self.session.close()


class VGG16Graph(SessionGraph):
    """The forward network with every tensor the visualisations need, addressed by layer name.

    Attributes: ``images`` (placeholder, N×224×224×3), ``activations`` (post-ReLU conv outputs and
    pool outputs), ``pre_activations`` (conv outputs before ReLU), ``switches`` (argmax of each
    pool), ``kernels``, ``seed_filters`` and, with a classifier top, ``logits``, ``probabilities`` and
    ``classifier_activations`` (``fc1`` and ``fc2`` after their ReLU, ``predictions``: the logits).
    """

    def __init__(self, weights, device: str = "auto", gpu_available=None):
        self.weights = weights
        self.placement = resolve_placement(device, gpu_available)
        self.graph = tf.Graph()
        self._initial_values = {}
        with self.graph.as_default(), tf.device(self.placement.compute):
            self.images = tf.compat.v1.placeholder(
                tf.float32, [None, INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS], name="images")
            self._build_features()
            self.logits = self.probabilities = None
            self.classifier_activations = {}
            if weights.has_top:
                self._build_classifier()
            initialise = tf.compat.v1.variables_initializer(tf.compat.v1.global_variables())
        config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self.session.run(initialise, feed_dict=self._initial_values)
        self._initial_values.clear()

    @property
    def has_top(self) -> bool:
        return self.logits is not None

    def _variable(self, name: str, value: np.ndarray):
        value = np.asarray(value, dtype=np.float32)
        initial = tf.compat.v1.placeholder(tf.float32, value.shape, name=f"{name}_initial")
        self._initial_values[initial] = value
        return tf.compat.v1.Variable(initial, trainable=False, name=name)

    def _build_features(self):
        self.activations, self.pre_activations, self.switches = {}, {}, {}
        self.kernels, self.seed_filters = {}, {}
        signal = self.images
        for layer in LAYERS:
            with tf.name_scope(layer.name):
                if layer.is_pool:
                    with tf.device(self.placement.switches):
                        pooled, argmax = tf.nn.max_pool_with_argmax(
                            signal, ksize=2, strides=2, padding="VALID",
                            include_batch_in_index=True, name="max_pool_with_argmax")
                    self.switches[layer.name] = argmax
                    signal = pooled
                else:
                    kernel, bias = self.weights.convs[layer.name]
                    self.kernels[layer.name] = self._variable("kernel", kernel)
                    self.seed_filters[layer.name] = self._variable("seed_filters", seed_filters(kernel))
                    convolved = tf.nn.conv2d(signal, self.kernels[layer.name], strides=1, padding="SAME")
                    self.pre_activations[layer.name] = tf.nn.bias_add(convolved, self._variable("bias", bias))
                    signal = tf.nn.relu(self.pre_activations[layer.name])
                self.activations[layer.name] = tf.identity(signal, name="activation")

    def _build_classifier(self):
        signal = tf.reshape(self.activations["block5_pool"], [-1, 7 * 7 * 512])
        for name, _, _ in CLASSIFIER_LAYERS:
            with tf.name_scope(name):
                kernel, bias = self.weights.classifier[name]
                signal = tf.nn.bias_add(tf.matmul(signal, self._variable("kernel", kernel)),
                                        self._variable("bias", bias))
                if name != "predictions":
                    signal = tf.nn.relu(signal)
                self.classifier_activations[name] = signal
        self.logits = signal
        self.probabilities = tf.nn.softmax(signal, name="probabilities")
