"""The engine a process keeps loaded: weights, the VGG16 graph and its sweeps, built once.

``Engine.deconv`` is what the CLI, the RQ jobs and the benchmark call; :func:`get_engine` keeps one
engine per process so that a worker starts every job warm.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from .architecture import LAYERS, resolve_layers
from .deconvnet import RULES, Sweep
from .graph import CPU, GPU, VGG16Graph, gpu_visible
from .methods import get_method, parse_channels, parse_value
from .preprocessing import to_network_input
from .weights import describe_weights, load_weights

# The options' limits and choices are the web form's and the CLI's (visnet.methods).
TOP_K, MODE = get_method("deconv").option("top_k"), get_method("deconv").option("mode")
RANK = get_method("deconv").option("rank")


@dataclass
class Feature:
    """One projected feature map: ``reconstruction`` is float32 (224, 224, 3) in the network's input
    space (BGR, mean subtracted, unnormalised); ``activation`` is the seed's own map (h, w)."""

    layer: str
    channel: int
    norm: float
    reconstruction: np.ndarray
    activation: np.ndarray
    explicit: bool = False
    score: float = None  # what the ranking ranked by, when not the norm (visnet.distinctive); None: unscored
    ranking_figures: dict = None  # the figures the score comes from (visnet.distinctive)


@dataclass
class ImageResult:
    layers: dict = field(default_factory=dict)  # layer name -> [Feature], strongest first


@dataclass
class DeconvResult:
    layers: list
    images: list  # [ImageResult], one per input image
    weights: str
    device: str
    mode: str
    rule: str
    timings: dict
    weights_description: str = ""  # the weights in words (visnet.weights.describe_weights)
    ranking: dict = None  # how top_k chose the channels, when not by norm (visnet.distinctive)


class Engine:
    def __init__(self, weights, device="auto", gpu_available=None):
        started = time.perf_counter()
        self.weights = weights
        self.model = VGG16Graph(weights, device=device, gpu_available=gpu_available)
        self._sweeps = {}
        for preset in ("pools", "all"):
            self.sweep(resolve_layers(preset))
        self.ready_seconds = time.perf_counter() - started

    @classmethod
    def load(cls, weights="auto", device="auto", models_dir=None):
        started = time.perf_counter()
        engine = cls(load_weights(weights, models_dir=models_dir), device=device)
        engine.ready_seconds = time.perf_counter() - started
        return engine

    def warm_up(self) -> float:
        """Run the default request once on a grey image, so that the first real job does not pay
        for oneDNN primitive creation and graph pruning. Returns the seconds it took."""
        started = time.perf_counter()
        self.deconv(np.full((1, 224, 224, 3), 128, np.uint8), layers="pools", top_k=3)
        return time.perf_counter() - started

    @property
    def weights_name(self) -> str:
        return self.weights.name

    @property
    def has_top(self) -> bool:
        return self.model.has_top

    @property
    def weights_description(self) -> str:
        return describe_weights(self.weights.name, self.has_top)

    @property
    def device(self) -> str:
        """The policy and where it puts the ops, e.g. ``mostly-cpu (switches on GPU)``."""
        placement = self.model.placement
        where = {(CPU, CPU): "CPU", (GPU, GPU): "GPU", (CPU, GPU): "switches on GPU"}[
            (placement.compute, placement.switches)]
        soft = " — no GPU visible: soft placement runs it on the CPU" if placement.wants_gpu and not gpu_visible() else ""
        return f"{placement.policy} ({where}{soft})"

    def model_info(self) -> dict:
        return {
            "weights": self.weights.name,
            "weights_description": self.weights_description,
            "weights_path": str(self.weights.path),
            "has_classifier": self.has_top,
            "device": self.device,
            "layers": [{"name": layer.name, "kind": layer.kind, "channels": layer.channels,
                        "resolution": layer.resolution} for layer in LAYERS],
        }

    def sweep(self, layers, rule="deconvnet") -> Sweep:
        key = (tuple(layers), rule)
        if key not in self._sweeps:
            self._sweeps[key] = Sweep(self.model, layers, rule)
        return self._sweeps[key]

    def deconv(self, images_rgb, layers="pools", top_k=3, channels=(), mode="single",
               rule="deconvnet", progress=None, rank="norm", reference=None) -> DeconvResult:
        """Project the ``top_k`` strongest features of each layer, plus explicit ``channels``
        (``[(layer, channel)]`` or ``"layer:ch,…"``), of every image down to pixel space. With
        ``rank="distinctive"``, the top_k are the channels most unusual against the scan in the folder
        ``reference`` instead (visnet.distinctive)."""
        if parse_value(RANK, rank, {}) == "distinctive":
            from .distinctive import deconv_distinctive

            return deconv_distinctive(self, images_rgb, reference, layers, top_k, channels, mode=mode, rule=rule,
                                      progress=progress)
        images_rgb = np.asarray(images_rgb)
        if images_rgb.ndim == 3:
            images_rgb = images_rgb[None]
        if images_rgb.ndim != 4 or images_rgb.shape[1:] != (224, 224, 3):
            raise ValueError(f"images must be (N, 224, 224, 3) RGB, got shape {images_rgb.shape}")
        mode = parse_value(MODE, mode, {})
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")
        top_k = parse_value(TOP_K, top_k, {})
        channels = parse_channels(channels)
        ranked_layers = resolve_layers(layers) if layers and top_k > 0 else []
        if top_k == 0 and not channels:
            raise ValueError("top_k is 0 and no channels were given: nothing to project")
        names = resolve_layers(ranked_layers + [name for name, _ in channels]) if (ranked_layers or channels) else []
        if not names:
            raise ValueError("nothing to project: give layers with top_k ≥ 1, or channels")

        report = progress or (lambda stage, done, total: None)
        count = len(images_rgb)
        top_k_of = {name: top_k if name in ranked_layers else 0 for name in names}
        explicit = {name: np.array([ch for layer, ch in channels if layer == name], dtype=np.int64)
                    for name in names}
        feed_images = to_network_input(images_rgb)
        started = time.perf_counter()
        if mode == "single":
            report("projecting all layers in one pass", 0, 1)
            sweep = self.sweep(names, rule)
            feed = {self.model.images: feed_images}
            feed.update(self._seed_feed(sweep, names, top_k_of, explicit))
            fetched = [self.model.run(sweep.outputs, feed)]
            report("projecting all layers in one pass", 1, 1)
        else:
            fetched = self._run_per_layer(names, rule, feed_images, top_k_of, explicit, report)
        elapsed = time.perf_counter() - started
        result = DeconvResult(names, [ImageResult() for _ in range(count)], self.weights.name,
                              self.device, mode, rule, {"network_seconds": elapsed}, self.weights_description)
        for outputs, sweep_layers in fetched_layers(fetched, names, mode):
            self._collect(result, outputs, sweep_layers, top_k_of, count)
        return result

    @staticmethod
    def _seed_feed(sweep, names, top_k_of, explicit):
        feed = {}
        for name in names:
            feed[sweep.top_k[name]] = top_k_of[name]
            feed[sweep.explicit[name]] = explicit[name]
        return feed

    def _run_per_layer(self, names, rule, feed_images, top_k_of, explicit, report):
        """One run for the forward pass, then one run per layer that reuses its switches."""
        sweeps = [self.sweep([name], rule) for name in names]
        needed = {tensor.ref(): tensor for sweep in sweeps for tensor in sweep.forward_dependencies()}
        tensors = list(needed.values())
        report("forward pass", 0, 1)
        values = self.model.run(tensors, {self.model.images: feed_images})
        forward = dict(zip(tensors, values))
        report("forward pass", 1, 1)
        fetched = []
        for done, (name, sweep) in enumerate(zip(names, sweeps)):
            report(f"projecting {name}", done, len(names))
            feed = {tensor: forward[tensor] for tensor in sweep.forward_dependencies()}
            feed.update(self._seed_feed(sweep, [name], top_k_of, explicit))
            fetched.append(self.model.run(sweep.outputs, feed))
        report("projecting layers", len(names), len(names))
        return fetched

    @staticmethod
    def _collect(result, outputs, sweep_layers, top_k_of, count):
        """Split the fetched rows by image and layer. Rows are image-major; within an image a
        layer's seeds are contiguous, ranked ones first (strongest first), then the explicit."""
        position = {}
        for row, layer_index in enumerate(outputs["layer"]):
            name = sweep_layers[layer_index]
            image = int(outputs["image"][row])
            index = position.get((image, name), 0)
            position[(image, name)] = index + 1
            per_image = len(outputs["maps"][name]) // count
            feature = Feature(name, int(outputs["channel"][row]), float(outputs["norm"][row]),
                              outputs["reconstructions"][row], outputs["maps"][name][image * per_image + index],
                              explicit=index >= top_k_of[name])
            result.images[image].layers.setdefault(name, []).append(feature)
        for image_result in result.images:
            image_result.layers = {name: image_result.layers.get(name, []) for name in result.layers}


def fetched_layers(fetched, names, mode):
    if mode == "single":
        return [(fetched[0], names)]
    return [(outputs, [name]) for outputs, name in zip(fetched, names)]


_ENGINE = None


def get_engine(weights="auto", device="auto", models_dir=None) -> Engine:
    """The process-wide engine, loaded on first use (a worker calls this before its first job)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Engine.load(weights or "auto", device=device or "auto", models_dir=models_dir)
    return _ENGINE
