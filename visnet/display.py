"""Arrays to pictures: deconvnet reconstructions, activation overlays and summary sheets.

Pure numpy and Pillow, so the web process can draw without importing TensorFlow.

Following Lucid's ``serialize_array``, normalising an unbounded array and encoding a picture are
separate steps: ``normalize_symmetric`` / ``normalize_min_max`` map floats to [0, 1], ``to_uint8``
quantises, ``encode_png`` writes bytes, and ``reconstruction_image`` / ``reconstruction_png``
compose them.

Normalisation domains for a reconstruction (Zeiler & Fergus 2014, "Visualizing and Understanding
Convolutional Networks"):

* ``"symmetric"`` (default): 0 maps to mid-grey and ``±s`` maps to 0 or 255, i.e.
  ``0.5 + x / (2 · s)`` clipped to [0, 1], where ``s`` is the 99.5th percentile of ``|x|`` over all
  pixels and channels (``SYMMETRIC_PERCENTILE``). Deep reconstructions are a few very strong pixels
  on a faint pattern: scaling by the maximum would show them as flat grey, so the top 0.5 % of
  magnitudes are clipped instead. ``normalize_symmetric(x, percentile=100)`` is the plain max scale. A reconstruction lives in the network's input
  space, centred at 0 (the mean image), so its sign matters: a negative value means "darker than
  the mean image" in that channel, and a symmetric domain keeps that meaning and keeps zero at the
  same grey in every picture. One scale is shared by the three channels so colour balance survives.
* ``"min-max"``: ``(x - min) / (max - min)`` over the whole image (all channels together). It uses
  the full 0–255 range but moves zero, so grey no longer means "no contribution".

Both domains are per image because the magnitude of a reconstruction differs by orders of
magnitude from one layer to the next; a fixed scale would show deep layers as flat grey.
"""
import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import png

DOMAINS = ("symmetric", "min-max")
# The |value| percentile that maps to black or white in the default symmetric domain.
SYMMETRIC_PERCENTILE = 99.5

# Colormap anchors sampled at nine evenly spaced points of matplotlib's perceptually uniform maps
# (van der Walt & Smith); linear interpolation between them is visually indistinguishable.
COLORMAPS = {
    "inferno": (
        (0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85),
        (227, 89, 51), (249, 142, 9), (249, 203, 53), (252, 255, 164),
    ),
    "viridis": (
        (68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142),
        (31, 158, 137), (53, 183, 121), (110, 206, 88), (253, 231, 37),
    ),
}

# zlib level of every PNG written (Pillow's default is 6). Measured on a real result (chelsea, hed weights,
# `--layers all --top-k 3` plus W15 seed=both: 168 pictures, 2-core Xeon): level 1 encodes in 3.3 ms a
# picture and 70.4 KiB, level 3 in 4.3 ms and 68.8 KiB, level 6 in 10.6 ms and 67.4 KiB, level 9 in
# 29.0 ms and 66.8 KiB. Level 1 is 3.2× faster than 6 for files 4 % larger, so it is the level: encoding
# was 80 % of the writing time, and 3 KiB more a picture costs less than a millisecond on any network
# that serves the pages. Decoded pixels are the same at every level (PNG is lossless).
# (Those figures are Pillow's encoder's; visnet.png, which writes them now, keeps the level.)
PNG_COMPRESS_LEVEL = 1

# ITU-R BT.601 luma weights for the greyscale backdrop of an overlay.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
# The photo under an overlay is dimmed so that the coloured activation stands out.
OVERLAY_PHOTO_BRIGHTNESS = 0.5

# Summary sheet layout, in pixels.
SHEET_MARGIN = 16  # around the whole sheet
SHEET_PHOTO_SIZE = 224  # the input photo in the header
SHEET_TITLE_GAP = 16  # between the photo and the header text
SHEET_HEADER_GAP = 24  # between the header and the first layer row
SHEET_LABEL_WIDTH = 128  # the layer-name column
SHEET_TILE_SIZE = 112  # every picture of a feature is scaled to this
SHEET_TILE_GAP = 2  # between two pictures of one feature
SHEET_PAIR_GAP = 12  # between two features of a row
SHEET_CAPTION_HEIGHT = 20  # the "ch … · ‖a‖ …" caption under a feature
SHEET_ROW_GAP = 12  # between two layer rows
SHEET_BACKGROUND = (255, 255, 255)
SHEET_TEXT_COLOUR = (32, 32, 32)
SHEET_SECONDARY_TEXT_COLOUR = (96, 96, 96)
SHEET_TITLE_FONT_SIZE = 20
SHEET_LEGEND_FONT_SIZE = 13
SHEET_LABEL_FONT_SIZE = 14
SHEET_CAPTION_FONT_SIZE = 12
# The pictures of one feature on the sheet, left to right, with the legend's words for each; a sheet shows
# those its features have ("overlay" always; "reconstruction" with map seeds; the patches with max seeds).
SHEET_TILE_KINDS = (
    ("overlay", "activation overlay"),
    ("reconstruction", "whole-map reconstruction"),
    ("patch", "strongest activation's projection in its receptive field"),
    ("photo_patch", "the photo there"),
)
SHEET_CAPTION_LEGEND = "ch: channel · ‖a‖: activation norm"


def normalize_symmetric(array, percentile: float = 100.0) -> np.ndarray:
    """Map values to [0, 1] with 0 at 0.5 and the ``percentile``-th percentile of |value| at 0 or 1
    (float64); larger magnitudes are clipped. The default, 100, scales by the largest |value|.

    An all-zero array gives 0.5 everywhere.
    """
    values = _finite_float_array(array, "normalize_symmetric")
    magnitudes = np.abs(values)
    scale = (np.percentile(magnitudes, percentile) if percentile < 100 else magnitudes.max()) if values.size else 0.0
    if scale == 0:
        scale = magnitudes.max() if values.size else 0.0
    if scale == 0:
        return np.full_like(values, 0.5)
    unit = values / (2.0 * scale)  # then in place: the same arithmetic as 0.5 + values / (2 · scale), no temporaries
    unit += 0.5
    return np.clip(unit, 0.0, 1.0, out=unit)


def normalize_min_max(array) -> np.ndarray:
    """Map values to [0, 1] by (x - min) / (max - min) over the whole array (float64).

    A constant array gives 0 everywhere.
    """
    values = _finite_float_array(array, "normalize_min_max")
    if values.size == 0:
        return values
    low, high = values.min(), values.max()
    if high == low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def to_uint8(unit_array) -> np.ndarray:
    """Clip to [0, 1] and quantise: round(x · 255) as uint8 (halves round to even, as numpy does)."""
    scaled = np.clip(_finite_float_array(unit_array, "to_uint8"), 0.0, 1.0)
    scaled *= 255.0
    return np.round(scaled, out=scaled).astype(np.uint8)


def encode_png(uint8_array, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """Encode (H, W), (H, W, 3) or (H, W, 4) uint8 as PNG bytes (L, RGB or RGBA), at zlib level
    ``compress_level`` (0–9; ``PNG_COMPRESS_LEVEL`` by default, chosen by measurement).

    Only the critical chunks are written (no text, time or EXIF metadata). Every row is "Up"-filtered
    (visnet.png, which says why not Pillow's encoder); zlib releases the GIL while it compresses, so several
    threads encode in parallel (visnet.outputs does).
    """
    array = np.asarray(uint8_array)
    if array.dtype != np.uint8:
        raise ValueError(f"encode_png expects a uint8 array, received dtype {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"encode_png expects shape (H, W), (H, W, 3) or (H, W, 4), received {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"encode_png expects a non-empty image, received shape {array.shape}")
    if isinstance(compress_level, bool) or compress_level not in range(10):
        raise ValueError(f"compress_level must be an integer from 0 to 9, received {compress_level!r}")
    return png.encode(array, compress_level)


def reconstruction_image(reconstruction_bgr, domain: str = "symmetric") -> np.ndarray:
    """A deconvnet reconstruction (H, W, 3) in the network's BGR input space as RGB uint8.

    ``domain`` is ``"symmetric"`` (default) or ``"min-max"``; see the module docstring. A leading
    batch axis of size 1 is accepted and dropped.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, received {domain!r}")
    array = np.asarray(reconstruction_bgr)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"reconstruction_image expects shape (H, W, 3) in BGR order, received {array.shape}")
    rgb = array[..., ::-1]
    if domain == "symmetric":
        return to_uint8(normalize_symmetric(rgb, SYMMETRIC_PERCENTILE))
    return to_uint8(normalize_min_max(rgb))


def reconstruction_png(reconstruction_bgr, domain: str = "symmetric") -> bytes:
    """PNG bytes of ``reconstruction_image(reconstruction_bgr, domain)``."""
    return encode_png(reconstruction_image(reconstruction_bgr, domain))


def colormap(unit_array, name: str = "inferno") -> np.ndarray:
    """Colour (H, W) values in [0, 1] (clipped) with a perceptual colormap: (H, W, 3) uint8.

    ``name`` is a key of ``COLORMAPS`` ("inferno" or "viridis").
    """
    if name not in COLORMAPS:
        raise ValueError(f"colormap name must be one of {tuple(COLORMAPS)}, received {name!r}")
    values = _finite_float_array(unit_array, "colormap")
    if values.ndim != 2:
        raise ValueError(f"colormap expects an (H, W) array, received shape {values.shape}")
    return interpolate_colours(values, COLORMAPS[name])


def interpolate_colours(unit_array, anchors) -> np.ndarray:
    """Values in [0, 1] (clipped) to RGB uint8, linearly between evenly spaced ``anchors`` colours."""
    values = np.clip(np.asarray(unit_array, dtype=np.float64), 0.0, 1.0)
    anchors = np.asarray(anchors, dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(anchors))
    channels = [np.interp(values, positions, anchors[:, channel]) for channel in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def overlay_activation(rgb, activation_map, alpha: float = 0.6) -> np.ndarray:
    """Colour an activation map over a dimmed greyscale version of the photo: (H, W, 3) uint8.

    The map is upsampled bilinearly to the photo's size and divided by its own maximum (an all-zero
    map stays 0). At each pixel the colour weighs ``alpha · activation`` and the dimmed photo the
    rest, so where the feature is silent the photo shows through unchanged.
    """
    photo = np.asarray(rgb)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"overlay_activation expects an RGB uint8 (H, W, 3) photo, "
                         f"received dtype {photo.dtype} shape {photo.shape}")
    activation = _finite_float_array(activation_map, "overlay_activation")
    if activation.ndim != 2 or activation.size == 0:
        raise ValueError(f"overlay_activation expects a non-empty (h, w) activation map, "
                         f"received shape {activation.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], received {alpha}")
    height, width = photo.shape[:2]
    upsampled = np.asarray(
        Image.fromarray(activation.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR),
        dtype=np.float64,
    )
    upsampled = np.clip(upsampled, 0.0, None)
    peak = upsampled.max()
    strength = upsampled / peak if peak > 0 else np.zeros_like(upsampled)
    return dimmed_blend(photo, colormap(strength), (alpha * strength)[..., None])


def dimmed_blend(rgb, colours, weight) -> np.ndarray:
    """``colours`` over the dimmed greyscale photo: ``weight`` (a number, or per pixel) of the colour
    and the rest of the photo, RGB uint8."""
    grey = (np.asarray(rgb, np.float64) @ LUMA_WEIGHTS) * OVERLAY_PHOTO_BRIGHTNESS
    blended = (1.0 - weight) * grey[..., None] + weight * np.asarray(colours, np.float64)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def grid(tiles, columns: int, pad: int = 2, background: int = 255) -> np.ndarray:
    """Lay equal-size uint8 tiles out row by row, ``pad`` pixels apart (no outer border).

    Tiles are (H, W) or (H, W, 3); if any tile has colour, grey tiles are repeated to three
    channels. The grid has ``min(columns, len(tiles))`` columns and as many rows as needed; the
    padding and any empty cells of the last row are filled with ``background``.
    """
    tiles = [np.asarray(tile) for tile in tiles]
    if not tiles:
        raise ValueError("grid expects at least one tile, received none")
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer, received {columns!r}")
    if pad < 0:
        raise ValueError(f"pad must be non-negative, received {pad}")
    if not 0 <= background <= 255:
        raise ValueError(f"background must lie in [0, 255], received {background}")
    for tile in tiles:
        if tile.dtype != np.uint8 or not (tile.ndim == 2 or (tile.ndim == 3 and tile.shape[2] == 3)):
            raise ValueError(f"grid expects uint8 tiles of shape (H, W) or (H, W, 3), "
                             f"received dtype {tile.dtype} shape {tile.shape}")
    sizes = {tile.shape[:2] for tile in tiles}
    if len(sizes) != 1:
        raise ValueError(f"grid expects tiles of one size, received sizes {sorted(sizes)}")
    tile_height, tile_width = tiles[0].shape[:2]
    if any(tile.ndim == 3 for tile in tiles):
        tiles = [np.repeat(tile[..., None], 3, axis=2) if tile.ndim == 2 else tile for tile in tiles]
    columns = min(int(columns), len(tiles))
    rows = -(-len(tiles) // columns)
    shape = (rows * tile_height + (rows - 1) * pad, columns * tile_width + (columns - 1) * pad)
    canvas = np.full(shape + tiles[0].shape[2:], background, dtype=np.uint8)
    for index, tile in enumerate(tiles):
        top = (index // columns) * (tile_height + pad)
        left = (index % columns) * (tile_width + pad)
        canvas[top:top + tile_height, left:left + tile_width] = tile
    return canvas


def summary_sheet(rgb, rows, title=None) -> np.ndarray:
    """A Zeiler–Fergus-style sheet of the top features per layer, as RGB uint8.

    ``rows`` is a list of ``(layer_name, features)``; each feature is a dict with ``"channel"`` (int),
    ``"norm"`` (float) and at least one of ``"overlay"``, ``"reconstruction"``, ``"patch"`` and
    ``"photo_patch"`` (uint8 images, drawn in the order of ``SHEET_TILE_KINDS``). A row's name may carry a
    note after a space (``"block3_pool 44 px"``), drawn on a line of its own. The header shows the input photo, the title and
    a legend naming the pictures the sheet has; below it each layer gets one row: its name, then for each
    feature its pictures side by side, each scaled to ``SHEET_TILE_SIZE`` (patches, often a few pixels,
    are enlarged pixel by pixel), with the caption "ch 123 · ‖a‖ 45.6". The layout constants are the
    ``SHEET_*`` names of this module.
    """
    photo = np.asarray(rgb)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"summary_sheet expects an RGB uint8 (H, W, 3) photo, "
                         f"received dtype {photo.dtype} shape {photo.shape}")
    rows = [(str(layer_name), list(features)) for layer_name, features in rows]
    for layer_name, features in rows:
        for feature in features:
            missing = {"channel", "norm"} - set(feature)
            if missing or not any(kind in feature for kind, _ in SHEET_TILE_KINDS):
                raise ValueError(f"feature of layer {layer_name!r} lacks keys {sorted(missing) or 'of any picture'}")
    shown = [kind for kind, _ in SHEET_TILE_KINDS
             if any(kind in feature for _, features in rows for feature in features)] or ["overlay"]

    title_font = font(SHEET_TITLE_FONT_SIZE)
    legend_font = font(SHEET_LEGEND_FONT_SIZE)
    label_font = font(SHEET_LABEL_FONT_SIZE)
    caption_font = font(SHEET_CAPTION_FONT_SIZE)

    words = dict(SHEET_TILE_KINDS)
    legend = ["Each feature: " + " | ".join(words[kind] for kind in shown), SHEET_CAPTION_LEGEND]
    header_lines = ([(title, title_font, SHEET_TEXT_COLOUR)] if title else []) + [
        (line, legend_font, SHEET_SECONDARY_TEXT_COLOUR) for line in legend
    ]
    header_text_width = max(_text_width(text, line_font) for text, line_font, _ in header_lines)
    header_width = SHEET_PHOTO_SIZE + SHEET_TITLE_GAP + header_text_width
    most_features = max((len(features) for _, features in rows), default=0)
    group_width = len(shown) * SHEET_TILE_SIZE + (len(shown) - 1) * SHEET_TILE_GAP
    rows_width = SHEET_LABEL_WIDTH + most_features * (group_width + SHEET_PAIR_GAP) - SHEET_PAIR_GAP
    row_height = SHEET_TILE_SIZE + SHEET_CAPTION_HEIGHT + SHEET_ROW_GAP
    width = 2 * SHEET_MARGIN + max(header_width, rows_width)
    height = 2 * SHEET_MARGIN + SHEET_PHOTO_SIZE
    if rows:
        height += SHEET_HEADER_GAP + len(rows) * row_height - SHEET_ROW_GAP

    sheet = Image.new("RGB", (width, height), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    sheet.paste(_tile_image(photo, SHEET_PHOTO_SIZE), (SHEET_MARGIN, SHEET_MARGIN))
    text_left = SHEET_MARGIN + SHEET_PHOTO_SIZE + SHEET_TITLE_GAP
    text_top = SHEET_MARGIN
    for text, line_font, colour in header_lines:
        draw.text((text_left, text_top), _renderable(text, line_font), font=line_font, fill=colour)
        text_top += _line_height(line_font) + 6

    top = SHEET_MARGIN + SHEET_PHOTO_SIZE + SHEET_HEADER_GAP
    for layer_name, features in rows:
        label_lines = _wrap_layer_name(layer_name, label_font, SHEET_LABEL_WIDTH - 8)
        label_height = len(label_lines) * _line_height(label_font)
        label_top = top + (SHEET_TILE_SIZE - label_height) // 2
        for line in label_lines:
            draw.text((SHEET_MARGIN, label_top), line, font=label_font, fill=SHEET_TEXT_COLOUR)
            label_top += _line_height(label_font)
        left = SHEET_MARGIN + SHEET_LABEL_WIDTH
        for feature in features:
            for index, kind in enumerate(shown):
                if kind in feature:
                    sheet.paste(_tile_image(feature[kind], SHEET_TILE_SIZE),
                                (left + index * (SHEET_TILE_SIZE + SHEET_TILE_GAP), top))
            caption = _renderable(caption_text(feature["channel"], feature["norm"]), caption_font)
            caption_left = left + (group_width - _text_width(caption, caption_font)) // 2
            draw.text((caption_left, top + SHEET_TILE_SIZE + 4), caption, font=caption_font,
                      fill=SHEET_TEXT_COLOUR)
            left += group_width + SHEET_PAIR_GAP
        top += row_height

    return np.asarray(sheet, dtype=np.uint8).copy()


def caption_text(channel, norm) -> str:
    """The caption under one feature: ``"ch 123 · ‖a‖ 45.6"``, or ``"ch 123 · silent on this photo"`` for a channel
    whose map is zero everywhere (its pictures are flat grey, and say nothing else)."""
    norm = float(norm)
    if norm == 0:
        return f"ch {int(channel)} · silent on this photo"
    if 0.1 <= abs(norm) < 1e3:
        shown = f"{norm:.1f}"
    elif 1e3 <= abs(norm) < 1e6:
        shown = f"{norm:,.0f}"
    else:
        shown = f"{norm:.2e}"
    return f"ch {int(channel)} · ‖a‖ {shown}"


def _finite_float_array(array, caller: str) -> np.ndarray:
    values = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{caller} expects finite values, received NaN or infinity")
    return values


def _tile_array(image) -> np.ndarray:
    return np.asarray(_tile_image(image, SHEET_TILE_SIZE))


def _tile_image(image, size: int) -> Image.Image:
    array = np.asarray(image)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"sheet tiles must be uint8 (H, W) or (H, W, 3), "
                         f"received dtype {array.dtype} shape {array.shape}")
    tile = Image.fromarray(np.ascontiguousarray(array)).convert("RGB")
    if tile.size != (size, size):
        # Enlarged pixel by pixel (a receptive-field patch of a few pixels stays sharp), reduced smoothly.
        enlarging = max(tile.size) < size
        tile = tile.resize((size, size), Image.Resampling.NEAREST if enlarging else Image.Resampling.LANCZOS)
    return tile


@functools.lru_cache(maxsize=None)
def font(size: int):
    """Pillow's bundled font at ``size`` points: the one font of every picture (sheets and views)."""
    return ImageFont.load_default(size=size)


def _text_width(text: str, font) -> int:
    left, _, right, _ = font.getbbox(_renderable(text, font))
    return int(np.ceil(right - left))


def _line_height(font) -> int:
    return int(getattr(font, "size", 11)) + 4


def _renderable(text: str, font) -> str:
    # Pillow's bundled default font has no "‖" (U+2016); two bars read the same.
    if "‖" in text and not _has_glyph(font, "‖"):
        text = text.replace("‖", "||")
    return text


@functools.lru_cache(maxsize=None)
def _has_glyph(font, character: str) -> bool:
    try:
        missing = font.getmask("\ue000")  # a private-use code point: always the "missing" box
        candidate = font.getmask(character)
    except (AttributeError, OSError):
        return False
    return candidate.size != missing.size or bytes(candidate) != bytes(missing)


def _wrap_layer_name(name: str, font, width: int) -> list:
    if " " in name:  # a layer name and a note: the note on a line of its own
        head, note = name.split(" ", 1)
        return _wrap_layer_name(head, font, width) + [note]
    if _text_width(name, font) <= width or "_" not in name:
        return [name]
    parts = name.split("_")
    return [part + "_" for part in parts[:-1]] + [parts[-1]]
