"""How far a scan is, from its folder alone: any process that sees the folder can answer, with or
without Redis (:func:`service.jobs.scheduling.scan_status` adds what the queue knows).

Throughput is images computed over the time some chunk was being computed (the union of the chunks'
[start, end] intervals), so parallel workers count once and the hours a stopped scan sat idle do not
count at all.
"""
from . import store
from .plan import options_of, projection_blocks

STATUSES = ("pending", "scanning", "merging", "projecting", "done", "failed")


def busy_seconds(intervals) -> float:
    """Length of the union of [start, end] intervals."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def scan_progress(scan_dir) -> dict:
    """{"status", "chunks_done", "chunks_total", "images_done", "images_total", "images_per_second",
    "seconds_left", "busy_seconds", "merged", "projection_blocks_done", "projection_blocks_total",
    "error"}. ``status`` is one of STATUSES; ``images_per_second`` and ``seconds_left`` are None until
    a chunk has been computed."""
    record = store.load_scan(scan_dir)
    chunks = record["chunks"]
    done = store.done_chunks(scan_dir, record)
    images_done = sum(chunks[index][1] - chunks[index][0] for index in done)
    images_total = len(record["images"])
    finished = [event for event in store.read_executions(scan_dir) if event.get("event") == "done"]
    busy = busy_seconds((event["started"], event["time"]) for event in finished if "started" in event)
    computed = sum(event.get("images", 0) for event in finished)
    rate = computed / busy if busy > 0 and computed else None
    merged = store.is_merged(scan_dir)
    options = options_of(record)
    blocks = projection_blocks(record)
    blocks_done = sum(store.projection_marker(scan_dir, *block).is_file() for block in blocks) if merged else 0
    failure = store.read_failure(scan_dir)
    if failure is not None:
        status = "failed"
    elif merged:
        status = "done" if blocks_done == len(blocks) else "projecting"
    elif len(done) == len(chunks):
        status = "merging"
    else:
        status = "scanning" if done or finished else "pending"
    return {
        "status": status,
        "chunks_done": len(done), "chunks_total": len(chunks),
        "images_done": images_done, "images_total": images_total,
        "images_per_second": round(rate, 3) if rate else None,
        "seconds_left": round((images_total - images_done) / rate, 1) if rate else None,
        "busy_seconds": round(busy, 3),
        "merged": merged,
        "projection_blocks_done": blocks_done, "projection_blocks_total": len(blocks),
        "layers": list(options.layers),
        "error": failure["error"] if failure else None,
    }
