"""Feature maps: every channel of one layer for one image, and every layer's output at a glance.

The activations are the forward pass's own outputs (Zeiler & Fergus 2014 show the top feature maps
next to their projections; here a whole layer is laid out). Two colour domains, stated on the picture:

* ``per-channel``: each channel from 0 (black) to its own maximum (pale yellow), so that weak channels
  still show their pattern;
* ``shared``: every channel from 0 to the maximum over the whole layer, so that tiles compare.

The overview takes, for each stage of the network, the channel with the largest mean output (for a
convolution the same channel before and after its ReLU) and shows the pre-ReLU output in a diverging
colour map symmetric around 0, the ReLU and pool outputs from 0 to their maximum.
"""
import numpy as np

from ..architecture import LAYERS, get_layer
from ..display import colormap, normalize_symmetric
from ..preprocessing import to_network_input
from .base import View, ViewResult
from .drawing import (
    LABEL_HEIGHT,
    MARGIN,
    check_photo,
    colour_bar,
    diverging,
    header_height,
    labelled_grid,
    resize,
    stack,
    titled,
)

FEATURE_TILE_SIZE = 56  # every resolution of VGG16 (224 … 7) is a multiple or a divisor of 56
FEATURE_COLUMNS = 16
FEATURE_PAD = 4
FEATURE_GRID_TOP = header_height(1, 2)  # the grid's top-left corner in the picture
FEATURE_GRID_LEFT = MARGIN
OVERVIEW_TILE_SIZE = 112
OVERVIEW_PAD = 6
OVERVIEW_LABEL_HEIGHT = 2 * LABEL_HEIGHT
SCALES = ("per-channel", "shared")


def feature_tile(channel: int) -> tuple:
    """(left, top, size) of channel's square tile in the feature-maps picture, in pixels: the layer explorer
    shows each tile as a thumbnail cut from that one picture."""
    row, column = divmod(channel, FEATURE_COLUMNS)
    return (FEATURE_GRID_LEFT + column * (FEATURE_TILE_SIZE + FEATURE_PAD),
            FEATURE_GRID_TOP + row * (FEATURE_TILE_SIZE + LABEL_HEIGHT + FEATURE_PAD), FEATURE_TILE_SIZE)


def channel_figures(maps) -> list:
    """Per channel of maps (h, w, C), post-ReLU: its index, L2 norm (the deconvnet's ranking measure), mean,
    maximum and tile in the feature-maps picture."""
    maps = np.asarray(maps, dtype=np.float64)
    norms, means, peaks = np.sqrt((maps ** 2).sum(axis=(0, 1))), maps.mean(axis=(0, 1)), maps.max(axis=(0, 1))
    return [{"channel": channel, "norm": float(norms[channel]), "mean": float(means[channel]),
             "max": float(peaks[channel]), "tile": list(feature_tile(channel))}
            for channel in range(maps.shape[2])]


def channel_units(maps, scale: str) -> np.ndarray:
    """Activations (h, w, C) ≥ 0 mapped to [0, 1] per channel or with one scale for the layer.
    A channel (or layer) that is silent everywhere maps to 0."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    maps = np.asarray(maps, dtype=np.float64)
    peaks = maps.max(axis=(0, 1)) if scale == "per-channel" else np.full(maps.shape[2], maps.max())
    safe = np.where(peaks > 0, peaks, 1.0)
    return np.where(peaks > 0, maps / safe, 0.0)


def feature_maps_picture(maps, layer: str, scale: str) -> np.ndarray:
    """Every channel of ``maps`` (h, w, C) as a FEATURE_TILE_SIZE tile labelled with its index,
    FEATURE_COLUMNS to a row, under a title and the statement of the colour domain."""
    units = channel_units(maps, scale)
    tiles = [colormap(resize(units[..., channel], FEATURE_TILE_SIZE)) for channel in range(units.shape[2])]
    body = labelled_grid(tiles, [str(channel) for channel in range(len(tiles))], FEATURE_COLUMNS, FEATURE_PAD)
    if scale == "per-channel":
        domain = "per-channel scale: each tile from 0 (black) to that channel's own maximum (yellow)"
        bar = colour_bar(colormap, "0", "channel max")
    else:
        domain = f"shared scale: every tile from 0 (black) to the layer's maximum {float(np.max(maps)):.4g} (yellow)"
        bar = colour_bar(colormap, "0", f"{float(np.max(maps)):.4g}")
    height, width, channels = np.shape(maps)
    return titled(stack([body, bar]),
                  title=[f"{layer} · {channels} channels of {height}×{width}"],
                  legend=[domain, "label: channel index · colour map: inferno"])


def overview_stages(activations: dict, pre_activations: dict) -> list:
    """Per block, per stage: (layer, stage, channel, map) with stage "pre-ReLU", "ReLU" or "pool",
    the channel being the one with the largest mean output at that stage."""
    blocks = {}
    for layer in LAYERS:
        output = activations[layer.name]
        channel = int(np.argmax(output.mean(axis=(0, 1))))
        stages = blocks.setdefault(layer.block, [])
        if layer.is_pool:
            stages.append((layer.name, "pool", channel, output[..., channel]))
        else:
            stages.append((layer.name, "pre-ReLU", channel, pre_activations[layer.name][..., channel]))
            stages.append((layer.name, "ReLU", channel, output[..., channel]))
    return [blocks[block] for block in sorted(blocks)]


def overview_picture(blocks) -> np.ndarray:
    rows = []
    for stages in blocks:
        tiles, labels = [], []
        for name, stage, channel, values in stages:
            if stage == "pre-ReLU":
                tiles.append(diverging(resize(normalize_symmetric(values), OVERVIEW_TILE_SIZE)))
            else:
                tiles.append(colormap(resize(channel_units(values[..., None], "per-channel")[..., 0],
                                             OVERVIEW_TILE_SIZE)))
            labels.append(f"{name}\n{stage} · ch {channel}")
        rows.append(labelled_grid(tiles, labels, len(tiles), OVERVIEW_PAD, OVERVIEW_LABEL_HEIGHT))
    legend_bars = stack([colour_bar(diverging, "−max|x|", "+max|x|  (pre-ReLU)"),
                         colour_bar(colormap, "0", "max  (ReLU, pool)")], gap=4)
    return titled(stack(rows + [legend_bars], gap=OVERVIEW_PAD),
                  title=["Every layer's output: the strongest channel of each stage"],
                  legend=["per stage the channel with the largest mean output (a conv: the same channel "
                          "before and after its ReLU)",
                          "pre-ReLU: blue < 0 < red, symmetric around 0 per tile · ReLU and pool: 0 to the "
                          "tile's maximum (inferno)"])


class FeatureMapsView(View):
    """Every channel of a chosen layer, and an overview of all layers' outputs, for one photo."""

    method = "feature-maps"

    def compute(self, rgb, progress, layer="block1_conv1", scale="per-channel") -> ViewResult:
        photo = check_photo(rgb, self.method)
        layer = get_layer(layer).name
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
        model = self.engine.model
        progress("forward pass", 0, 1)
        fetched = model.run({"activations": dict(model.activations), "pre": dict(model.pre_activations)},
                            {model.images: to_network_input(photo)[None]})
        progress("forward pass", 1, 1)
        activations = {name: values[0] for name, values in fetched["activations"].items()}
        pre_activations = {name: values[0] for name, values in fetched["pre"].items()}
        maps = activations[layer]
        progress("drawing", 0, 2)
        grid_picture = feature_maps_picture(maps, layer, scale)
        blocks = overview_stages(activations, pre_activations)
        progress("drawing", 1, 2)
        overview = overview_picture(blocks)
        progress("drawing", 2, 2)
        domain = ("per-channel: 0 to each channel's maximum" if scale == "per-channel"
                  else f"shared: 0 to the layer's maximum {float(maps.max()):.6g}")
        return ViewResult(
            self.method,
            images={"feature_maps": grid_picture, "overview": overview},
            captions={"feature_maps": f"{layer}: every channel ({maps.shape[2]}), colour {domain}",
                      "overview": "every stage's strongest channel: pre-ReLU (diverging, symmetric around 0), "
                                  "ReLU and pool (0 to max)"},
            data={
                "layer": layer,
                "scale": scale,
                "domain": domain,
                "resolution": list(maps.shape[:2]),
                "channels": channel_figures(maps),
                "overview": [{"layer": name, "stage": stage, "channel": channel,
                              "min": float(values.min()), "max": float(values.max()),
                              "mean": float(values.mean())}
                             for stages in blocks for name, stage, channel, values in stages],
            },
        )
