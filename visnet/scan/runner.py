"""A whole scan in this process, without Redis: every missing chunk, the merge, every missing projection
block. What ``python -m visnet.scan`` runs without ``--enqueue``; it resumes a scan that stopped
half-way just as the jobs do (finished chunks and blocks are skipped).
"""
from pathlib import Path

from . import store
from .chunks import compute_chunk
from .merge import merge_scan
from .plan import projection_blocks


def run_scan(scan_dir, engine, report=None) -> dict:
    """Run what is missing of the scan in ``scan_dir`` with a loaded engine. ``report(message)`` gets
    one line per step. Returns counts of what was computed."""
    from .projection import project_block  # needs the engine's deconvnet

    scan_dir = Path(scan_dir)
    say = report or (lambda message: None)
    record = store.load_scan(scan_dir)
    done = set(store.done_chunks(scan_dir, record))
    computed = 0
    for index, (start, stop) in enumerate(record["chunks"]):
        if index in done:
            continue
        result = compute_chunk(scan_dir, index, engine, record=record)
        computed += 1
        say(f"chunk {index + 1}/{len(record['chunks'])}: images {start}-{stop - 1} "
            f"in {result.get('network_seconds', 0):.1f} s")
    merged = merge_scan(scan_dir)
    say("merged" if not merged.get("reused") else "already merged")
    projected = 0
    for layer, start, stop in projection_blocks(record):
        result = project_block(scan_dir, layer, start, stop, engine)
        if not result["skipped"]:
            projected += 1
            say(f"projected {layer} channels {start}-{stop - 1}: {result['projections']} projections "
                f"of {result['images']} images in {result['seconds']:.1f} s")
    return {"chunks_computed": computed, "projection_blocks_computed": projected}
