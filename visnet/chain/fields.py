"""Receptive fields of a chain's spatial layers, from the chain itself.

Per axis, unit ``r`` of a layer sees the input rows ``first + r · stride`` to that plus ``size − 1``
(Araujo et al., "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019). A layer
with window ``k``, stride ``s`` and ``p`` rows of padding before its input (TensorFlow's SAME puts the
smaller half first) turns (size, stride, first) into (size + (k − 1) · stride, stride · s,
first − p · stride). ReLUs and per-channel affine layers change nothing. Layers after a flatten or a
global average pool see the whole image and have no field here. That is the nominal field, which sets the
size of every unit's window; :func:`field_box` gives the exact pixels one unit sees.
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
    """(top, left, bottom, right), inclusive, of the input pixels unit (row, column) of ``layer`` sees.

    Computed by walking the unit's span down, clipped to every layer's input: near a border the nominal
    field (:func:`receptive_fields`) can reach over input pixels that the unit does not see, where a
    layer's padding lies over rows an earlier VALID layer dropped."""
    spans = [(row, row), (column, column)]
    for spec in reversed(chain.layers[: chain.index(layer) + 1]):
        if spec.kind in WINDOWED_KINDS:
            below = chain.input_shape_of(spec.name)
            spans = [(max(first * step - padding_before(side, window, step, spec.padding), 0),
                      min(last * step - padding_before(side, window, step, spec.padding) + window - 1, side - 1))
                     for (first, last), side, window, step in zip(spans, below, spec.window, spec.strides)]
    (top, bottom), (left, right) = spans
    return top, left, bottom, right
