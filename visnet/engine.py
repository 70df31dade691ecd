"""The engine a process keeps loaded: weights, the VGG16 graph and its sweeps, built once.

``Engine.deconv`` is what the CLI, the RQ jobs and the benchmark call; :func:`get_engine` keeps one
engine per process so that a worker starts every job warm.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from .architecture import LAYERS, check_channel, get_layer, resolve_layers
from .chain.graph import VGG16Graph
from .deconvnet import MAX_SEED, PairProjector, Sweep, check_seed
from .graph import CPU, GPU, gpu_visible
from .methods import get_method, parse_channels, parse_value
from .preprocessing import to_network_input
from .receptive_fields import field_window
from .sweep_chunks import DEFAULT_BUDGET_MB, MIB, plan_chunks, run_in_chunks
from .weights import describe_weights, load_weights

# The options' limits and choices are the web form's and the CLI's (visnet.methods).
TOP_K, MODE, RULE, SEED, RANK = (get_method("deconv").option(name) for name in ("top_k", "mode", "rule", "seed", "rank"))


@dataclass
class Feature:
    """One projected channel of one image: ``reconstruction`` is the projection of its whole activation map,
    float32 (224, 224, 3) in the network's input space (BGR, mean subtracted, unnormalised), None when the
    job's seed is "max"; ``activation`` is the channel's own map (h, w).

    ``max_position`` (row, column) and ``max_value`` are the map's strongest activation (the first maximum in
    row-major order; (0, 0) and 0 for a silent channel); ``field`` (top, left, side) is that unit's receptive
    field in the input (:func:`visnet.receptive_fields.field_window`); ``max_reconstruction`` float32
    (side, side, 3) is the projection of that single activation inside ``field`` (zero outside it), None when
    the job's seed is "map"."""

    layer: str
    channel: int
    norm: float
    reconstruction: np.ndarray
    activation: np.ndarray
    explicit: bool = False
    max_position: tuple = (0, 0)
    max_value: float = 0.0
    field: tuple = None
    max_reconstruction: np.ndarray = None
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
    seed: str = "map"  # what each (image, channel) projected: "map", "max" or "both"
    ranking: dict = None  # how top_k chose the channels, when not by norm (visnet.distinctive)
    model: dict = None  # which model made it, when not the built-in VGG16 (visnet.chain.engine)


# The layer sets whose sweeps a warm worker has built before its first job (the job page's presets).
PRESET_SWEEPS = ("pools", "all")


# Ops an engine's graph may have had before the worker renews it between jobs (Engine.renew_if_grown): the
# preset sweeps and the warm-up take 10,800, each further layer set, rule or seed 250 (block1_pool, map seeds) to
# 19,700 (all 18 layers, guided, both seeds). At 77,000 (when the warm-up took 27,000) a new layer set's
# first job took 6.2 s against 5.3 s on a fresh graph (the same set; 2-core AMD EPYC); a renewal, warm-up
# included, took 13 s of the worker's time between two jobs.
GRAPH_OPS_LIMIT = 100_000


class Engine:
    """``memory_budget_mb``: the working memory one run of the bundled sweep may take, estimated; a job whose
    seeds need more runs in chunks of them (:mod:`visnet.sweep_chunks`), with the same results."""

    def __init__(self, weights, device="auto", gpu_available=None, memory_budget_mb=DEFAULT_BUDGET_MB):
        started = time.perf_counter()
        self.weights = weights
        self.memory_budget_mb = memory_budget_mb
        self._placement_arguments = {"device": device, "gpu_available": gpu_available}
        self._start_graph()
        self.ready_seconds = time.perf_counter() - started

    def _start_graph(self):
        """A new VGG16 graph and session on the engine's weights, with no sweep built yet."""
        self.model = VGG16Graph(self.weights, **self._placement_arguments)
        self._sweeps, self._pair_projectors = {}, {}  # built on first use (build_presets, warm_up)

    @classmethod
    def load(cls, weights="auto", device="auto", models_dir=None, memory_budget_mb=DEFAULT_BUDGET_MB):
        started = time.perf_counter()
        engine = cls(load_weights(weights, models_dir=models_dir), device=device, memory_budget_mb=memory_budget_mb)
        engine.ready_seconds = time.perf_counter() - started
        return engine

    def build_presets(self) -> float:
        """Build the sweeps of the preset layer sets (``pools``, ``all``: about 7,500 ops, 2.0–2.4 s on a 2-core Intel
        Xeon), which are otherwise built by the first job that asks for them. Returns the seconds it took."""
        started = time.perf_counter()
        for preset in PRESET_SWEEPS:
            self.sweep(resolve_layers(preset))
        return time.perf_counter() - started

    def warm_up(self) -> float:
        """Build the preset sweeps and run the default request once on a grey image, so that the first real job
        does not pay for building graphs, oneDNN primitive creation and graph pruning. Returns the seconds it
        took. A worker with its warm-up off (VISNET_WORKER_WARM_UP=0) and a CLI run build only what they use."""
        started = time.perf_counter()
        self.build_presets()
        self.deconv(np.full((1, 224, 224, 3), 128, np.uint8), layers="pools", top_k=3, seed=SEED.default)
        return time.perf_counter() - started

    def renew_if_grown(self, limit: int = GRAPH_OPS_LIMIT, warm_up: bool = True):
        """Start again on a fresh graph once this one has had more than ``limit`` ops, warmed up as at a
        worker's start (with ``warm_up``); the seconds it took, or None when the graph is within the limit.

        A graph only grows: a sweep for each layer set and rule that a job asked for (250 to 19,700 ops),
        each view's ops. And every session run after new ops re-reads all of it (4.9 s a run at 180,000 ops on
        a 2-core AMD EPYC), so a worker that had served many layer sets paid seconds more on each new one, and
        its memory grew. The worker calls this between jobs (service.worker); the weights are kept."""
        if self.model.graph.version <= limit:
            return None
        return self.renew(warm_up)

    def renew(self, warm_up: bool = True) -> float:
        """Start again on a fresh graph and session, with no sweep built (the weights are kept), warmed up as at a
        worker's start with ``warm_up``; the seconds it took. Also what a worker does after a job its time limit
        interrupted (service.worker), which may have cut a change to the graph half-way."""
        started = time.perf_counter()
        old = self.model
        self._start_graph()
        old.close()
        if warm_up:
            self.warm_up()
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

    def project_max(self, images_rgb, layer, pairs, rule="deconvnet") -> list:
        """The single-activation projections of explicit ``pairs`` [(image index, channel)] of one ``layer``
        of ``images_rgb`` (N, 224, 224, 3), windowed, in one run: a scan's projections, where each image has
        its own channels. Returns one Feature per pair, in their order (``reconstruction`` None)."""
        images_rgb = np.asarray(images_rgb)
        if images_rgb.ndim != 4 or images_rgb.shape[1:] != (224, 224, 3):
            raise ValueError(f"images must be (N, 224, 224, 3) RGB, got shape {images_rgb.shape}")
        name = get_layer(layer).name
        rule = parse_value(RULE, rule, {})
        pairs = np.asarray([(int(image), check_channel(name, channel)[1]) for image, channel in pairs],
                           np.int64).reshape(-1, 2)
        if not len(pairs):  # nothing to project; an empty batch of windows is also one oneDNN's conv2d mishandles
            return []
        if not (0 <= pairs[:, 0].min() and pairs[:, 0].max() < len(images_rgb)):
            raise ValueError(f"pair image indices must be between 0 and {len(images_rgb) - 1}")
        if (name, rule) not in self._pair_projectors:
            self._pair_projectors[(name, rule)] = PairProjector(self.model, name, rule)
        projector = self._pair_projectors[(name, rule)]
        outputs = self.model.run(projector.outputs, {self.model.images: to_network_input(images_rgb),
                                                     projector.pairs: pairs})
        features = []
        for row, (_, channel) in enumerate(pairs):
            activation = outputs["maps"][row]
            unit, field = strongest_unit(name, activation, outputs["position"][row])
            features.append(Feature(name, int(channel), float(outputs["norm"][row]), None, activation, explicit=True,
                                    max_position=unit, max_value=float(outputs["value"][row]), field=field,
                                    max_reconstruction=window_to_field(outputs["windows"][row],
                                                                       outputs["origins"][row], field)))
        return features

    def deconv(self, images_rgb, layers="pools", top_k=3, channels=(), mode="single",
               rule="deconvnet", progress=None, seed="map", rank="norm", reference=None) -> DeconvResult:
        """Project the ``top_k`` strongest features of each layer, plus explicit ``channels``
        (``[(layer, channel)]`` or ``"layer:ch,…"``), of every image down to pixel space: each one's whole
        map (``seed="map"``), its strongest activation alone (``"max"``) or both, in one pass. With
        ``rank="distinctive"``, the top_k are the channels most unusual against the scan in the folder
        ``reference`` instead (visnet.distinctive)."""
        if parse_value(RANK, rank, {}) == "distinctive":
            from .distinctive import deconv_distinctive

            return deconv_distinctive(self, images_rgb, reference, layers, top_k, channels, mode=mode, rule=rule,
                                      progress=progress, seed=seed)
        images_rgb = np.asarray(images_rgb)
        if images_rgb.ndim == 3:
            images_rgb = images_rgb[None]
        if images_rgb.ndim != 4 or images_rgb.shape[1:] != (224, 224, 3):
            raise ValueError(f"images must be (N, 224, 224, 3) RGB, got shape {images_rgb.shape}")
        mode = parse_value(MODE, mode, {})
        rule = parse_value(RULE, rule, {})
        seed = check_seed(seed)
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
            feed.update(self._seed_feed(sweep, names, top_k_of, explicit, seed))
            chunks = plan_chunks({name: top_k_of[name] + len(explicit[name]) for name in names}, count,
                                 self.memory_budget_mb * MIB, seed)
            outputs = sweep.outputs_for(seed)  # every op the job needs, before its first run (see _run_per_layer)
            if len(chunks) == 1:
                fetched = [self.model.run(outputs, feed)]
            else:
                fetched = [run_in_chunks(self.model, sweep, feed, chunks)]
            report("projecting all layers in one pass", 1, 1)
        else:
            fetched = self._run_per_layer(names, rule, feed_images, top_k_of, explicit, report, seed)
        elapsed = time.perf_counter() - started
        result = DeconvResult(names, [ImageResult() for _ in range(count)], self.weights.name,
                              self.device, mode, rule, {"network_seconds": elapsed}, self.weights_description, seed)
        for outputs, sweep_layers in fetched_layers(fetched, names, mode):
            self._collect(result, outputs, sweep_layers, top_k_of, count)
        return result

    @staticmethod
    def _seed_feed(sweep, names, top_k_of, explicit, seed):
        feed = sweep.seed_feed(seed)
        for name in names:
            feed[sweep.top_k[name]] = top_k_of[name]
            feed[sweep.explicit[name]] = explicit[name]
        return feed

    def _run_per_layer(self, names, rule, feed_images, top_k_of, explicit, report, seed):
        """One run for the forward pass, then one run per layer that reuses its switches. Every op is built
        before the first run: a run after new ops extends the session, at a cost that grows with the whole graph."""
        sweeps = [self.sweep([name], rule) for name in names]
        outputs = [sweep.outputs_for(seed) for sweep in sweeps]
        needed = {tensor.ref(): tensor for sweep in sweeps for tensor in sweep.forward_dependencies()}
        tensors = list(needed.values())
        report("forward pass", 0, 1)
        values = self.model.run(tensors, {self.model.images: feed_images})
        forward = dict(zip(tensors, values))
        report("forward pass", 1, 1)
        fetched = []
        for done, (name, sweep, wanted) in enumerate(zip(names, sweeps, outputs)):
            report(f"projecting {name}", done, len(names))
            feed = {tensor: forward[tensor] for tensor in sweep.forward_dependencies()}
            feed.update(self._seed_feed(sweep, [name], top_k_of, explicit, seed))
            fetched.append(self.model.run(wanted, feed))
        report("projecting layers", len(names), len(names))
        return fetched

    @staticmethod
    def _collect(result, outputs, sweep_layers, top_k_of, count):
        for image_result, layers in zip(result.images, collect_features(outputs, sweep_layers, top_k_of, count)):
            image_result.layers.update(layers)
        for image_result in result.images:
            image_result.layers = {name: image_result.layers.get(name, []) for name in result.layers}


def collect_features(outputs, sweep_layers, top_k_of, count) -> list:
    """Per image, {layer: [Feature]} from a sweep's fetched ``outputs``.

    One Feature per pair of every layer, in the pairs' order (image-major; within an image a layer's
    ranked pairs, strongest first, then the explicit), with its windowed max projection if fetched;
    then the dense rows' projections, matched by image, layer, kind and rank within the kind."""
    features, per_image_layers = {}, [{} for _ in range(count)]
    for name in sweep_layers:
        pairs = outputs["pairs"][name]
        per_image = len(pairs["image"]) // count
        for row in range(len(pairs["image"])):
            image, index = int(pairs["image"][row]), row % per_image
            activation = outputs["maps"][name][row]
            unit, field = strongest_unit(name, activation, pairs["position"][row])
            feature = Feature(name, int(pairs["channel"][row]), float(pairs["norm"][row]), None, activation,
                              explicit=index >= top_k_of[name], max_position=unit,
                              max_value=float(pairs["value"][row]), field=field)
            if "max_windows" in outputs:
                feature.max_reconstruction = window_to_field(
                    outputs["max_windows"][name][row], outputs["max_origins"][name][row], feature.field)
            features[(image, name, index)] = feature
            per_image_layers[image].setdefault(name, []).append(feature)
    position = {}
    for row, layer_index in enumerate(outputs.get("layer", ())):
        name = sweep_layers[layer_index]
        image, kind = int(outputs["image"][row]), int(outputs["kind"][row])
        index = position.get((image, name, kind), 0)
        position[(image, name, kind)] = index + 1
        feature = features[(image, name, index)]
        if kind == MAX_SEED:
            feature.max_reconstruction = window_to_field(outputs["reconstructions"][row], (0, 0), feature.field)
        else:
            feature.reconstruction = outputs["reconstructions"][row]
    return per_image_layers


def strongest_unit(layer, activation, flat_position) -> tuple:
    """((row, column), field window) of the unit at ``flat_position`` of a map of ``layer``."""
    unit = tuple(int(p) for p in np.unravel_index(int(flat_position), activation.shape))
    return unit, field_window(layer, *unit)


def window_to_field(window, origin, field) -> np.ndarray:
    """The part of ``window`` (its top-left corner at input ``origin``, (row, column)) that lies in ``field``
    = (top, left, side), as (side, side, …); zeros where the window does not reach."""
    top, left, side = field
    placed = np.zeros((side, side) + window.shape[2:], window.dtype)
    row, column = int(origin[0]), int(origin[1])
    height, width = window.shape[:2]
    rows = slice(max(top, row), min(top + side, row + height))
    columns = slice(max(left, column), min(left + side, column + width))
    if rows.start < rows.stop and columns.start < columns.stop:
        placed[rows.start - top:rows.stop - top, columns.start - left:columns.stop - left] = \
            window[rows.start - row:rows.stop - row, columns.start - column:columns.stop - column]
    return placed


def fetched_layers(fetched, names, mode):
    if mode == "single":
        return [(fetched[0], names)]
    return [(outputs, [name]) for outputs, name in zip(fetched, names)]


_ENGINE = None


def get_engine(weights="auto", device="auto", models_dir=None, memory_budget_mb=DEFAULT_BUDGET_MB) -> Engine:
    """The process-wide engine, loaded on first use (a worker calls this before its first job)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Engine.load(weights or "auto", device=device or "auto", models_dir=models_dir,
                              memory_budget_mb=memory_budget_mb)
    return _ENGINE


def load_model_engine(model: str, settings, weights=None, device=None):
    """The engine of ``model`` with ``settings`` (visnet.settings.Settings): VGG16's process-wide engine on
    ``weights`` (default the settings'), or a stored chain model's (visnet.chain.engine.ChainEngine)."""
    from .settings import DEFAULT_MODEL

    device = device or settings.device
    if model == DEFAULT_MODEL:
        return get_engine(weights or settings.weights, device, settings.models_dir, settings.sweep_memory_mb)
    from .chain.engine import ChainEngine

    return ChainEngine.load(settings.models_dir, model, device=device)
