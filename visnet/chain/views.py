"""The views that map directly onto a stored chain model, drawn as VGG16's are (:mod:`visnet.views`):

- feature maps: every channel of one layer (a flat layer's channels are one value each); VGG16's overview of
  its fixed blocks has no counterpart here;
- classification: the most probable of the model's own classes, for a model that ends in a softmax and was
  stored with class names (``models add --classes``).

The other views (filters drawn per VGG16 block, occlusion, activation maximisation, channel rank, the
gradients sheet) are VGG16's only so far; :data:`visnet.chain.catalogue.CHAIN_METHODS` lists what a stored
model serves, and the API refuses the rest by name.
"""
import numpy as np

from ..views.base import View, ViewResult
from ..views.classification import classification_picture
from ..views.feature_maps import SCALES, channel_figures, feature_maps_picture
from .engine import spatial
from .preprocess import to_model_input


def check_model_photo(engine, rgb, method: str) -> np.ndarray:
    side = engine.input_size
    photo = None if rgb is None else np.asarray(rgb)
    if photo is None or photo.dtype != np.uint8 or photo.shape != (side, side, 3):
        shown = "none" if photo is None else f"dtype {photo.dtype} shape {photo.shape}"
        raise ValueError(f"{method} on model {engine.chain.name} needs a {side}×{side} RGB uint8 photo, got {shown}")
    return photo


class ChainView(View):
    """A view on a :class:`~visnet.chain.engine.ChainEngine`: the photo in the model's input space."""

    def forward(self, rgb, fetches):
        chain, model = self.engine.chain, self.engine.model
        photo = check_model_photo(self.engine, rgb, self.method)
        return model.run(fetches, {model.images: to_model_input(photo[None], chain.preprocess, chain.input_shape[2])})


class ChainFeatureMapsView(ChainView):
    """Every channel of one layer of the model, for one photo."""

    method = "feature-maps"

    def compute(self, rgb, progress, layer=None, scale="per-channel") -> ViewResult:
        layer = self.engine.layers.get_layer(layer or self.engine.layers.names[0]).name
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
        progress("forward pass", 0, 1)
        maps = spatial(self.forward(rgb, self.engine.model.activations[layer])[0])
        progress("forward pass", 1, 1)
        domain = ("per-channel: 0 to each channel's maximum" if scale == "per-channel"
                  else f"shared: 0 to the layer's maximum {float(maps.max()):.6g}")
        return ViewResult(
            self.method,
            images={"feature_maps": feature_maps_picture(np.maximum(maps, 0), layer, scale)},
            captions={"feature_maps": f"{layer} of model {self.engine.chain.name}: every channel ({maps.shape[2]}), "
                                      f"colour {domain}"},
            data={"layer": layer, "scale": scale, "domain": domain, "resolution": list(maps.shape[:2]),
                  "channels": channel_figures(maps), "model": self.engine.chain.name},
        )


class ChainClassificationView(ChainView):
    """The model's most probable classes for one photo (its softmax, its class names)."""

    method = "classification"

    def compute(self, rgb, progress) -> ViewResult:
        chain = self.engine.chain
        if not chain.classes:
            raise ValueError(f"classification: model {chain.name} was stored without class names; add it again "
                             "with python -m visnet models add FILE --name NAME --classes FILE")
        progress("forward pass", 0, 1)
        probabilities = np.asarray(self.forward(rgb, self.engine.model.probabilities)[0], np.float64)
        progress("forward pass", 1, 1)
        order = np.argsort(-probabilities, kind="stable")[:5]
        top = [{"index": int(index), "name": chain.classes[index], "probability": float(probabilities[index])}
               for index in order]
        photo = check_model_photo(self.engine, rgb, self.method)
        return ViewResult(
            self.method,
            images={"classes": classification_picture(photo, top, chain.name, f"Top-{len(top)} classes of {chain.name}")},
            captions={"classes": f"top-{len(top)} classes of model {chain.name}, bar length = probability (0–100 %)"},
            data={"top5": top, "weights": chain.name, "model": chain.name,  # VGG16's keys: top5 holds up to 5
                  "top5_total": float(sum(entry["probability"] for entry in top))},
        )


VIEWS = {view.method: view for view in (ChainFeatureMapsView, ChainClassificationView)}
