"""The options of every view, TensorFlow-free so that the web layer validates them before enqueueing.

``parse_options(method, raw)`` turns strings (form fields, CLI flags, JSON) into checked values and
raises ValueError saying which option is wrong and why.
"""
from dataclasses import dataclass

from ..architecture import get_layer
from ..numbers import parse_decimal, parse_whole_number


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # "int", "float", "choice", "layer", "channel", "channels", "sizes", "bool"
    default: object
    help: str
    minimum: float = None
    maximum: float = None
    choices: tuple = ()


def _layer(default="block1_conv1", help="layer name"):
    return Option("layer", "layer", default, help)


OPTIONS = {
    "feature-maps": (
        _layer(help="layer whose channels are drawn as a grid"),
        Option("scale", "choice", "per-channel", "one colour scale for all channels, or one per channel",
               choices=("per-channel", "shared")),
    ),
    "filters": (
        _layer(help="conv layer whose filters are drawn"),
        Option("channel", "channel", 0, "output channel whose per-input-channel filters are drawn "
               "(layers after block1_conv1)"),
    ),
    "occlusion": (
        Option("sizes", "sizes", "50:10", "grey square size:stride pairs, comma-separated, e.g. 10:5,50:10"),
        Option("batch_size", "int", 32, "occluded images per forward pass", 1, 256),
    ),
    "activation-max": (
        _layer("block4_conv3", "layer whose channels are maximised"),
        Option("channels", "channels", "0,1,2,3", "channels to maximise, comma-separated"),
        Option("seed", "int", 0, "random seed of the starting image", 0, 2**31 - 1),
        Option("octaves", "int", 12, "upscaling steps (×scale each, with a blur between)", 1, 20),
        Option("steps", "int", 20, "gradient ascent steps per octave", 1, 200),
        Option("scale", "float", 1.2, "upscaling factor per octave", 1.0, 2.0),
        Option("start_size", "int", 28, "side of the random starting image in pixels", 8, 224),
    ),
    "classification": (),
    "channel-rank": (
        _layer("block5_conv3", "layer of the channel"),
        Option("channel", "channel", 0, "channel whose rank among the layer's channels is checked"),
    ),
    "gradients": (
        Option("layers", "choice_or_layers", "pools", "all, pools or comma-separated layer names"),
        Option("top_k", "int", 3, "strongest channels per layer", 1, 16),
    ),
}
METHODS = ("deconv",) + tuple(OPTIONS)
NEEDS_CLASSIFIER = {"classification"}
CLASSIFIER_OPTIONAL = {"occlusion"}  # class maps added when the weights have a top


def parse_options(method: str, raw: dict) -> dict:
    if method not in OPTIONS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(OPTIONS)}")
    raw = {key: value for key, value in (raw or {}).items() if value not in (None, "")}
    specs = {option.name: option for option in OPTIONS[method]}
    unknown = sorted(set(raw) - set(specs))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for {method}; expected "
                         f"{', '.join(specs) or 'no options'}")
    values = {}
    for option in OPTIONS[method]:
        values[option.name] = _parse(option, raw.get(option.name, option.default), values)
    return values


def _parse(option, value, parsed):
    name = option.name
    if option.kind in ("int", "float", "channel"):
        parse = parse_decimal if option.kind == "float" else parse_whole_number
        try:
            number = parse(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if option.kind == "channel":
            layer = get_layer(parsed.get("layer", "block1_conv1"))
            if not 0 <= number < layer.channels:
                raise ValueError(f"{name} {number} is out of range for {layer.name}, which has channels "
                                 f"0 to {layer.channels - 1}")
        elif not option.minimum <= number <= option.maximum:
            raise ValueError(f"{name} must be between {option.minimum:g} and {option.maximum:g}, got {number:g}")
        return number
    if option.kind == "choice":
        if value not in option.choices:
            raise ValueError(f"{name} must be one of {', '.join(option.choices)}, got {value!r}")
        return value
    if option.kind == "layer":
        return get_layer(str(value).strip()).name
    if option.kind == "choice_or_layers":
        from ..architecture import resolve_layers
        return resolve_layers(value)
    if option.kind == "channels":
        layer = get_layer(parsed["layer"])
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        channels = []
        for item in items:
            try:
                channel = parse_whole_number(item)
            except ValueError:
                raise ValueError(f"{name} must be comma-separated channel numbers, got {value!r}") from None
            if not 0 <= channel < layer.channels:
                raise ValueError(f"channel {channel} is out of range for {layer.name}, which has channels "
                                 f"0 to {layer.channels - 1}")
            channels.append(channel)
        if not 1 <= len(channels) <= 16:
            raise ValueError(f"{name}: give between 1 and 16 channels, got {len(channels)}")
        return channels
    if option.kind == "sizes":
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        pairs = []
        for item in items:
            size, _, stride = (str(item).strip().partition(":") if not isinstance(item, (list, tuple))
                               else (item[0], ":", item[1]))
            try:
                size, stride = parse_whole_number(size), parse_whole_number(stride)
            except ValueError:
                raise ValueError(f"{name} must be SIZE:STRIDE pairs such as 50:10, got {item!r}") from None
            if not (1 <= size <= 224 and 1 <= stride <= 224):
                raise ValueError(f"{name}: size and stride must be between 1 and 224, got {size}:{stride}")
            if len(range(0, 224 - size + 1, stride)) ** 2 > 50_000:
                raise ValueError(f"{name}: {size}:{stride} needs more than 50,000 occluded images")
            pairs.append((size, stride))
        if not 1 <= len(pairs) <= 8:
            raise ValueError(f"{name}: give between 1 and 8 size:stride pairs")
        return pairs
    raise AssertionError(option.kind)

