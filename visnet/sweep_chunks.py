"""The bundled sweep (:class:`visnet.deconvnet.Sweep`) run in chunks of its seeds, under a memory budget.

The sweep's working memory grows with its seeds: every whole-map seed ends as a dense (224, 224, 64) signal
at ``block1`` (12.25 MiB in float32), and the executor holds a few of them per seed at once (the unpooled
signal, the rectified one, the transposed convolution's output). One photo's 54 reconstructions
(``--layers all --top-k 3``) took 3.1 GB of peak RSS in one run. So the seeds are split: one run computes
the forward pass and picks the channels, then each chunk of seeds runs with those forward tensors and
channels fed back in (the forward pass is not recomputed), and the chunks' outputs are put back in the order
of the one-run sweep. The dense rows of a seed came out the same bits in any chunk; a layer's windows are
kept in one chunk, since a split window batch changed their last bits (the tests check it bit for bit).

The budget bounds the estimated working memory of one chunk: :func:`map_seed_bytes` per whole-map seed and
:func:`max_seed_bytes` per window, times the images. A chunk holds at least one seed (or one layer's
windows), whatever the budget. Under the default budget the default job (W15, one photo) is two runs: its whole
maps, then its windows (:data:`visnet.settings.SWEEP_MEMORY_MB_DEFAULT` says why).
"""
import ctypes
import ctypes.util
from typing import NamedTuple

import numpy as np

from .architecture import INPUT_SIZE, LAYERS, get_layer
from .receptive_fields import receptive_field
from .settings import SWEEP_MEMORY_MB_DEFAULT

MIB = 1024 * 1024
# Working memory of one whole-map seed, from the one-run sweep's peak RSS above the loaded engine (2-core AMD
# EPYC, oneDNN; python -m visnet.bench): W15 with seed=both took 877 MiB (58 per map seed, its windows
# included), all 54 took 1946 MiB (36 per seed). 55 MiB per seed, and a window its field's share of that,
# puts W15 at 1013 MiB (825 of whole maps, 188 of windows): two runs under the default budget.
MAP_SEED_BYTES = 55 * MIB
DEFAULT_BUDGET_MB = SWEEP_MEMORY_MB_DEFAULT


class Chunk(NamedTuple):
    """One run: columns ``[start, stop)`` of each layer's per-image pairs (ranked, then explicit), seeding
    ``seed`` ("map": their whole maps; "max": their single activations, on windows)."""

    columns: dict  # layer name -> (start, stop)
    seed: str


def map_seed_bytes(layer: str) -> int:
    """Estimated working bytes of one whole-map seed of ``layer`` (every seed ends at full size)."""
    return MAP_SEED_BYTES


def max_seed_bytes(layer: str) -> int:
    """Estimated working bytes of one single activation of ``layer``, on its receptive field's window."""
    side = min(receptive_field(layer).size, INPUT_SIZE)
    return round(MAP_SEED_BYTES * (side / INPUT_SIZE) ** 2)


def plan_chunks(pairs_per_image: dict, images: int, budget_bytes: int, seed: str) -> list:
    """The chunks of a windowed sweep's seeds: ``pairs_per_image`` {layer: pairs of each image}, in the sweep's
    order (deepest layer first, then each layer's pairs in their order), split into runs whose estimated
    working memory over ``images`` images stays within ``budget_bytes``.

    Whole-map seeds (``seed`` "map" or "both") are split pair by pair, at least one per chunk. A layer's
    single activations (``seed`` "max" or "both") stay together while they fit the budget, because the windows
    of a layer are one batch of transposed convolutions whose rounding depends on the batch (measured: a split
    batch changed the last bits); past the budget they are split into runs of as many pairs as fit (at least
    one), and those windows equal the one run's to float rounding instead of bit for bit. One chunk when
    everything fits: the one-run sweep, unchanged."""
    if budget_bytes <= 0:
        raise ValueError(f"the sweep's memory budget must be positive, got {budget_bytes} bytes")
    order = sorted(pairs_per_image, key=lambda name: -LAYERS.index(get_layer(name)))
    total = sum(images * pairs_per_image[name] * (map_seed_bytes(name) * (seed != "max")
                                                  + max_seed_bytes(name) * (seed != "map")) for name in order)
    if total <= budget_bytes:
        return [Chunk({name: (0, pairs_per_image[name]) for name in order}, seed)]
    units = []  # (layer, start, stop, kind, bytes), in the sweep's order
    if seed != "max":
        units += [(name, column, column + 1, "map", images * map_seed_bytes(name))
                  for name in order for column in range(pairs_per_image[name])]
    if seed != "map":
        for name in order:
            pairs, cost = pairs_per_image[name], images * max_seed_bytes(name)  # cost: one pair of every image
            step = pairs if pairs * cost <= budget_bytes else max(1, budget_bytes // cost)
            units += [(name, start, min(start + step, pairs), "max", (min(start + step, pairs) - start) * cost)
                      for start in range(0, pairs, step)]
    return _pack(units, _balanced_limit(units, budget_bytes))


def _pack(units: list, limit: int) -> list:
    """``units`` in order, as chunks of one kind each whose estimates stay within ``limit`` (a unit over it
    alone in its chunk)."""
    chunks, current, used, kind = [], {}, 0, None
    for name, start, stop, unit_kind, cost in units:
        if current and (used + cost > limit or unit_kind != kind):
            chunks.append(Chunk(current, kind))
            current, used = {}, 0
        first, _ = current.get(name, (start, start))
        current[name], used, kind = (first, stop), used + cost, unit_kind
    chunks.append(Chunk(current, kind))
    return chunks


def _balanced_limit(units: list, budget_bytes: int) -> int:
    """The smallest chunk limit that packs ``units`` in as few chunks as the budget does: the same number of
    runs, their estimates evened out, so the largest chunk (which sets the job's peak) is as small as it can be
    for that speed. Filling each chunk to the budget left 54 reconstructions at 768 MiB in five whole-map chunks of
    715 MiB estimated and one of 110, where five of 605 do."""
    runs = len(_pack(units, budget_bytes))
    low, high = max(cost for *_, cost in units), budget_bytes  # the packing's count only falls as the limit rises
    while low < high:
        middle = (low + high) // 2
        if len(_pack(units, middle)) <= runs:
            high = middle
        else:
            low = middle + 1
    return high


def run_in_chunks(model, sweep, feed: dict, chunks: list) -> dict:
    """What ``model.run(sweep.outputs_for(seed), feed)`` returns, computed chunk by chunk.

    ``feed`` is the one-run feed (images, seed kinds, ``top_k`` and ``explicit`` per layer). A first run
    fetches the forward tensors the sweep reads and each layer's chosen channels (N, pairs); each chunk
    then feeds them back, with the chunk's columns of the channels (none for layers outside it)."""
    dependencies = sweep.forward_dependencies()
    forward, channels = model.run([dependencies, sweep.channels], feed)
    base = {model.images: feed[model.images], **dict(zip(dependencies, forward))}
    fetched = []
    for chunk in chunks:
        chunk_feed = {**base, **sweep.seed_feed(chunk.seed)}
        for name, matrix in channels.items():
            start, stop = chunk.columns.get(name, (0, 0))
            chunk_feed[sweep.channels[name]] = matrix[:, start:stop]
        fetched.append((chunk, model.run(chunk_outputs(sweep, chunk), chunk_feed)))
        release_free_memory()
    del base, forward, chunk_feed  # the forward tensors, no longer needed: the merge's copies take their place
    merged = merge_chunks(fetched, sweep.layers, len(feed[model.images]))
    del fetched
    release_free_memory()
    return merged


def chunk_outputs(sweep, chunk: Chunk) -> dict:
    """What one chunk fetches: the sweep's outputs for its kind of seed, with the windows of its own layers only.
    The merge reads no others, and another layer's windows would be an empty batch, which oneDNN's CPU conv2d
    (TensorFlow 2.21) gives its input's channels instead of its output's: the next unpooling then failed."""
    outputs = sweep.outputs_for(chunk.seed)
    for key in ("max_windows", "max_origins"):
        if key in outputs:
            outputs[key] = {name: tensor for name, tensor in outputs[key].items() if name in chunk.columns}
    return outputs


def _malloc_trim():
    library = ctypes.util.find_library("c")
    function = getattr(ctypes.CDLL(library), "malloc_trim", None) if library else None
    return (lambda: function(0)) if function else (lambda: None)


# TensorFlow's CPU tensors come from malloc, one arena per executor thread: a chunk's freed buffers stay
# mapped in the arenas of the threads that ran it, and the next chunk's land in others, so without this
# the peak RSS of a second job was 20 % above the first's (measured: 1720 MiB, then 2106 MiB). glibc's
# malloc_trim gives the free pages of every arena back; elsewhere it does nothing.
release_free_memory = _malloc_trim()


DENSE_ROWS = ("reconstructions", "layer", "image", "channel", "norm", "kind")


def merge_chunks(fetched: list, sweep_layers: list, images: int) -> dict:
    """The chunks' outputs [(Chunk, outputs)] as one run of the sweep would have returned them.

    Per layer, each image's pairs are its chunks' columns in order (the pairs and maps from the chunks of
    the first kind, the windows from the "max" chunks). The dense rows of one run are ordered by image,
    then layer (deepest first), then kind, then pair: the chunks' rows, concatenated in chunk order and
    sorted stably on those keys, are in that order."""
    def per_layer(key, chunks, field=None):
        pick = (lambda outputs, name: outputs[key][name]) if field is None else (
            lambda outputs, name: outputs[key][name][field])
        return {name: per_image_concat([pick(outputs, name) for chunk, outputs in chunks if name in chunk.columns],
                                       images) for name in sweep_layers}

    primary = [(chunk, outputs) for chunk, outputs in fetched if chunk.seed == fetched[0][0].seed]
    merged = {"maps": per_layer("maps", primary),
              "pairs": {name: {} for name in sweep_layers}}
    for field in primary[0][1]["pairs"][sweep_layers[0]]:
        for name, values in per_layer("pairs", primary, field).items():
            merged["pairs"][name][field] = values
    windows = [(chunk, outputs) for chunk, outputs in fetched if "max_windows" in outputs]
    if windows:
        merged["max_windows"], merged["max_origins"] = per_layer("max_windows", windows), per_layer(
            "max_origins", windows)
    dense = [outputs for _, outputs in fetched if "reconstructions" in outputs]
    if dense:
        keys = {key: np.concatenate([outputs[key] for outputs in dense]) for key in DENSE_ROWS[1:]}
        depth = np.array([LAYERS.index(get_layer(name)) for name in sweep_layers])
        order = np.lexsort((keys["kind"], -depth[keys["layer"]], keys["image"]))
        merged.update({key: values[order] for key, values in keys.items()})
        merged["reconstructions"] = _ordered_rows(dense, order)
    return merged


def _ordered_rows(dense: list, order: np.ndarray) -> list:
    """The chunks' reconstructions, concatenated and taken in ``order``, as a list of rows (224×224×3 floats each)
    that are views into the chunks' own blocks: nothing is copied. A merge that copied them into one array held
    the results twice at its peak (the chunks' blocks, which TensorFlow's allocator keeps, and the new array):
    190 MiB more for the top 16 of all 18 layers. Every reader takes one row at a time
    (:func:`visnet.engine.collect_features`)."""
    destination = np.empty_like(order)
    destination[order] = np.arange(len(order))
    rows = [None] * len(order)
    start = 0
    for outputs in dense:
        block = outputs.pop("reconstructions")
        for offset, row in enumerate(destination[start:start + len(block)]):
            rows[row] = block[offset]
        start += len(block)
    return rows


def per_image_concat(parts: list, images: int) -> np.ndarray:
    """Image-major arrays (N·k_i, …) joined per image into (N·Σk_i, …)."""
    joined = np.concatenate([part.reshape((images, -1) + part.shape[1:]) for part in parts], axis=1)
    return joined.reshape((-1,) + joined.shape[2:])
