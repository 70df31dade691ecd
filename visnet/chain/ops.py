"""The forward pass of one chain layer in TensorFlow, except what needs care of its own: ReLUs (the
rules of the backward pass differ), max pools (the graph records their switches) and the softmax. The
graph (:mod:`visnet.chain.graph`) and the autodiff reference (:mod:`visnet.chain.autodiff`) both use it, and
both walk a whole chain with plain max pools through :func:`forward_without_switches`."""
import tensorflow as tf


def window_arguments(layer) -> dict:
    """``ksize``, ``strides`` and ``padding`` of a pool, as ``tf.nn``'s pooling functions take them."""
    return {"ksize": [1, *layer.window, 1], "strides": [1, *layer.strides, 1], "padding": layer.padding}


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
