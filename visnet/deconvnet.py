"""The Zeiler & Fergus deconvnet as one bundled backward sweep through the VGG16 graph.

Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014: to project one
feature map down to pixel space, keep that map, zero every other channel of its layer, then for each
layer downwards unpool with the recorded max-pool switches, rectify, and apply the transposed
convolution with the layer's own filters (no bias).

The same sweep also computes two close relatives that differ only in the rule used at each ReLU
(Springenberg et al., "Striving for Simplicity", 2015; Simonyan et al., 2014):

- ``deconvnet``: ReLU of the backward signal;
- ``guided``: ReLU of the signal, and only where the forward input of the ReLU was positive;
- ``gradient``: the signal where the forward input was positive (plain backpropagation).

Seeds of every requested layer travel down in one sweep, so one ``session.run`` computes the forward
pass and every reconstruction. A seed starts as a single channel, so its first unpooling and its first
transposed convolution are done on that channel alone instead of on a mostly-zero dense map; then it joins
the dense batch, so that each unpooling scatters rows of every seed at once. From the last pool (``block1``)
down, the batch goes on as two halves of its seeds, and later layers' seeds as batches of their own, joined
in pixel space: the halves' unpoolings (single-threaded scatters on the CPU) run side by side, and the
largest maps are never copied into a joined batch.

Each (image, channel) pair can seed two projections (Zeiler & Fergus, Fig. 1–2): ``map``, the channel's
whole activation map, and ``max``, its single strongest activation (the first maximum in row-major
order) with every other activation of the layer zeroed. Both kinds travel in the same sweep.

A max seed's projection is zero outside its unit's receptive field (:mod:`visnet.receptive_fields`), and
every unit of a layer has a field of one size. So max seeds are projected on windows: going down, each
seed's signal lives on a square window of a side fixed per level (1 at the seed, +2 per transposed
convolution, ×2 per unpooling) at its own offset. The switches and the forward masks are gathered for
those windows, and a transposed convolution of the window padded by one pixel equals the whole-frame one
on that window (the signal is zero beyond it). Positions off the image are zeroed after every convolution.
The max seeds of one layer form one batch; at ``block3_pool`` a window is 44 pixels at the input
instead of 224, at ``block5_pool`` 212. ``Sweep(windowed=False)`` sends them through the dense sweep
instead (the reference the tests compare with).
"""
import tensorflow as tf

from .architecture import LAYERS, get_layer
from .methods import RULES, get_method, parse_value

MAP_SEED, MAX_SEED = 0, 1  # the ``kind`` of a seed row


def check_seed(seed) -> str:
    """``seed`` ("map", "max" or "both", visnet.methods.SEEDS) checked as the option parser checks it."""
    return parse_value(get_method("deconv").option("seed"), seed, {})


def first_maximum(maps):
    """Per map of ``maps`` (S, h, w): (value, flat position) of its largest activation, the first in
    row-major order on ties (``tf.argmax`` does not promise which). An all-zero map gives (0, 0)."""
    flat = tf.reshape(maps, tf.stack([tf.shape(maps)[0], -1]))
    value = tf.reduce_max(flat, axis=1)
    size = tf.shape(flat, out_type=tf.int64)[1]
    index = tf.broadcast_to(tf.range(size)[None], tf.shape(flat, out_type=tf.int64))
    position = tf.reduce_min(tf.where(tf.equal(flat, value[:, None]), index, size), axis=1)
    return value, position


def single_activation(maps, value, position):
    """Maps of the shape of ``maps`` (S, h, w) holding only ``value`` at flat ``position``."""
    shape = tf.shape(maps)
    one_hot = tf.one_hot(position, shape[1] * shape[2], dtype=maps.dtype)
    return tf.reshape(one_hot * value[:, None], shape)


def transposed_conv(signal, kernel):
    """Transposed 3×3 'same' convolution with the forward filters ``kernel`` (3, 3, Cin, Cout):
    (B, H, W, Cout) → (B, H, W, Cin), no bias. TensorFlow's CPU kernel works image by image, so a row's result
    is the same bits whatever else is in its batch: chunked sweeps (visnet.sweep_chunks) equal the one run."""
    shape = tf.shape(signal)
    output_shape = tf.stack([shape[0], shape[1], shape[2], tf.shape(kernel)[2]])
    return tf.compat.v1.nn.conv2d_backprop_input(output_shape, kernel, signal, strides=[1, 1, 1, 1],
                                                 padding="SAME")


def transposed_conv_as_forward(signal, filters):
    """:func:`transposed_conv` computed as a forward convolution with ``filters`` (3, 3, Cout, Cin), the forward
    filters flipped and their channels swapped (:func:`visnet.graph.transposed_filters`): the same sums, in
    TensorFlow's faster kernel (2.7× faster on block5's 14×14 maps with Eigen's kernels, which TensorFlow runs on a
    2-core AMD EPYC with AVX2), but one contraction over the whole batch, whose rounding of a row depends on the
    batch's size. The windows of a layer are one batch in every chunk while they fit the memory budget
    (visnet.sweep_chunks), so they come out the same bits as in the one run."""
    return tf.nn.conv2d(signal, filters, strides=1, padding="SAME")


def single_channel_transposed_conv(maps, channels, filters):
    """Transposed convolution of seeds that are non-zero in one channel only.

    ``maps`` (S, H, W) holds seed ``s`` in channel ``channels[s]``; ``filters`` (3, 3, Cout, Cin) are the
    transposed convolution's (:func:`visnet.graph.transposed_filters`), of which each seed needs its channel's
    9 × Cin. Each output pixel is a 9-tap combination of its neighbourhood, so the work is 1/Cout of the dense
    transposed convolution and the result is the same.
    """
    shape = tf.shape(maps)
    patches = tf.image.extract_patches(maps[..., None], sizes=[1, 3, 3, 1], strides=[1, 1, 1, 1],
                                       rates=[1, 1, 1, 1], padding="SAME")
    patches = tf.reshape(patches, [shape[0], shape[1] * shape[2], 9])
    taps = tf.reshape(filters, tf.concat([[9], tf.shape(filters)[2:]], 0))  # (9, Cout, Cin)
    seed_filters = tf.transpose(tf.gather(taps, channels, axis=1), [1, 0, 2])  # (S, 9, Cin)
    out = tf.matmul(patches, seed_filters)
    return tf.reshape(out, [shape[0], shape[1], shape[2], tf.shape(filters)[3]])


def unpool(values, switches):
    """Place each pooled value at its switch position, zeros elsewhere.

    ``values`` (N·S, h, w, C) are S signals per image of the forward batch, image-major;
    ``switches`` (N, h, w, C) come from ``max_pool_with_argmax(include_batch_in_index=True)``.
    Returns (N·S, 2h, 2w, C). All S signals of an image share its switches, so the scatter moves
    rows of S values (seed axis last) instead of single values: S times fewer scatter indices.
    """
    shape = tf.shape(values, out_type=tf.int64)
    images = tf.shape(switches, out_type=tf.int64)[0]
    seeds, height, width, channels = shape[0] // images, shape[1], shape[2], shape[3]
    per_seed = tf.reshape(values, tf.stack([images, seeds, height, width, channels]))
    seed_last = tf.reshape(tf.transpose(per_seed, [0, 2, 3, 4, 1]), tf.stack([-1, seeds]))
    indices = tf.reshape(switches, [-1, 1])
    # A chunk of seeds (visnet.sweep_chunks) may bring none from the layers above, and scatter_nd refuses
    # indices into an empty output: then none are passed (a full slice otherwise, which copies nothing).
    kept = tf.shape(indices, out_type=tf.int64)[0] * tf.minimum(seeds, 1)
    indices, seed_last = indices[:kept], seed_last[:kept]
    scattered = tf.scatter_nd(indices, seed_last,
                              tf.stack([images * 4 * height * width * channels, seeds]))
    scattered = tf.reshape(scattered, tf.stack([images, 2 * height, 2 * width, channels, seeds]))
    return tf.reshape(tf.transpose(scattered, [0, 4, 1, 2, 3]),
                      tf.stack([images * seeds, 2 * height, 2 * width, channels]))


def unpool_single_channel(maps, switches, image_index, channels):
    """Unpool seeds that live in one channel: (S, h, w) → (S, 2h, 2w), same placement as unpool."""
    shape = tf.shape(maps, out_type=tf.int64)
    seeds, height, width = shape[0], 2 * shape[1], 2 * shape[2]
    per_channel = tf.gather_nd(tf.transpose(switches, [0, 3, 1, 2]), tf.stack([image_index, channels], 1))
    depth = tf.shape(switches, out_type=tf.int64)[3]
    positions = (per_channel // depth) % (height * width)
    positions += tf.range(seeds)[:, None, None] * height * width
    flat = tf.scatter_nd(tf.reshape(positions, [-1, 1]), tf.reshape(maps, [-1]),
                         tf.reshape(seeds * height * width, [1]))
    return tf.reshape(flat, tf.stack([seeds, height, width]))


def backward_relu(signal, forward_positive, rule, rectified=False):
    """The rule applied where the forward pass had a ReLU; ``forward_positive`` is a callable that
    returns the mask (pre-activation > 0), built only when the rule needs it. ``rectified`` says the
    signal is already non-negative (seed maps, or a signal rectified before unpooling)."""
    if rule != "gradient" and not rectified:
        signal = tf.nn.relu(signal)
    if rule == "deconvnet":
        return signal
    return signal * tf.cast(forward_positive(), signal.dtype)


def pool_quadrants(switches):
    """Where each pooled value came from in its 2×2 window: (N, h, w, C) int32, 2 · (row % 2) + column % 2
    of the switch (``max_pool_with_argmax`` index, batch included, of the (N, 2h, 2w, C) input)."""
    shape = tf.shape(switches, out_type=tf.int64)
    width, channels = 2 * shape[2], shape[3]
    column = (switches // channels) % width
    row = switches // (channels * width)  # plus multiples of the input's height: only its parity counts
    return tf.cast(2 * (row % 2) + column % 2, tf.int32)


def window_positions(origin, side: int, size: int):
    """Per seed, the ``side`` rows (or columns) of windows that start at ``origin`` (S,) on a frame of
    ``size``: (S, side) positions clamped to the frame, and (S, side) float32, 1 where on the frame."""
    position = tf.expand_dims(origin, 1) + tf.range(side, dtype=origin.dtype)
    on_frame = tf.cast(tf.logical_and(position >= 0, position < size), tf.float32)
    return tf.clip_by_value(position, 0, size - 1), on_frame


def gather_windows(tensor, image, rows, columns):
    """Windows (S, side, side, C) of ``tensor`` (N, H, W, C): seed ``s``'s window is in image ``image[s]``
    (S,) at ``rows[s]`` × ``columns[s]`` (S, side) (clamped positions: the caller's signal is zero off the frame)."""
    rows, columns = tf.expand_dims(rows, 2), tf.expand_dims(columns, 1)
    zeros = tf.zeros_like(rows + columns)  # (S, side, side)
    index = tf.stack([tf.reshape(image, [-1, 1, 1]) + zeros, rows + zeros, columns + zeros], -1)
    return tf.gather_nd(tensor, index)


def windowed_unpool(signal, quadrants, side: int, channels: int):
    """Unpool windows (S, side, side, C) with the windows' ``quadrants`` (:func:`pool_quadrants`):
    (S, 2·side, 2·side, C), each value at its switch, zeros elsewhere."""
    placed = tf.one_hot(quadrants, 4, dtype=signal.dtype) * signal[..., None]  # (S, side, side, C, 4)
    placed = tf.reshape(placed, [-1, side, side, channels, 2, 2])
    placed = tf.transpose(placed, [0, 1, 4, 2, 5, 3])  # (S, side, 2, side, 2, C)
    return tf.reshape(placed, [-1, 2 * side, 2 * side, channels])


def per_image(images, tensor):
    """An image-major batch (N·S, …) as (N, S, …): each image's rows together."""
    shape = tf.shape(tensor, out_type=tf.int64)
    return tf.reshape(tensor, tf.concat([[images, shape[0] // images], shape[1:]], 0))


def join_per_image(images, *batches):
    """Concatenate image-major batches (N·S1, …), (N·S2, …), … into (N·(S1+S2+…), …), keeping each image's
    signals together, in the batches' order. One copy of the data: for the signals; a seed's figures, many small
    tensors joined the same way, share one :func:`per_image_order` instead (fewer ops to build)."""
    joined = tf.concat([per_image(images, batch) for batch in batches], 1)
    shape = tf.shape(joined, out_type=tf.int64)
    return tf.reshape(joined, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))


def per_image_order(images, first, second):
    """The rows of ``concat([first, second])`` that :func:`join_per_image` would give, in its order, for two
    image-major batches (N·S1, …) and (N·S2, …): one index (N·(S1+S2),) for every tensor joined the same way
    (:func:`join_rows`)."""
    first_rows = tf.shape(first, out_type=tf.int64)[0]
    rows = tf.concat([tf.reshape(tf.range(first_rows), tf.stack([images, -1])),
                      tf.reshape(tf.range(first_rows, first_rows + tf.shape(second, out_type=tf.int64)[0]),
                                 tf.stack([images, -1]))], 1)
    return tf.reshape(rows, [-1])


def join_rows(order, first, second):
    """``first`` and ``second`` joined image by image, ``order`` being their :func:`per_image_order`."""
    return tf.gather(tf.concat([first, second], 0), order)


def split_seeds(images, signals, image_index):
    """An image-major batch (signals (N·S, …), image index (N·S,)) as two: each image's first ⌊S/2⌋ rows, and its
    others. :func:`join_per_image` of the two halves is the batch again."""
    def halves(tensor):
        rows = per_image(images, tensor)
        cut = tf.shape(rows, out_type=tf.int64)[1] // 2
        rest = tf.shape(tensor, out_type=tf.int64)[1:]
        return [tf.reshape(part, tf.concat([[-1], rest], 0)) for part in (rows[:, :cut], rows[:, cut:])]
    return list(zip(halves(signals), halves(image_index)))


def windowed_max_projections(model, rule, layer, image, channel, value, position, quadrants=None):
    """The projections of single activations ``value`` (S,) at flat ``position`` (S,) of ``channel`` (S,) in
    ``layer`` of image ``image`` (S,), each on its receptive field's window: ((S, side, side, 3), input origins
    (S, 2), row and column of each window's top-left corner). ``quadrants`` caches :func:`pool_quadrants` per
    pool between calls. Window and frame sizes are Python numbers, so each level adds few ops to the graph."""
    quadrants = {} if quadrants is None else quadrants
    with tf.name_scope(f"max_{layer.name}"):
        image, position = tf.cast(image, tf.int32), tf.cast(position, tf.int32)
        top, left = position // layer.resolution, position % layer.resolution  # window origin, per seed
        signal = tf.reshape(tf.one_hot(channel, layer.channels) * value[:, None], [-1, 1, 1, layer.channels])
        side = 1
        frame = None  # the windows' rows and columns, and where they are on the frame, once built for this level

        def windows_on(size):
            nonlocal frame
            if frame is None:
                (rows, row_on_frame), (columns, column_on_frame) = (window_positions(top, side, size),
                                                                    window_positions(left, side, size))
                frame = size, rows, columns, tf.expand_dims(tf.expand_dims(row_on_frame, 2) *
                                                            tf.expand_dims(column_on_frame, 1), 3)
            assert frame[0] == size, "windows kept across a change of resolution"
            return frame[1:]

        for below in reversed(LAYERS[: LAYERS.index(layer) + 1]):
            if below.is_pool:
                if below.name not in quadrants:
                    quadrants[below.name] = pool_quadrants(model.switches[below.name])
                rows, columns, _ = windows_on(below.resolution)
                signal = windowed_unpool(signal, gather_windows(quadrants[below.name], image, rows, columns), side,
                                         below.channels)
                top, left, side, frame = 2 * top, 2 * left, 2 * side, None
                continue
            # A conv keeps the resolution: this level's windows are those the conv above left (built afresh at the
            # seed and below a pool), and they are built only where the rule reads the forward pass.
            signal = backward_relu(signal, lambda: gather_windows(
                model.pre_activations[below.name], image, *windows_on(below.resolution)[:2]) > 0, rule)
            signal = tf.pad(signal, [[0, 0], [1, 1], [1, 1], [0, 0]])
            top, left, side, frame = top - 1, left - 1, side + 2, None
            signal = transposed_conv_as_forward(signal, model.transposed_filters[below.name])
            signal *= windows_on(below.resolution)[2]
        return signal, tf.stack([top, left], 1)


class PairProjector:
    """Max projections of explicit (image, channel) pairs of one layer, windowed, for a batch of images:
    what a scan needs (each image's own channels), where :class:`Sweep` projects the same channels of every
    image. Feed ``pairs`` (M, 2) int64 (image index, channel) and the images; fetch :attr:`outputs`."""

    def __init__(self, model, layer, rule="deconvnet"):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")
        self.model, self.rule, self.layer = model, rule, get_layer(layer)
        with model.graph.as_default(), tf.device(model.placement.compute), \
                tf.name_scope(f"pairs_{rule}_{self.layer.name}"):
            self.pairs = tf.compat.v1.placeholder(tf.int64, [None, 2], name="pairs")
            activation = tf.transpose(model.activations[self.layer.name], [0, 3, 1, 2])
            maps = tf.gather_nd(activation, self.pairs)
            value, position = first_maximum(maps)
            windows, origins = windowed_max_projections(model, rule, self.layer, self.pairs[:, 0], self.pairs[:, 1],
                                                        value, position)
            self.outputs = {"maps": maps, "norm": tf.norm(maps, axis=[1, 2]), "value": value, "position": position,
                            "windows": windows, "origins": origins}


class Sweep:
    """Seeds for ``layers`` and the bundled backward sweep that projects them all to pixel space.

    Feeds (placeholders with defaults): ``top_k[layer]`` (scalar, default 0) picks, per image, the
    channels with the largest L2 activation norm (ties: lower index first, as ``tf.math.top_k``);
    ``explicit[layer]`` (M,) adds these channels for every image. Fetches: ``reconstructions``
    (N·S, 224, 224, 3) image-major, and in the same order ``seed_layer`` (index into ``layers``),
    ``seed_image``, ``seed_channel``, ``seed_norm``, ``seed_kind`` (MAP_SEED or MAX_SEED),
    ``seed_value`` and ``seed_position`` (the first maximum of the pair's map: its value and flat index);
    per layer the pairs' own activation maps ``seed_maps[layer]`` (N·S_layer, h, w), image-major, ranked
    pairs before explicit ones. ``with_map`` and ``with_max`` (booleans, default True and False) say which
    kinds each pair seeds. ``pairs[layer]``: the pairs' ``image``, ``channel``, ``norm``, ``value`` and
    ``position``, in the order of ``seed_maps[layer]``. ``channels[layer]`` (N, pairs per image) are the chosen
    channels, ranked then explicit: feeding it picks the pairs instead (:mod:`visnet.sweep_chunks`).

    Windowed (the default), the dense rows are the map seeds only, and per layer ``max_windows[layer]``
    (P, side, side, 3) holds the max projections of its P pairs (none unless ``with_max``) in pair order,
    each on the input window whose top-left corner is ``max_origins[layer]`` (P, 2) (row, column; negative
    or past the image where the field runs off it, with zeros there); side is the layer's receptive field.
    With ``windowed=False`` the dense rows hold both kinds, the map seed of a pair before its max seed.
    """

    def __init__(self, model, layers, rule="deconvnet", windowed=True):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")
        self.model, self.rule, self.windowed = model, rule, windowed
        self.layers = [get_layer(name).name for name in layers]
        self.top_k, self.explicit, self.seed_maps, self.pairs, self.channels = {}, {}, {}, {}, {}
        self.max_windows, self.max_origins, self._quadrants, self._max_seeds = {}, {}, {}, {}
        with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope(f"sweep_{rule}"):
            self.with_map = tf.compat.v1.placeholder_with_default(True, [], name="with_map")
            self.with_max = tf.compat.v1.placeholder_with_default(False, [], name="with_max")
            self._build()

    def seed_feed(self, seed) -> dict:
        """The feed that makes every pair seed ``seed`` ("map", "max" or "both")."""
        seed = check_seed(seed)
        return {self.with_map: seed != "max", self.with_max: seed != "map"}

    def _seeds(self, layer):
        """(maps, image, channel, norm, layer index, kind, value, position) of the seeds that start at
        ``layer``."""
        with tf.name_scope(f"seeds_{layer.name}"):
            activation = self.model.activations[layer.name]
            top_k = tf.compat.v1.placeholder_with_default(0, [], name="top_k")
            explicit = tf.compat.v1.placeholder_with_default(tf.zeros([0], tf.int64), [None], name="explicit")
            self.top_k[layer.name], self.explicit[layer.name] = top_k, explicit
            norms = tf.norm(activation, axis=[1, 2])  # (N, C): L2 norm of each activation map
            _, ranked = tf.math.top_k(norms, k=top_k, sorted=True)
            images = tf.shape(activation, out_type=tf.int64)[0]
            channel = tf.concat([tf.cast(ranked, tf.int64), tf.tile(explicit[None], tf.stack([images, 1]))], 1)
            self.channels[layer.name] = channel  # (N, pairs per image); fed by visnet.sweep_chunks
            image = tf.broadcast_to(tf.range(images)[:, None], tf.shape(channel, out_type=tf.int64))
            image, channel = tf.reshape(image, [-1]), tf.reshape(channel, [-1])
            pairs = tf.stack([image, channel], 1)
            maps = tf.gather_nd(tf.transpose(activation, [0, 3, 1, 2]), pairs)
            self.seed_maps[layer.name] = maps
            norm = tf.gather_nd(norms, pairs)
            index = tf.fill(tf.shape(image), self.layers.index(layer.name))
            value, position = first_maximum(maps)
            self.pairs[layer.name] = {"image": image, "channel": channel, "norm": norm, "value": value,
                                      "position": position}
            kind = tf.fill(tf.shape(image), MAP_SEED)
            map_seeds = (maps, image, channel, norm, index, kind, value, position)
            if self.windowed:
                # Every pair seeds a window when with_max is fed true, and a dense row when with_map is: all rows
                # or none, taken by one index each (tf.boolean_mask would add some 20 ops per tensor).
                pair_count = tf.shape(image, out_type=tf.int64)[0]
                kept_max = tf.range(pair_count * tf.cast(self.with_max, tf.int64))
                self._max_seeds[layer.name] = tuple(tf.gather(tensor, kept_max)
                                                    for tensor in (image, channel, value, position))
                kept_map = tf.range(pair_count * tf.cast(self.with_map, tf.int64))
                return tuple(tf.gather(tensor, kept_map) for tensor in map_seeds)
            max_seeds = (single_activation(maps, value, position),) + map_seeds[1:5] + (
                tf.fill(tf.shape(image), MAX_SEED), value, position)
            order = per_image_order(images, image, image)
            both = [join_rows(order, a, b) for a, b in zip(map_seeds, max_seeds)]
            keep = tf.logical_or(tf.logical_and(tf.equal(both[5], MAP_SEED), self.with_map),
                                 tf.logical_and(tf.equal(both[5], MAX_SEED), self.with_max))
            kept = tf.where(keep)[:, 0]
            return tuple(tf.gather(tensor, kept) for tensor in both)

    def _build_max_projections(self):
        """The windowed branches, added to the graph when first fetched: a process that projects whole maps
        only never pays for building them (about half a second per layer here)."""
        if self.max_windows or not self._max_seeds:
            return
        with self.model.graph.as_default(), tf.device(self.model.placement.compute), \
                tf.name_scope(f"sweep_{self.rule}_max"):
            for name, seeds in self._max_seeds.items():
                self.max_windows[name], self.max_origins[name] = windowed_max_projections(
                    self.model, self.rule, get_layer(name), *seeds, quadrants=self._quadrants)

    def _build(self):
        model, rule, wanted = self.model, self.rule, set(self.layers)
        images = tf.shape(model.images, out_type=tf.int64)[0]
        deepest = max(LAYERS.index(get_layer(name)) for name in self.layers)
        # The dense signals at the current level: batches (signals (N·S, H, W, C), image index (N·S,)), each
        # image-major, whose per-image join in this order (join_per_image) is the one-run order. One batch while a
        # pool lies below, so that its unpooling scatters rows of every seed at once; from the last pool down
        # (block1, the largest maps) two halves of the seeds and each later layer's seeds on their own: two
        # single-threaded scatters run side by side, and no joined copy of the 224×224 batch is made.
        dense = []
        metadata = None  # (image, channel, norm, layer index) of the dense batches, in the one-run order
        single = None  # single-channel seeds waiting for their first transposed convolution
        rectified = False  # whether the dense signals were rectified before the last unpooling
        for depth in range(deepest, -1, -1):
            layer, pool_below = LAYERS[depth], any(below.is_pool for below in LAYERS[:depth])
            seeds = self._seeds(layer) if layer.name in wanted else None
            with tf.name_scope(f"down_{layer.name}"):
                if layer.is_pool:
                    switches = model.switches[layer.name]
                    if not pool_below:
                        # The images counted from the switches: a per-layer run feeds them, not the images.
                        images = tf.shape(switches, out_type=tf.int64)[0]
                        dense = [half for batch in dense for half in split_seeds(images, *batch)]
                    # ReLU commutes with unpooling: rectify the 4× smaller pooled signal.
                    dense = [(unpool(signal if rule == "gradient" else tf.nn.relu(signal), switches), image)
                             for signal, image in dense]
                    rectified = rule != "gradient"
                    if seeds is not None:
                        maps, image, channel = seeds[:3]
                        single = (unpool_single_channel(maps, switches, image, channel),) + seeds[1:]
                    continue
                if seeds is not None:
                    if single is None:
                        single = seeds
                    else:
                        order = per_image_order(images, single[1], seeds[1])
                        single = tuple(join_rows(order, a, b) for a, b in zip(single, seeds))
                dense = [(transposed_conv(backward_relu(signal, lambda: self._forward_positive(layer, image), rule,
                                                        rectified), model.kernels[layer.name]), image)
                         for signal, image in dense]
                rectified = False
                if single is not None:
                    maps, image, channel = single[:3]
                    signal = backward_relu(  # seed maps are activations: already non-negative
                        maps, lambda: self._forward_positive_single(layer, image, channel), rule,
                        rectified=rule != "gradient")
                    first = single_channel_transposed_conv(signal, channel, model.transposed_filters[layer.name])
                    if not dense:
                        dense, metadata = [(first, image)], single[1:]
                    else:
                        order = per_image_order(images, metadata[0], image)
                        metadata = tuple(join_rows(order, a, b) for a, b in zip(metadata, single[1:]))
                        if pool_below:
                            dense = [(join_per_image(images, dense[0][0], first), join_rows(order, dense[0][1], image))]
                        else:
                            dense.append((first, image))
                    single = None
        signals = [signal for signal, _ in dense]  # one batch: as it is (a per-layer run feeds no images to count)
        self.reconstructions = tf.identity(signals[0] if len(signals) == 1 else join_per_image(images, *signals),
                                           name="reconstructions")
        (self.seed_image, self.seed_channel, self.seed_norm, self.seed_layer, self.seed_kind, self.seed_value,
         self.seed_position) = metadata

    def _forward_positive(self, layer, image_index):
        return tf.gather(self.model.pre_activations[layer.name], image_index) > 0

    def _forward_positive_single(self, layer, image_index, channel):
        pre = tf.transpose(self.model.pre_activations[layer.name], [0, 3, 1, 2])
        return tf.gather_nd(pre, tf.stack([image_index, channel], 1)) > 0

    @property
    def outputs(self) -> dict:
        return self.outputs_for("both")

    def outputs_for(self, seed) -> dict:
        """What to fetch for ``seed``: without the dense rows when only windowed max seeds are wanted, without
        the windows for map seeds, so that the session prunes what the job does not need."""
        seed = check_seed(seed)
        outputs = {"maps": dict(self.seed_maps), "pairs": {name: dict(pairs) for name, pairs in self.pairs.items()}}
        if not (self.windowed and seed == "max"):
            outputs.update({
                "reconstructions": self.reconstructions,
                "layer": self.seed_layer,
                "image": self.seed_image,
                "channel": self.seed_channel,
                "norm": self.seed_norm,
                "kind": self.seed_kind,
            })
        if self.windowed and seed != "map":
            self._build_max_projections()
            outputs.update({"max_windows": dict(self.max_windows), "max_origins": dict(self.max_origins)})
        return outputs

    def forward_dependencies(self) -> list:
        """The forward tensors this sweep reads: feeding their values skips the forward pass."""
        tensors = [self.model.activations[name] for name in self.layers]
        deepest = max(LAYERS.index(get_layer(name)) for name in self.layers)
        for layer in LAYERS[: deepest + 1]:
            if layer.is_pool:
                tensors.append(self.model.switches[layer.name])
            elif self.rule != "deconvnet":
                tensors.append(self.model.pre_activations[layer.name])
        return tensors
