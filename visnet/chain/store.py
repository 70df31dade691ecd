"""Chain models in the models folder: ``<models>/<name>/chain.json`` (the layers, input, preprocessing,
classes, where it came from) and ``weights.npz`` (one array per layer weight, read with
``allow_pickle=False``). Neither holds code: loading a stored model runs nothing from the original file.

A model is written into a hidden folder beside its final place and renamed into place when complete, so
a failed add leaves nothing under its name.
"""
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .keras_config import ChainRefused
from .spec import VISIBLE_KINDS, Chain, LayerSpec

CHAIN_FILE, WEIGHTS_FILE = "chain.json", "weights.npz"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
BUILT_IN = ("vgg16", "vgg19")  # names the project keeps for its own models


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ChainRefused(f"model name {str(name)[:60]!r}: expected 1 to 40 lower-case letters, digits, '-' or '_', "
                           "starting with a letter or digit")
    if name in BUILT_IN:
        raise ChainRefused(f"model name {name!r} is kept for the built-in model; choose another")
    return name


def model_folder(models_dir, name: str) -> Path:
    return Path(models_dir) / check_name(name)


def save_chain(chain: Chain, models_dir) -> Path:
    """Store ``chain`` under its name; ChainRefused if that name is taken."""
    target = model_folder(models_dir, chain.name)
    if target.exists():
        raise ChainRefused(f"a model named {chain.name!r} exists already ({target}); remove it first: "
                           f"python -m visnet models remove {chain.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{chain.name}-"))
    try:
        arrays = {f"{index}/{field}": value for index, layer in enumerate(chain.layers)
                  for field, value in layer.weights.items()}
        np.savez(partial / WEIGHTS_FILE, **arrays)
        (partial / CHAIN_FILE).write_text(json.dumps(chain.describe(), indent=1))
        partial.chmod(0o755)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def load_chain(models_dir, name: str) -> Chain:
    folder = model_folder(models_dir, name)
    if not (folder / CHAIN_FILE).is_file():
        known = ", ".join(row["name"] for row in stored_models(models_dir)) or "none"
        raise ChainRefused(f"no stored model {name!r} in {Path(models_dir)}; stored models: {known}")
    described = json.loads((folder / CHAIN_FILE).read_text())
    with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as arrays:
        weights = {}
        for key in arrays.files:
            index, field = key.split("/")
            weights.setdefault(int(index), {})[field] = arrays[key]
    layers = tuple(LayerSpec.from_description(layer, weights.get(index, {}))
                   for index, layer in enumerate(described["layers"]))
    classes = described.get("classes")
    return Chain(described["name"], tuple(described["input_shape"]), layers, described["preprocess"],
                 classes=tuple(classes) if classes is not None else None, source=described.get("source", {}))


def stored_models(models_dir) -> list:
    """One row per stored model (what chain.json says; of its layers the names one can visualise), by name."""
    rows = []
    for chain_file in sorted(Path(models_dir).glob(f"*/{CHAIN_FILE}")):
        if not NAME_PATTERN.fullmatch(chain_file.parent.name):
            continue
        described = json.loads(chain_file.read_text())
        rows.append({"name": described["name"], "input_shape": described["input_shape"],
                     "preprocess": described["preprocess"],
                     "layers": [layer["name"] for layer in described["layers"] if layer["kind"] in VISIBLE_KINDS],
                     "classes": len(described["classes"]) if described.get("classes") else 0,
                     "source": described.get("source", {}), "path": str(chain_file.parent)})
    return rows


def remove_chain(models_dir, name: str) -> Path:
    folder = model_folder(models_dir, name)
    if not (folder / CHAIN_FILE).is_file():
        raise ChainRefused(f"no stored model {name!r} in {Path(models_dir)}")
    shutil.rmtree(folder)
    return folder
