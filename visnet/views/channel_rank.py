"""Channel rank: is a chosen channel among the strongest of its layer for this photo?

The source's hypothesis test: a channel believed to detect something in the photo should have one of
the largest mean activations of its layer. The mean is over the channel's whole map (post-ReLU, so
≥ 0); rank 1 is the largest mean, and ties go to the lower channel index.
"""
import numpy as np
from PIL import Image, ImageDraw

from ..architecture import check_channel, get_layer
from ..preprocessing import to_network_input
from .base import View, ViewResult
from .drawing import (
    BACKGROUND,
    LABEL_FONT_SIZE,
    SECONDARY_TEXT_COLOUR,
    TEXT_COLOUR,
    check_photo,
    draw_text,
    text_width,
    titled,
)

TOP = 15
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


def rank_order(means) -> np.ndarray:
    """Channel indices from the largest mean to the smallest, ties by lower index first."""
    return np.argsort(-np.asarray(means, dtype=np.float64), kind="stable")


def channel_rank(means, channel: int) -> int:
    """1-based rank of ``channel``: 1 is the largest mean (ties: lower index ranks higher)."""
    return int(np.flatnonzero(rank_order(means) == channel)[0]) + 1


def rank_chart(means, channel: int, layer: str) -> np.ndarray:
    """All channels' means as bars sorted from largest to smallest, the chosen one in red, the top 15
    in dark blue, the rest pale; a dashed line marks the top-15 cut."""
    order = rank_order(means)
    bar = max(1, PLOT_WIDTH // len(means))
    plot_width = bar * len(means)
    peak = float(np.max(means)) or 1.0
    width, height = AXIS_GUTTER + plot_width + 16, TOP_GUTTER + PLOT_HEIGHT + BOTTOM_GUTTER
    chart = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(chart)
    base = TOP_GUTTER + PLOT_HEIGHT
    for position, index in enumerate(order):
        colour = CHOSEN_COLOUR if index == channel else TOP_COLOUR if position < TOP else OTHER_COLOUR
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
    cut = AXIS_GUTTER + min(TOP, len(means)) * bar
    for y in range(TOP_GUTTER, base, 6):
        draw.line([(cut, y), (cut, min(y + 3, base))], fill=SECONDARY_TEXT_COLOUR)
    draw_text(draw, (cut + 3, TOP_GUTTER), f"top {TOP}", LABEL_FONT_SIZE, SECONDARY_TEXT_COLOUR)
    draw.line([(AXIS_GUTTER - 1, TOP_GUTTER), (AXIS_GUTTER - 1, base)], fill=TEXT_COLOUR)
    draw.line([(AXIS_GUTTER - 1, base), (AXIS_GUTTER + plot_width, base)], fill=TEXT_COLOUR)
    for value, y in ((peak, TOP_GUTTER), (0.0, base - LABEL_FONT_SIZE)):
        text = f"{value:.3g}"
        draw_text(draw, (AXIS_GUTTER - 6 - text_width(text, LABEL_FONT_SIZE), y), text, LABEL_FONT_SIZE)
    axis = f"{len(means)} channels of {layer}, sorted by mean activation (largest first) →"
    draw_text(draw, (AXIS_GUTTER, base + 6), axis, LABEL_FONT_SIZE, SECONDARY_TEXT_COLOUR)
    return np.asarray(chart, dtype=np.uint8).copy()


class ChannelRankView(View):
    """Mean activation, rank and top-15 membership of one channel for one photo."""

    method = "channel-rank"

    def compute(self, rgb, progress, layer="block5_conv3", channel=0) -> ViewResult:
        photo = check_photo(rgb, self.method)
        spec = get_layer(layer)
        channel = check_channel(spec.name, channel)[1]
        model = self.engine.model
        progress("forward pass", 0, 1)
        activation = model.run(model.activations[spec.name], {model.images: to_network_input(photo)[None]})[0]
        progress("forward pass", 1, 1)
        means = channel_means(activation)
        order = rank_order(means)
        rank = channel_rank(means, channel)
        in_top = rank <= TOP
        verdict = f"in the top {TOP}" if in_top else f"not in the top {TOP}"
        chart = titled(rank_chart(means, channel, spec.name),
                       title=[f"{spec.name} · channel {channel}: mean {means[channel]:.4g}, "
                              f"rank {rank} of {len(means)} ({verdict})"],
                       legend=["bars: every channel's mean activation over the map, sorted largest first; "
                               f"red: channel {channel}; dark blue: the rest of the top {TOP}"])
        return ViewResult(
            self.method,
            images={"channel_rank": chart},
            captions={"channel_rank": f"{spec.name}: all {len(means)} channels' mean activations sorted "
                                      f"largest first, channel {channel} in red (rank {rank}, {verdict})"},
            data={"layer": spec.name, "channel": channel, "mean": float(means[channel]), "rank": rank,
                  "channels": len(means), "in_top_15": in_top,
                  "top_15": [{"channel": int(index), "mean": float(means[index])} for index in order[:TOP]],
                  "means": [float(value) for value in means]},
        )
