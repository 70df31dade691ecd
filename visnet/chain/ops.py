"""The forward pass of one chain layer in TensorFlow, except what needs care of its own: ReLUs (the
rules of the backward pass differ), max pools (the graph records their switches) and the softmax. The
graph (:mod:`visnet.chain.graph`) and the autodiff reference (:mod:`visnet.chain.autodiff`) both use it, and
both walk a whole chain with plain max pools through :func:`forward_without_switches`."""
import numpy as np
import tensorflow as tf

# With Winograd (forward_without_switches, the scan's pass on one core), the 3×3 convolutions of a map this many rows
# high run as Winograd's F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each
# 4×4 tile of the input (stride 2) gives a 2×2 tile of the output from 16 products of transformed tiles and
# transformed filters, 2.25 × fewer multiplications than the direct convolution, as one batched matrix product (16
# of them) between two cheap linear transforms. One core, batch 1, VGG16 to block5_pool (12 rounds of 8 images, the
# two passes alternating in one process; 2-core AMD EPYC, Zen 5): 0.75–0.82 × the time of the direct convolutions
# with blocks 3 and 4 (56 and 28 rows) this way (four runs), 0.87 × with block 4 only, the same again with block 5
# (14 rows). A trace of one image: the batched products 42.7 ms (196 GFLOP/s of their own arithmetic), the transforms
# and copies 15 of 116 ms. Alone, a 112-row convolution (block 2) took 24 ms against 18 directly. The transposes of a
# first version (6-dimensional) ran 60 × slower on two threads than on one; the slices, concatenation and
# depth_to_space here do not: two threads, 0.85 × (two runs, 0.52–1.15 × and 0.75–0.95 ×). Its values agree with
# the direct convolution's to rounding: 0.5–2.1e-6 of a layer's largest value, float32.
WINOGRAD_HEIGHTS = (56, 28)
# The transforms of F(2×2, 3×3): input tile d (4×4) → Bᵀ d B, filter g (3×3) → G g Gᵀ, their product m → Aᵀ m A.
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)


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


def winograd_fits(layer, signal) -> bool:
    """Whether :func:`convolve_winograd` computes conv ``layer`` of ``signal`` in a pass by Winograd's algorithm: a
    'SAME' 3×3 convolution of stride 1 on a map of known, even size whose height is in :data:`WINOGRAD_HEIGHTS`."""
    _, height, width, channels = signal.shape
    return (layer.kind == "conv" and layer.padding == "SAME" and tuple(layer.strides) == (1, 1)
            and tuple(layer.window) == (3, 3) and None not in (height, width, channels)
            and height in WINOGRAD_HEIGHTS and height % 2 == 0 and width % 2 == 0)


def winograd_filters(kernel):
    """The transformed filters G g Gᵀ of a 3×3 ``kernel`` (3, 3, in, out): (16, in, out), in the order of
    :func:`convolve_winograd`'s tiles (row of the 4×4 tile, then column)."""
    _, _, inputs, outputs = kernel.shape
    transform = np.kron(_G, _G)  # (16, 9): (a, b) × (i, j) → G[a, i] · G[b, j]
    return tf.reshape(tf.matmul(transform, tf.reshape(kernel, [9, -1])), [16, inputs, outputs])


def convolve_winograd(signal, filters, bias, activation=None):
    """A 'SAME' 3×3 convolution of stride 1 of ``signal`` (N, H, W, in; H and W even), ``filters`` being the kernel's
    :func:`winograd_filters`, then ``bias`` and ``activation`` (if any), by Winograd's F(2×2, 3×3) (see
    :data:`WINOGRAD_HEIGHTS`). The map, padded with zeros, is cut into 2×2 blocks (``space_to_depth``); the 4×4
    input tile of output tile (y, x) is blocks (y, x) to (y + 1, x + 1). All tiles of all images go through the
    input transform as one product with Bᵀ ⊗ Bᵀ, the 16 products with the filters as one batched product, and back
    through Aᵀ ⊗ Aᵀ. Not the direct convolution's sums, so the values agree with it to rounding only."""
    _, height, width, channels = signal.shape
    outputs = filters.shape[2]
    rows, columns = height // 2, width // 2
    blocks = tf.nn.space_to_depth(tf.pad(signal, [[0, 0], [1, 1], [1, 1], [0, 0]]), 2)  # (N, rows+1, columns+1, 4·in)
    # Tile pixel (2 · block row + row in block, 2 · block column + column in block), in that order: (16, tiles · in).
    tiles = tf.stack([blocks[:, block_row:block_row + rows, block_column:block_column + columns,
                             (2 * row + column) * channels:(2 * row + column + 1) * channels]
                      for block_row in (0, 1) for row in (0, 1) for block_column in (0, 1) for column in (0, 1)])
    transformed = tf.reshape(tf.matmul(np.kron(_BT, _BT), tf.reshape(tiles, [16, -1])), [16, -1, channels])
    products = tf.matmul(transformed, filters)  # (16, tiles, out)
    output = tf.matmul(np.kron(_AT, _AT), tf.reshape(products, [16, -1]))  # (4, tiles · out): (row, column) of 2×2
    # Each output tile's 2×2 pixels as 4 · out channels, in the order depth_to_space puts them in place.
    output = tf.concat([tf.reshape(pixel, [-1, rows, columns, outputs]) for pixel in tf.unstack(output)], axis=3)
    output = tf.nn.depth_to_space(output, 2)
    output = tf.nn.bias_add(output, bias)
    return activation(output) if activation is not None else output


def has_relu(layer) -> bool:
    return layer.kind == "relu" or layer.relu


def forward_without_switches(chain, signal, weights: dict, relu=tf.nn.relu, winograd_filters_of=None):
    """Each layer of ``chain`` with its output, for ``signal`` in: max pools as plain ``tf.nn.max_pool2d`` (no
    switches recorded), ``relu`` after every layer that has a ReLU, ``weights`` by layer name as
    :func:`linear_forward` takes them. With ``winograd_filters_of(layer)`` (a layer's :func:`winograd_filters`), the
    convolutions that :func:`winograd_fits` allows run by Winograd's algorithm (:func:`convolve_winograd`). A
    generator: a caller that needs one layer stops there."""
    for layer in chain.layers:
        if winograd_filters_of is not None and winograd_fits(layer, signal):
            signal = convolve_winograd(signal, winograd_filters_of(layer), weights[layer.name]["bias"],
                                       relu if has_relu(layer) else None)
            yield layer, signal
            continue
        if layer.kind == "max_pool":
            signal = tf.nn.max_pool2d(signal, **window_arguments(layer))
        elif layer.kind == "softmax":
            signal = tf.nn.softmax(signal)
        else:
            signal = linear_forward(layer, signal, weights[layer.name])
        if has_relu(layer):
            signal = relu(signal)
        yield layer, signal
