"""Projections of a merged scan: each channel's top images, projected by the deconvnet from that channel.

Zeiler & Fergus (ECCV 2014, fig. 2) show, for each unit, its top-9 activations projected to pixel
space next to the corresponding image patches. For every (channel, rank) this writes three PNGs
(names from :func:`visnet.scan.store.projection_names`):

* ``full``: the reconstruction of that channel on that image, full frame (224 × 224);
* ``crop``: the reconstruction inside the receptive-field window around the channel's strongest
  activation (:func:`visnet.scan.geometry.field_window`), scaled on its own so it keeps its contrast;
* ``patch``: the image inside the same window.

Work is grouped by image: one ``engine.deconv`` per distinct image with every channel of the block that
has it among its top images, so each image's forward pass runs once per block. A block of channels is
done when its marker ``projections/<layer>/block_<start>-<stop>.json`` exists.
"""
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..display import encode_png, reconstruction_image
from . import store
from .geometry import field_window
from .imagesets import load_scan_image
from .merge import load_rankings
from .plan import options_of


def project_block(scan_dir, layer: str, start: int, stop: int, engine, progress=None) -> dict:
    """Project channels ``start`` … ``stop - 1`` of ``layer`` for a merged scan. Idempotent."""
    scan_dir = Path(scan_dir)
    marker = store.projection_marker(scan_dir, layer, start, stop)
    if marker.is_file():
        return {"layer": layer, "start": start, "stop": stop, "skipped": True}
    record = store.load_scan(scan_dir)
    options = options_of(record)
    ranking = load_rankings(scan_dir, layer)
    if not 0 <= start < stop <= ranking.channels:
        raise ValueError(f"channels {start} to {stop - 1} are outside {layer}'s 0 to {ranking.channels - 1}")
    ranks = min(options.projected_k, ranking.k)
    by_image = defaultdict(list)
    for channel in range(start, stop):
        for rank in range(ranks):
            by_image[int(ranking.top_ids[rank, channel])].append((channel, rank))

    started = time.perf_counter()
    entries = defaultdict(list)
    for done, (image_id, wanted) in enumerate(sorted(by_image.items())):
        rgb = load_scan_image(store.image_path(scan_dir, record, image_id), options.image_size)
        channels = sorted({channel for channel, _ in wanted})
        result = engine.deconv(rgb[None], layers=None, top_k=0, channels=[(layer, channel) for channel in channels])
        features = {feature.channel: feature for feature in result.images[0].layers[layer]}
        for channel, rank in wanted:
            entries[channel].append(_write_projection(scan_dir, layer, channel, rank, image_id, rgb, features[channel]))
        if progress is not None:
            progress(done + 1, len(by_image))
    document = {
        "layer": layer, "start": start, "stop": stop, "ranks": ranks,
        "channels": {str(channel): sorted(entries[channel], key=lambda entry: entry["rank"])
                     for channel in range(start, stop)},
        "images": len(by_image), "seconds": round(time.perf_counter() - started, 3),
    }
    store.write_json_atomically(marker, document)
    return {"layer": layer, "start": start, "stop": stop, "skipped": False, "images": len(by_image),
            "projections": sum(len(items) for items in entries.values()), "seconds": document["seconds"]}


def _write_projection(scan_dir, layer, channel, rank, image_id, rgb, feature) -> dict:
    row, column = np.unravel_index(int(np.argmax(feature.activation)), feature.activation.shape)
    top, left, side = field_window(layer, int(row), int(column))
    window = (slice(top, top + side), slice(left, left + side))
    names = store.projection_names(layer, channel, rank)
    pictures = {
        "full": reconstruction_image(feature.reconstruction),
        "crop": reconstruction_image(feature.reconstruction[window]),
        "patch": np.ascontiguousarray(rgb[window]),
    }
    for kind, picture in pictures.items():
        store.write_bytes_atomically(scan_dir / names[kind], encode_png(picture))
    return {"rank": rank, "image": image_id, "position": [int(row), int(column)], "window": [top, left, side],
            "norm": feature.norm, **names}
