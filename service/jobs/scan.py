"""The RQ jobs of a scan, enqueued by dotted path (``service.jobs.scan.run_chunk`` …) by
:mod:`service.jobs.scheduling`. A worker runs them like the photo jobs, on the engine it loaded once
(:mod:`service.jobs.runtime`). TensorFlow is imported by the jobs that run the network, when they run.

Every job holds a lease while it runs (:class:`service.jobs.scheduling.Lease`), returns at once when its
output already exists, and reports progress in ``job.meta["progress"]`` as ``{"task", "done",
"total"}``.
"""
import logging
import time
from pathlib import Path

from rq import get_current_job

from service.jobs import runtime, scheduling
from service.jobs.errors import exception_text
from visnet.scan import store
from visnet.scan.layout import layout_of
from visnet.scan.merge import ChunksMissing, merge_scan
from visnet.scan.plan import ScanOptions, create_scan, projection_blocks

_SAVE_EVERY_SECONDS = 0.5
log = logging.getLogger("visnet.scan")


def _reporter(job, task):
    if job is None:
        return None
    saved = [0.0]

    def report(done, total):
        now = time.monotonic()
        if done < total and now - saved[0] < _SAVE_EVERY_SECONDS:
            return
        saved[0] = now
        job.meta["progress"] = {"task": task, "done": int(done), "total": int(total)}
        job.save_meta()

    return report


def _record_error(job, error):
    if job is not None:
        job.meta["error"] = exception_text(error)
        job.save_meta()


def _requeue_dead(connection, scan_dir):
    """Best effort: a failure here must not cost the chunk (resume_scan does the same job)."""
    try:
        healed = scheduling.requeue_dead(connection, scan_dir)
    except Exception:
        log.warning("could not check scan %s for dead jobs", scan_dir, exc_info=True)
        return
    if healed["dead"]:
        log.info("scan %s: jobs of dead workers %s scheduled again: %s", scan_dir, healed["dead"], healed["enqueued"])


def run_chunk(scan_dir, index: int) -> dict:
    """Compute chunk ``index`` (nothing if it is done). Before that, have any job of this scan whose
    worker died scheduled again."""
    job = get_current_job()
    with scheduling.Lease(job):
        try:
            if job is not None:
                _requeue_dead(job.connection, scan_dir)
            from visnet.scan.chunks import compute_chunk  # TensorFlow, which the worker has loaded

            return compute_chunk(scan_dir, int(index), runtime.engine(), progress=_reporter(job, f"chunk {index}"),
                                 worker=getattr(job, "worker_name", "") or "", job_id=job.id if job else "")
        except Exception as error:
            _record_error(job, error)
            raise


def merge(scan_dir) -> dict:
    """Merge the chunks, then enqueue the projections. With chunks missing (a chunk failed for good, or
    its worker died), schedule them and another merge instead."""
    job = get_current_job()
    with scheduling.Lease(job):
        try:
            result = merge_scan(scan_dir)
        except ChunksMissing as missing:
            if job is None:
                raise
            return {"merged": False, "missing": missing.missing, **scheduling.schedule(job.connection, scan_dir)}
        except Exception as error:
            _record_error(job, error)
            raise
        if job is not None:
            result["schedule"] = scheduling.schedule(job.connection, scan_dir)
        return result


def project(scan_dir, layer: str, start: int, stop: int) -> dict:
    """Project the units at positions ``start`` … ``stop - 1`` of the layer's projected units (nothing if
    that block is done)."""
    job = get_current_job()
    with scheduling.Lease(job):
        try:
            from visnet.scan.projection import project_block  # TensorFlow, likewise

            return project_block(scan_dir, layer, int(start), int(stop), runtime.engine(),
                                 progress=_reporter(job, f"{layer} {start}-{stop}"))
        except Exception as error:
            _record_error(job, error)
            raise


def project_one(scan_dir, layer: str, unit: int) -> dict:
    """Project one unit's top images with both seeds (nothing if that is done): what opening a unit in the
    browser asks for (:func:`service.jobs.scheduling.unit_projection`)."""
    job = get_current_job()
    with scheduling.Lease(job):
        try:
            from visnet.scan.projection import project_unit  # TensorFlow, likewise

            return project_unit(scan_dir, layer, int(unit), runtime.engine(),
                                progress=_reporter(job, f"{layer} unit {unit}"))
        except Exception as error:
            _record_error(job, error)
            raise


def finish(scan_dir) -> dict:
    """After the projection jobs: done, or schedule the blocks that are still missing."""
    job = get_current_job()
    with scheduling.Lease(job):
        record = store.load_scan(scan_dir)
        missing = [block for block in projection_blocks(record)
                   if not store.projection_marker(scan_dir, *block).is_file()]
        if not missing or job is None:
            return {"done": not missing, "missing": len(missing)}
        return {"done": False, "missing": len(missing), **scheduling.schedule(job.connection, scan_dir)}


def start(scan_dir, image_root, options: dict, images=None, max_image_pixels: int = 40_000_000, model=None) -> dict:
    """Plan a scan (reading every image once, which can take a while for a big folder) and enqueue it on
    this job's queue with this job's timeout: what the web process enqueues so that it does not read
    thousands of images itself. ``model``: the stored model's description the options were checked against
    (visnet.scan.layout), None for VGG16."""
    job = get_current_job()
    try:
        if not (Path(scan_dir) / store.SCAN_FILE).is_file():  # a retried job planned it already
            options = ScanOptions.from_dict(options, layout_of({"model": model}))
            create_scan(scan_dir, image_root, options, images=images,
                        max_image_pixels=max_image_pixels, progress=_reporter(job, "reading images"))
        if job is None:
            return {"planned": True}
        return scheduling.enqueue_scan(job.connection, job.origin, scan_dir, job_timeout=job.timeout or 600,
                                        result_ttl=job.result_ttl or 86400, failure_ttl=job.failure_ttl or 86400)
    except Exception as error:
        _record_error(job, error)
        raise
