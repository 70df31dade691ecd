"""Classification: the five most probable ImageNet classes for a photo, with the classifier top.

The class names ship with the project (``visnet/data/imagenet_classes.json``, the 1000 ILSVRC-2012
classes in the order of VGG16's output units), so nothing is downloaded at run time.
"""
import functools
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..preprocessing import to_network_input
from .base import View, ViewResult
from .drawing import BACKGROUND, check_photo, horizontal_bars, titled

CLASSES_FILE = Path(__file__).resolve().parent.parent / "data" / "imagenet_classes.json"
TOP = 5
PHOTO_SIZE = 160  # the thumbnail left of the bars
PHOTO_GAP = 20
BAR_LENGTH = 360  # pixels for a probability of 1


@functools.lru_cache(maxsize=1)
@functools.cache
def class_names() -> tuple:
    """The 1000 class names in output order (read once per process: occlusion, classification and the VGG chains
    share them)."""
    entries = json.loads(CLASSES_FILE.read_text(encoding="utf-8"))
    names = [entry["name"] for entry in sorted(entries, key=lambda entry: entry["index"])]
    if len(names) != 1000:
        raise ValueError(f"{CLASSES_FILE} lists {len(names)} classes; expected 1000")
    return tuple(names)


def top_classes(probabilities, k: int = TOP) -> list:
    """The ``k`` most probable classes, most probable first (ties: lower index first), as
    ``[{"index", "name", "probability"}]``."""
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    order = np.argsort(-probabilities, kind="stable")[:k]
    names = class_names()
    return [{"index": int(index), "name": names[index], "probability": float(probabilities[index])}
            for index in order]


def classification_picture(photo, top, weights_name: str, title: str = None) -> np.ndarray:
    bars = horizontal_bars([entry["name"] for entry in top], [entry["probability"] for entry in top],
                           [f"{100 * entry['probability']:.1f} %" for entry in top], bar_length=BAR_LENGTH)
    height = max(PHOTO_SIZE, bars.shape[0])
    body = np.full((height, PHOTO_SIZE + PHOTO_GAP + bars.shape[1], 3), BACKGROUND[0], dtype=np.uint8)
    body[:PHOTO_SIZE, :PHOTO_SIZE] = np.asarray(
        Image.fromarray(photo).resize((PHOTO_SIZE, PHOTO_SIZE), Image.Resampling.LANCZOS))
    top_of_bars = (height - bars.shape[0]) // 2
    body[top_of_bars:top_of_bars + bars.shape[0], PHOTO_SIZE + PHOTO_GAP:] = bars
    return titled(body, title=[title or f"Top-{len(top)} ImageNet classes"],
                  legend=[f"bar length: probability on a 0–100 % scale · weights: {weights_name}"])


class ClassificationView(View):
    """Top-5 ImageNet classes of a photo; needs the classifier top."""

    method = "classification"

    def compute(self, rgb, progress) -> ViewResult:
        photo = check_photo(rgb, self.method)
        model = self.engine.model
        progress("forward pass", 0, 1)
        probabilities = model.run(model.probabilities, {model.images: to_network_input(photo)[None]})[0]
        progress("forward pass", 1, 1)
        top = top_classes(probabilities)
        return ViewResult(
            self.method,
            images={"classes": classification_picture(photo, top, self.engine.weights_name)},
            captions={"classes": "top-5 ImageNet classes, bar length = probability (0–100 %)"},
            data={"top5": top, "weights": self.engine.weights_name,
                  "top5_total": float(sum(entry["probability"] for entry in top))},
        )
