"""Each layer's receptive field, and the input window of one unit's field.

Receptive fields follow the usual recurrence (e.g. Araujo et al., "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019). With ``size`` the field's side, ``stride`` the distance
in input pixels between neighbouring units and ``start`` the input coordinate of unit 0's centre:
a 3×3 'same' convolution (stride 1) adds ``2 · stride`` to ``size``; a 2×2 max pool (stride 2) adds
``stride`` to ``size``, moves ``start`` by ``stride / 2`` and doubles ``stride``. For VGG16 this gives
212 pixels at ``block5_pool`` (stride 32), 100 at ``block4_pool`` and 44 at ``block3_pool``.

A single activation's deconvnet projection (:mod:`visnet.deconvnet`, ``max`` seeds) is zero outside its
unit's field, so :func:`field_window` is also where that projection is kept.
"""
from dataclasses import dataclass

from .architecture import INPUT_SIZE, LAYERS, conv_flops, get_layer


@dataclass(frozen=True)
class ReceptiveField:
    size: int  # side in input pixels
    stride: int  # input pixels between neighbouring units
    start: float  # input coordinate of the centre of unit (0, 0); a half for layers after a pool

    def first_pixel(self, position: int) -> int:
        """Input coordinate of the first row (or column) that unit ``position`` sees; may be negative
        (the field runs off the image) and is exact: ``start`` and the half size are both halves after a pool."""
        return int(round(self.start + position * self.stride - (self.size - 1) / 2))


def _fields() -> dict:
    size, stride, start, fields = 1, 1, 0.0, {}
    for layer in LAYERS:
        if layer.is_pool:
            size += stride
            start += stride / 2
            stride *= 2
        else:
            size += 2 * stride
        fields[layer.name] = ReceptiveField(size, stride, start)
    return fields


FIELDS = _fields()


def receptive_field(layer: str) -> ReceptiveField:
    return FIELDS[get_layer(layer).name]


def field_side(layer: str, image_size: int = INPUT_SIZE) -> int:
    """The side of every window of ``layer``: its receptive field's, capped at the image."""
    return min(receptive_field(layer).size, image_size)


def field_window(layer: str, row: int, column: int, image_size: int = INPUT_SIZE) -> tuple:
    """(top, left, side): the square window of the input around unit (row, column) of ``layer``.

    The side is the receptive field's, capped at the image; where the field runs off the image the
    window is shifted back inside, so it still holds every input pixel the unit sees and all windows of
    a layer have one size.
    """
    field, side = receptive_field(layer), field_side(layer, image_size)

    def edge(position):
        return min(max(field.first_pixel(position), 0), image_size - side)

    return edge(row), edge(column), side


def window_sides(layer: str) -> dict:
    """{conv layer at or below ``layer``: side of the window its transposed convolution outputs} for one
    activation of ``layer`` projected down (visnet.deconvnet.windowed_max_projections): 1 at the seed, +2 per
    transposed convolution, ×2 per unpooling. The last, at the input, is the receptive field's size."""
    seed, side, sides = get_layer(layer), 1, {}
    for below in reversed(LAYERS[: LAYERS.index(seed) + 1]):
        if below.is_pool:
            side *= 2
        else:
            side += 2
            sides[below.name] = side
    return sides


def max_projection_flops(layer: str) -> int:
    """FLOPs of one single-activation projection from ``layer`` on its windows (the dense count of a
    projection is visnet.architecture.forward_flops(layer))."""
    return sum(conv_flops(get_layer(name), side) for name, side in window_sides(layer).items())
