"""VisNet's views on a stored chain model: VGG16's own computations and drawings (:mod:`visnet.views`), each
read through the hooks its class leaves for the model (its layers, photo, input space, kernels, classes), so
that one concept lives in one place:

- feature maps: every channel of one layer (a flat layer's channels are one value each); VGG16's overview of
  its fixed blocks has no counterpart here;
- filters: any convolution's kernels, of any size; the model's first convolution is also drawn as RGB pictures
  when it sees the photo's colours (after the preprocessing and the model's own Rescaling or Normalization);
- occlusion: a square of the ImageNet mean colour (in the model's input space) over the photo, the model's deepest
  convolution watched as VGG16's block5_conv3 is; the class maps with the model's own classes, when it ends in a
  softmax and was stored with their names (otherwise the result says why there are none);
- activation maximisation: the same ascent in pixel units, in the model's input space and within a photo's
  colours there; octaves from the smallest input the layer still answers (the whole input after a flatten);
- channel rank: the same measures; a layer's pre-ReLU map as VGG16's (:func:`pre_relu_response`);
- gradients: the chain engine's deconvnet, guided backprop and gradient sweeps of the same seeds, side by side;
- classification: the most probable of the model's own classes, for a model that ends in a softmax and was
  stored with class names (``models add --classes``).

:data:`visnet.chain.catalogue.CHAIN_METHODS` lists what a stored model serves; the API refuses the rest by name.
"""
import time

import numpy as np
import tensorflow as tf

from ..deconvnet import RULES, check_seed
from ..views.activation_max import ActivationMaximisationView
from ..views.base import View, ViewResult
from ..views.channel_rank import ChannelRankView
from ..views.classification import classification_picture
from ..views.feature_maps import SCALES, channel_figures, feature_maps_picture
from ..views.filters import FiltersView
from ..views.gradients import GradientsView, check_top_k, projections_by_feature
from ..views.occlusion import OcclusionView
from .engine import spatial
from .flops import forward_flops
from .ops import has_relu, linear_forward, window_arguments
from .preprocess import from_model_input, model_input_space, to_model_input
from .spec import WINDOWED_KINDS, output_side


def check_model_photo(engine, rgb, method: str) -> np.ndarray:
    side = engine.input_size
    photo = None if rgb is None else np.asarray(rgb)
    if photo is None or photo.dtype != np.uint8 or photo.shape != (side, side, 3):
        shown = "none" if photo is None else f"dtype {photo.dtype} shape {photo.shape}"
        raise ValueError(f"{method} on model {engine.chain.name} needs a {side}×{side} RGB uint8 photo, got {shown}")
    return photo


class ChainView(View):
    """A view on a :class:`~visnet.chain.engine.ChainEngine`: the model's layers, its photo size and input space;
    every result names the model."""

    @property
    def layers(self):
        return self.engine.layers

    @property
    def chain(self):
        return self.engine.chain

    def photo(self, rgb) -> np.ndarray:
        return check_model_photo(self.engine, rgb, self.method)

    def network_input(self, photos) -> np.ndarray:
        return to_model_input(photos, self.chain.preprocess, self.chain.input_shape[2])

    def forward(self, rgb, fetches):
        model = self.engine.model
        return model.run(fetches, {model.images: self.network_input(self.photo(rgb)[None])})

    def run(self, rgb=None, progress=None, **options) -> ViewResult:
        result = super().run(rgb, progress, **options)
        result.data.setdefault("model", self.chain.name)
        return result


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


class ChainFiltersView(ChainView, FiltersView):
    """A convolution's learned filters, any kernel size."""

    def kernel(self, spec) -> tuple:
        layer = self.chain.layer(spec.name)
        if layer.kind != "conv":
            raise ValueError(f"{spec.name} is a {layer.kind.replace('_', ' ')} layer of model {self.chain.name} and has "
                             f"no filters; choose one of its convolutions: {', '.join(self.layers.convolutions)}")
        return layer.kernel, layer.bias

    def pixel_colours(self, spec):
        """The input's colours for a convolution that sees the photo (nothing but per-channel Rescaling or
        Normalization before it): BGR for caffe preprocessing, RGB for the others, grey for a one-channel model."""
        chain = self.chain
        if any(layer.kind != "affine" for layer in chain.layers[:chain.index(spec.name)]):
            return None
        if chain.input_shape[2] == 1:
            return "grey"
        return "BGR" if chain.preprocess == "caffe" else "RGB"


class ChainOcclusionView(ChainView, OcclusionView):
    """Occlusion sensitivity of the model's deepest convolution, and of its classes when it has named ones."""

    @property
    def feature_layer(self) -> str:
        if not self.layers.convolutions:
            raise ValueError(f"occlusion watches a convolution's channels, and model {self.chain.name} has none")
        return self.layers.deepest_convolution

    @property
    def occluder_value(self) -> np.ndarray:
        return model_input_space(self.chain.preprocess, self.chain.input_shape[2]).centre

    @property
    def occluder_words(self) -> str:
        values = ", ".join(f"{value:.4g}" for value in self.occluder_value)
        return f"grey square, the ImageNet mean colour: ({values}) in the model's input space ({self.chain.preprocess})"

    def class_names(self):
        chain = self.chain
        return tuple(chain.classes) if chain.has_softmax and chain.classes else None

    def gflops_per_image(self, with_classifier: bool) -> float:
        return forward_flops(self.chain, None if with_classifier else self.feature_layer) / 1e9

    def compute(self, rgb, progress, **options) -> ViewResult:
        result = super().compute(rgb, progress, **options)
        if not result.data["has_classifier"]:
            result.data["class_maps"] = (
                f"none: model {self.chain.name} " + ("was stored without class names; add it again with "
                                                     "python -m visnet models add FILE --name NAME --classes FILE"
                                                     if self.chain.has_softmax else "does not end in a softmax"))
        return result


class ChainActivationMaximisationView(ChainView, ActivationMaximisationView):
    """Activation maximisation in the model's input space."""

    @property
    def input_space(self):
        return model_input_space(self.chain.preprocess, self.chain.input_shape[2])

    def smallest_side(self, layer: str) -> int:
        return smallest_input_side(self.chain, layer)

    def response(self, model, images, layer: str):
        return pre_relu_response(model, images, layer)

    def picture(self, image) -> np.ndarray:
        return from_model_input(image, self.chain.preprocess)


class ChainChannelRankView(ChainView, ChannelRankView):
    """A channel's rank among its layer's, by the model's own maps."""

    def measured_map(self, layer: str, measure: str):
        if measure != "pre-relu-mean":
            return super().measured_map(layer, measure)  # the layer's output, VGG16's rule checking the measure
        model = self.engine.model
        cache = vars(model).setdefault("view_ops", {})
        if ("pre-relu", layer) not in cache:
            with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope("channel_rank"):
                cache[("pre-relu", layer)] = pre_relu_response(model, model.images, layer)
        return cache[("pre-relu", layer)]


class ChainGradientsView(ChainView, GradientsView):
    """The three rules' projections of the same seeds, by the chain engine's sweeps; the rows of the logits layer
    (the one before a softmax with named classes) are named by their class: each is that class's gradient."""

    def class_names(self, layer: str):
        chain = self.chain
        if chain.has_softmax and chain.classes and len(chain.layers) > 1 and layer == chain.layers[-2].name:
            return tuple(chain.classes)
        return None

    def project(self, photo, names, top_k: int, seed: str) -> tuple:
        top_k, seed = check_top_k(self.layers, names, top_k), check_seed(seed)
        started = time.perf_counter()
        features = {rule: self.engine.deconv(photo[None], layers=names, top_k=top_k, rule=rule, seed=seed).images[0].layers
                    for rule in RULES}
        return projections_by_feature(features, names), time.perf_counter() - started


def smallest_input_side(chain, layer: str) -> int:
    """The side of the smallest square input on which ``layer`` still has an output (its whole input size when a
    flatten comes before it: the dense layers after it take one size only)."""
    path = chain.layers[: chain.index(layer) + 1]
    if any(spec.kind == "flatten" for spec in path):
        return chain.input_shape[0]
    for side in range(1, chain.input_shape[0] + 1):
        sides = (side, side)
        for spec in path:
            if spec.kind in WINDOWED_KINDS:
                sides = tuple(output_side(size, window, stride, spec.padding)
                              for size, window, stride in zip(sides, spec.window, spec.strides))
        if min(sides) >= 1:
            return side
    return chain.input_shape[0]


def pre_relu_response(model, images, layer: str):
    """The output of ``layer`` before its ReLU for ``images`` (the model's input space, any size where no flatten
    comes first), from the model's own variables, as VGG16's :func:`visnet.views.activation_max.pre_relu_response`:
    a layer with a ReLU gives what enters it; a max pool right after a ReLU gives the pool of the signal before
    that ReLU (ReLU and max commute); any other layer its output."""
    signal, before_relu = images, None
    for spec in model.chain.layers:
        if spec.kind == "max_pool":
            output = tf.nn.max_pool2d(signal, **window_arguments(spec))
            response = output if before_relu is None else tf.nn.max_pool2d(before_relu, **window_arguments(spec))
        else:
            output = response = linear_forward(spec, signal, model.weights[spec.name])
        before_relu = output if has_relu(spec) else None
        signal = tf.nn.relu(output) if has_relu(spec) else output
        if spec.name == layer:
            return response
    raise ValueError(f"model {model.chain.name} has no layer {layer!r}")


VIEWS = {view.method: view for view in (ChainFeatureMapsView, ChainFiltersView, ChainOcclusionView,
                                        ChainActivationMaximisationView, ChainClassificationView, ChainChannelRankView,
                                        ChainGradientsView)}
