"""Every method the service offers, written once: its name, class, tab label, help, whether it needs the
classifier top, and its options with kind, default, limits and help.

The web form and ``GET /api/methods`` (app.jobs.forms), the OpenAPI document (app.openapi.builder), the
CLI's subcommands (visnet.cli), the job page's tabs and the engine's limits all derive from
:data:`METHODS`; :func:`parse_options` is the one parser of a method's options, from strings (form fields,
CLI flags) or values (JSON). Adding a method means writing its module and adding one entry here.

TensorFlow-free: a method's class is named, not imported, so the web process can list and check methods.
"""
import importlib
import re
from dataclasses import dataclass
from typing import Callable

from . import architecture
from .architecture import CONV_LAYERS, INPUT_SIZE, LAYERS
from .numbers import parse_decimal, parse_whole_number

# One limit for top_k everywhere: the web form, the CLI, the engine and the gradients view. 16 keeps a
# job a result sheet rather than a dump (16 × 18 layers = 288 projections of "all" already take minutes
# on a CPU worker); the engine once allowed 64 (the narrowest layer's width, which tf.math.top_k needs
# as a bound), but no caller needed more than 16, and one limit cannot disagree with itself.
MAX_TOP_K = 16
# Explicit channels per deconvnet job (and channels per activation-max job): a sheet, not a dump.
MAX_CHANNELS = 16
MODES = ("single", "per-layer")  # the deconvnet's: all layers in one pass, or one pass per layer
# The backward rules at each ReLU, defined here (TensorFlow-free) for the option parsers and visnet.deconvnet alike.
RULES = ("deconvnet", "guided", "gradient")
# What each (image, channel) projects (visnet.deconvnet.SEEDS): its whole activation map, its single strongest
# activation (Zeiler & Fergus 2014, Fig. 1-2), or both. The deconvnet's default is both: the whole-map
# projection shows where the channel fires over the photo, the single activation shows what one unit
# responds to, cropped to its receptive field, and the max seeds cost little beside the map ones.
SEEDS = ("map", "max", "both")
SEED_HELP = ("map: project each channel's whole activation map; max: only its strongest activation (first "
             "maximum in row-major order), cropped to that unit's receptive field; both")
# How much a channel fires on a photo, the three quantities the methods use, each stated in its outputs:
# the keys are the channel rank's ``measure`` choices, the values what the outputs say.
MEASURES = {
    "post-relu-mean": "mean of the channel's map after the ReLU (what the next layer receives; the scans' "
                      "tables and the distinctive ranking use it)",
    "l2-norm": "L2 norm of the channel's map after the ReLU (the deconvnet's top-k rule, after Zeiler & Fergus)",
    "pre-relu-mean": "mean of the channel's map before the ReLU (what activation maximisation optimises)",
}
DEFAULT_MEASURE = "post-relu-mean"
# How the deconvnet picks a layer's top_k channels: the source's rule, or against a reference scan.
RANKINGS = {
    "norm": MEASURES["l2-norm"] + ", largest first",
    "distinctive": "(this photo's post-ReLU mean − the reference scan's mean) / the reference scan's standard "
                   "deviation, per channel, largest first",
}
RANKING_LABELS = {"norm": "the strongest channels", "distinctive": "the channels most unusual against a reference scan"}
# How a photo that is not square becomes the network's 224×224 input (visnet.preprocessing.prepare_photo).
FITS = {
    "squash": "the whole photo resized to 224×224 (the source's behaviour: a photo that is not square is stretched)",
    "crop": "the photo's centred square kept, then resized to 224×224 (proportions kept, the edges of the longer "
            "side not seen)",
}
DEFAULT_FIT = "squash"
MAX_OCCLUSION_SETTINGS = 8
MAX_OCCLUDED_IMAGES = 50_000  # per size:stride setting
# How to get the weights that methods with needs_classifier need: the pages, the API and the errors say it.
FETCH_IMAGENET_HINT = "run `python -m visnet weights fetch imagenet` on a machine with internet"

SCAN_ID = re.compile(r"[0-9a-f]{32}")  # a scan's id and folder name (visnet.scan.store)

if MAX_TOP_K > min(layer.channels for layer in LAYERS):
    raise AssertionError("top_k may not exceed the narrowest layer's channels")


@dataclass(frozen=True)
class Option:
    """One option of a method. ``kind``: "int", "float" (``minimum``/``maximum``), "choice"
    (``choices``), "layer" (one layer name; of ``choices`` when given), "channel" (one channel of the option ``layer``),
    "channels" (channel numbers of ``layer``), "choice_or_layers" ('all', 'pools' or layer names),
    "layer_channels" (LAYER:CHANNEL pairs), "sizes" (SIZE:STRIDE pairs), "scan" (a scan id, or empty: whether
    that scan exists and fits is the caller's check, who knows where scans live). ``max_items`` bounds a list;
    ``on_tab`` is false for an option the job page sets elsewhere (the deconvnet's explicit channels
    come from the result sheet's per-layer forms)."""
    name: str
    kind: str
    default: object
    help: str
    minimum: float = None
    maximum: float = None
    choices: tuple = ()
    max_items: int = None
    on_tab: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Method:
    """One method. ``target`` is ``"module:Class"``, imported by :meth:`load` only; ``rule`` checks the
    options together once each is valid (and may normalise them)."""
    name: str
    label: str  # the job page's tab
    help: str  # one line: CLI and OpenAPI
    target: str
    options: tuple = ()
    needs_classifier: bool = False
    image_optional: bool = False
    rule: Callable = None

    def load(self):
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def reads_photo(self) -> bool:
        """Whether the method computes on the photo (and so takes ``fit``); filters and activation maximisation
        do not."""
        return FIT in self.options

    def option(self, name: str) -> Option:
        return {option.name: option for option in self.options}[name]

    def classifier_missing(self, weights_in_words: str) -> str:
        """Why this method (one with ``needs_classifier``) cannot run on the weights in use, and how to enable it."""
        missing = (f"{self.label} ({self.name}) needs a classifier top (fc1, fc2, predictions), and the weights in "
                   f"use have none: {weights_in_words}.")
        if FETCH_IMAGENET_HINT in weights_in_words:  # the words already say how: only what comes after
            return f"{missing} Then copy the file it writes into the models folder (if that was another machine) " \
                   "and restart the service"
        return (f"{missing} To enable it, {FETCH_IMAGENET_HINT} (copy the file it writes into the models folder if "
                "that is another machine) and restart the service")


# The one option every method that reads the photo takes: it prepares the photo (the job runner and the CLI pass it
# to visnet.preprocessing), and is no argument of the computation (see computation_options).
FIT = Option("fit", "choice", DEFAULT_FIT, "how a photo that is not square becomes 224×224; "
             + "; ".join(f"{name}: {words}" for name, words in FITS.items()), choices=tuple(FITS))
PHOTO_OPTIONS = (FIT.name,)


def computation_options(values: dict) -> dict:
    """A method's checked options without those that prepare the photo (``fit``): what its computation takes."""
    return {name: value for name, value in values.items() if name not in PHOTO_OPTIONS}


def photo_fit(values: dict) -> str:
    """The ``fit`` of a method's options; the default for a method that reads no photo, or a job queued before
    ``fit`` existed."""
    return (values or {}).get(FIT.name) or DEFAULT_FIT


def _layer(default, help, choices=()):
    return Option("layer", "layer", default, help, choices=choices)


def _deconv_rule(values: dict) -> dict:
    if values["rank"] == "distinctive" and not values["reference"]:
        raise ValueError("reference: rank=distinctive compares the photo with a reference scan; give the id of a "
                         "finished scan (the scans page lists them)")
    if values["rank"] != "distinctive" and values["reference"]:
        raise ValueError(f"reference: only rank=distinctive uses a reference scan, and rank is {values['rank']}")
    if values["top_k"] == 0:
        if not values["channels"]:
            raise ValueError(f"top_k: 0 projects nothing; give top_k from 1 to {MAX_TOP_K}, or channels to project")
        return {**values, "layers": []}  # nothing is ranked, so no layer is swept for it
    return values


METHODS = (
    Method("deconv", "Deconvnet", "project the strongest features of photos to pixel space", "visnet.engine:Engine", (
        Option("layers", "choice_or_layers", "pools", "'pools', 'all' or comma-separated layer names"),
        Option("top_k", "int", 3, "channels per layer, ranked by rank (default: the L2 norm of their "
                                  "post-ReLU activation map); 0 only together with channels", 0, MAX_TOP_K),
        Option("channels", "layer_channels", "",
               f"explicit LAYER:CHANNEL seeds, comma-separated, at most {MAX_CHANNELS}",
               max_items=MAX_CHANNELS, on_tab=False),
        Option("mode", "choice", "single", "single: all layers in one pass; per-layer: one pass per layer",
               choices=MODES),
        Option("rule", "choice", "deconvnet", "backward rule at each ReLU: deconvnet (Zeiler & Fergus: the "
               "positive part of the signal), guided (guided backprop: also only where the forward pass was "
               "positive) or gradient (the plain gradient)", choices=RULES),
        Option("seed", "choice", "both", SEED_HELP, choices=SEEDS),
        Option("rank", "choice", "norm", "how top_k picks a layer's channels; norm: the "
               + RANKINGS["norm"] + "; distinctive: " + RANKINGS["distinctive"], choices=tuple(RANKINGS)),
        Option("reference", "scan", "", "with rank=distinctive: the id of a finished scan on the same weights "
               "that recorded the ranked layers"),
        FIT,
    ), rule=_deconv_rule),
    Method("feature-maps", "Feature maps",
           "every channel of a layer as a grid, and an overview of all layers' outputs",
           "visnet.views.feature_maps:FeatureMapsView", (
               _layer("block1_conv1", "layer whose channels are drawn as a grid"),
               Option("scale", "choice", "per-channel", "one colour scale for all channels, or one per channel",
                      choices=("per-channel", "shared")),
               FIT,
           )),
    Method("filters", "Filters", "filter weights: block1_conv1 as RGB tiles, deeper layers per input channel",
           "visnet.views.filters:FiltersView", (
               # Pooling layers have no weights: refused here, so that the form, the API and the CLI agree.
               _layer("block1_conv1", "conv layer whose filters are drawn",
                      choices=tuple(layer.name for layer in CONV_LAYERS)),
               Option("channel", "channel", 0, "output channel whose per-input-channel filters are drawn "
                      "(layers after block1_conv1)"),
           ), image_optional=True),
    Method("occlusion", "Occlusion",
           "occlusion sensitivity: slide a grey square, map the drop in activation (the sum of the post-ReLU "
           "map of the block5_conv3 channel with the largest L2 norm) and class",
           "visnet.views.occlusion:OcclusionView", (
               Option("sizes", "sizes", "50:10", "grey square size:stride pairs, comma-separated, e.g. 10:5,50:10",
                      max_items=MAX_OCCLUSION_SETTINGS),
               Option("batch_size", "int", 32, "occluded images per forward pass", 1, 256),
               FIT,
           )),
    Method("activation-max", "Activation max.",
           "activation maximisation: gradient ascent from a small random image, upscaled",
           "visnet.views.activation_max:ActivationMaximisationView", (
               _layer("block4_conv3", "layer whose channels are maximised"),
               Option("channels", "channels", "0,1,2,3", "channels to maximise, comma-separated",
                      max_items=MAX_CHANNELS),
               Option("seed", "int", 0, "random seed of the starting image and the jitter", 0, 2**31 - 1),
               Option("octaves", "int", 5, "image sizes optimised, each ×scale the one before, the last 224 px "
                      "(the picture shown); the first is 224/scale^(octaves-1), at least 16 px", 1, 20),
               Option("steps", "int", 8, "gradient ascent steps per octave", 1, 200),
               Option("scale", "float", 1.5, "size ratio between successive octaves", 1.0, 2.0),
               Option("jitter", "int", 4, "random shift of the image, in pixels each way, before each gradient "
                      "(0: none)", 0, 32),
               Option("decay", "float", 0.002, "L2 decay: the image shrinks towards the mean colour by this "
                      "fraction after each step (0: none)", 0.0, 0.5),
               Option("blur_every", "int", 4, "blur the image every this many steps (0: never)", 0, 200),
               Option("blur_sigma", "float", 0.8, "standard deviation of that blur, in pixels", 0.1, 4.0),
           )),
    Method("classification", "Classes", "top-5 ImageNet classes (needs weights with the classifier top)",
           "visnet.views.classification:ClassificationView", (FIT,), needs_classifier=True),
    Method("channel-rank", "Channel rank", "how much a channel fires, and its rank among the layer's channels",
           "visnet.views.channel_rank:ChannelRankView", (
               _layer("block5_conv3", "layer of the channel"),
               Option("channel", "channel", 0, "channel whose rank among the layer's channels is checked"),
               Option("measure", "choice", DEFAULT_MEASURE, "how much a channel fires; "
                      + "; ".join(f"{name}: {words}" for name, words in MEASURES.items()), choices=tuple(MEASURES)),
               FIT,
           )),
    Method("gradients", "Gradients",
           "deconvnet, guided backprop and plain gradient side by side for the top features",
           "visnet.views.gradients:GradientsView", (
               Option("layers", "choice_or_layers", "pools", "'pools', 'all' or comma-separated layer names"),
               Option("top_k", "int", 3, "strongest channels per layer, by the L2 norm of their post-ReLU activation "
                      "map", 1, MAX_TOP_K),
               # map by default: this view compares the three rules on the whole map; max adds the patches.
               Option("seed", "choice", "map", SEED_HELP, choices=SEEDS),
               FIT,
           )),
)
BY_NAME = {method.name: method for method in METHODS}
METHOD_NAMES = tuple(BY_NAME)
DEFAULT_METHOD = "deconv"
VIEW_NAMES = tuple(name for name in METHOD_NAMES if name != DEFAULT_METHOD)  # the methods in visnet.views


def get_method(name: str) -> Method:
    try:
        return BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHOD_NAMES)}") from None


def parse_options(method: str, raw: dict, layers=architecture) -> dict:
    """A method's options from strings or values → checked values (lists for list kinds), defaults filled
    in. Raises ValueError naming the option and what it expects; an unknown option is refused so that a
    typo (``topk=5``) is not silently ignored. ``layers`` is the model's layers: anything with
    :mod:`visnet.architecture`'s ``get_layer``, ``check_channel`` and ``resolve_layers`` (VGG16's by default,
    a stored model's :class:`visnet.chain.catalogue.ChainLayers`)."""
    spec = get_method(method)
    raw = {key: value for key, value in (raw or {}).items() if not _absent(value)}
    names = [option.name for option in spec.options]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for {method}; expected {', '.join(names) or 'no options'}")
    values = {}
    for option in spec.options:
        values[option.name] = parse_value(option, raw.get(option.name, option.default), values, layers)
    return spec.rule(values) if spec.rule else values


def _absent(value) -> bool:
    """An option not given: None, blank text or an empty list (a job's ``layers`` when top_k is 0)."""
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, (list, tuple)) and not value)


def parse_value(option: Option, value, parsed: dict, layers=architecture):
    """One option's value, checked; ``parsed`` holds the options before it (a channel's layer); ``layers`` as
    :func:`parse_options` takes it."""
    name = option.name
    if option.kind in ("int", "float", "channel"):
        parse = parse_decimal if option.kind == "float" else parse_whole_number
        try:
            number = parse(value)
        except ValueError:
            expected = "a number" if option.kind == "float" else "a whole number"
            raise ValueError(f"{name}: {str(value)[:40]!r} is not {expected}") from None
        if option.kind == "channel":
            return _channel(name, parsed.get("layer"), number, layers)[1]
        if not option.minimum <= number <= option.maximum:
            raise ValueError(f"{name} must be between {option.minimum} and {option.maximum}, got {number}")
        return number
    if option.kind == "choice":
        if str(value).strip() not in option.choices:
            raise ValueError(f"{name} must be one of {', '.join(option.choices)}, got {str(value)[:40]!r}")
        return str(value).strip()
    if option.kind == "layer":
        try:
            layer = layers.get_layer(str(value).strip())
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        if option.choices and layer.name not in option.choices:
            what = "a pooling layer, which has no filters" if layer.is_pool else "not one of them"
            raise ValueError(f"{name} must be one of {', '.join(option.choices)}; {layer.name} is {what}")
        return layer.name
    if option.kind == "choice_or_layers":
        try:
            return layers.resolve_layers(value)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    if option.kind == "channels":
        channels = []
        for item in _items(value):
            try:
                channel = parse_whole_number(item)
            except ValueError:
                raise ValueError(f"{name} must be comma-separated channel numbers, got {str(value)[:40]!r}") from None
            channels.append(_channel(name, parsed["layer"], channel, layers)[1])
        _check_count(option, channels)
        return channels
    if option.kind == "layer_channels":
        pairs = sorted(set(parse_channels(value, name, layers)))
        _check_count(option, pairs)
        return pairs
    if option.kind == "sizes":
        return _sizes(option, value)
    if option.kind == "scan":
        text = str(value).strip().lower()
        if text and not SCAN_ID.fullmatch(text):
            raise ValueError(f"{name}: {str(value)[:40]!r} is not a scan id (32 hexadecimal characters)")
        return text
    raise AssertionError(option.kind)


def parse_channels(channels, name="channels", layers=architecture) -> list:
    """``"block5_pool:12,block4_conv3:7"`` or [(layer, channel)] → checked [(layer, channel)], in the
    order given. Errors start with ``name``. The engine takes any number of pairs (a scan projects
    whole blocks of a layer); the options limit a job's to MAX_CHANNELS."""
    pairs = []
    for item in _items(channels):
        if isinstance(item, (list, tuple)) and len(item) == 2:
            layer_name, channel = item
        else:
            layer_name, separator, channel = str(item).partition(":")
            try:
                channel = parse_whole_number(channel) if separator else None
            except ValueError:
                channel = None
            if channel is None or channel < 0:
                raise ValueError(f"{name}: {str(item)[:40]!r} is not of the form LAYER:CHANNEL, e.g. block5_pool:12")
        pairs.append(_channel(name, str(layer_name).strip(), channel, layers))
    return pairs


def _channel(name, layer_name, channel, layers=architecture) -> tuple:
    try:
        return layers.check_channel(layer_name, channel)
    except ValueError as error:
        raise ValueError(str(error) if str(error).startswith(f"{name} ") else f"{name}: {error}") from None


def _items(value) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _check_count(option, items):
    fewest = 0 if option.kind == "layer_channels" else 1  # the deconvnet's explicit channels are optional
    if not fewest <= len(items) <= option.max_items:
        raise ValueError(f"{option.name}: {len(items)} given; expected {fewest} to {option.max_items}")


def _sizes(option, value) -> list:
    name, pairs = option.name, []
    for item in _items(value):
        size, _, stride = (str(item).strip().partition(":") if not isinstance(item, (list, tuple))
                           else (item[0], ":", item[1]))
        try:
            size, stride = parse_whole_number(size), parse_whole_number(stride)
        except ValueError:
            raise ValueError(f"{name} must be SIZE:STRIDE pairs such as 50:10, got {str(item)[:40]!r}") from None
        if not (1 <= size <= INPUT_SIZE and 1 <= stride <= INPUT_SIZE):
            raise ValueError(f"{name}: size and stride must be between 1 and {INPUT_SIZE}, got {size}:{stride}")
        if len(range(0, INPUT_SIZE - size + 1, stride)) ** 2 > MAX_OCCLUDED_IMAGES:
            raise ValueError(f"{name}: {size}:{stride} needs more than {MAX_OCCLUDED_IMAGES:,} occluded images")
        pairs.append([size, stride])
    if not 1 <= len(pairs) <= option.max_items:
        raise ValueError(f"{name}: give between 1 and {option.max_items} size:stride pairs")
    return pairs
