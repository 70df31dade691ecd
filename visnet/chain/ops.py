"""The forward pass of one chain layer in TensorFlow, except what needs care of its own: ReLUs (the
rules of the backward pass differ), max pools (the graph records their switches) and the softmax. The
graph (:mod:`visnet.chain.graph`) and the autodiff reference (:mod:`visnet.chain.autodiff`) both use it, and
both walk a whole chain with plain max pools through :func:`forward_without_switches`."""
import tensorflow as tf

# With in_strips (forward_without_switches), the convolution of a map this many rows high runs on STRIPS horizontal
# strips of each image, as a batch of STRIPS per image. On one core, TensorFlow's oneDNN convolution reads a batch of
# one's filters as they are (HWIO), and a larger batch's reordered into blocks of 32 output channels; for VGG16's
# block 3 (56×56, 128 or 256 → 256 channels) the first ran at 179–197 GFLOP/s and the second at 211–225, where the
# other blocks ran at 216–227 either way (ONEDNN_VERBOSE, one image to block5_pool; 2-core AMD EPYC, Zen 5).
# The same process, alternating, 12 rounds of 8 images, twice: 151–160 ms an image whole, 0.94–0.96 × that with
# block 3 in strips (2, 4 or 8 strips alike), 0.96 × with blocks 2 and 3, whose strips' copies cost what block 2
# gained. On both cores (two threads) the strips gained nothing: 82–87 ms against 81–82.
STRIPS = 4
STRIP_HEIGHTS = (56,)


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


def strips_for(layer, signal) -> int:
    """How many strips :func:`convolve_in_strips` cuts ``signal`` into for conv ``layer``: :data:`STRIPS` for a
    'SAME' convolution of stride 1 with an odd square kernel, on a map whose height is in :data:`STRIP_HEIGHTS` and
    a multiple of STRIPS; else 1 (convolve it whole)."""
    rows, columns = layer.window
    height = signal.shape[1]
    fits = (layer.kind == "conv" and layer.padding == "SAME" and tuple(layer.strides) == (1, 1) and rows == columns
            and rows % 2 == 1 and height is not None and height in STRIP_HEIGHTS and height % STRIPS == 0)
    return STRIPS if fits else 1


def convolve_in_strips(signal, weights: dict, strips: int, activation=None):
    """A 'SAME' convolution of stride 1 with an odd square kernel, its bias and then ``activation`` (if any), as
    :func:`linear_forward` and a ReLU compute them, run on ``strips`` horizontal strips of every image as one batch
    of N × strips. Each strip holds its rows and the rows of its neighbours that the kernel reaches, in the map
    padded with zeros. Every output is the same sum of the same products as the whole map's; only the order of the
    additions may differ, so the values agree to rounding, not by construction bit for bit. The bias and the
    activation run on the strips, where TensorFlow fuses them into the convolution, and the strips of image n are
    rows n·strips … of the batch, so the result reshapes back to (N, H, W, out) without a copy."""
    kernel = weights["kernel"]
    half = kernel.shape[0] // 2
    _, height, width, channels = signal.shape
    rows = height // strips
    padded = tf.pad(signal, [[0, 0], [half, half], [half, half], [0, 0]])
    pieces = tf.stack([padded[:, index * rows:(index + 1) * rows + 2 * half] for index in range(strips)], axis=1)
    pieces = tf.reshape(pieces, [-1, rows + 2 * half, width + 2 * half, channels])
    convolved = tf.nn.conv2d(pieces, kernel, strides=1, padding="VALID")
    convolved = tf.nn.bias_add(convolved, weights["bias"])
    if activation is not None:
        convolved = activation(convolved)
    return tf.reshape(convolved, [-1, height, width, kernel.shape[3]])


def has_relu(layer) -> bool:
    return layer.kind == "relu" or layer.relu


def forward_without_switches(chain, signal, weights: dict, relu=tf.nn.relu, in_strips: bool = False):
    """Each layer of ``chain`` with its output, for ``signal`` in: max pools as plain ``tf.nn.max_pool2d`` (no
    switches recorded), ``relu`` after every layer that has a ReLU, ``weights`` by layer name as
    :func:`linear_forward` takes them. With ``in_strips``, the convolutions that :func:`strips_for` allows run in
    strips, their ReLU too (:func:`convolve_in_strips`). A generator: a caller that needs one layer stops there."""
    for layer in chain.layers:
        strips = strips_for(layer, signal) if in_strips else 1
        if strips > 1:
            signal = convolve_in_strips(signal, weights[layer.name], strips, relu if has_relu(layer) else None)
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
