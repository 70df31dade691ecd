"""The forward pass of one chain layer in TensorFlow, except what needs care of its own: ReLUs (the
rules of the backward pass differ), max pools (the graph records their switches) and the softmax. The
graph (:mod:`visnet.chain.graph`) and the autodiff reference (:mod:`visnet.chain.autodiff`) both use it, and
both walk a whole chain with plain max pools through :func:`forward_without_switches`."""
import tensorflow as tf


def window_arguments(layer) -> dict:
    """``ksize``, ``strides`` and ``padding`` of a pool, as ``tf.nn``'s pooling functions take them."""
    return {"ksize": [1, *layer.window, 1], "strides": [1, *layer.strides, 1], "padding": layer.padding}


def max_pool_with_switches(layer, signal, name="max_pool_with_argmax"):
    """``layer``'s max pool of ``signal`` (N, H, W, C) and its switches, as ``tf.nn.max_pool_with_argmax`` with the
    batch folded into the index.

    A 2×2 pool of stride 2 on an even H and W runs on the row pairs, (N·H/2, 2, W, C): the same memory, in which
    every window lies within one pair, so its output and switches, reshaped back, are the same values and the same
    indices bit for bit (the index of row ``y`` of image ``n`` is (n·H/2 + y // 2)·2 + y % 2 = n·H + y either way).
    TensorFlow's CPU kernel splits its work by batch, so one image's pool ran on one core: the five pools of a
    batch-1 VGG16 pass took 29 ms this way against 18 ms on row pairs (2-core Intel Xeon)."""
    arguments = window_arguments(layer)
    _, height, width, channels = signal.shape
    if (tuple(layer.window), tuple(layer.strides)) != ((2, 2), (2, 2)) or None in (height, width, channels) \
            or height % 2 or width % 2:
        return tf.nn.max_pool_with_argmax(signal, **arguments, include_batch_in_index=True, name=name)
    pairs = tf.reshape(signal, [-1, 2, width, channels])
    pooled, switches = tf.nn.max_pool_with_argmax(pairs, **arguments, include_batch_in_index=True, name=name)
    shape = [-1, height // 2, width // 2, channels]
    return tf.reshape(pooled, shape), tf.reshape(switches, shape)


def linear_forward(layer, signal, weights: dict):
    """``layer``'s output before its ReLU, for kinds other than max_pool and softmax; ``weights`` holds
    its arrays as tensors, keyed as :attr:`visnet.chain.spec.LayerSpec.weights`. A relu layer passes its
    input on."""
    kind = layer.kind
    if kind == "affine":
        return signal * weights["scale"] + weights["offset"]
    if kind == "conv":
        convolved = tf.nn.conv2d(signal, weights["kernel"], strides=[1, *layer.strides, 1], padding=layer.padding)
        return tf.nn.bias_add(convolved, weights["bias"])
    if kind == "avg_pool":
        return tf.nn.avg_pool2d(signal, **window_arguments(layer))
    if kind == "flatten":
        return tf.reshape(signal, [tf.shape(signal)[0], -1])
    if kind == "global_avg_pool":
        return tf.reduce_mean(signal, axis=[1, 2])
    if kind == "dense":
        return tf.nn.bias_add(tf.matmul(signal, weights["kernel"]), weights["bias"])
    if kind == "relu":
        return signal
    raise ValueError(f"layer {layer.name!r}: {kind} has no linear forward pass")


def has_relu(layer) -> bool:
    return layer.kind == "relu" or layer.relu


def forward_without_switches(chain, signal, weights: dict, relu=tf.nn.relu):
    """Each layer of ``chain`` with its output, for ``signal`` in: max pools as plain ``tf.nn.max_pool2d`` (no
    switches recorded), ``relu`` after every layer that has a ReLU, ``weights`` by layer name as
    :func:`linear_forward` takes them. A generator: a caller that needs one layer stops there."""
    for layer in chain.layers:
        if layer.kind == "max_pool":
            signal = tf.nn.max_pool2d(signal, **window_arguments(layer))
        elif layer.kind == "softmax":
            signal = tf.nn.softmax(signal)
        else:
            signal = linear_forward(layer, signal, weights[layer.name])
        if has_relu(layer):
            signal = relu(signal)
        yield layer, signal
