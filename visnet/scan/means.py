"""Channel means: for every image, the mean over H × W of every channel of the requested layers.

The reductions are ops added once to the engine's graph (post-ReLU convs and pools, as
``model.activations``), so a batch costs one ``session.run`` that fetches only the (N, C) means: the
forward pass stops at the deepest requested layer, and no activation map leaves TensorFlow.
"""
import numpy as np
import tensorflow as tf

from ..architecture import get_layer, resolve_layers
from ..preprocessing import to_network_input

DEFAULT_BATCH_SIZE = 8


def mean_ops(model, layers) -> dict:
    """{layer: (N, C) float32 mean op}, built into the model's graph on first use and cached there."""
    cache = vars(model).setdefault("view_ops", {}).setdefault("scan_means", {})
    for name in layers:
        if name not in cache:
            with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope("scan_means"):
                cache[name] = tf.reduce_mean(model.activations[name], axis=[1, 2], name=name)
    return {name: cache[name] for name in layers}


def channel_means(engine, images_rgb, layers, batch_size: int = DEFAULT_BATCH_SIZE, progress=None) -> dict:
    """{layer: float32 (N, C)} for RGB uint8 images (N, 224, 224, 3), ``batch_size`` images per run.

    ``progress(done, total)`` is called after each batch. An image's means do not depend on the batch
    it is computed in (the tests check this bit for bit), which is what lets chunks run anywhere.
    """
    images_rgb = np.asarray(images_rgb)
    if images_rgb.ndim != 4 or images_rgb.shape[1:] != (224, 224, 3) or images_rgb.dtype != np.uint8:
        raise ValueError(f"images must be RGB uint8 (N, 224, 224, 3), received dtype {images_rgb.dtype} "
                         f"shape {images_rgb.shape}")
    names = resolve_layers(layers)
    model = engine.model
    ops = mean_ops(model, names)
    count = len(images_rgb)
    tables = {name: np.empty((count, get_layer(name).channels), np.float32) for name in names}
    for start in range(0, count, batch_size):
        batch = images_rgb[start:start + batch_size]
        values = model.run(ops, {model.images: to_network_input(batch)})
        for name in names:
            tables[name][start:start + len(batch)] = values[name]
        if progress is not None:
            progress(min(start + batch_size, count), count)
    return tables

