"""The model a scan runs on, as the scan sees it (no TensorFlow): which layers it can scan and how many units
each has, which layers are flat (one value per unit), the input size and how a photo becomes the model's input.

* VGG16 (built in): its 13 convolutions and 5 pools (:mod:`visnet.architecture`) and, with the classifier top,
  ``fc1``, ``fc2`` and ``predictions``, whose neurons are projected by their gradient (:mod:`.projection`);
* a stored chain model (:mod:`visnet.chain`): its visible layers, every one projected by the chain's deconvnet
  (a flat layer's unit sees the whole image, so its projection is full frame).

A chain scan's ``scan.json`` keeps its model's description under ``model`` (name, the SHA-256 of its Keras
file, input shape, preprocessing, layers), so that every step after the planning reads the layout from the
scan alone (:func:`layout_of`); a VGG16 scan's has no ``model``, as before models existed.
"""
import re

from ..architecture import CLASSIFIER_LAYERS, INPUT_SIZE, LAYER_NAMES, get_layer, resolve_layers
from ..chain.catalogue import ChainLayers, stored_model
from ..chain.preprocess import to_model_input
from ..preprocessing import to_network_input
from ..settings import DEFAULT_MODEL

CLASSIFIER_NAMES = tuple(name for name, _, _ in CLASSIFIER_LAYERS)
SCAN_LAYER_NAMES = LAYER_NAMES + CLASSIFIER_NAMES
_CLASSIFIER_UNITS = {name: units for name, _, units in CLASSIFIER_LAYERS}
# A scanned layer names files (table_<layer>.npy, projections/<layer>/…) and keys of .npz files.
FILE_SAFE_LAYER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def is_classifier(layer: str) -> bool:
    """``fc1``, ``fc2`` or ``predictions``: a layer of VGG16's classifier top, whose units are single neurons."""
    return layer in _CLASSIFIER_UNITS


def unit_count(layer: str) -> int:
    """VGG16: channels of a convolutional layer, neurons of a classifier layer; ValueError for an unknown name."""
    return _CLASSIFIER_UNITS[layer] if is_classifier(layer) else get_layer(layer).channels


def resolve_scan_layers(spec) -> list:
    """:func:`visnet.architecture.resolve_layers`, plus the classifier's ``fc1``, ``fc2`` and ``predictions``
    (after the convolutional layers; they need weights with the classifier top)."""
    names = [str(part).strip() for part in (spec.split(",") if isinstance(spec, str) else spec)]
    classifier = [name for name in CLASSIFIER_NAMES if name in names]
    rest = [name for name in names if name and name not in _CLASSIFIER_UNITS]
    if classifier and not rest:
        return classifier
    try:
        return resolve_layers(",".join(rest)) + classifier
    except ValueError as error:
        if "unknown layer" not in str(error):
            raise
        raise ValueError(f"{error}, or {', '.join(CLASSIFIER_NAMES)} (with the classifier top)") from None


class VGG16Layout:
    """The built-in VGG16: its classifier's neurons are flat, and projected by their gradient."""

    name = DEFAULT_MODEL
    sha256 = None  # its weights are the workers' (a chunk records their name)
    built_in = True
    input_size = INPUT_SIZE
    layer_names = SCAN_LAYER_NAMES
    resolve = staticmethod(resolve_scan_layers)
    unit_count = staticmethod(unit_count)
    is_flat = staticmethod(is_classifier)
    is_classifier = staticmethod(is_classifier)
    network_input = staticmethod(to_network_input)

    def describe(self):
        return None


VGG16_LAYOUT = VGG16Layout()


class ChainLayout:
    """A stored chain model (:mod:`visnet.chain`): its visible layers, addressed as its jobs address them
    (:class:`visnet.chain.catalogue.ChainLayers`: ``pools``, ``all`` or names)."""

    built_in = False

    def __init__(self, name: str, sha256, input_shape, preprocess: str, layers: ChainLayers):
        self.name, self.sha256, self.preprocess, self.layers = name, sha256, preprocess, layers
        self.input_shape = tuple(int(value) for value in input_shape)
        self.input_size = self.input_shape[0]
        self.layer_names = layers.names

    @classmethod
    def of_chain(cls, chain) -> "ChainLayout":
        return cls(chain.name, chain.source.get("sha256"), chain.input_shape, chain.preprocess, ChainLayers(chain))

    @classmethod
    def of_stored(cls, stored) -> "ChainLayout":
        """From :class:`visnet.chain.catalogue.StoredModel` (what the web process reads of a stored model)."""
        return cls(stored.name, stored.sha256, stored.input_shape, stored.preprocess, stored.layers)

    @classmethod
    def from_description(cls, described: dict) -> "ChainLayout":
        return cls(described["name"], described.get("sha256"), described["input_shape"], described["preprocess"],
                   ChainLayers.from_described(described["name"], described["layers"], described["input_shape"][0]))

    def describe(self) -> dict:
        """What scan.json keeps as ``model``."""
        return {"name": self.name, "sha256": self.sha256, "input_shape": list(self.input_shape),
                "preprocess": self.preprocess, "layers": [layer.describe() for layer in self.layers.layers]}

    def resolve(self, spec) -> list:
        names = self.layers.resolve_layers(spec)
        unsafe = [name for name in names if not FILE_SAFE_LAYER.fullmatch(name)]
        if unsafe:
            raise ValueError(f"layers {', '.join(map(repr, unsafe))} of model {self.name} cannot be scanned: a scanned "
                             "layer's name names files, so it may hold only letters, digits, '_', '.' and '-'")
        return names

    def unit_count(self, layer: str) -> int:
        return self.layers.get_layer(layer).channels

    def is_flat(self, layer: str) -> bool:
        return len(self.layers.get_layer(layer).shape) == 1

    def is_classifier(self, layer: str) -> bool:
        """None of a chain's layers is projected by its gradient: the deconvnet goes down from every one."""
        return False

    def network_input(self, rgb):
        return to_model_input(rgb, self.preprocess, self.input_shape[2])


def model_layout(models_dir, name: str):
    """The layout of model ``name``: VGG16's, or the stored model's of ``models_dir`` (ChainRefused, a ValueError,
    when there is none)."""
    if name == DEFAULT_MODEL:
        return VGG16_LAYOUT
    return ChainLayout.of_stored(stored_model(models_dir, name))


def layout_of(record: dict):
    """The layout of the model a scan (its scan.json, or its upload's record) was planned for."""
    described = record.get("model")
    return ChainLayout.from_description(described) if described else VGG16_LAYOUT


def engine_layout(engine):
    """The layout of the model a loaded engine serves (:class:`visnet.engine.Engine`: VGG16;
    :class:`visnet.chain.engine.ChainEngine`: its chain), built once per engine."""
    chain = getattr(engine, "chain", None)
    if chain is None:
        return VGG16_LAYOUT
    cached = vars(engine).get("scan_layout")
    if cached is None:
        cached = vars(engine).setdefault("scan_layout", ChainLayout.of_chain(chain))
    return cached
