"""Drawing shared by the views: labelled tile grids, titled sheets, bar charts and a diverging colour map.

Pure numpy and Pillow, on top of :mod:`visnet.display` (arrays to pictures, the font, colour
interpolation and blending), so that nothing here imports TensorFlow.
Every picture is RGB uint8 on a white background; layouts are fixed by the constants below, so a
picture's size follows from its content and a test can find a tile by arithmetic.
"""
import numpy as np
from PIL import Image, ImageDraw

from ..display import font, grid, interpolate_colours

BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (32, 32, 32)
SECONDARY_TEXT_COLOUR = (96, 96, 96)
MARGIN = 16  # around every sheet
TITLE_FONT_SIZE = 16
LEGEND_FONT_SIZE = 13
LABEL_FONT_SIZE = 11
TITLE_LINE_HEIGHT = 22
LEGEND_LINE_HEIGHT = 18
HEADER_GAP = 10  # between the header text and the body
LABEL_HEIGHT = 14  # the strip under a tile that holds its label

# ColorBrewer's RdBu, reversed: blue for negative, near-white at zero, red for positive (Brewer 2002).
DIVERGING_ANCHORS = (
    (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240), (247, 247, 247),
    (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
)


# Pillow's bundled font lacks these glyphs; the ASCII stand-ins read the same.
ASCII_STAND_INS = {"×": "x", "−": "-", "–": "-", "→": "->", "‖": "||", "≤": "<=", "≥": ">="}


def plain(text: str) -> str:
    for character, stand_in in ASCII_STAND_INS.items():
        text = text.replace(character, stand_in)
    return text


def text_width(text: str, size: int) -> int:
    left, _, right, _ = font(size).getbbox(plain(text))
    return int(np.ceil(right - left))


def draw_text(draw, position, text: str, size: int, colour=TEXT_COLOUR):
    """Write ``text`` at ``position`` (left, top) with the bundled font of ``size`` points."""
    draw.text(position, plain(text), font=font(size), fill=colour)


def check_photo(rgb, method: str) -> np.ndarray:
    """The input photo as (224, 224, 3) uint8, or a ValueError naming the view."""
    photo = None if rgb is None else np.asarray(rgb)
    if photo is None or photo.dtype != np.uint8 or photo.shape != (224, 224, 3):
        shown = "none" if photo is None else f"dtype {photo.dtype} shape {photo.shape}"
        raise ValueError(f"{method} needs a 224×224 RGB uint8 photo, got {shown}")
    return photo


def diverging(unit_array) -> np.ndarray:
    """Colour (H, W) values in [0, 1] (clipped) blue – white – red: (H, W, 3) uint8; 0.5 is near-white."""
    return interpolate_colours(unit_array, DIVERGING_ANCHORS)


def resize(array, size: int) -> np.ndarray:
    """Resize a square-ish (H, W) or (H, W, C) array to (size, size): repeat pixels when ``size`` is a
    multiple of the side (sharp blocks), average blocks when the side is a multiple of ``size``,
    bilinear otherwise. Float input stays float, uint8 stays uint8."""
    array = np.asarray(array)
    height, width = array.shape[:2]
    if (height, width) == (size, size):
        return array.copy()
    if size % height == 0 and size % width == 0:
        return np.repeat(np.repeat(array, size // height, axis=0), size // width, axis=1)
    if height % size == 0 and width % size == 0:
        blocks = array.reshape(size, height // size, size, width // size, *array.shape[2:])
        mean = blocks.astype(np.float64).mean(axis=(1, 3))
        return np.round(mean).astype(np.uint8) if array.dtype == np.uint8 else mean
    if array.dtype == np.uint8:
        return np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.BILINEAR))
    channels = array[..., None] if array.ndim == 2 else array
    resized = [np.asarray(Image.fromarray(channels[..., c].astype(np.float32))
                          .resize((size, size), Image.Resampling.BILINEAR)) for c in range(channels.shape[2])]
    out = np.stack(resized, axis=-1).astype(np.float64)
    return out[..., 0] if array.ndim == 2 else out


def as_rgb(tile) -> np.ndarray:
    tile = np.asarray(tile)
    return np.repeat(tile[..., None], 3, axis=2) if tile.ndim == 2 else tile


def labelled(tile, label: str, height: int = LABEL_HEIGHT, size: int = LABEL_FONT_SIZE) -> np.ndarray:
    """The tile with ``label`` (lines split at newlines) centred in a strip of ``height`` pixels beneath it."""
    tile = as_rgb(tile)
    strip = Image.new("RGB", (tile.shape[1], height), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for line_number, line in enumerate(label.split("\n")):
        draw_text(draw, ((tile.shape[1] - text_width(line, size)) // 2, 1 + line_number * LABEL_HEIGHT), line, size)
    return np.concatenate([tile, np.asarray(strip)], axis=0)


def labelled_grid(tiles, labels, columns: int, pad: int, label_height: int = LABEL_HEIGHT) -> np.ndarray:
    """Equal-size tiles with a label strip under each, laid out by :func:`visnet.display.grid`."""
    return grid([labelled(tile, label, label_height) for tile, label in zip(tiles, labels)],
                columns=columns, pad=pad, background=BACKGROUND[0])


def header_height(title_lines: int, legend_lines: int) -> int:
    """Height from the top of a sheet to the top of its body (see :func:`titled`)."""
    return MARGIN + title_lines * TITLE_LINE_HEIGHT + legend_lines * LEGEND_LINE_HEIGHT + HEADER_GAP


def titled(body, title=(), legend=()) -> np.ndarray:
    """A sheet: title lines, then smaller grey legend lines, then ``body`` at (header, MARGIN).

    The body's top-left corner is at ``(header_height(len(title), len(legend)), MARGIN)``; the sheet is
    as wide as the body or the longest line, whichever is wider, plus the margins.
    """
    body = as_rgb(body)
    title, legend = list(title), list(legend)
    widths = [text_width(line, TITLE_FONT_SIZE) for line in title]
    widths += [text_width(line, LEGEND_FONT_SIZE) for line in legend]
    width = 2 * MARGIN + max([body.shape[1]] + widths)
    top = header_height(len(title), len(legend))
    sheet = Image.new("RGB", (width, top + body.shape[0] + MARGIN), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = MARGIN
    for line in title:
        draw_text(draw, (MARGIN, y), line, TITLE_FONT_SIZE)
        y += TITLE_LINE_HEIGHT
    for line in legend:
        draw_text(draw, (MARGIN, y), line, LEGEND_FONT_SIZE, SECONDARY_TEXT_COLOUR)
        y += LEGEND_LINE_HEIGHT
    sheet.paste(Image.fromarray(np.ascontiguousarray(body)), (MARGIN, top))
    return np.asarray(sheet, dtype=np.uint8).copy()


def stack(pictures, gap: int = 12) -> np.ndarray:
    """Pictures one above the other, left-aligned, on the background colour."""
    pictures = [as_rgb(picture) for picture in pictures]
    width = max(picture.shape[1] for picture in pictures)
    height = sum(picture.shape[0] for picture in pictures) + gap * (len(pictures) - 1)
    canvas = np.full((height, width, 3), BACKGROUND[0], dtype=np.uint8)
    top = 0
    for picture in pictures:
        canvas[top:top + picture.shape[0], :picture.shape[1]] = picture
        top += picture.shape[0] + gap
    return canvas


def colour_bar(colours, low: str, high: str, width: int = 256, height: int = 12) -> np.ndarray:
    """A horizontal legend of a colour map (``colours`` maps (1, width) values in [0, 1] to RGB),
    with ``low`` and ``high`` written under its ends."""
    bar = colours(np.linspace(0.0, 1.0, width)[None].repeat(height, axis=0))
    strip = Image.new("RGB", (width, LABEL_HEIGHT + 2), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    draw_text(draw, (0, 2), low, LABEL_FONT_SIZE)
    draw_text(draw, (width - text_width(high, LABEL_FONT_SIZE), 2), high, LABEL_FONT_SIZE)
    return np.concatenate([bar, np.asarray(strip)], axis=0)


def horizontal_bars(labels, values, value_texts, bar_length: int = 320, row_height: int = 26,
                    colour=(49, 104, 142)) -> np.ndarray:
    """One row per label: the label right-aligned, a bar of ``value · bar_length`` pixels (values in
    [0, 1]), and the value's text after the bar."""
    label_width = max(text_width(label, LEGEND_FONT_SIZE) for label in labels) + 10
    text_room = max(text_width(text, LEGEND_FONT_SIZE) for text in value_texts) + 10
    width, height = label_width + bar_length + text_room, row_height * len(labels)
    chart = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(chart)
    bar_height = row_height - 8
    for row, (label, value, shown) in enumerate(zip(labels, values, value_texts)):
        top = row * row_height + 4
        draw_text(draw, (label_width - 10 - text_width(label, LEGEND_FONT_SIZE), top + 1), label, LEGEND_FONT_SIZE)
        draw.rectangle([label_width, top, label_width + bar_length - 1, top + bar_height - 1], fill=(236, 236, 236))
        length = int(round(float(np.clip(value, 0.0, 1.0)) * bar_length))
        if length > 0:
            draw.rectangle([label_width, top, label_width + length - 1, top + bar_height - 1], fill=colour)
        draw_text(draw, (label_width + bar_length + 6, top + 1), shown, LEGEND_FONT_SIZE)
    return np.asarray(chart, dtype=np.uint8).copy()


# Tableau's ten categorical colours (Stone 2008): one per line of a chart, repeated after ten.
LINE_COLOURS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
AXIS_COLOUR = (64, 64, 64)
BOUNDARY_COLOUR = (190, 190, 190)


def nice_ticks(low: float, high: float, count: int = 5) -> list:
    """About ``count`` round tick values (steps of 1, 2 or 5 × 10^k) covering [low, high]."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    magnitude = 10.0 ** np.floor(np.log10(raw))
    step = next(factor * magnitude for factor in (1, 2, 5, 10) if factor * magnitude >= raw)
    first = np.floor(low / step) * step
    return [float(value) for value in np.arange(first, high + step * 0.999, step)]


def line_chart(series, x_label: str, y_label: str, boundaries=(), width: int = 560, height: int = 260) -> np.ndarray:
    """A line chart with labelled axes. ``series``: (label, segments) pairs, each segment a pair of
    equal-length x and y sequences drawn as one polyline (a series broken into segments shows gaps,
    e.g. between octaves); one colour per series (:data:`LINE_COLOURS`), named in a legend on the
    right. ``boundaries``: (x, text) pairs drawn as grey vertical lines with the text at their top."""
    series = [(label, [(np.asarray(xs, float), np.asarray(ys, float)) for xs, ys in segments])
              for label, segments in series]
    xs = np.concatenate([xs for _, segments in series for xs, _ in segments] + [[x for x, _ in boundaries]])
    ys = np.concatenate([ys for _, segments in series for _, ys in segments])
    x_ticks, y_ticks = nice_ticks(xs.min(), xs.max()), nice_ticks(ys.min(), ys.max())
    x_low, x_high, y_low, y_high = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    y_texts = [f"{value:g}" for value in y_ticks]
    left = 8 + LABEL_HEIGHT + max(text_width(text, LABEL_FONT_SIZE) for text in y_texts) + 8
    top, bottom = LABEL_HEIGHT + 6, 2 * LABEL_HEIGHT + 10
    legend_width = max(text_width(label, LABEL_FONT_SIZE) for label, _ in series) + 34
    chart = Image.new("RGB", (left + width + legend_width, top + height + bottom), BACKGROUND)
    draw = ImageDraw.Draw(chart)

    def point(x, y):
        return (left + (x - x_low) / (x_high - x_low) * (width - 1),
                top + (y_high - y) / (y_high - y_low) * (height - 1))

    for x, text in boundaries:
        px, _ = point(x, y_low)
        draw.line([(px, top), (px, top + height - 1)], fill=BOUNDARY_COLOUR)
        draw_text(draw, (px + 2, top - LABEL_HEIGHT - 2), text, LABEL_FONT_SIZE, SECONDARY_TEXT_COLOUR)
    draw.rectangle([left, top, left + width - 1, top + height - 1], outline=AXIS_COLOUR)
    for value, text in zip(y_ticks, y_texts):
        _, py = point(x_low, value)
        draw.line([(left - 4, py), (left, py)], fill=AXIS_COLOUR)
        draw_text(draw, (left - 6 - text_width(text, LABEL_FONT_SIZE), py - LABEL_FONT_SIZE // 2 - 1), text,
                  LABEL_FONT_SIZE)
    for value in x_ticks:
        px, _ = point(value, y_low)
        text = f"{value:g}"
        draw.line([(px, top + height - 1), (px, top + height + 3)], fill=AXIS_COLOUR)
        draw_text(draw, (px - text_width(text, LABEL_FONT_SIZE) // 2, top + height + 4), text, LABEL_FONT_SIZE)
    draw_text(draw, (left + (width - text_width(x_label, LABEL_FONT_SIZE)) // 2, top + height + LABEL_HEIGHT + 8),
              x_label, LABEL_FONT_SIZE)
    rotated = Image.new("RGB", (text_width(y_label, LABEL_FONT_SIZE) + 2, LABEL_HEIGHT), BACKGROUND)
    draw_text(ImageDraw.Draw(rotated), (1, 0), y_label, LABEL_FONT_SIZE)
    rotated = rotated.rotate(90, expand=True)
    chart.paste(rotated, (4, top + (height - rotated.height) // 2))
    for number, (label, segments) in enumerate(series):
        colour = LINE_COLOURS[number % len(LINE_COLOURS)]
        for xs, ys in segments:
            draw.line([point(x, y) for x, y in zip(xs, ys)], fill=colour, width=2)
        legend_top = top + number * LABEL_HEIGHT
        draw.line([(left + width + 8, legend_top + 7), (left + width + 24, legend_top + 7)], fill=colour, width=2)
        draw_text(draw, (left + width + 28, legend_top), label, LABEL_FONT_SIZE)
    return np.asarray(chart, dtype=np.uint8).copy()
