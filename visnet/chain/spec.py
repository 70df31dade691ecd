"""A chain model as plain data: its layers in order, each with its numpy weights and geometry.

Kinds (``KINDS``):

- ``affine``: per-channel ``x · scale + offset`` (Keras ``Rescaling`` and ``Normalization``);
- ``conv``: a 2-D convolution, any kernel, strides and padding, with its bias (batch norm folded in);
  ``relu`` says whether a ReLU follows (its output is then the rectified one);
- ``relu``: a ReLU that does not follow a convolution or dense layer directly;
- ``max_pool``, ``avg_pool``: any window, strides and padding (windows may overlap);
- ``flatten``: row-major (height, width, channel), as Keras' ``Flatten``;
- ``global_avg_pool``: the mean of each channel;
- ``dense``: a matrix product with its bias, ``relu`` as for ``conv``;
- ``softmax``: the last layer only; its input is the logits.

Padding is TensorFlow's: ``VALID`` or ``SAME`` (the extra row or column of an odd total pad at the end).
"""
import math
from dataclasses import dataclass, field

import numpy as np

KINDS = ("affine", "conv", "relu", "max_pool", "avg_pool", "flatten", "global_avg_pool", "dense", "softmax")
SPATIAL_KINDS = ("affine", "conv", "relu", "max_pool", "avg_pool")  # (H, W, C) in, (H', W', C') out
WINDOWED_KINDS = ("conv", "max_pool", "avg_pool")  # have a window, strides and padding
VISIBLE_KINDS = ("conv", "relu", "max_pool", "avg_pool", "global_avg_pool", "dense")  # layers one can visualise
WEIGHT_FIELDS = ("kernel", "bias", "scale", "offset")
PADDINGS = ("VALID", "SAME")


@dataclass(frozen=True, eq=False)
class LayerSpec:
    """One layer of a chain. ``window`` is the conv kernel's or the pool's (rows, columns); ``merged`` names
    the Keras layers folded into this one (batch norm, the ReLU that follows)."""

    name: str
    kind: str
    kernel: np.ndarray = field(default=None, repr=False)  # conv (kh, kw, in, out); dense (in, out)
    bias: np.ndarray = field(default=None, repr=False)
    scale: np.ndarray = field(default=None, repr=False)  # affine, per channel
    offset: np.ndarray = field(default=None, repr=False)
    window: tuple = (1, 1)
    strides: tuple = (1, 1)
    padding: str = "VALID"
    relu: bool = False
    merged: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"layer {self.name!r}: unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.padding not in PADDINGS:
            raise ValueError(f"layer {self.name!r}: padding {self.padding!r}; expected VALID or SAME")

    @property
    def weights(self) -> dict:
        return {name: getattr(self, name) for name in WEIGHT_FIELDS if getattr(self, name) is not None}

    def describe(self) -> dict:
        """The layer without its arrays, as chain.json stores it."""
        described = {"name": self.name, "kind": self.kind}
        if self.kind in WINDOWED_KINDS:
            described.update(window=list(self.window), strides=list(self.strides), padding=self.padding)
        if self.kind in ("conv", "dense"):
            described["relu"] = self.relu
        if self.merged:
            described["merged"] = list(self.merged)
        return described

    @classmethod
    def from_description(cls, described: dict, weights: dict):
        return cls(name=described["name"], kind=described["kind"], window=tuple(described.get("window", (1, 1))),
                   strides=tuple(described.get("strides", (1, 1))), padding=described.get("padding", "VALID"),
                   relu=bool(described.get("relu", False)), merged=tuple(described.get("merged", ())), **weights)


def output_side(side: int, window: int, stride: int, padding: str) -> int:
    """TensorFlow's output size along one axis."""
    if padding == "SAME":
        return math.ceil(side / stride)
    return math.ceil((side - window + 1) / stride)


def padding_before(side: int, window: int, stride: int, padding: str) -> int:
    """Rows (or columns) of padding TensorFlow adds before the input: half the total, rounded down."""
    if padding == "VALID":
        return 0
    total = max((output_side(side, window, stride, padding) - 1) * stride + window - side, 0)
    return total // 2


@dataclass(frozen=True, eq=False)
class Chain:
    """A model as a chain: ``input_shape`` (H, W, C) of the model's input (after ``preprocess``, before any
    affine layer of its own), ``layers`` in order, ``classes`` the names of the softmax's outputs if known."""

    name: str
    input_shape: tuple
    layers: tuple
    preprocess: str
    classes: tuple = None
    source: dict = field(default_factory=dict)  # where it came from: file name, sha256, Keras version

    def __post_init__(self):
        names = [layer.name for layer in self.layers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"model {self.name!r}: layer names must be unique; repeated: {', '.join(repeated)}")
        softmaxes = [index for index, layer in enumerate(self.layers) if layer.kind == "softmax"]
        if softmaxes and softmaxes != [len(self.layers) - 1]:
            raise ValueError(f"model {self.name!r}: a softmax may only be the last layer")
        object.__setattr__(self, "_shapes", self._compute_shapes())

    def _compute_shapes(self) -> dict:
        shapes, shape = {}, tuple(self.input_shape)
        for layer in self.layers:
            spatial = len(shape) == 3
            if (layer.kind in SPATIAL_KINDS + ("flatten", "global_avg_pool")) != spatial:
                raise ValueError(f"model {self.name!r}: layer {layer.name!r} ({layer.kind}) cannot take an input of "
                                 f"shape {shape}")
            if layer.kind in WINDOWED_KINDS:
                rows, columns = (output_side(side, window, stride, layer.padding)
                                 for side, window, stride in zip(shape[:2], layer.window, layer.strides))
                channels = layer.kernel.shape[3] if layer.kind == "conv" else shape[2]
                if layer.kind == "conv" and layer.kernel.shape[2] != shape[2]:
                    raise ValueError(f"model {self.name!r}: layer {layer.name!r} takes {layer.kernel.shape[2]} "
                                     f"channels, gets {shape[2]}")
                if rows < 1 or columns < 1:
                    raise ValueError(f"model {self.name!r}: layer {layer.name!r} leaves no output for input {shape}")
                shape = (rows, columns, channels)
            elif layer.kind == "flatten":
                shape = (int(np.prod(shape)),)
            elif layer.kind == "global_avg_pool":
                shape = (shape[2],)
            elif layer.kind == "dense":
                if layer.kernel.shape[0] != shape[0]:
                    raise ValueError(f"model {self.name!r}: layer {layer.name!r} takes {layer.kernel.shape[0]} "
                                     f"inputs, gets {shape[0]}")
                shape = (layer.kernel.shape[1],)
            shapes[layer.name] = shape
        return shapes

    def output_shape(self, name: str) -> tuple:
        """(H, W, C) of a spatial layer's output, (C,) of a flat one's."""
        return self._shapes[self.layer(name).name]

    def input_shape_of(self, name: str) -> tuple:
        index = self.index(name)
        return tuple(self.input_shape) if index == 0 else self._shapes[self.layers[index - 1].name]

    def index(self, name: str) -> int:
        return self.layers.index(self.layer(name))

    def layer(self, name: str) -> LayerSpec:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"model {self.name!r} has no layer {name!r}; its layers are {', '.join(self.layer_names)}")

    @property
    def layer_names(self) -> tuple:
        """The layers one can visualise, in order (not the preprocessing, the flatten or the softmax)."""
        return tuple(layer.name for layer in self.layers if layer.kind in VISIBLE_KINDS)

    def channels(self, name: str) -> int:
        return self.output_shape(name)[-1]

    @property
    def has_softmax(self) -> bool:
        return bool(self.layers) and self.layers[-1].kind == "softmax"

    def describe(self) -> dict:
        """Everything but the arrays, as chain.json stores it."""
        return {"name": self.name, "input_shape": list(self.input_shape), "preprocess": self.preprocess,
                "classes": list(self.classes) if self.classes is not None else None, "source": dict(self.source),
                "layers": [layer.describe() for layer in self.layers]}
