"""Channel means: for every image, the mean over H × W of every channel of the requested layers (for
``fc1``, ``fc2`` and ``predictions``: each neuron's value).

The reductions are ops added once to the engine's graph (post-ReLU convs and pools, as
``model.activations``), so an image costs one ``session.run`` that fetches only its (C,) means: the
forward pass stops at the deepest requested layer, and no activation map leaves TensorFlow. They read a
forward pass whose pools record no switches: ``max_pool_with_argmax`` cost a quarter of a scan's time with two
lanes (2-core Intel Xeon, 5.4–6.2 against 7.0–7.2 images/s). Which pass depends on the cores this process may
use (:func:`on_one_core`). With several: the graph's second pass (``model.unswitched_activations()``, the same
values as the deconvnet's bit for bit). On one core, as a worker pinned to a core runs: the pass that computes
blocks 3 and 4 by Winograd's algorithm (``model.winograd_activations()``; how much faster: :mod:`visnet.chain.ops`),
whose values agree to rounding. The benchmark's scan
rates with it are in README (Benchmark, seventh session of 2026-12-07).

Every image runs alone, as a batch of one. That is what makes a scan exact wherever its chunks run:
TensorFlow's CPU convolutions (oneDNN) give an image's maps bits that depend on the batch around it.
Measured on the 2-core AMD EPYC development machine: from ``block1_conv2`` on, an image's activations
in a batch of 8 differ in their last bits from the same image alone, and differ again when the batch is
reversed, while two runs of the same batch agree. A batch of one is a pure function of the image, and
on that machine it ran as fast as batches of 8, within the noise (3.6–3.9 against 3.6–4.1 images/s to
``block5_pool``). Different CPUs may still round differently: keep a scan's workers on one kind of host,
all pinned to one core or none, if its figures must be reproduced bit for bit.

Two images are in flight at once (``SCAN_LANES``), each in its own ``session.run`` on the session's shared
thread pools: a batch-1 forward pass leaves the cores idle at each op's end (small ``block4``/``block5``
convolutions, pooling, the means), and the other image's ops fill those gaps. An op's arithmetic is split
by the size of the thread pool, not by which threads are free, so an image's means are the same bits in one
lane or two (the tests check it). Measured on a 2-core AMD EPYC (``python -m visnet.bench``'s scan part):
0.86–0.88 × the forward FLOP bound one image at a time, 0.97–0.98 × with two lanes, 0.90–0.96 × with three.
"""
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from .layout import engine_layout

# Images run at once, each in its own session.run (module docstring); 1 runs them one after the other.
SCAN_LANES = 2


def on_one_core() -> bool:
    """Whether this process may run on one core only (a worker pinned to a core)."""
    return len(os.sched_getaffinity(0)) == 1


def mean_ops(model, layers, layout, winograd=None) -> dict:
    """{layer: (N, C) float32 mean op}, built into the model's graph on first use and cached there, on
    ``model.winograd_activations()`` when ``winograd`` (by default when :func:`on_one_core`), else on
    ``model.unswitched_activations()`` (module docstring). A flat layer's op is its output itself (one value per
    unit: VGG16's ``fc1``, ``fc2`` after ReLU, ``predictions`` before the softmax; a chain's dense or global pooling
    layers); ValueError when VGG16's weights have no classifier top."""
    winograd = on_one_core() if winograd is None else winograd
    activations = model.winograd_activations() if winograd else model.unswitched_activations()
    cache = vars(model).setdefault("view_ops", {}).setdefault("scan_means", {}).setdefault(winograd, {})
    for name in layers:
        if layout.is_classifier(name) and not model.has_top:
            raise ValueError(f"{name} is a layer of the classifier top, and the weights in use have none; "
                             "scan it with the ImageNet VGG16 with its top (python -m visnet weights fetch imagenet)")
        if name not in cache:
            activation = activations[name]  # no switches: a scan needs none
            if layout.is_classifier(name) or layout.is_flat(name):
                cache[name] = activation
                continue
            with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope("scan_means"):
                cache[name] = tf.reduce_mean(activation, axis=[1, 2], name=name)
    return {name: cache[name] for name in layers}


def channel_means(engine, images_rgb, layers, progress=None, count=None, lanes=SCAN_LANES, winograd=None) -> dict:
    """{layer: float32 (N, C)} for RGB uint8 images (N, S, S, 3), S the engine's model's input size (VGG16's
    224), one image per run, ``lanes`` runs at once.

    ``images_rgb`` may also be an iterable of N images (S, S, 3), with ``count`` = N: a chunk passes
    images as its prefetch thread reads them (:mod:`visnet.scan.prefetch`); it is read from this thread only.
    ``progress(done, total)`` is called after each image, in order. An image's means do not depend on the
    other images nor on the lanes (the tests check this bit for bit), which is what lets chunks run anywhere.
    ``winograd`` chooses the forward pass as :func:`mean_ops` does.
    """
    layout = engine_layout(engine)
    side = layout.input_size
    if count is None:
        images_rgb = np.asarray(images_rgb)
        if images_rgb.ndim != 4:
            raise ValueError(f"images must be RGB uint8 (N, {side}, {side}, 3), received shape {images_rgb.shape}")
        count = len(images_rgb)
    names = layout.resolve(layers)
    model = engine.model
    ops = mean_ops(model, names, layout, winograd)
    tables = {name: np.empty((count, layout.unit_count(name)), np.float32) for name in names}

    def run(rgb):
        return model.run(ops, {model.images: layout.network_input(rgb[None])})

    seen = 0

    def collect(running):
        nonlocal seen
        index, future = running
        values = future.result()
        for name in names:
            tables[name][index] = values[name][0]
        seen = index + 1
        if progress is not None:
            progress(seen, count)

    with ThreadPoolExecutor(max(1, lanes), thread_name_prefix="scan-lane") as pool:
        in_flight = deque()
        try:
            for index, rgb in enumerate(images_rgb):
                rgb = np.asarray(rgb)
                if rgb.shape != (side, side, 3) or rgb.dtype != np.uint8 or index >= count:
                    raise ValueError(f"images must be {count} RGB uint8 ({side}, {side}, 3), received image {index} "
                                     f"dtype {rgb.dtype} shape {rgb.shape}")
                in_flight.append((index, pool.submit(run, rgb)))
                if len(in_flight) >= lanes:
                    collect(in_flight.popleft())
            while in_flight:
                collect(in_flight.popleft())
        finally:
            for _, future in in_flight:  # a refused image or a failed run: nothing more starts
                future.cancel()
    if seen != count:
        raise ValueError(f"expected {count} images, received {seen}")
    return tables
