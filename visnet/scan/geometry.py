"""Architecture arithmetic for scans: each layer's receptive field (the forward pass's cost is
visnet.architecture.forward_flops).

Receptive fields follow the usual recurrence (e.g. Araujo et al., "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019). With ``size`` the field's side, ``stride`` the distance
in input pixels between neighbouring units and ``start`` the input coordinate of unit 0's centre:
a 3×3 'same' convolution (stride 1) adds ``2 · stride`` to ``size``; a 2×2 max pool (stride 2) adds
``stride`` to ``size``, moves ``start`` by ``stride / 2`` and doubles ``stride``. For VGG16 this gives
212 pixels at ``block5_pool`` (stride 32), 100 at ``block4_pool`` and 44 at ``block3_pool``.
"""
from dataclasses import dataclass

from ..architecture import INPUT_SIZE, LAYERS, get_layer


@dataclass(frozen=True)
class ReceptiveField:
    size: int  # side in input pixels
    stride: int  # input pixels between neighbouring units
    start: float  # input coordinate of the centre of unit (0, 0); a half for layers after a pool


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


def field_window(layer: str, row: int, column: int, image_size: int = INPUT_SIZE) -> tuple:
    """(top, left, side): the square window of the input around unit (row, column) of ``layer``.

    The side is the receptive field's, capped at the image; where the field runs off the image the
    window is shifted back inside, so it still holds every input pixel the unit sees and all windows of
    a layer have one size.
    """
    field = receptive_field(layer)
    side = min(field.size, image_size)
    half = (field.size - 1) / 2

    def edge(position):
        first = int(round(field.start + position * field.stride - half))
        return min(max(first, 0), image_size - side)

    return edge(row), edge(column), side
