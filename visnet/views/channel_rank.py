"""Channel rank: is a chosen channel among the strongest of its layer for this photo?

The source's hypothesis test: a channel believed to detect something in the photo should have one of
the largest mean activations of its layer. ``measure`` says how much a channel fires
(:data:`visnet.methods.MEASURES`): the mean of its map after the ReLU (the default, ≥ 0), the L2 norm of
that map (the deconvnet's top-k rule), or the mean before the ReLU (activation maximisation's objective,
so that "the channel activation max drove ranks first on its picture" can be checked). A pool layer's
pre-ReLU map is the max pool of the preceding conv's pre-ReLU map (ReLU and max commute), as in
activation maximisation. Rank 1 is the largest value, and ties go to the lower channel index.
A stored model's view (:mod:`visnet.chain.views`) reads its own maps, by the same rule for the pre-ReLU one.
"""
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from ..architecture import LAYERS, get_layer
from ..methods import DEFAULT_MEASURE, MEASURES
from .base import View, ViewResult
from .drawing import BACKGROUND, LABEL_FONT_SIZE, SECONDARY_TEXT_COLOUR, TEXT_COLOUR, draw_text, text_width, titled

TOP = 15  # the source's test: among the 15 strongest channels (VGG16's layers have 64 to 512)
PLOT_HEIGHT = 240
PLOT_WIDTH = 1024  # bars are PLOT_WIDTH // channels pixels wide (at least 1)
AXIS_GUTTER = 64  # left of the plot: the value labels
TOP_GUTTER = 22  # above the plot: the chosen channel's label
BOTTOM_GUTTER = 22  # below the plot: the axis label
CHOSEN_COLOUR = (214, 39, 40)
TOP_COLOUR = (49, 104, 142)
OTHER_COLOUR = (170, 190, 205)


def channel_means(activation) -> np.ndarray:
    """Mean of each channel's map: (h, w, C) → (C,) float64."""
    return np.asarray(activation, dtype=np.float64).mean(axis=(0, 1))


def channel_norms(activation) -> np.ndarray:
    """L2 norm of each channel's map: (h, w, C) → (C,) float64."""
    return np.sqrt(np.square(np.asarray(activation, dtype=np.float64)).sum(axis=(0, 1)))


def measured_map(model, layer: str, measure: str):
    """The map tensor (N, h, w, C) that ``measure`` reduces: the layer's activation, or its pre-ReLU response."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    if measure != "pre-relu-mean":
        return model.activations[layer]
    spec = get_layer(layer)
    if not spec.is_pool:
        return model.pre_activations[layer]
    cache = vars(model).setdefault("view_ops", {})
    if ("pre-relu-pool", layer) not in cache:
        conv = LAYERS[LAYERS.index(spec) - 1].name
        with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope("channel_rank"):
            cache[("pre-relu-pool", layer)] = tf.nn.max_pool2d(model.pre_activations[conv], 2, 2, "VALID")
    return cache[("pre-relu-pool", layer)]


def measure_channels(maps, measure: str) -> np.ndarray:
    """(h, w, C) map of :func:`measured_map` (or a flat layer's (C,), one value per channel) → (C,) float64 values
    of ``measure``."""
    maps = np.asarray(maps)
    if maps.ndim == 1:
        maps = maps[None, None]
    return channel_norms(maps) if measure == "l2-norm" else channel_means(maps)


def rank_order(means) -> np.ndarray:
    """Channel indices from the largest mean to the smallest, ties by lower index first."""
    return np.argsort(-np.asarray(means, dtype=np.float64), kind="stable")


def channel_rank(means, channel: int) -> int:
    """1-based rank of ``channel``: 1 is the largest mean (ties: lower index ranks higher)."""
    return int(np.flatnonzero(rank_order(means) == channel)[0]) + 1


def top_count(channels: int) -> int:
    """How many of a layer's strongest channels count as its top: TOP, or a quarter of a layer of fewer than
    4 · TOP channels (a stored model's narrow layer, where TOP would hold every channel); at least one."""
    return max(1, min(TOP, channels // 4))


def rank_chart(means, channel: int, layer: str, measure: str = DEFAULT_MEASURE, strongest: int = TOP) -> np.ndarray:
    """All channels' values of ``measure`` as bars sorted from largest to smallest, the chosen one in red, the top
    in dark blue, the rest pale; a dashed line marks the cut after the ``strongest``."""
    order = rank_order(means)
    bar = max(1, PLOT_WIDTH // len(means))
    plot_width = bar * len(means)
    peak = float(np.max(means)) if float(np.max(means)) > 0 else 1.0  # pre-ReLU means may all be negative
    width, height = AXIS_GUTTER + plot_width + 16, TOP_GUTTER + PLOT_HEIGHT + BOTTOM_GUTTER
    chart = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(chart)
    base = TOP_GUTTER + PLOT_HEIGHT
    for position, index in enumerate(order):
        colour = CHOSEN_COLOUR if index == channel else TOP_COLOUR if position < strongest else OTHER_COLOUR
        top = base - int(round(PLOT_HEIGHT * max(float(means[index]), 0.0) / peak))
        left = AXIS_GUTTER + position * bar
        if top < base:
            draw.rectangle([left, top, left + bar - 1, base - 1], fill=colour)
    position = int(np.flatnonzero(order == channel)[0])
    left = AXIS_GUTTER + position * bar
    # the chosen bar may be too thin to see: a red tick under the axis marks it too
    draw.rectangle([left, base + 1, left + max(bar, 2) - 1, base + 5], fill=CHOSEN_COLOUR)
    label = f"ch {channel}: rank {position + 1}"
    label_width = text_width(label, LABEL_FONT_SIZE)
    label_left = min(max(AXIS_GUTTER, left + bar // 2 - label_width // 2), width - label_width - 2)
    draw_text(draw, (label_left, 3), label, LABEL_FONT_SIZE, CHOSEN_COLOUR)
    bar_top = base - int(round(PLOT_HEIGHT * max(float(means[channel]), 0.0) / peak))
    for y in range(TOP_GUTTER - 4, bar_top - 2, 4):  # a dotted leader from the label down to the bar
        draw.point((left + bar // 2, y), fill=CHOSEN_COLOUR)
    cut = AXIS_GUTTER + min(strongest, len(means)) * bar
    for y in range(TOP_GUTTER, base, 6):
        draw.line([(cut, y), (cut, min(y + 3, base))], fill=SECONDARY_TEXT_COLOUR)
    draw_text(draw, (cut + 3, TOP_GUTTER), f"top {strongest}", LABEL_FONT_SIZE, SECONDARY_TEXT_COLOUR)
    draw.line([(AXIS_GUTTER - 1, TOP_GUTTER), (AXIS_GUTTER - 1, base)], fill=TEXT_COLOUR)
    draw.line([(AXIS_GUTTER - 1, base), (AXIS_GUTTER + plot_width, base)], fill=TEXT_COLOUR)
    for value, y in ((peak, TOP_GUTTER), (0.0, base - LABEL_FONT_SIZE)):
        text = f"{value:.3g}"
        draw_text(draw, (AXIS_GUTTER - 6 - text_width(text, LABEL_FONT_SIZE), y), text, LABEL_FONT_SIZE)
    axis = f"{len(means)} channels of {layer}, sorted by {measure} (largest first; bars below 0 are not drawn) →"
    draw_text(draw, (AXIS_GUTTER, base + 6), axis, LABEL_FONT_SIZE, SECONDARY_TEXT_COLOUR)
    return np.asarray(chart, dtype=np.uint8).copy()


class ChannelRankView(View):
    """Mean activation, rank and top-15 membership of one channel for one photo."""

    method = "channel-rank"

    def measured_map(self, layer: str, measure: str):
        """The map tensor of ``layer`` that ``measure`` reduces (:func:`measured_map`)."""
        return measured_map(self.engine.model, layer, measure)

    def compute(self, rgb, progress, layer="block5_conv3", channel=0, measure=DEFAULT_MEASURE) -> ViewResult:
        photo = self.photo(rgb)
        spec = self.layers.get_layer(layer)
        channel = self.layers.check_channel(spec.name, channel)[1]
        model = self.engine.model
        maps = self.measured_map(spec.name, measure)
        progress("forward pass", 0, 1)
        values = measure_channels(model.run(maps, {model.images: self.network_input(photo)[None]})[0], measure)
        progress("forward pass", 1, 1)
        order = rank_order(values)
        rank = channel_rank(values, channel)
        top = top_count(len(values))
        in_top = rank <= top
        verdict = f"in the top {top}" if in_top else f"not in the top {top}"
        chart = titled(rank_chart(values, channel, spec.name, measure, top),
                       title=[f"{spec.name} · channel {channel}: {measure} {values[channel]:.4g}, "
                              f"rank {rank} of {len(values)} ({verdict})"],
                       legend=[f"bars: every channel's {measure}, the {MEASURES[measure].split(' (')[0]}, sorted "
                               f"largest first; red: channel {channel}; dark blue: the rest of the top {top}"])
        return ViewResult(
            self.method,
            images={"channel_rank": chart},
            captions={"channel_rank": f"{spec.name}: all {len(values)} channels' {measure} sorted largest first, "
                                      f"channel {channel} in red (rank {rank}, {verdict})"},
            data={"layer": spec.name, "channel": channel, "measure": measure, "measure_words": MEASURES[measure],
                  "value": float(values[channel]), "rank": rank, "channels": len(values), f"in_top_{top}": in_top,
                  f"top_{top}": [{"channel": int(index), "value": float(values[index])} for index in order[:top]],
                  "values": [float(value) for value in values]},
        )
