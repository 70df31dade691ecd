"""Filter weights: what each convolution looks for, read straight from the kernels.

``block1_conv1`` sees pixels, so each of its 64 filters (3×3×3) is drawn as a small RGB image, as in
Zeiler & Fergus 2014, Fig. 2 and Krizhevsky et al. 2012, Fig. 3. The network's input is BGR, so the
input-channel axis is reversed to RGB, and each filter is scaled on its own, symmetric around 0:
``0.5 + w / (2 · max|w|)``, so mid-grey is a zero weight. Deeper filters have hundreds of input
channels and no colour meaning: for one output channel, each input channel's 3×3 slice is a tile in a
diverging colour map, with one scale (± max|w| over the whole output filter) for all its tiles.
"""
import numpy as np

from ..architecture import check_channel, get_layer
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


def rgb_filter(kernel, channel: int) -> np.ndarray:
    """Filter ``channel`` of a first-layer kernel (3, 3, 3 BGR, C) as a 3×3 RGB uint8 picture, scaled
    symmetric around 0 on its own."""
    return to_uint8(normalize_symmetric(np.asarray(kernel)[:, :, ::-1, channel]))


def filter_slices(kernel, channel: int) -> np.ndarray:
    """Output filter ``channel`` as (Cin, 3, 3) in [0, 1], one symmetric scale for the whole filter.
    A first-layer filter's input channels are returned in RGB order."""
    weights = np.asarray(kernel)[..., channel]
    if weights.shape[2] == 3:
        weights = weights[:, :, ::-1]
    return np.moveaxis(normalize_symmetric(weights), 2, 0)


def rgb_filters_picture(kernel) -> np.ndarray:
    tiles = [resize(rgb_filter(kernel, channel), RGB_TILE_SIZE) for channel in range(kernel.shape[3])]
    body = labelled_grid(tiles, [str(channel) for channel in range(len(tiles))], RGB_COLUMNS, FILTER_PAD)
    return titled(body, title=[f"block1_conv1 · all {kernel.shape[3]} filters as RGB (3×3 each)"],
                  legend=["each filter scaled on its own, symmetric around 0: mid-grey = 0, brightest = max|w|",
                          "input reordered BGR → RGB · label: filter index"])


def input_slices_picture(kernel, layer: str, channel: int) -> np.ndarray:
    slices = filter_slices(kernel, channel)
    scale = float(np.max(np.abs(kernel[..., channel])))
    names = INPUT_NAMES if slices.shape[0] == 3 else [str(index) for index in range(slices.shape[0])]
    tiles = [diverging(resize(piece, INPUT_TILE_SIZE)) for piece in slices]
    body = labelled_grid(tiles, names, INPUT_COLUMNS, FILTER_PAD)
    bar = colour_bar(diverging, f"−{scale:.3g}", f"+{scale:.3g}")
    return titled(stack([body, bar]),
                  title=[f"{layer} · filter {channel}: its 3×3 weights on each of {slices.shape[0]} input channels"],
                  legend=[f"one scale for the whole filter: blue −{scale:.3g} · white 0 · red +{scale:.3g}",
                          "label: input channel" + (" (RGB order)" if slices.shape[0] == 3 else " index")])


class FiltersView(View):
    """The learned filters of a conv layer; needs no photo."""

    method = "filters"

    def compute(self, rgb, progress, layer="block1_conv1", channel=0) -> ViewResult:
        spec = get_layer(layer)
        if spec.is_pool:
            raise ValueError(f"{spec.name} is a pooling layer and has no filters; choose a conv layer "
                             f"such as block{spec.block}_conv1")
        channel = check_channel(spec.name, channel)[1]
        kernel, bias = self.engine.weights.convs[spec.name]
        progress("drawing filters", 0, 1)
        images, captions = {}, {}
        data = {"layer": spec.name, "channel": channel, "in_channels": int(kernel.shape[2]),
                "bias": float(bias[channel]), "scale": float(np.max(np.abs(kernel[..., channel]))),
                "weight_range": [float(kernel[..., channel].min()), float(kernel[..., channel].max())],
                "domain": "symmetric around 0, one scale (max|w|) per output filter"}
        if spec.name == "block1_conv1":
            images["filters_rgb"] = rgb_filters_picture(kernel)
            captions["filters_rgb"] = ("block1_conv1: the 64 filters as RGB, each scaled on its own symmetric "
                                       "around 0 (grey = 0)")
            data["rgb_scales"] = [float(value) for value in np.max(np.abs(kernel), axis=(0, 1, 2))]
        stem = f"filter_{channel}"
        images[stem] = input_slices_picture(kernel, spec.name, channel)
        captions[stem] = (f"{spec.name} filter {channel}: 3×3 weights per input channel, blue < 0 < red, "
                          f"scale ±{data['scale']:.3g} for the whole filter")
        progress("drawing filters", 1, 1)
        return ViewResult(self.method, images=images, captions=captions, data=data)
