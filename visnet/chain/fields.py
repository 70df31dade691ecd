"""Receptive fields of a chain's spatial layers, from the chain itself.

Per axis, unit ``r`` of a layer sees the input rows ``first + r · stride`` to that plus ``size − 1``
(Araujo et al., "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019). A layer
with window ``k``, stride ``s`` and ``p`` rows of padding before its input (TensorFlow's SAME puts the
smaller half first) turns (size, stride, first) into (size + (k − 1) · stride, stride · s,
first − p · stride). ReLUs and per-channel affine layers change nothing. Layers after a flatten or a
global average pool see the whole image and have no field here.
"""
from ..receptive_fields import ReceptiveField
from .spec import SPATIAL_KINDS, WINDOWED_KINDS, padding_before


def receptive_fields(chain) -> dict:
    """{spatial layer: (rows, columns)}, each a :class:`visnet.receptive_fields.ReceptiveField` whose
    ``first_pixel(position)`` is the first input row (or column) unit ``position`` sees (negative or past the
    image where the field runs off it)."""
    axes = [(1, 1, 0), (1, 1, 0)]  # (size, stride, first) per axis
    fields = {}
    for layer in chain.layers:
        if layer.kind not in SPATIAL_KINDS:
            break
        if layer.kind in WINDOWED_KINDS:
            below = chain.input_shape_of(layer.name)
            axes = [(size + (window - 1) * stride, stride * step,
                     first - padding_before(side, window, step, layer.padding) * stride)
                    for (size, stride, first), side, window, step in zip(axes, below, layer.window, layer.strides)]
        fields[layer.name] = tuple(ReceptiveField(size, stride, first + (size - 1) / 2) for size, stride, first in axes)
    return fields


def field_box(chain, layer: str, row: int, column: int) -> tuple:
    """(top, left, bottom, right), inclusive, of the input pixels unit (row, column) of ``layer`` sees,
    clipped to the image."""
    rows, columns = receptive_fields(chain)[chain.layer(layer).name]
    height, width = chain.input_shape[:2]
    top, left = rows.first_pixel(row), columns.first_pixel(column)
    return (max(top, 0), max(left, 0), min(top + rows.size - 1, height - 1), min(left + columns.size - 1, width - 1))
