"""A stored chain model's layers as the option parsers address them, and its summary for the API.

:mod:`visnet.methods` checks layer names and channels with three functions of :mod:`visnet.architecture`
(``get_layer``, ``check_channel``, ``resolve_layers``); :class:`ChainLayers` has the same three for a
chain's visible layers, so one parser serves VGG16 and every stored model. No TensorFlow: the web
process reads a model's layers here (NumPy only), once per stored version of the model.
"""
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..architecture import INPUT_SIZE, channel_number
from ..methods import get_method
from ..weights import AUTO_ORDERS, KNOWN_WEIGHTS, WeightsError, file_digest, resolve_weights
from .store import CHAIN_FILE, WEIGHTS_FILE, load_chain, model_folder
from .vgg import BUILT_IN_CHAINS, vgg_layout

POOL_KINDS = ("max_pool", "avg_pool")  # what ``pools`` selects
# The methods a stored model serves (visnet.chain.engine, visnet.chain.views); the API refuses any other by name.
CHAIN_METHODS = ("deconv", "feature-maps", "filters", "occlusion", "activation-max", "classification", "channel-rank",
                 "gradients")
# Which of the model's layers a method's ``layer`` option defaults to, where VGG16's default names one of its own:
# the first (feature maps), the first convolution (filters, as block1_conv1) or the deepest convolution (as VGG16's
# block4_conv3 and block5_conv3 are deep ones).
LAYER_DEFAULTS = {"feature-maps": "first", "filters": "first convolution", "activation-max": "deepest convolution",
                  "channel-rank": "deepest convolution"}


@dataclass(frozen=True)
class ChainLayer:
    """One visible layer of a chain: what the option parsers and ``GET /api/models`` need."""

    name: str
    kind: str
    channels: int
    shape: tuple  # its output: (H, W, C), or (C,) for a flat layer

    @property
    def is_pool(self) -> bool:
        return self.kind in POOL_KINDS

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "channels": self.channels, "shape": list(self.shape)}


class ChainLayers:
    """The visible layers of ``chain`` (:attr:`visnet.chain.spec.Chain.layer_names`), addressed as
    :mod:`visnet.architecture` addresses VGG16's: ``all``, ``pools`` (its max and average pools) or names."""

    def __init__(self, chain):
        self._keep(chain.name, tuple(ChainLayer(name, chain.layer(name).kind, chain.channels(name),
                                                chain.output_shape(name)) for name in chain.layer_names),
                   chain.input_shape[0])

    @classmethod
    def from_described(cls, model: str, described, input_size: int) -> "ChainLayers":
        """The layers as :meth:`ChainLayer.describe` wrote them (a chain scan's scan.json keeps them)."""
        layers = cls.__new__(cls)
        layers._keep(model, tuple(ChainLayer(layer["name"], layer["kind"], int(layer["channels"]), tuple(layer["shape"]))
                                  for layer in described), input_size)
        return layers

    def _keep(self, model: str, layers: tuple, input_size: int):
        self.model, self.layers = model, layers
        self._by_name = {layer.name: layer for layer in self.layers}
        self.names = tuple(self._by_name)
        self.input_size = input_size  # the side of its input: the service's models are square (ChainEngine)
        self.convolutions = tuple(layer.name for layer in self.layers if layer.kind == "conv")

    @property
    def deepest_convolution(self) -> str:
        """The last convolution (the last layer, for a model without one): occlusion's feature layer, as
        block5_conv3 is VGG16's."""
        return (self.convolutions or self.names)[-1]

    def option_defaults(self, method: str) -> dict:
        """The defaults of ``method``'s options on this model where VGG16's do not fit it (visnet.methods): a
        layer as :data:`LAYER_DEFAULTS` says, activation maximisation's first four channels of it (all, if fewer),
        occlusion's square and stride scaled from 224 pixels to the model's input."""
        spec, defaults = get_method(method), {}
        layer = {"first": self.names[0], "first convolution": (self.convolutions or self.names)[0],
                 "deepest convolution": self.deepest_convolution}.get(LAYER_DEFAULTS.get(method))
        for option in spec.options:
            if option.kind == "layer" and layer is not None:
                defaults[option.name] = layer
            elif option.kind == "channels" and layer is not None:
                count = min(len(option.default.split(",")), self._by_name[layer].channels)
                defaults[option.name] = ",".join(str(channel) for channel in range(count))
            elif option.kind == "sizes":
                scale = self.input_size / INPUT_SIZE
                defaults[option.name] = ",".join(":".join(str(max(1, round(int(number) * scale)))
                                                          for number in pair.split(":"))
                                                 for pair in option.default.split(","))
        return defaults  # spelt as the options' own defaults are (visnet.methods)

    def get_layer(self, name: str) -> ChainLayer:
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown layer {str(name)[:60]!r} of model {self.model}; expected one of "
                             f"{', '.join(self.names)}") from None

    def check_channel(self, layer_name: str, channel) -> tuple:
        layer = self.get_layer(layer_name)
        number = channel_number(channel)
        if number is None or not 0 <= number < layer.channels:
            raise ValueError(f"channel {channel} is out of range for {layer.name} of model {self.model}, which has "
                             f"channels 0 to {layer.channels - 1}")
        return layer.name, number

    def resolve_layers(self, spec) -> list:
        """``all``, ``pools`` (every pooling layer; all layers of a model without one) or names → layer names
        in the model's order, without duplicates."""
        if isinstance(spec, str):
            key = spec.strip().lower()
            if key == "all":
                return list(self.names)
            if key == "pools":
                return [layer.name for layer in self.layers if layer.is_pool] or list(self.names)
            names = [part.strip() for part in spec.split(",") if part.strip()]
        else:
            names = [str(part).strip() for part in spec]
        if not names:
            raise ValueError("no layers requested; expected 'all', 'pools' or comma-separated layer names")
        wanted = {self.get_layer(name).name for name in names}
        return [name for name in self.names if name in wanted]


@dataclass(frozen=True)
class StoredModel:
    """A stored chain model as the web process sees it: its description and its layers."""

    name: str
    sha256: str  # of the Keras file it was converted from
    input_shape: tuple
    preprocess: str
    classes: int  # class names known (0: none)
    classifies: bool  # ends in a softmax
    source: dict
    layers: ChainLayers
    weights: dict = None  # the built-in VGG19's weights file: {"present", "name", "file", "fetch"}; None when stored

    @property
    def built_in(self) -> bool:
        return self.weights is not None

    def describe(self) -> dict:
        height, width, channels = self.input_shape
        described = {"name": self.name, "built_in": self.built_in, "sha256": self.sha256 or None,
                     "input": {"height": height, "width": width, "channels": channels},
                     "preprocess": self.preprocess, "classes": {"count": self.classes, "classifies": self.classifies},
                     "source": {key: self.source[key] for key in ("file", "keras", "weights") if key in self.source},
                     "layers": [layer.describe() for layer in self.layers.layers]}
        if self.built_in:
            described["weights"] = dict(self.weights)
        return described


def stored_model(models_dir, name: str) -> StoredModel:
    """The stored model ``name`` (ChainRefused if there is none), read once per version of its files; for the
    built-in VGG19, :func:`built_in_model`."""
    if name in BUILT_IN_CHAINS:
        return built_in_model(models_dir, name)
    folder = model_folder(models_dir, name)
    try:
        stamp = tuple((folder / file).stat().st_mtime_ns for file in (CHAIN_FILE, WEIGHTS_FILE))
    except FileNotFoundError:
        stamp = None
    return _read_stored(str(Path(models_dir)), name, stamp)


@lru_cache(maxsize=32)
def _read_stored(models_dir: str, name: str, stamp) -> StoredModel:
    chain = load_chain(models_dir, name)  # ChainRefused when it is not there
    classes = len(chain.classes) if chain.classes else 0
    return StoredModel(chain.name, chain.source.get("sha256", ""), tuple(chain.input_shape), chain.preprocess,
                       classes, chain.has_softmax, dict(chain.source), ChainLayers(chain))


def built_in_model(models_dir, name: str) -> StoredModel:
    """The built-in chain model ``name`` (VGG19) as the web process sees it, without reading its weights: its
    layers from the layout, with the classifier top when the weights file ``auto`` takes has one; whether that
    file is present, and its SHA-256 (computed once per version of the file; empty while it is missing)."""
    try:
        weights_name, path = resolve_weights("auto", models_dir, model=name)
        stat = Path(path).stat()
        stamp = (str(path), stat.st_size, stat.st_mtime_ns)
    except (WeightsError, OSError):
        weights_name, stamp = None, None
    return _built_in(name, weights_name, stamp)


@lru_cache(maxsize=8)
def _built_in(name: str, weights_name, stamp) -> StoredModel:
    spec = KNOWN_WEIGHTS.get(weights_name)  # None while missing: the convolutional layers, no classes
    chain = vgg_layout(name, spec is not None and spec.has_top)
    weights = {"present": weights_name is not None, "name": weights_name, "file": spec.filename if spec else None,
               "fetch": " or ".join(f"python -m visnet weights fetch {known}" for known in AUTO_ORDERS[name])}
    return StoredModel(name, file_digest(stamp[0], "sha256") if stamp else "", tuple(chain.input_shape), chain.preprocess,
                       len(chain.classes or ()), chain.has_softmax, {"weights": weights_name}, ChainLayers(chain),
                       weights)


def model_names(models_dir) -> list:
    """The chain models a job may name: the built-in VGG19, then the stored ones by name."""
    return [*BUILT_IN_CHAINS, *stored_names(models_dir)]


def stored_names(models_dir) -> list:
    """The names of the stored models, sorted."""
    names = []
    for chain_file in sorted(Path(models_dir).glob(f"*/{CHAIN_FILE}")):
        try:
            names.append(json.loads(chain_file.read_text())["name"])
        except (OSError, ValueError, KeyError):
            continue
    return sorted(names)
