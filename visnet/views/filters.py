"""Filter weights: what each convolution looks for, read straight from the kernels.

``block1_conv1`` sees pixels, so each of its 64 filters (3×3×3) is drawn as a small RGB image, as in
Zeiler & Fergus 2014, Fig. 2 and Krizhevsky et al. 2012, Fig. 3. The network's input is BGR, so the
input-channel axis is reversed to RGB, and each filter is scaled on its own, symmetric around 0:
``0.5 + w / (2 · max|w|)``, so mid-grey is a zero weight. Deeper filters have hundreds of input
channels and no colour meaning: for one output channel, each input channel's 3×3 slice is a tile in a
diverging colour map, with one scale (± max|w| over the whole output filter) for all its tiles.
Any kernel size is drawn the same way, each weight a square block (:func:`tile_side`); a stored model's view
(:mod:`visnet.chain.views`) says which of its convolutions see the photo's colours, and in which order.
"""
import math

import numpy as np

from ..display import normalize_symmetric, to_uint8
from .base import View, ViewResult
from .drawing import MARGIN, colour_bar, diverging, header_height, labelled_grid, resize, stack, titled

RGB_TILE_SIZE = 48  # a 3×3 filter, each weight a 16×16 block
RGB_COLUMNS = 8
INPUT_TILE_SIZE = 24  # a 3×3 slice, each weight an 8×8 block
INPUT_COLUMNS = 16
FILTER_PAD = 4
FILTER_GRID_TOP = header_height(1, 2)  # every filter picture's grid starts here
FILTER_GRID_LEFT = MARGIN
INPUT_NAMES = ("R", "G", "B")
# What a filter's input channels are, for a layer that sees the photo's pixels (pixel_colours): their labels.
COLOUR_INPUTS = {"BGR": INPUT_NAMES, "RGB": INPUT_NAMES, "grey": ("grey",)}


def tile_side(kernel, target: int) -> int:
    """The side of a kernel's tile nearest ``target`` pixels that is a multiple of both of its sides, so that every
    weight is a sharp block (3×3 at 48: 16-pixel blocks)."""
    multiple = math.lcm(*np.asarray(kernel).shape[:2])
    return max(1, round(target / multiple)) * multiple


def size_text(kernel) -> str:
    rows, columns = np.asarray(kernel).shape[:2]
    return f"{rows}×{columns}"


def rgb_filter(kernel, channel: int, bgr: bool = True) -> np.ndarray:
    """Filter ``channel`` of a first-layer kernel (kh, kw, 3, C), its inputs BGR (``bgr``) or RGB, as a kh×kw RGB
    uint8 picture, scaled symmetric around 0 on its own."""
    weights = np.asarray(kernel)[..., channel]
    return to_uint8(normalize_symmetric(weights[:, :, ::-1] if bgr else weights))


def filter_slices(kernel, channel: int, bgr: bool = False) -> np.ndarray:
    """Output filter ``channel`` as (Cin, kh, kw) in [0, 1], one symmetric scale for the whole filter; a
    first-layer filter whose inputs are BGR (``bgr``) has them returned in RGB order."""
    weights = np.asarray(kernel)[..., channel]
    if bgr:
        weights = weights[:, :, ::-1]
    return np.moveaxis(normalize_symmetric(weights), 2, 0)


def rgb_filters_picture(kernel, layer: str = "block1_conv1", bgr: bool = True) -> np.ndarray:
    side = tile_side(kernel, RGB_TILE_SIZE)
    tiles = [resize(rgb_filter(kernel, channel, bgr), side) for channel in range(kernel.shape[3])]
    body = labelled_grid(tiles, [str(channel) for channel in range(len(tiles))], RGB_COLUMNS, FILTER_PAD)
    order = "input reordered BGR → RGB · " if bgr else ""
    return titled(body, title=[f"{layer} · all {kernel.shape[3]} filters as RGB ({size_text(kernel)} each)"],
                  legend=["each filter scaled on its own, symmetric around 0: mid-grey = 0, brightest = max|w|",
                          f"{order}label: filter index"])


def input_slices_picture(kernel, layer: str, channel: int, input_names=None, bgr: bool = False) -> np.ndarray:
    """``input_names``: the input channels' labels (their numbers by default)."""
    slices = filter_slices(kernel, channel, bgr)
    scale = float(np.max(np.abs(kernel[..., channel])))
    names = input_names or [str(index) for index in range(slices.shape[0])]
    tiles = [diverging(resize(piece, tile_side(kernel, INPUT_TILE_SIZE))) for piece in slices]
    body = labelled_grid(tiles, names, INPUT_COLUMNS, FILTER_PAD)
    bar = colour_bar(diverging, f"−{scale:.3g}", f"+{scale:.3g}")
    return titled(stack([body, bar]),
                  title=[f"{layer} · filter {channel}: its {size_text(kernel)} weights on each of {slices.shape[0]} "
                         "input channels"],
                  legend=[f"one scale for the whole filter: blue −{scale:.3g} · white 0 · red +{scale:.3g}",
                          "label: input channel" + (" (RGB order)" if tuple(names) == INPUT_NAMES else " index")])


class FiltersView(View):
    """The learned filters of a conv layer; needs no photo."""

    method = "filters"

    def kernel(self, spec) -> tuple:
        """(kernel (kh, kw, in, out), bias) of the layer ``spec``; a ValueError for a layer without filters."""
        if spec.is_pool:
            raise ValueError(f"{spec.name} is a pooling layer and has no filters; choose a conv layer "
                             f"such as block{spec.block}_conv1")
        return self.engine.weights.convs[spec.name]

    def pixel_colours(self, spec):
        """What the layer's input channels are when it sees the photo's pixels: "BGR", "RGB" or "grey"
        (:data:`COLOUR_INPUTS`); None for a layer deeper in."""
        return "BGR" if spec.name == "block1_conv1" else None

    def compute(self, rgb, progress, layer="block1_conv1", channel=0) -> ViewResult:
        spec = self.layers.get_layer(layer)
        kernel, bias = self.kernel(spec)
        channel = self.layers.check_channel(spec.name, channel)[1]
        colours = self.pixel_colours(spec)
        progress("drawing filters", 0, 1)
        images, captions = {}, {}
        data = {"layer": spec.name, "channel": channel, "in_channels": int(kernel.shape[2]),
                "bias": float(bias[channel]), "scale": float(np.max(np.abs(kernel[..., channel]))),
                "weight_range": [float(kernel[..., channel].min()), float(kernel[..., channel].max())],
                "domain": "symmetric around 0, one scale (max|w|) per output filter"}
        if colours in ("BGR", "RGB"):
            images["filters_rgb"] = rgb_filters_picture(kernel, spec.name, bgr=colours == "BGR")
            captions["filters_rgb"] = (f"{spec.name}: the {kernel.shape[3]} filters as RGB, each scaled on its own "
                                       "symmetric around 0 (grey = 0)")
            data["rgb_scales"] = [float(value) for value in np.max(np.abs(kernel), axis=(0, 1, 2))]
        stem = f"filter_{channel}"
        images[stem] = input_slices_picture(kernel, spec.name, channel, COLOUR_INPUTS.get(colours),
                                            bgr=colours == "BGR")
        captions[stem] = (f"{spec.name} filter {channel}: {size_text(kernel)} weights per input channel, blue < 0 < "
                          f"red, scale ±{data['scale']:.3g} for the whole filter")
        progress("drawing filters", 1, 1)
        return ViewResult(self.method, images=images, captions=captions, data=data)
