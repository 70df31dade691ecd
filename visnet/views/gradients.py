"""Deconvnet, guided backpropagation and the plain gradient of the same features, side by side.

The three project a feature map to pixel space and differ only in what the backward pass does at
each ReLU (:mod:`visnet.deconvnet`): the deconvnet rectifies the signal (Zeiler & Fergus 2014),
guided backpropagation also keeps only where the forward input was positive (Springenberg et al.,
"Striving for Simplicity", 2015), and the gradient keeps only the latter (Simonyan et al., 2014).
The seeds are the deconvnet's: the ``top_k`` channels of each layer by activation norm, each projecting
its whole map, its single strongest activation (``seed="max"``, shown as the patch of that unit's receptive
field beside the same patch of the photo, as Zeiler & Fergus's Fig. 1–2) or both. One ``session.run``
fetches the three bundled sweeps, so the forward pass and the seed selection are computed once for all three.
"""
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .. import architecture
from ..architecture import resolve_layers
from ..deconvnet import RULES, check_seed
from ..display import caption_text, overlay_activation, reconstruction_image
from ..engine import collect_features
from ..preprocessing import to_network_input
from .base import View, ViewResult
from .drawing import BACKGROUND, LEGEND_FONT_SIZE, check_photo, draw_text, text_width, titled

RULE_TITLES = {"deconvnet": "deconvnet", "guided": "guided backprop", "gradient": "gradient"}
GRADIENT_TILE_SIZE = 160
ROW_LABEL_WIDTH = 120
COLUMN_HEADER_HEIGHT = 22
TILE_GAP = 4
ROW_GAP = 10


@dataclass
class Projection:
    """One seed (layer, channel) of the photo and its reconstruction under each rule, float32
    (224, 224, 3) in the network's input space (BGR, mean subtracted); with max seeds, the projection of
    its strongest activation at ``max_position`` under each rule, (side, side, 3) inside ``field``."""

    layer: str
    channel: int
    norm: float
    activation: np.ndarray
    reconstructions: dict = field(default_factory=dict)  # rule -> array (map seeds)
    max_reconstructions: dict = field(default_factory=dict)  # rule -> array (max seeds)
    max_position: tuple = (0, 0)
    max_value: float = 0.0
    field: tuple = None  # (top, left, side)


def check_top_k(layers, names, top_k) -> int:
    """``top_k`` as an int when each of the layers ``names`` has that many channels (``layers``: the model's, as
    the option parsers address them); a ValueError naming the narrowest otherwise."""
    top_k = int(top_k)
    for name in names:
        if not 1 <= top_k <= layers.get_layer(name).channels:
            raise ValueError(f"top_k must be between 1 and the {layers.get_layer(name).channels} channels of {name}, "
                             f"got {top_k}")
    return top_k


def project_all_rules(engine, rgb, layers, top_k: int, seed: str = "map") -> tuple:
    """The ``top_k`` strongest channels of each of ``layers`` for one photo, projected with every rule
    in one run, as ``seed`` says. Returns ([Projection] in layer order, strongest first; network seconds)."""
    photo = check_photo(rgb, "gradients")
    names = resolve_layers(layers)
    seed = check_seed(seed)
    top_k = check_top_k(architecture, names, top_k)
    model = engine.model
    sweeps = {rule: engine.sweep(names, rule) for rule in RULES}
    feed = {model.images: to_network_input(photo)[None]}
    for sweep in sweeps.values():
        feed.update({sweep.top_k[name]: top_k for name in names})
        feed.update(sweep.seed_feed(seed))
    started = time.perf_counter()
    fetched = model.run({rule: sweep.outputs_for(seed) for rule, sweep in sweeps.items()}, feed)
    seconds = time.perf_counter() - started

    features = {rule: collect_features(outputs, names, {name: top_k for name in names}, 1)[0]
                for rule, outputs in fetched.items()}
    return projections_by_feature(features, names), seconds


def projections_by_feature(features, names) -> list:
    """[Projection] in the order of ``names`` and of each layer's features, from ``features`` {rule: {layer:
    [Feature]}} (visnet.engine.Feature) of one photo, every rule having seeded the same channels."""
    projections = []
    for name in names:
        for index, feature in enumerate(features[RULES[0]][name]):
            projection = Projection(name, feature.channel, feature.norm, feature.activation,
                                    max_position=feature.max_position, max_value=feature.max_value, field=feature.field)
            for rule in RULES:
                same = features[rule][name][index]
                if same.channel != feature.channel:
                    raise RuntimeError(f"the {rule} sweep did not seed {name} channel {feature.channel}")
                if same.reconstruction is not None:
                    projection.reconstructions[rule] = same.reconstruction
                if same.max_reconstruction is not None:
                    projection.max_reconstructions[rule] = same.max_reconstruction
            projections.append(projection)
    return projections


def comparison_sheet(photo, layer: str, projections, seed: str = "map", class_names=None) -> np.ndarray:
    """One row per feature: its label (with its class's name when the layer's channels are named classes,
    ``class_names``), the activation over the photo, then the three reconstructions of the whole map (seed map or
    both) and the photo's patch with the three projections of the strongest activation (seed max or both)."""
    columns = ["activation"]
    if seed != "max":
        columns += [RULE_TITLES[rule] for rule in RULES]
    if seed != "map":
        columns += ["photo patch"] + [f"{RULE_TITLES[rule]}, max" for rule in RULES]
    step = GRADIENT_TILE_SIZE + TILE_GAP
    width = ROW_LABEL_WIDTH + len(columns) * step - TILE_GAP
    height = COLUMN_HEADER_HEIGHT + len(projections) * (GRADIENT_TILE_SIZE + ROW_GAP) - ROW_GAP
    body = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(body)
    for index, title in enumerate(columns):
        left = ROW_LABEL_WIDTH + index * step + (GRADIENT_TILE_SIZE - text_width(title, LEGEND_FONT_SIZE)) // 2
        draw_text(draw, (left, 2), title, LEGEND_FONT_SIZE)
    for row, projection in enumerate(projections):
        top = COLUMN_HEADER_HEIGHT + row * (GRADIENT_TILE_SIZE + ROW_GAP)
        lines = caption_text(projection.channel, projection.norm).split(" · ")
        if seed != "map":
            lines.append(f"max {projection.max_value:.3g} at {projection.max_position[0]},{projection.max_position[1]}")
        if class_names:
            lines.insert(1, _fitted(class_names[projection.channel], ROW_LABEL_WIDTH - 4))
        for line_number, line in enumerate(lines):
            draw_text(draw, (0, top + GRADIENT_TILE_SIZE // 2 - 18 + 20 * line_number), line, LEGEND_FONT_SIZE)
        tiles = [overlay_activation(photo, projection.activation)]
        if seed != "max":
            tiles += [reconstruction_image(projection.reconstructions[rule]) for rule in RULES]
        if seed != "map":
            field_top, field_left, side = projection.field
            tiles.append(photo[field_top:field_top + side, field_left:field_left + side])
            tiles += [reconstruction_image(projection.max_reconstructions[rule]) for rule in RULES]
        for index, tile in enumerate(tiles):
            tile = np.asarray(Image.fromarray(np.ascontiguousarray(tile)).resize(
                (GRADIENT_TILE_SIZE, GRADIENT_TILE_SIZE), Image.Resampling.LANCZOS))
            body.paste(Image.fromarray(tile), (ROW_LABEL_WIDTH + index * step, top))
    legend = ["each reconstruction in the network's input space, scaled on its own symmetric around 0 (grey = 0)",
              "activation: the channel's map over the dimmed photo · ‖a‖: its L2 norm"]
    if seed != "map":
        legend.append("max: the projection of the channel's strongest activation alone, on its receptive field "
                      "(the photo patch beside it), enlarged")
    return titled(np.asarray(body),
                  title=[f"{layer} · top {len(projections)} channels by activation norm, three backward rules"],
                  legend=legend)


class GradientsView(View):
    """Deconvnet, guided backprop and gradient reconstructions of the same seeds, one sheet per layer."""

    method = "gradients"

    def class_names(self, layer: str):
        """The names of ``layer``'s channels when they are classes (the logits of a softmax with named classes):
        the rows of such a layer are the gradients of those classes. None: VGG16's layers are conv and pool ones."""
        return None

    def project(self, photo, names, top_k: int, seed: str) -> tuple:
        """:func:`project_all_rules` on this view's model."""
        return project_all_rules(self.engine, photo, names, top_k, seed)

    def compute(self, rgb, progress, layers="pools", top_k=3, seed="map") -> ViewResult:
        photo = self.photo(rgb)
        names = self.layers.resolve_layers(layers)
        progress("forward pass and three backward sweeps", 0, 1)
        projections, seconds = self.project(photo, names, top_k, seed)
        progress("forward pass and three backward sweeps", 1, 1)
        images, captions = {}, {}
        for done, name in enumerate(names):
            progress("drawing", done, len(names))
            stem = f"gradients_{name}"
            images[stem] = comparison_sheet(photo, name, [p for p in projections if p.layer == name], seed,
                                            self.class_names(name))
            shown = {"map": "whole maps", "max": "strongest activations", "both": "whole maps and strongest activations"}
            captions[stem] = (f"{name}: top {top_k} channels, {shown[seed]}; deconvnet | guided backprop | gradient, "
                              "each scaled on its own symmetric around 0")
        progress("drawing", len(names), len(names))
        features = []
        for p in projections:
            feature = {"layer": p.layer, "channel": p.channel, "norm": p.norm}
            if self.class_names(p.layer):
                feature["class"] = self.class_names(p.layer)[p.channel]
            if seed != "max":
                feature["max_abs"] = {rule: float(np.max(np.abs(p.reconstructions[rule]))) for rule in RULES}
            if seed != "map":
                feature.update(max_position=list(p.max_position), max_value=p.max_value, field=list(p.field),
                               max_abs_max_seed={rule: float(np.max(np.abs(p.max_reconstructions[rule])))
                                                 for rule in RULES})
            features.append(feature)
        return ViewResult(self.method, images=images, captions=captions,
                          data={"layers": names, "top_k": int(top_k), "seed": seed, "rules": list(RULES),
                                "features": features},
                          timings={"network_seconds": seconds})


def _fitted(text: str, width: int) -> str:
    """``text`` cut to ``width`` pixels of the legend font, "..." marking the cut."""
    if text_width(text, LEGEND_FONT_SIZE) <= width:
        return text
    while text and text_width(text + "...", LEGEND_FONT_SIZE) > width:
        text = text[:-1]
    return text + "..."
