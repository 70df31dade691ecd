"""Enqueueing a photo job: which job function, its arguments and the RQ options, in one place.

The web process enqueues by dotted path (it never imports TensorFlow); the job id is the hash of the
input, so an identical job is found again. Every photo job is under service.recovery's policy: one
more attempt if its worker dies mid-run.
"""
import json
from pathlib import Path

from service import recovery

DECONV_FUNCTION = "service.jobs.photo.deconv"
VIEW_FUNCTION = "service.jobs.photo.view"


def enqueue_photo_job(queue, job_id: str, upload: Path, results_root, method: str, options: dict,
                      image: dict, deconv: bool, timeout: int, result_ttl: int, failure_ttl: int, model: dict = None):
    """Enqueue ``method`` (the deconvnet when ``deconv``, else one of the other views) on ``upload``,
    whose record ``image`` is {"sha256", "name"}; results go under ``results_root``. ``model``: a stored model's
    {"name", "sha256"} (the deconvnet only; ``queue`` is that model's), passed to the job, which checks it
    against its worker's; None for VGG16, whose jobs are enqueued as before."""
    if deconv:
        function, args = DECONV_FUNCTION, (str(upload), str(results_root), job_id, options)
    else:
        function, args = VIEW_FUNCTION, (str(upload), str(results_root), job_id, method, options)
    return queue.enqueue_call(
        function, args=args, kwargs={"model": model} if model else None, job_id=job_id, timeout=timeout, result_ttl=result_ttl, failure_ttl=failure_ttl,
        description=f"{method} {image['name']} {json.dumps(options, sort_keys=True)}",
        **recovery.enqueue_options({"method": method, "options": options, "image": image,
                                    **({"model": model} if model else {})}),
    )
