"""Occlusion sensitivity (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional
Networks", Sect. 4.2 and Fig. 7).

A grey square of side ``size`` slides with step ``stride`` over the 224×224 input, at offsets
0, stride, 2·stride, … while the square still fits, in both directions. The square is 0 in the
network's input space, i.e. the ImageNet mean colour: a neutral grey that carries no signal after
mean subtraction. Every occluded image goes through the network, ``batch_size`` at a time (one
forward pass per batch, plus one for the unoccluded image), and each position gets:

(a) the total activation (the sum of the post-ReLU map) of the block5_conv3 channel that is strongest,
    by the L2 norm of its post-ReLU map (the deconvnet's top-k rule), for the unoccluded image (works with
    any weights);
(b) with a classifier top, the probability of the class the unoccluded image is assigned;
(c) with a classifier top, the most probable class.

The drop map is (a) minus its unoccluded value: negative where hiding the square lowers the channel (what
the source calls "the drop"), drawn on a diverging scale centred at zero, beside the raw map (a).

Pictures are per pixel: a pixel's value is the mean over the occluder positions whose square covers
it; a pixel that no square covers (the right and bottom strips when the stride does not divide
224 − size, or gaps when the stride exceeds the size) takes the value of the nearest position, by
distance to the square's centre. The class map, which cannot be averaged, shows at each pixel the
class of the nearest position. Heat maps span the grid's own minimum to maximum, labelled on a colour
bar beside the photo (the probability map spans 0 to 1); the unoccluded value is ticked on the bar
when it lies in the range.

This is VGG16's; a stored model's view (:mod:`visnet.chain.views`) sets the feature layer (its deepest
convolution), the occluder's value (the ImageNet mean colour in its input space) and the classes (its own),
and its photo's side replaces 224 throughout; a photo smaller than 224 is drawn enlarged (:func:`enlarged`).
"""
import math
import time
from functools import lru_cache

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from ..architecture import INPUT_SIZE, classifier_flops, forward_flops
from ..display import colormap, dimmed_blend, font
from ..methods import MEASURES
from .base import View, ViewResult
from .classification import class_names
from .drawing import diverging

FEATURE_LAYER = "block5_conv3"
OCCLUDER_VALUE = 0.0  # network space: the ImageNet mean colour, a neutral grey

# Picture layout, in pixels: a header line, then the 224×224 overlay and beside it a colour bar with
# its labels (heat maps) or a legend (class map).
HEADER_HEIGHT = 22
SIDE_GAP = 10
BAR_WIDTH = 14
BAR_MARGIN = 6  # the bar stops short of the overlay's top and bottom so end labels fit
BAR_LABEL_GAP = 4
BAR_LABEL_WIDTH = 74
LEGEND_WIDTH = 196
LEGEND_ROW_HEIGHT = 18
LEGEND_SWATCH = 12
MAX_LEGEND_CLASSES = 10  # beyond these, by area, the rest is drawn as "other"


def heatmap_shape(side: int) -> tuple:
    """A heat map picture's shape for an overlay of ``side`` pixels (:func:`display_scale`)."""
    return HEADER_HEIGHT + side, side + SIDE_GAP + BAR_WIDTH + BAR_LABEL_GAP + BAR_LABEL_WIDTH, 3


def classmap_shape(side: int) -> tuple:
    return HEADER_HEIGHT + side, side + SIDE_GAP + LEGEND_WIDTH, 3


HEATMAP_SHAPE, CLASSMAP_SHAPE = heatmap_shape(INPUT_SIZE), classmap_shape(INPUT_SIZE)
OVERLAY_ALPHA = 0.6  # weight of the colour over the dimmed greyscale photo
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (32, 32, 32)
FONT_SIZE = 12
# Tableau's ten categorical colours, then a grey for "other".
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127))
OTHER_COLOUR = (200, 200, 200)


class OcclusionView(View):
    """Occlusion sensitivity maps; the class maps are added when the weights have a classifier top."""

    method = "occlusion"

    # What depends on the model: VGG16's here (a stored model's: visnet.chain.views.ChainOcclusionView).
    feature_layer = FEATURE_LAYER
    occluder_value = OCCLUDER_VALUE
    occluder_words = "grey square, 0 in network space (the ImageNet mean colour)"

    def class_names(self):
        """The names of the classifier's outputs, by index; None when there is no classifier to map."""
        return class_names() if self.engine.model.has_top else None

    def gflops_per_image(self, with_classifier: bool) -> float:
        return forward_gflops(with_classifier)

    def compute(self, rgb, progress, sizes=((50, 10),), batch_size=32) -> ViewResult:
        photo = self.photo(rgb)
        model = self.engine.model
        layer, names = self.feature_layer, self.class_names()
        ops = _occlusion_ops(model, layer)
        fetches = {"totals": ops["totals"]}
        if names is not None:
            fetches["probabilities"] = model.unswitched_probabilities  # no pool switches: occlusion needs none
        image = self.network_input(photo)
        rows, columns = model.activations[layer].shape[1:3]

        started = time.perf_counter()
        reference = model.run(dict(fetches, norms=ops["norms"]), {model.images: image[None]})
        channel = int(np.argmax(reference["norms"][0]))
        data = {
            "feature_layer": layer,
            "channel": channel,
            "channel_norm": float(reference["norms"][0, channel]),
            "channel_rule": MEASURES["l2-norm"] + ": the largest on the unoccluded image",
            "unoccluded_total": float(reference["totals"][0, channel]),
            "feature_measure": f"sum of the channel's map after the ReLU (its post-ReLU mean × the map's {rows}×{columns} "
                               "positions)",
            "occluder": self.occluder_words,
            "pixel_rule": "mean over the occluder positions covering the pixel; nearest position where none does",
            "has_classifier": names is not None,
            "settings": [],
        }
        # Figures of speed go with the timings, apart from what the pictures show.
        result = ViewResult(self.method, data=data, timings={"forward_passes": 1,
                                                             "gflops_per_image": self.gflops_per_image(names is not None)})
        predicted = None
        if names is not None:
            predicted = int(np.argmax(reference["probabilities"][0]))
            data["predicted_class"] = {"index": predicted, "name": names[predicted],
                                       "probability": float(reference["probabilities"][0, predicted])}

        for size, stride in sizes:
            setting, speed = self._scan(fetches, image, size, stride, batch_size, channel, predicted, progress)
            data["settings"].append(setting)
            result.timings["forward_passes"] += speed["forward_passes"] - 1
            result.timings.update({f"occlusion_{size}x{stride}_{key}": value for key, value in speed.items()})
            _draw_setting(result, photo, setting, names)
        result.timings["network_seconds"] = time.perf_counter() - started
        return result

    def _scan(self, fetches, image, size, stride, batch_size, channel, predicted, progress) -> tuple:
        """Every occluded image of one (size, stride) through the network, ``batch_size`` per run: the
        setting's figures, and its speed (seconds, images per second, forward passes with the unoccluded one)."""
        model = self.engine.model
        positions = occluder_positions(size, stride, image.shape[0])
        pairs = [(row, col) for row in positions for col in positions]
        batches = math.ceil(len(pairs) / batch_size)
        totals = np.empty(len(pairs), np.float64)
        probabilities = np.empty(len(pairs), np.float64)
        classes = np.empty(len(pairs), np.int64)
        stage = f"occluding {size}×{size}, stride {stride}"
        progress(stage, 0, batches)
        started = time.perf_counter()
        for batch in range(batches):
            chunk = slice(batch * batch_size, (batch + 1) * batch_size)
            values = model.run(fetches, {model.images: occluded_images(image, pairs[chunk], size,
                                                                       self.occluder_value)})
            totals[chunk] = values["totals"][:, channel]
            if predicted is not None:
                probabilities[chunk] = values["probabilities"][:, predicted]
                classes[chunk] = np.argmax(values["probabilities"], axis=1)
            progress(stage, batch + 1, batches)
        seconds = time.perf_counter() - started
        shape = (len(positions), len(positions))
        setting = {
            "size": size, "stride": stride, "positions": positions, "occluded_images": len(pairs),
            "channel": channel, "feature_grid": totals.reshape(shape).tolist(),
        }
        speed = {"seconds": seconds, "images_per_second": len(pairs) / seconds, "forward_passes": batches + 1}
        if predicted is not None:
            setting["predicted_class"] = predicted
            setting["probability_grid"] = probabilities.reshape(shape).tolist()
            setting["class_grid"] = classes.reshape(shape).tolist()
        return setting, speed


def _draw_setting(result, photo, setting, names=None):
    """The pictures of one (size, stride) setting, added to ``result``; ``names``: the classes' (with a classifier)."""
    size, stride, positions, channel = setting["size"], setting["stride"], setting["positions"], setting["channel"]
    stem, square = f"occlusion_{size}x{stride}", f"a grey {size}×{size} square at each position, stride {stride}"
    layer, extent = result.data["feature_layer"], photo.shape[0]
    result.images[f"{stem}_feature"] = heatmap_picture(
        photo, per_pixel_map(setting["feature_grid"], positions, size, extent),
        f"{layer} ch {channel} total, {size}x{stride}", reference=result.data["unoccluded_total"])
    result.captions[f"{stem}_feature"] = (f"Total post-ReLU activation (sum over the map) of {layer} channel "
                                          f"{channel} (the unoccluded image's strongest map by L2 norm) with {square}")
    drop = per_pixel_map(drop_grid(setting["feature_grid"], result.data["unoccluded_total"]), positions, size, extent)
    result.arrays[f"{stem}_drop"] = drop
    reach = float(np.max(np.abs(drop))) or 1.0  # a flat zero drop is all white
    # Drop first: it is what the method is about; the raw map beside it gives the absolute values.
    result.images = {f"{stem}_drop": heatmap_picture(
        photo, drop, f"drop: occluded - unoccluded, ch {channel}, {size}x{stride}", domain=(-reach, reach),
        colours=diverging), **result.images}
    result.captions[f"{stem}_drop"] = (f"Drop in that total with {square}: occluded minus unoccluded "
                                       f"({format_value(result.data['unoccluded_total'])}); blue where hiding the "
                                       "square lowers the channel, red where it raises it, white 0")
    if "predicted_class" not in setting:
        return
    predicted = result.data["predicted_class"]
    index, name = predicted["index"], predicted["name"]
    result.images[f"{stem}_probability"] = heatmap_picture(
        photo, per_pixel_map(setting["probability_grid"], positions, size, extent), f"p({name}), {size}x{stride}",
        reference=predicted["probability"], domain=(0.0, 1.0))
    result.captions[f"{stem}_probability"] = f"Probability of the predicted class {index} ({name}) with {square}"
    nearest = nearest_position(positions, size, extent)
    class_pixels = np.asarray(setting["class_grid"])[np.ix_(nearest, nearest)]
    result.images[f"{stem}_class"] = class_picture(
        photo, class_pixels, f"most probable class, {size}x{stride} (unoccluded: {name})", names)
    result.captions[f"{stem}_class"] = f"Most probable class with {square}; unoccluded: {index} ({name})"


def drop_grid(feature_grid, unoccluded_total: float) -> np.ndarray:
    """The occluded totals minus the unoccluded one: negative where the occluder lowers the channel."""
    return np.asarray(feature_grid, np.float64) - float(unoccluded_total)


def occluder_positions(size: int, stride: int, extent: int = INPUT_SIZE) -> list:
    """Offsets 0, stride, 2·stride, … at which a square of side ``size`` still fits in ``extent``."""
    if not 1 <= size <= extent or stride < 1:
        raise ValueError(f"occluder size must be between 1 and {extent} and stride at least 1, got {size}:{stride}")
    return list(range(0, extent - size + 1, stride))


def occluded_images(image, pairs, size: int, value=OCCLUDER_VALUE) -> np.ndarray:
    """Copies of ``image`` (H, W, C, network space), each with a square of side ``size`` of ``value`` (one
    number, or one per channel) whose top-left corner is one of the (row, col) ``pairs``: (len(pairs), H, W, C)
    float32."""
    batch = np.repeat(np.asarray(image, np.float32)[None], len(pairs), axis=0)
    for index, (row, col) in enumerate(pairs):
        batch[index, row:row + size, col:col + size] = value
    return batch


def pixel_weights(positions, size: int, extent: int = INPUT_SIZE) -> np.ndarray:
    """(len(positions), extent) weights along one axis: each pixel's column is uniform over the
    positions whose square covers it, or one-hot at the nearest position when none does."""
    positions = np.asarray(positions)
    pixels = np.arange(extent)
    covers = ((pixels[None] >= positions[:, None]) & (pixels[None] < positions[:, None] + size)).astype(np.float64)
    uncovered = covers.sum(axis=0) == 0
    covers[nearest_position(positions, size, extent)[uncovered], np.flatnonzero(uncovered)] = 1.0
    return covers / covers.sum(axis=0, keepdims=True)


def per_pixel_map(grid, positions, size: int, extent: int = INPUT_SIZE) -> np.ndarray:
    """The (extent, extent) map of a grid of values over occluder positions (rows, cols): each pixel
    is the mean over the squares covering it (the coverage is separable, so this is Wᵀ·grid·W)."""
    weights = pixel_weights(positions, size, extent)
    return weights.T @ np.asarray(grid, np.float64) @ weights


def nearest_position(positions, size: int, extent: int = INPUT_SIZE) -> np.ndarray:
    """For each pixel along one axis, the index of the position whose square's centre is nearest
    (the first of two equally near)."""
    centres = np.asarray(positions, np.float64) + (size - 1) / 2.0
    return np.argmin(np.abs(np.arange(extent)[:, None] - centres[None]), axis=1)


def forward_gflops(with_top: bool) -> float:
    """Dense GFLOPs of one 224×224 forward pass (visnet.architecture's FLOP model): every conv, plus
    the classifier when it runs."""
    return (forward_flops() + (classifier_flops() if with_top else 0)) / 1e9


@lru_cache(maxsize=1)
def _occlusion_ops(model, layer: str = FEATURE_LAYER) -> dict:
    """Per-image, per-channel sums and L2 norms of the feature ``layer``, built into the model's graph once, on
    the forward pass without pool switches (visnet.chain.graph.ChainGraph.unswitched_activations: the same values)."""
    cache = vars(model).setdefault("view_ops", {})
    if ("occlusion", layer) not in cache:
        with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope("occlusion"):
            maps = model.unswitched_activations()[layer]
            cache[("occlusion", layer)] = {
                "totals": tf.reduce_sum(maps, axis=[1, 2], name="totals"),
                "norms": tf.sqrt(tf.reduce_sum(tf.square(maps), axis=[1, 2]), name="norms"),
            }
    return cache[("occlusion", layer)]


# Drawing ----------------------------------------------------------------------------------------

def display_scale(side: int) -> int:
    """How many times a photo of ``side`` pixels is enlarged in the pictures (each pixel a square block), so that
    the overlay is at least INPUT_SIZE pixels and its colour bar's labels fit beside it: 1 for VGG16's."""
    return max(1, math.ceil(INPUT_SIZE / side))


def enlarged(array) -> np.ndarray:
    """An (h, w, …) picture or map enlarged by :func:`display_scale` of its side (itself at 224 pixels)."""
    array = np.asarray(array)
    factor = display_scale(array.shape[0])
    return array if factor == 1 else np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def heatmap_picture(photo, pixel_map, title: str, reference=None, domain=None, colours=colormap) -> np.ndarray:
    """``pixel_map`` coloured (``colours``: inferno, or a diverging map for a domain centred at 0) over the
    dimmed photo (enlarged as :func:`enlarged` says), with a labelled colour bar and a title line: HEATMAP_SHAPE
    uint8 for a 224-pixel photo. The colours span
    ``domain`` (low, high), by default the map's own minimum to maximum; ``reference`` is ticked on the bar."""
    values = np.asarray(pixel_map, np.float64)
    low, high = (float(values.min()), float(values.max())) if domain is None else map(float, domain)
    unit = np.clip((values - low) / (high - low), 0, 1) if high > low else np.zeros_like(values)
    photo, unit = enlarged(photo), enlarged(unit)
    side = photo.shape[0]
    canvas, draw = _canvas(heatmap_shape(side), title)
    canvas.paste(Image.fromarray(dimmed_blend(photo, colours(unit), OVERLAY_ALPHA)), (0, HEADER_HEIGHT))

    left = side + SIDE_GAP
    top, bottom = HEADER_HEIGHT + BAR_MARGIN, HEADER_HEIGHT + side - BAR_MARGIN
    ramp = np.linspace(1.0, 0.0, bottom - top)[:, None].repeat(BAR_WIDTH, axis=1)
    canvas.paste(Image.fromarray(colours(ramp)), (left, top))
    draw.rectangle((left - 1, top - 1, left + BAR_WIDTH, bottom), outline=TEXT_COLOUR)
    label_font = font(FONT_SIZE)
    label_left = left + BAR_WIDTH + BAR_LABEL_GAP
    for value, y in ((high, top), ((low + high) / 2, (top + bottom) / 2), (low, bottom)):
        draw.text((label_left, y), format_value(value), font=label_font, fill=TEXT_COLOUR, anchor="lm")
    if reference is not None and high > low and low <= reference <= high:
        y = bottom - (reference - low) / (high - low) * (bottom - top)
        draw.line((left - 4, y, left + BAR_WIDTH + 2, y), fill=TEXT_COLOUR, width=2)
    return np.asarray(canvas, np.uint8).copy()


def class_picture(photo, class_pixels, title: str, names=None) -> np.ndarray:
    """Each pixel's class in a categorical colour over the dimmed photo, with a legend of the classes
    by area (the largest MAX_LEGEND_CLASSES, the rest as "other"): CLASSMAP_SHAPE uint8 for a 224-pixel photo.
    ``names``: the classes' names by index (ImageNet's by default)."""
    class_pixels = np.asarray(class_pixels)
    classes, counts = np.unique(class_pixels, return_counts=True)
    order = classes[np.argsort(-counts, kind="stable")]
    shown = list(order[:MAX_LEGEND_CLASSES])
    colours = np.empty(class_pixels.shape + (3,), np.uint8)
    colours[:] = OTHER_COLOUR
    for index, cls in enumerate(shown):
        colours[class_pixels == cls] = PALETTE[index]
    photo, colours = enlarged(photo), enlarged(colours)
    canvas, draw = _canvas(classmap_shape(photo.shape[0]), title)
    canvas.paste(Image.fromarray(dimmed_blend(photo, colours, OVERLAY_ALPHA)), (0, HEADER_HEIGHT))

    label_font, names = font(FONT_SIZE), class_names() if names is None else names
    left, top = photo.shape[0] + SIDE_GAP, HEADER_HEIGHT + 4
    share = dict(zip(classes, counts / class_pixels.size))
    rows = [(PALETTE[index], f"{cls} {names[cls]}", share[cls]) for index, cls in enumerate(shown)]
    if len(order) > len(shown):
        rest = order[len(shown):]
        rows.append((OTHER_COLOUR, f"{len(rest)} other classes", sum(share[cls] for cls in rest)))
    for colour, label, fraction in rows:
        swatch = (left, top + 2, left + LEGEND_SWATCH, top + 2 + LEGEND_SWATCH)
        draw.rectangle(swatch, fill=colour, outline=TEXT_COLOUR)
        text = _fit(f"{label} ({fraction:.0%})", label_font, LEGEND_WIDTH - LEGEND_SWATCH - 8)
        draw.text((left + LEGEND_SWATCH + 5, top + 2 + LEGEND_SWATCH / 2), text, font=label_font, fill=TEXT_COLOUR,
                  anchor="lm")
        top += LEGEND_ROW_HEIGHT
    return np.asarray(canvas, np.uint8).copy()


def format_value(value: float) -> str:
    """A colour-bar label: 4 significant digits, thousands separated, exponent beyond 1e6 or below 1e-3."""
    value = float(value)
    if value != 0 and not 1e-3 <= abs(value) < 1e6:
        return f"{value:.3e}"
    if abs(value) >= 1e3:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _canvas(shape, title):
    canvas = Image.new("RGB", (shape[1], shape[0]), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    title_font = font(FONT_SIZE)
    draw.text((2, HEADER_HEIGHT / 2), _fit(title, title_font, shape[1] - 4), font=title_font, fill=TEXT_COLOUR,
              anchor="lm")
    return canvas, draw


def _fit(text: str, font, width: int) -> str:
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:  # the bundled font has no "…"
        text = text[:-1]
    return text + "..."
