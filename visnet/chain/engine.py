"""The engine a worker of a stored chain model keeps loaded: the chain's graph and its sweeps, built once.

:class:`ChainEngine` gives the deconvnet job what :class:`visnet.engine.Engine` gives it for VGG16:
``deconv(images, layers, top_k, channels, mode, rule, seed)`` returns the same
:class:`~visnet.engine.DeconvResult` of :class:`~visnet.engine.Feature`, so :mod:`visnet.outputs` writes
the same files and manifest. Channels are ranked as VGG16's are (Zeiler & Fergus: the L2 norm of the
channel's map after its ReLU, largest first, the lower channel first on ties) and projected by
:class:`~visnet.chain.projection.ChainSweep`, all layers of an image in one backward sweep.

Pictures are in the model's own input size. A reconstruction is handed to the writer in the display's
order (:func:`visnet.display.reconstruction_image` reads BGR): as computed for ``caffe`` preprocessing,
channels reversed for RGB models, the one channel repeated for grey ones.
"""
import time

import numpy as np

from ..deconvnet import check_seed
from ..engine import MODE, RULE, TOP_K, DeconvResult, Engine, Feature, ImageResult
from ..methods import DEFAULT_METHOD, parse_channels, parse_value
from ..weights import describe_weights
from .catalogue import ChainLayers
from .fields import receptive_fields
from .graph import ChainGraph
from .preprocess import to_model_input
from .projection import ChainSweep
from .store import load_chain, model_folder
from .vgg import BUILT_IN_CHAINS, load_built_in

SEEDS_OF = {"map": ("map",), "max": ("max",), "both": ("map", "max")}  # a job's seed → the sweep's seeds


class ChainEngine:
    """A stored chain model, loaded once: ``chain`` (:class:`~visnet.chain.spec.Chain`), its graph and sweeps.
    The service takes square photos: a model whose input is not square is refused."""

    method = DEFAULT_METHOD  # the method it runs itself; the views are visnet.chain.views (see view)

    def __init__(self, chain, device="auto", gpu_available=None):
        started = time.perf_counter()
        height, width, _ = chain.input_shape
        if height != width:
            raise ValueError(f"model {chain.name!r} takes {height}×{width} inputs; the service prepares square "
                             "photos, so it serves square models only")
        self.chain = chain
        self.layers = ChainLayers(chain)
        self._graph_arguments = {"device": device, "gpu_available": gpu_available}
        self._start_graph()
        self._fields = receptive_fields(chain)
        self.folder = None  # where it is stored, when loaded from the models folder
        self.ready_seconds = time.perf_counter() - started

    @classmethod
    def load(cls, models_dir, name: str, device="auto"):
        """The stored model ``name`` of ``models_dir`` (visnet.chain.store), or the built-in VGG19 on its weights
        file there (visnet.chain.vgg; a WeightsError naming the fetch command when it is missing)."""
        started = time.perf_counter()
        if name in BUILT_IN_CHAINS:
            engine = cls(load_built_in(models_dir, name), device=device)
        else:
            engine = cls(load_chain(models_dir, name), device=device)
            engine.folder = model_folder(models_dir, name)
        engine.ready_seconds = time.perf_counter() - started
        return engine

    device = Engine.device  # the placement in words: the same policy as VGG16's graph

    @property
    def input_size(self) -> int:
        return self.chain.input_shape[0]

    @property
    def has_top(self) -> bool:
        return self.chain.has_softmax

    @property
    def built_in(self) -> bool:
        return bool(self.chain.source.get("built_in"))

    @property
    def weights_name(self) -> str:
        """A stored model's name; the built-in VGG19's weights (vgg19, vgg19-notop or a file name)."""
        return self.chain.source["weights"] if self.built_in else self.chain.name

    @property
    def weights_description(self) -> str:
        source = self.chain.source
        if self.built_in:
            return (f"built-in model {self.chain.name}: "
                    f"{describe_weights(source['weights'], self.has_top, self.chain.name)}, {source['file']} "
                    f"(sha256 {source['sha256'][:12]})")
        return (f"model {self.chain.name}: converted from {source.get('file', 'a Keras file')} "
                f"(sha256 {source.get('sha256', '?')[:12]}) by python -m visnet models add")

    def describe_model(self) -> dict:
        """What made a result: the manifest's ``model`` (for the built-in VGG19, its weights file's name and hash)."""
        source = self.chain.source
        return {"name": self.chain.name, "built_in": self.built_in, "sha256": source.get("sha256"),
                "file": source.get("file"), "input_size": self.input_size, "preprocess": self.chain.preprocess}

    def model_info(self) -> dict:
        return {
            "model": self.chain.name,
            "weights": self.weights_name,
            "weights_description": self.weights_description,
            "weights_path": str(self.folder or self.chain.source.get("path") or self.chain.source.get("file", "")),
            "has_classifier": self.has_top,
            "device": self.device,
            "layers": [layer.describe() for layer in self.layers.layers],
        }

    def warm_up(self) -> float:
        """The default request once on a grey photo, so that the first job does not pay for graph pruning."""
        started = time.perf_counter()
        self.deconv(np.full((1, self.input_size, self.input_size, 3), 128, np.uint8), layers="pools", top_k=1,
                    seed="both")
        return time.perf_counter() - started

    def _start_graph(self):
        """A new graph and session for the chain, with no sweep built yet."""
        self.model = ChainGraph(self.chain, **self._graph_arguments)
        self._sweeps = {}

    renew = Engine.renew  # a fresh graph, warmed up or not: what a worker does after a job its time limit stopped

    def view(self, method: str):
        """The class of ``method``'s view on this model (visnet.chain.views); a ValueError for the others."""
        from .views import VIEWS

        if method not in VIEWS:
            raise ValueError(f"method {method} is not available for model {self.chain.name}; it serves deconv, "
                             f"{', '.join(VIEWS)}")
        return VIEWS[method]

    def sweep(self, layers, rule: str, seeds) -> ChainSweep:
        key = (tuple(layers), rule, tuple(seeds))
        if key not in self._sweeps:
            self._sweeps[key] = ChainSweep(self.model, layers, rule, seeds)
        return self._sweeps[key]

    def deconv(self, images_rgb, layers="pools", top_k=3, channels=(), mode="single", rule="deconvnet",
               progress=None, seed="map", rank="norm", reference=None) -> DeconvResult:
        """Project the ``top_k`` strongest channels of each of ``layers`` (the model's names, ``pools`` or
        ``all``), plus explicit ``channels`` ([(layer, channel)] or ``"layer:ch,…"``), of every photo of
        ``images_rgb`` (N, size, size, 3) down to the input. ``mode``: both modes run one sweep per photo (the
        result is the same; the mode is recorded). Only ``rank="norm"``: the distinctive ranking against a scan
        is VGG16's only so far."""
        if rank != "norm":
            raise ValueError(f"rank={rank}: model {self.chain.name} ranks channels by norm only (the distinctive "
                             "ranking, against a scan, is vgg16's only so far)")
        images_rgb = np.asarray(images_rgb)
        if images_rgb.ndim == 3:
            images_rgb = images_rgb[None]
        side = self.input_size
        if images_rgb.ndim != 4 or images_rgb.shape[1:] != (side, side, 3):
            raise ValueError(f"images must be (N, {side}, {side}, 3) RGB for model {self.chain.name}, got shape "
                             f"{images_rgb.shape}")
        mode, rule = parse_value(MODE, mode, {}), parse_value(RULE, rule, {})
        seed, top_k = check_seed(seed), parse_value(TOP_K, top_k, {})
        channels = parse_channels(channels, layers=self.layers)
        ranked_layers = self.layers.resolve_layers(layers) if layers and top_k > 0 else []
        if top_k == 0 and not channels:
            raise ValueError("top_k is 0 and no channels were given: nothing to project")
        names = self.layers.resolve_layers(ranked_layers + [name for name, _ in channels]) \
            if (ranked_layers or channels) else []
        if not names:
            raise ValueError("nothing to project: give layers with top_k ≥ 1, or channels")
        report = progress or (lambda stage, done, total: None)
        started = time.perf_counter()
        inputs = to_model_input(images_rgb, self.chain.preprocess, self.chain.input_shape[2])
        activations = self.model.run({name: self.model.activations[name] for name in names},
                                     {self.model.images: inputs})
        sweep = self.sweep(names, rule, SEEDS_OF[seed])
        result = DeconvResult(names, [], self.weights_name, self.device, mode, rule, {}, self.weights_description, seed)
        for index in range(len(images_rgb)):
            report("projecting all layers in one pass", index, len(images_rgb))
            maps = {name: spatial(activations[name][index]) for name in names}
            chosen = {name: ranked_channels(maps[name], top_k if name in ranked_layers else 0)
                      + [channel for layer, channel in channels if layer == name] for name in names}
            ranked_count = {name: min(top_k, maps[name].shape[2]) if name in ranked_layers else 0 for name in names}
            projected = sweep.project(inputs[index:index + 1], chosen)
            result.images.append(self._image_result(names, maps, chosen, ranked_count, projected, sweep.seeds))
        report("projecting all layers in one pass", len(images_rgb), len(images_rgb))
        result.timings = {"network_seconds": time.perf_counter() - started}
        result.model = self.describe_model()
        return result

    def _image_result(self, names, maps, chosen, ranked_count, projected, seeds) -> ImageResult:
        image = ImageResult()
        for name in names:
            image.layers[name] = [self._feature(name, maps[name], channel, position >= ranked_count[name])
                                  for position, channel in enumerate(chosen[name])]
        seen = {}
        for row, (layer_index, kind) in enumerate(zip(projected["layer"], projected["kind"])):
            name = names[int(layer_index)]
            position = seen.get((name, int(kind)), 0)
            seen[(name, int(kind))] = position + 1
            feature, reconstruction = image.layers[name][position], self._display_order(projected["reconstructions"][row])
            if seeds[int(kind)] == "map":
                feature.reconstruction = reconstruction
            else:
                top, left, side = feature.field
                feature.max_reconstruction = np.ascontiguousarray(reconstruction[top:top + side, left:left + side])
        return image

    def _feature(self, name, maps, channel, explicit) -> Feature:
        activation = maps[..., channel]
        flat = int(np.argmax(activation))  # the first maximum in row-major order
        position = tuple(int(value) for value in np.unravel_index(flat, activation.shape))
        return Feature(name, int(channel), float(np.sqrt(np.sum(np.square(activation, dtype=np.float64)))), None,
                       activation, explicit=explicit, max_position=position, max_value=float(activation.flat[flat]),
                       field=self.field_window(name, *position))

    def field_window(self, layer: str, row: int, column: int) -> tuple:
        """(top, left, side): the square of the input around unit (row, column) of ``layer``, as
        :func:`visnet.receptive_fields.field_window` gives VGG16's: the field's side capped at the photo, shifted
        back inside where it runs off. A layer after the flatten or global pool sees the whole photo."""
        size = self.input_size
        if layer not in self._fields:
            return 0, 0, size
        fields = self._fields[layer]
        side = min(max(field.size for field in fields), size)
        top, left = (min(max(field.first_pixel(position), 0), size - side)
                     for field, position in zip(fields, (row, column)))
        return top, left, side

    def _display_order(self, array: np.ndarray) -> np.ndarray:
        if array.shape[-1] == 1:
            return np.repeat(array, 3, axis=-1)
        return array if self.chain.preprocess == "caffe" else array[..., ::-1]


def spatial(activation: np.ndarray) -> np.ndarray:
    """A layer's output for one photo as (h, w, C): a flat layer's as one unit per channel."""
    return activation if activation.ndim == 3 else activation.reshape(1, 1, -1)


def ranked_channels(maps: np.ndarray, top_k: int) -> list:
    """The ``top_k`` channels of ``maps`` (h, w, C) by the L2 norm of their map, largest first; the lower
    channel first on ties."""
    norms = np.sqrt(np.sum(np.square(maps, dtype=np.float64), axis=(0, 1)))
    return [int(channel) for channel in np.argsort(-norms, kind="stable")[:top_k]]

