"""Deconvnet, guided backprop and gradient projections down any chain (:class:`ChainGraph`).

Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014: keep one channel of
a layer's activation, zero the others, and walk down: at every ReLU apply the rule, at every max pool
unpool with the recorded switches, at every convolution apply the transposed convolution with the same
filters, strides and padding (no bias). The rules (visnet.deconvnet.RULES) are those of Springenberg et
al. 2015 and Simonyan et al. 2014: ``deconvnet`` rectifies the backward signal, ``guided`` also keeps
only where the forward input of the ReLU was positive, ``gradient`` only does the latter.

Beyond VGG16's 2×2 pools: where pool windows overlap, one input position can be the switch of several
windows, and unpooling gives it the sum of their signals; an average pool spreads each signal evenly
over its window (its gradient); a dense layer goes down by its transposed matrix, flatten by a reshape,
global average pooling by spreading each channel's value evenly over its map, a per-channel affine
preprocessing layer by its scale. Each step is the adjoint of the forward layer, which is what makes the
projection equal to autodiff with the rule at the ReLUs (:mod:`visnet.chain.autodiff`).
"""
import numpy as np
import tensorflow as tf

from ..deconvnet import RULES, backward_relu, first_maximum, single_activation
from .ops import has_relu, window_arguments

SEEDS = ("map", "max")


def unpool(signal, switches, input_shape):
    """Sum each pooled value into its switch position, zeros elsewhere.

    ``signal`` (N·S, h, w, C) holds S signals per image, image-major; ``switches`` (N, h, w, C) come from
    ``max_pool_with_argmax(include_batch_in_index=True)`` on an input of (N, *input_shape). Returns
    (N·S, *input_shape). ``tf.scatter_nd`` sums repeated indices: a position that is the switch of several
    overlapping windows receives the sum of their signals. The S signals of an image share its switches, so
    rows of S values are scattered, seed axis last."""
    height, width, channels = input_shape
    images = tf.shape(switches, out_type=tf.int64)[0]
    seeds = tf.shape(signal, out_type=tf.int64)[0] // images
    per_image = tf.transpose(tf.reshape(signal, tf.stack([images, seeds, -1])), [0, 2, 1])  # (N, h·w·C, S)
    size = height * width * channels
    scattered = tf.scatter_nd(tf.reshape(switches, [-1, 1]), tf.reshape(per_image, tf.stack([-1, seeds])),
                              tf.stack([images * size, seeds]))
    scattered = tf.transpose(tf.reshape(scattered, tf.stack([images, size, seeds])), [0, 2, 1])
    return tf.reshape(scattered, tf.stack([images * seeds, height, width, channels]))


def backward_step(model, layer, signal, image_index, rule):
    """The signal below ``layer`` from the signal at its output; ``image_index`` (rows,) is each row's image."""
    if has_relu(layer):
        signal = backward_relu(signal, lambda: tf.gather(model.pre_activations[layer.name], image_index) > 0, rule)
    kind, below = layer.kind, model.chain.input_shape_of(layer.name)
    rows = tf.shape(signal)[0]
    if kind == "conv":
        return tf.compat.v1.nn.conv2d_backprop_input(tf.stack([rows, *below]), model.weights[layer.name]["kernel"],
                                                     signal, strides=[1, *layer.strides, 1], padding=layer.padding)
    if kind == "max_pool":
        return unpool(signal, model.switches[layer.name], below)
    if kind == "avg_pool":
        return tf.raw_ops.AvgPoolGrad(orig_input_shape=tf.stack([rows, *below]), grad=signal,
                                      **window_arguments(layer))
    if kind == "flatten":
        return tf.reshape(signal, [-1, *below])
    if kind == "global_avg_pool":
        height, width, _ = below
        return tf.broadcast_to(signal[:, None, None, :] / (height * width), tf.stack([rows, *below]))
    if kind == "dense":
        return tf.matmul(signal, model.weights[layer.name]["kernel"], transpose_b=True)
    if kind == "affine":
        return signal * model.weights[layer.name]["scale"]
    if kind == "relu":
        return signal
    raise ValueError(f"layer {layer.name!r}: cannot project down through a {kind}")


def channel_seeds(activation, channels, seed: str):
    """(seeds, image index, channel): per image, per channel of ``channels`` (M,), the activation kept in that
    channel only, image-major (N·M rows): the channel's whole map (``map``) or its first strongest
    activation in row-major order (``max``). A flat layer's channel is one value, so both are the same."""
    images, count = tf.shape(activation)[0], tf.shape(channels)[0]
    image_index = tf.repeat(tf.range(images), count)
    channel = tf.tile(tf.cast(channels, tf.int32), [images])
    depth = activation.shape[-1]
    if activation.shape.rank == 2:
        values = tf.gather_nd(activation, tf.stack([image_index, channel], 1))
        return values[:, None] * tf.one_hot(channel, depth), image_index, channel
    maps = tf.gather_nd(tf.transpose(activation, [0, 3, 1, 2]), tf.stack([image_index, channel], 1))
    if seed == "max":
        maps = single_activation(maps, *first_maximum(maps))
    return maps[..., None] * tf.one_hot(channel, depth)[:, None, None, :], image_index, channel


class ChainSweep:
    """Projections to the input of channels of ``layers``, for every image of the batch, in one backward
    sweep: the seeds of a layer join the signal coming down from deeper layers where they enter.

    Feed ``images`` (N, *input shape) and ``channels[layer]`` (M_layer,) int per layer; fetch
    ``reconstructions`` (rows, *input shape) and, row by row, ``seed_image``, ``seed_layer`` (index into
    ``layers``), ``seed_channel`` and ``seed_kind`` (index into ``seeds``). Rows are image-major; within an
    image, deeper layers first, then by seed kind, then in the order of ``channels[layer]``."""

    def __init__(self, model, layers, rule: str = "deconvnet", seeds=("map",)):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")
        unknown = [seed for seed in seeds if seed not in SEEDS]
        if unknown or not seeds:
            raise ValueError(f"unknown seeds {unknown or seeds!r}; expected some of {', '.join(SEEDS)}")
        chain = model.chain
        self.model, self.rule, self.seeds = model, rule, tuple(seeds)
        self.layers = [chain.layer(name).name for name in layers]
        for name in self.layers:
            if name not in chain.layer_names:
                raise ValueError(f"layer {name!r} ({chain.layer(name).kind}) cannot be projected; project one of "
                                 f"{', '.join(chain.layer_names)}")
        with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope(f"sweep_{rule}"):
            self.channels = {name: tf.compat.v1.placeholder(tf.int64, [None], name=f"channels_{index}")
                             for index, name in enumerate(self.layers)}
            self._build()

    def _build(self):
        """The signal is kept as (N, S, …), S rows per image, so that seeds join it by one concatenation."""
        chain, model = self.model.chain, self.model
        images = tf.shape(model.images)[0]
        deepest = max(chain.index(name) for name in self.layers)
        signal = metadata = None  # metadata: (layer, channel, kind), each (N, S)
        for spec in reversed(chain.layers[: deepest + 1]):
            if spec.name in self.layers:
                for kind, seed in enumerate(self.seeds):
                    seeds, _, channel = channel_seeds(model.activations[spec.name], self.channels[spec.name], seed)
                    seeds = tf.reshape(seeds, tf.concat([[images, -1], tf.shape(seeds)[1:]], 0))
                    channel = tf.reshape(channel, [images, -1])
                    entering = (tf.fill(tf.shape(channel), self.layers.index(spec.name)), channel,
                                tf.fill(tf.shape(channel), kind))
                    if signal is None:
                        signal, metadata = seeds, entering
                    else:
                        signal = tf.concat([signal, seeds], 1)
                        metadata = tuple(tf.concat([a, b], 1) for a, b in zip(metadata, entering))
            if signal is not None:
                image_index = tf.repeat(tf.range(images), tf.shape(signal)[1])
                rows = tf.reshape(signal, tf.concat([[-1], tf.shape(signal)[2:]], 0))
                rows = backward_step(model, spec, rows, image_index, self.rule)
                signal = tf.reshape(rows, tf.concat([[images, -1], tf.shape(rows)[1:]], 0))
        self.reconstructions = tf.reshape(signal, [-1, *chain.input_shape], name="reconstructions")
        self.seed_image = tf.repeat(tf.range(images), tf.shape(signal)[1])
        self.seed_layer, self.seed_channel, self.seed_kind = (tf.reshape(tensor, [-1]) for tensor in metadata)

    def project(self, images: np.ndarray, channels: dict) -> dict:
        """Run the sweep on ``images`` (already in the model's input space) for ``channels`` {layer: [int]}:
        {"reconstructions", "image", "layer", "channel", "kind"} as NumPy arrays, row by row."""
        feed = {self.model.images: images}
        for name in self.layers:
            wanted, depth = np.asarray(channels.get(name, ()), np.int64).reshape(-1), self.model.chain.channels(name)
            if wanted.size and not ((wanted >= 0) & (wanted < depth)).all():
                raise ValueError(f"channels {wanted.tolist()} of {name!r}: expected 0 to {depth - 1}")
            feed[self.channels[name]] = wanted
        return self.model.run({"reconstructions": self.reconstructions, "image": self.seed_image,
                               "layer": self.seed_layer, "channel": self.seed_channel, "kind": self.seed_kind}, feed)
