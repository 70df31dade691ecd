"""What every view shares: a result of named pictures and figures, and a writer for them.

A view is one of the classic ways of looking inside the network besides the deconvnet (feature
maps, filters, occlusion, activation maximisation, classification, channel rank, gradients). Each
lives in its own module as a subclass of :class:`View`; computing is kept apart from drawing, and
drawing uses :mod:`visnet.display`.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import architecture
from ..atomic import write_bytes_atomically
from ..display import encode_png
from ..methods import get_method
from ..preprocessing import to_network_input
from ..results import picture_file, write_manifest
from .drawing import check_photo


class ClassifierRequired(ValueError):
    """The view needs the classifier top (fc1, fc2, predictions), and the loaded weights have none."""


@dataclass
class ViewResult:
    method: str
    images: dict = field(default_factory=dict)  # file stem -> uint8 picture (H, W) or (H, W, 3)
    captions: dict = field(default_factory=dict)  # file stem -> what the picture shows
    data: dict = field(default_factory=dict)  # JSON-serialisable figures
    arrays: dict = field(default_factory=dict)  # file stem -> the float array a picture was made from (not written)
    timings: dict = field(default_factory=dict)


class View:
    """A visualisation computed on a loaded :class:`visnet.engine.Engine`.

    Subclasses set ``method`` (their entry in :mod:`visnet.methods`, which says whether they need the
    ImageNet classifier top) and implement :meth:`compute`. What depends on the model is read through
    ``layers``, :meth:`photo` and :meth:`network_input` (VGG16's here; a stored model's view,
    :class:`visnet.chain.views.ChainView`, has its own), so that one computation serves every model.
    """

    method = ""
    layers = architecture  # the model's layers as the option parsers address them

    def photo(self, rgb) -> np.ndarray:
        """The photo the view computes on, checked: 224×224 RGB uint8 (a ValueError naming the view otherwise)."""
        return check_photo(rgb, self.method)

    def network_input(self, photos) -> np.ndarray:
        """Photos (…, H, W, 3) uint8 in the network's input space (float32)."""
        return to_network_input(photos)

    def __init__(self, engine):
        self.engine = engine
        method = get_method(self.method)
        if method.needs_classifier and not engine.has_top:
            raise ClassifierRequired(method.classifier_missing(engine.weights_description))

    def run(self, rgb=None, progress=None, **options) -> ViewResult:
        started = time.perf_counter()
        result = self.compute(rgb, progress or (lambda stage, done, total: None), **options)
        result.timings.setdefault("compute_seconds", time.perf_counter() - started)
        return result

    def compute(self, rgb, progress, **options) -> ViewResult:
        raise NotImplementedError


def write_view_outputs(result: ViewResult, out_dir, extra=None) -> dict:
    """Write each picture as ``<stem>.png`` and a ``manifest.json`` naming them (visnet.results); returns
    the manifest."""
    out_dir = Path(out_dir)
    files = []
    for stem, picture in result.images.items():
        name = picture_file(stem)
        write_bytes_atomically(out_dir / name, encode_png(np.ascontiguousarray(picture)))
        files.append({"file": name, "caption": result.captions.get(stem, ""),
                      "width": int(picture.shape[1]), "height": int(picture.shape[0])})
    manifest = {"method": result.method, "files": files, "data": result.data, "timings": result.timings}
    manifest.update(extra or {})
    write_manifest(out_dir, manifest)
    return manifest
