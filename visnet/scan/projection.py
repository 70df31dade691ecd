"""Projections of a merged scan: each unit's top images, projected to pixel space from that unit.

Zeiler & Fergus (ECCV 2014, fig. 2) show, for each unit, its top-9 activations projected to pixel space
next to the corresponding image patches: for each top image, the unit's single strongest activation on
it, projected alone, inside its receptive field. For every (unit, rank) this writes up to three PNGs
(names from :func:`visnet.scan.store.projection_names`):

* ``crop``: the projection of that single strongest activation (``max`` seed), inside its receptive
  field (:func:`visnet.receptive_fields.field_window`), scaled on its own so it keeps its contrast;
* ``patch``: the image inside the same window;
* ``full``: the projection of the unit's whole map on that image (the enlarged view), full frame.

Two kinds of jobs write them:

* a **block** (:func:`project_block`) projects ``project_block`` of the units the scan projects
  (:func:`visnet.scan.units.projected_units`: the strongest first) with ``max`` seeds only: ``crop`` and
  ``patch``, the grid's strips. Its marker is ``projections/<layer>/block_<start>-<stop>.json``;
* a **unit** (:func:`project_unit`), enqueued when someone opens a unit in the browser, projects one unit's
  top images with both seeds: ``full``, ``crop`` and ``patch``. Its marker is
  ``projections/<layer>/unit_<unit>.json``.

The neurons of the classifier (``fc1``, ``fc2``, ``predictions``) see the whole image: their projection is
the gradient of the neuron's value with respect to the input pixels (Simonyan et al. 2014, the
``gradient`` rule of :mod:`visnet.deconvnet`), full frame, so ``crop`` is ``full`` and ``patch`` the image.

Work is grouped by image: each distinct image runs forward once per job, with every unit of the job that
has it among its top images; a block's ``max`` seeds go down for IMAGES_PER_RUN images at a time, each on
its receptive field's window only (:meth:`visnet.engine.Engine.project_max`).

On a stored chain model (:mod:`visnet.scan.layout`) every layer, flat ones too, is projected by the chain's
deconvnet (:meth:`visnet.chain.engine.ChainEngine.deconv`), image by image: a flat layer's unit sees the
whole image, so its window is the full frame.
"""
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..display import encode_png, reconstruction_image
from ..preprocessing import to_network_input
from . import store
from .imagesets import load_scan_image
from .layout import VGG16_LAYOUT
from .merge import load_rankings
from .plan import check_engine, options_of
from .units import projected_units

IMAGES_PER_RUN = 8  # images of a projection block whose max seeds go down in one run


def project_block(scan_dir, layer: str, start: int, stop: int, engine, progress=None) -> dict:
    """Project the units at positions ``start`` … ``stop - 1`` of the layer's projected units. Idempotent."""
    scan_dir = Path(scan_dir)
    marker = store.projection_marker(scan_dir, layer, start, stop)
    if marker.is_file():
        return {"layer": layer, "start": start, "stop": stop, "skipped": True}
    record = store.load_scan(scan_dir)
    chosen = projected_units(scan_dir, layer, record)
    if not 0 <= start < stop <= len(chosen):
        raise ValueError(f"positions {start} to {stop - 1} are outside the {len(chosen)} units of {layer} "
                         "the scan projects")
    summary = _project(scan_dir, record, layer, chosen[start:stop], engine, marker, with_full=False,
                       progress=progress, extra={"start": start, "stop": stop})
    return {"layer": layer, "start": start, "stop": stop, **summary}


def project_unit(scan_dir, layer: str, unit: int, engine, progress=None) -> dict:
    """Project one unit's top images with both seeds (what the browser asks for when a unit is opened).
    Idempotent."""
    scan_dir = Path(scan_dir)
    marker = store.unit_marker(scan_dir, layer, unit)
    if marker.is_file():
        return {"layer": layer, "unit": unit, "skipped": True}
    record = store.load_scan(scan_dir)
    options = options_of(record)
    if layer not in options.layers:
        raise ValueError(f"layer {layer!r} was not scanned; this scan has {', '.join(options.layers)}")
    units = options.layout.unit_count(layer)
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < units:
        raise ValueError(f"unit must be 0 to {units - 1} for {layer}, received {unit!r}")
    summary = _project(scan_dir, record, layer, [unit], engine, marker, with_full=True, progress=progress,
                       extra={"unit": unit})
    return {"layer": layer, "unit": unit, **summary}


def _project(scan_dir, record, layer, units, engine, marker, with_full, progress, extra) -> dict:
    options = options_of(record)
    check_engine(options, engine)
    layout = options.layout
    ranking = load_rankings(scan_dir, layer)
    ranks = min(options.projected_k, ranking.k)
    by_image = defaultdict(list)
    for unit in units:
        for rank in range(ranks):
            by_image[int(ranking.top_ids[rank, unit])].append((unit, rank))

    started = time.perf_counter()
    entries = defaultdict(list)
    work = sorted(by_image.items())
    for first in range(0, len(work), IMAGES_PER_RUN):
        group = work[first:first + IMAGES_PER_RUN]
        rgbs = [load_scan_image(store.image_path(scan_dir, record, image_id), options.image_size, layout.input_size)
                for image_id, _ in group]
        pictures = project_images(engine, rgbs, layer, [sorted({unit for unit, _ in wanted}) for _, wanted in group],
                                  with_full, layout)
        for (image_id, wanted), rgb, found in zip(group, rgbs, pictures):
            for unit, rank in wanted:
                entries[unit].append(_write_projection(scan_dir, layer, unit, rank, image_id, rgb, found[unit],
                                                       layout.is_classifier(layer)))
        if progress is not None:
            progress(first + len(group), len(work))
    document = {
        "layer": layer, **extra, "ranks": ranks, "seed": "both" if with_full else "max",
        "channels": {str(unit): sorted(entries[unit], key=lambda entry: entry["rank"]) for unit in units},
        "images": len(by_image), "seconds": round(time.perf_counter() - started, 3),
    }
    store.write_json_atomically(marker, document)
    return {"skipped": False, "images": len(by_image), "projections": sum(len(items) for items in entries.values()),
            "seconds": document["seconds"]}


def project_images(engine, rgbs, layer: str, units_per_image, with_full: bool, layout=VGG16_LAYOUT) -> list:
    """For each RGB image ``rgbs[i]``, {unit: {"crop", "full" (None unless ``with_full``), "position",
    "window"}} of the units ``units_per_image[i]``: float32 projections in the network's input space. ``crop``
    is the projection of the unit's single strongest activation inside ``window`` (top, left, side);
    ``position`` is that activation's (row, column) in the unit's map (None for a classifier neuron).

    On VGG16 the ``max`` seeds of a convolutional layer (a projection block) go down in one run for all the
    images, each computed on its receptive field's window only (:meth:`visnet.engine.Engine.project_max`); a
    chain model's go down image by image, every layer of the image in one sweep (:class:`visnet.chain.projection.ChainSweep`)."""
    if layout.is_classifier(layer) or with_full or not layout.built_in:
        return [project_image(engine, rgb, layer, units, with_full, layout) for rgb, units in zip(rgbs, units_per_image)]
    pairs = [(index, unit) for index, units in enumerate(units_per_image) for unit in units]
    pictures = [{} for _ in rgbs]
    for (index, unit), feature in zip(pairs, engine.project_max(np.stack(rgbs), layer, pairs)):
        pictures[index][unit] = _picture(feature)
    return pictures


def project_image(engine, rgb, layer: str, units, with_full: bool, layout=VGG16_LAYOUT) -> dict:
    """:func:`project_images` for one image; with ``with_full``, both seeds in one pass."""
    if layout.is_classifier(layer):
        gradients = neuron_gradients(engine, rgb, layer, units)
        return {unit: {"crop": gradient, "full": gradient, "position": None, "window": (0, 0, layout.input_size)}
                for unit, gradient in zip(units, gradients)}
    if not with_full and layout.built_in:
        return project_images(engine, [rgb], layer, [units], with_full)[0]
    result = engine.deconv(rgb[None], layers=None, top_k=0, channels=[(layer, unit) for unit in units],
                           seed="both" if with_full else "max")
    return {feature.channel: _picture(feature) for feature in result.images[0].layers[layer]}


def _picture(feature) -> dict:
    return {"crop": feature.max_reconstruction, "full": feature.reconstruction, "position": feature.max_position,
            "window": feature.field}


def neuron_gradients(engine, rgb, layer: str, units) -> np.ndarray:
    """(S, 224, 224, 3) float32: the gradient of each classifier neuron ``units[s]`` of ``layer`` with
    respect to the input (network input space), on one RGB image, in one run (the image repeated S times)."""
    import tensorflow as tf

    model = engine.model
    cache = vars(model).setdefault("view_ops", {}).setdefault("scan_gradients", {})
    if layer not in cache:
        with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope("scan_gradients"):
            chosen = tf.compat.v1.placeholder(tf.int32, [None], name=f"{layer}_units")
            values = tf.gather(model.classifier_activations[layer], chosen[:, None], batch_dims=1)
            cache[layer] = (chosen, tf.gradients(tf.reduce_sum(values), model.images)[0])
    chosen, gradient = cache[layer]
    units = np.asarray(units, dtype=np.int32)
    images = np.repeat(to_network_input(rgb[None]), len(units), axis=0)
    return model.run(gradient, {model.images: images, chosen: units})


def _write_projection(scan_dir, layer, unit, rank, image_id, rgb, picture, classifier) -> dict:
    top, left, side = picture["window"]
    names = store.projection_names(layer, unit, rank)
    files = {"crop": reconstruction_image(picture["crop"]),
             "patch": np.ascontiguousarray(rgb[top:top + side, left:left + side])}
    if picture["full"] is not None:
        files["full"] = reconstruction_image(picture["full"])
    if classifier:  # the whole image is the neuron's field: its crop is the full view
        files.pop("crop")
        names = {**names, "crop": names["full"]}
    for kind, image in files.items():
        store.write_bytes_atomically(scan_dir / names[kind], encode_png(image))
    position = None if picture["position"] is None else list(picture["position"])
    return {"rank": rank, "image": image_id, "position": position, "window": [top, left, side],
            "full": names["full"] if "full" in files else None, "crop": names["crop"], "patch": names["patch"]}
