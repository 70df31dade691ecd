"""The VGG16 layout (Simonyan & Zisserman 2015, configuration D) with Keras' stable layer names.

Every other module addresses layers by these names: ``block1_conv1`` … ``block5_pool`` for the
convolutional part and ``fc1``, ``fc2``, ``predictions`` for the classifier top.
"""
import operator
from dataclasses import dataclass

INPUT_SIZE = 224
INPUT_CHANNELS = 3
CLASSIFIER_LAYERS = (("fc1", 7 * 7 * 512, 4096), ("fc2", 4096, 4096), ("predictions", 4096, 1000))


@dataclass(frozen=True)
class Layer:
    """One visualisable layer: a 3×3 'same' convolution followed by ReLU, or a 2×2/2 max pool."""

    name: str
    kind: str  # "conv" or "pool"
    block: int
    in_channels: int
    channels: int
    resolution: int  # height and width of this layer's output for a 224×224 input

    @property
    def is_pool(self) -> bool:
        return self.kind == "pool"


# Convolutions per block: VGG16 is configuration D, VGG19 configuration E; both have VGG16's widths, pools and top.
CONVS_PER_BLOCK = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def vgg_layers(convs_per_block=CONVS_PER_BLOCK["vgg16"]) -> tuple:
    """The visualisable layers of a VGG with ``convs_per_block`` 3×3 convolutions in each of its five blocks."""
    widths = (64, 128, 256, 512, 512)
    layers, in_channels, resolution = [], INPUT_CHANNELS, INPUT_SIZE
    for block, (width, count) in enumerate(zip(widths, convs_per_block), start=1):
        for index in range(1, count + 1):
            layers.append(Layer(f"block{block}_conv{index}", "conv", block, in_channels, width, resolution))
            in_channels = width
        resolution //= 2
        layers.append(Layer(f"block{block}_pool", "pool", block, width, width, resolution))
    return tuple(layers)


LAYERS = vgg_layers()
LAYER_NAMES = tuple(layer.name for layer in LAYERS)
CONV_LAYERS = tuple(layer for layer in LAYERS if layer.kind == "conv")
POOL_LAYERS = tuple(layer for layer in LAYERS if layer.kind == "pool")
BY_NAME = {layer.name: layer for layer in LAYERS}


def get_layer(name: str) -> Layer:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown layer {name!r}; expected one of {', '.join(LAYER_NAMES)}") from None


def check_channel(layer_name: str, channel) -> tuple:
    """``(layer name, channel)`` when ``channel`` is one of the layer's channels; else ValueError naming the
    layer's range. The one channel-range check of the deconvnet, the views and the option parsers."""
    layer = get_layer(layer_name)
    number = channel_number(channel)
    if number is None or not 0 <= number < layer.channels:
        raise ValueError(f"channel {channel} is out of range for {layer.name}, which has channels "
                         f"0 to {layer.channels - 1}")
    return layer.name, number


def channel_number(channel):
    """``channel`` as an int (NumPy's ints too), or None for anything else (a bool, a float, text)."""
    try:
        return None if isinstance(channel, bool) else operator.index(channel)
    except TypeError:
        return None


input_size = INPUT_SIZE  # the option parsers' name for it (visnet.methods; a stored model's ChainLayers.input_size)


def option_defaults(method: str) -> dict:
    """Defaults that replace a method's own (visnet.methods): none, VGG16's are written for it. A stored model's
    :meth:`visnet.chain.catalogue.ChainLayers.option_defaults` has its own."""
    return {}


def resolve_layers(spec) -> list:
    """Turn ``"all"``, ``"pools"``, ``"block3_pool,block5_conv3"`` or a list of names into layer
    names in network order, without duplicates. Raises ValueError naming the unknown layer."""
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key == "all":
            return list(LAYER_NAMES)
        if key == "pools":
            return [layer.name for layer in POOL_LAYERS]
        names = [part.strip() for part in spec.split(",") if part.strip()]
    else:
        names = [str(part).strip() for part in spec]
    if not names:
        raise ValueError("no layers requested; expected 'all', 'pools' or comma-separated layer names")
    wanted = {get_layer(name).name for name in names}
    return [name for name in LAYER_NAMES if name in wanted]


# --- the FLOP model ------------------------------------------------------------------------------
# Dense FLOPs for one 224×224 image, 2 per multiply-add. Only the 3×3 convolutions and the classifier's
# matrix products count: pools, biases and ReLUs are negligible beside them. The benchmarks, the scan's
# cost estimate and the occlusion view all count with these functions.

def conv_flops(layer: Layer, side: int = None) -> int:
    """Dense multiply-add FLOPs (2 per MAC) of one 3×3 convolution for one 224×224 image, or on a square
    window of ``side`` outputs (a single activation's projection, visnet.receptive_fields); 0 for a pool."""
    if layer.kind != "conv":
        return 0
    side = layer.resolution if side is None else side
    return 2 * side * side * 9 * layer.in_channels * layer.channels


def forward_flops(up_to=LAYER_NAMES[-1]) -> int:
    """Dense FLOPs of the forward pass of one image through every conv at or below ``up_to``: a layer
    name, or a layer spec as :func:`resolve_layers` takes it, whose deepest layer counts
    (30,693,261,312 for ``block5_pool``)."""
    deepest = max(LAYERS.index(BY_NAME[name]) for name in resolve_layers(up_to))
    return sum(conv_flops(layer) for layer in LAYERS[:deepest + 1])


def classifier_flops() -> int:
    """Dense FLOPs of the classifier top (fc1, fc2, predictions) for one image."""
    return sum(2 * inputs * outputs for _, inputs, outputs in CLASSIFIER_LAYERS)
