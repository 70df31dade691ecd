"""Receptive fields from the chain against the support of a brute-force gradient, and FLOP counts by hand."""
from dataclasses import replace

import numpy as np
import pytest


def _linearised(chain):
    """The same geometry with every weight 1, no ReLU, and average pools for max pools: every input pixel in a
    unit's field then has a positive gradient, so the gradient's support is the field itself."""
    from visnet.chain.spec import Chain

    layers = []
    for layer in chain.layers:
        if layer.kind in ("flatten", "global_avg_pool"):
            break
        if layer.kind == "relu":
            continue
        kind = "avg_pool" if layer.kind == "max_pool" else layer.kind
        ones = {field: np.ones_like(value) for field, value in layer.weights.items()}
        layers.append(replace(layer, kind=kind, relu=False, **ones))
    return Chain(chain.name, chain.input_shape, tuple(layers), chain.preprocess)


@pytest.mark.parametrize("model", ["sequential", "functional"])
def test_receptive_fields_equal_the_support_of_the_gradient(chains, model):
    import tensorflow as tf

    from visnet.chain.fields import field_box, receptive_fields
    from visnet.chain.ops import linear_forward
    from visnet.chain.spec import SPATIAL_KINDS

    chain = chains[model]
    linear = _linearised(chain)
    fields = receptive_fields(chain)
    assert set(fields) == {layer.name for layer in chain.layers if layer.kind in SPATIAL_KINDS}
    images = tf.ones((1, *chain.input_shape))
    for layer in linear.layers:
        height, width, _ = linear.output_shape(layer.name)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(images)
            signal = images
            for spec in linear.layers[: linear.index(layer.name) + 1]:
                signal = linear_forward(spec, signal, {key: tf.constant(value) for key, value in spec.weights.items()})
        for row, column in {(0, 0), (height - 1, width - 1), (height // 2, width // 3)}:
            unit = np.zeros(signal.shape, np.float32)
            unit[0, row, column, 0] = 1
            gradient = tape.gradient(signal, images, output_gradients=unit).numpy()[0].sum(axis=-1)
            rows, columns = np.nonzero(gradient)
            top, left, bottom, right = field_box(chain, layer.name, row, column)
            assert (rows.min(), columns.min(), rows.max(), columns.max()) == (top, left, bottom, right), layer.name
            assert np.all(gradient[top: bottom + 1, left: right + 1] > 0), layer.name
        del tape


def test_the_sequential_models_fields_by_hand(chains):
    """conv1 3×3: 3; conv2_s2 3×3/2: 5, stride 2; pool1 3×3/2: 9, stride 4; conv3 3×3: 17; avg1 2×2/2: 21,
    stride 8; conv4 3×3 same: 37; pool2 2×2/1: 45."""
    from visnet.chain.fields import receptive_fields

    fields = receptive_fields(chains["sequential"])
    assert {name: (rows.size, rows.stride) for name, (rows, _) in fields.items()} == {
        "rescale": (1, 1), "conv1": (3, 1), "conv2_s2": (5, 2), "pool1": (9, 4), "conv3": (17, 4), "avg1": (21, 8),
        "conv4": (37, 8), "pool2": (45, 8)}


def test_flops_by_hand(chains):
    """2 × output positions × kernel size for convolutions, 2 × kernel size for dense layers."""
    from visnet.chain.flops import forward_flops, layer_flops

    chain = chains["sequential"]
    by_hand = {"conv1": 2 * 40 * 40 * 3 * 3 * 3 * 8, "conv2_s2": 2 * 20 * 20 * 3 * 3 * 8 * 8,
               "conv3": 2 * 7 * 7 * 3 * 3 * 8 * 12, "conv4": 2 * 3 * 3 * 3 * 3 * 12 * 12, "fc1": 2 * 48 * 16,
               "predictions": 2 * 16 * 5}
    assert {layer.name: layer_flops(chain, layer.name) for layer in chain.layers if layer_flops(chain, layer.name)} \
        == by_hand
    assert forward_flops(chain) == 1_261_696 == sum(by_hand.values())
    assert forward_flops(chain, "pool1") == by_hand["conv1"] + by_hand["conv2_s2"]
