"""What every model's TF1-style graph shares: where its ops go (the placement policy: ``max_pool_with_argmax``
pinned to the GPU when there is one), the session it runs in, and the flipped filters of single-channel seeds.

The graphs themselves are built from a chain (:class:`visnet.chain.graph.ChainGraph`); VGG16's is one instance
(:class:`visnet.chain.graph.VGG16Graph`). Input: a batch of images already in the network's input space (VGG16:
BGR, ImageNet mean subtracted; see :mod:`visnet.preprocessing`). Every max pool is ``tf.nn.max_pool_with_argmax``
with the batch folded into the index, so the switches of every pool are available to the deconvnet. Within a
window the switch is the first maximum in row-major order (top-left, top-right, bottom-left, bottom-right), the
same rule as the MaxPool gradient that the autodiff reference uses.
"""
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

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


def transposed_filters(kernel: np.ndarray) -> np.ndarray:
    """The filters (3, 3, Cout, Cin) whose forward convolution is the transposed convolution of ``kernel``
    (3, 3, Cin, Cout), 'same' and stride 1: the kernel flipped in space, its input and output channels swapped.

    :func:`visnet.deconvnet.transposed_conv_as_forward` convolves max seeds' windows with them: TensorFlow's
    ``Conv2DBackpropInput`` is the slower kernel on the CPU (42–49 GFLOP/s on the 14×14 maps of ``block5`` against
    121–160 for the forward op, Eigen's kernels on a 2-core AMD EPYC with AVX2). ``[:, :, c]`` is what a
    single-channel seed of channel ``c`` needs (:func:`visnet.deconvnet.single_channel_transposed_conv`).
    """
    return np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))


class SessionGraph:
    """What every model graph offers over its ``graph`` and ``session`` (visnet.chain.graph.ChainGraph, VGG16Graph)."""

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
