"""The RQ jobs a worker runs: one uploaded photo through the deconvnet (:func:`deconv`) or one of the
other views (:func:`view`), PNGs and a manifest out.

This module imports the engine (and so TensorFlow). The web process enqueues ``service.jobs.photo.deconv``
and ``service.jobs.photo.view`` by their dotted paths and never imports them; ``worker.py`` loads the engine
before its first job, so the jobs find it warm.
"""
import os
import shutil
import time
from pathlib import Path

from rq import get_current_job

from service.jobs import runtime, written
from service.jobs.errors import describe_failure
from visnet import architecture, results
from visnet.architecture import INPUT_SIZE
from visnet.atomic import partial_folder
from visnet.methods import DEFAULT_METHOD, computation_options, get_method, parse_options, photo_fit
from visnet.outputs import write_deconv_outputs, write_input_photo
from visnet.preprocessing import prepare_photo
from visnet.scan import store as scan_store
from visnet.settings import DEFAULT_MODEL

# The stages a job reports in ``job.meta["progress"]``, in order; the job page draws one bar each.
STAGES = (("prepare", "Reading the photo"), ("network", "Projecting features"), ("write", "Writing PNGs"))
VIEW_STAGES = (("prepare", "Reading the photo"), ("network", "Computing the view"), ("write", "Writing PNGs"))
# A view that does not look at the photo (visnet.methods: image_optional, the filters) says so in its stages.
PHOTOLESS_VIEW_STAGES = (("prepare", "Loading the network"),) + VIEW_STAGES[1:]
_SAVE_EVERY_SECONDS = 0.2


class Progress:
    """Writes ``{"stage": label, "stages": [{"name", "label", "done", "total"}]}`` into the current
    RQ job's meta, at most every few hundred milliseconds except when a stage completes; and, while a
    deconvnet job writes its pictures, the result so far (:meth:`publish`)."""

    def __init__(self, job, stages=STAGES):
        self.job = job
        self.stages = [{"name": name, "label": label, "done": 0, "total": 1} for name, label in stages]
        self.current = None
        self._saved_at = 0.0
        if job is not None:
            job.meta.pop(written.META_KEY, None)  # an earlier attempt's, whose folder is gone

    def update(self, name, done, total, label=None):
        stage = next(stage for stage in self.stages if stage["name"] == name)
        stage["done"], stage["total"] = int(done), max(int(total), 1)
        self.current = label or stage["label"]
        now = time.monotonic()
        if self.job is None or (done < total and now - self._saved_at < _SAVE_EVERY_SECONDS):
            return
        self._saved_at = now
        self.job.meta["progress"] = self.snapshot()
        self.job.save_meta()

    def publish(self, folder: Path, manifest: dict):
        """Publish the pictures written so far into the partial ``folder`` (``manifest``: visnet.outputs'
        manifest so far; see service.jobs.written): the web app lists and serves them before the job
        finishes. The first at once (a page shows pictures as early as it can), later ones at most every
        few hundred milliseconds."""
        if self.job is None:
            return
        first = written.META_KEY not in self.job.meta
        self.job.meta[written.META_KEY] = written.record(folder, manifest)
        now = time.monotonic()
        if first or now - self._saved_at >= _SAVE_EVERY_SECONDS:
            self._saved_at = now
            self.job.save_meta()

    def snapshot(self):
        return {"stage": self.current, "stages": [dict(stage) for stage in self.stages]}

    def reporter(self, name):
        """A ``progress(stage, done, total)`` callable for the engine or the PNG writer."""
        return lambda label, done, total: self.update(name, done, total, label)


def _record_error(job, error, results_root):
    """The readable message of a failure, for the page and the API (see service.jobs.errors)."""
    if job is not None:
        job.meta["error"] = describe_failure(error, job.timeout, results_root)
        job.save_meta()


def _publish(temporary: Path, final: Path):
    """Rename a complete result folder into place; an identical job that got there first wins."""
    try:
        os.rename(temporary, final)
    except OSError:
        if not results.is_complete(final):
            raise
        shutil.rmtree(temporary, ignore_errors=True)


def view(upload_path, results_root, job_key, method, options, model=None):
    """Run one of the other views (``visnet.views``) on the photo. ``options`` is the web layer's
    normalised dict for ``method``; it is checked again by :func:`visnet.views.run_view`.

    Like :func:`deconv`, writes into a temporary folder and renames it to ``results_root/job_key``
    only when complete. A view that needs the classifier top the weights lack fails with
    :class:`visnet.views.base.ClassifierRequired`, whose message is the job's error. ``model`` as :func:`deconv`'s.
    """
    from visnet.views import run_view
    from visnet.views.base import write_view_outputs

    def compute(engine, rgb, report):
        return run_view(engine, method, rgb, options, progress=report)

    def write(engine, result, rgb, folder, report, input_photo, publish):
        info = engine.model_info()
        return write_view_outputs(result, folder, extra={
            "image": Path(upload_path).name, "input": input_photo, "options": options, "weights": info.get("weights"),
            "weights_description": info.get("weights_description"), "device": info.get("device"),
            **({"model": engine.describe_model()} if model else {})})

    stages = PHOTOLESS_VIEW_STAGES if get_method(method).image_optional else VIEW_STAGES
    description = {"method": method, "options": options, **({"model": model} if model else {})}
    return _run_job(upload_path, results_root, job_key, description, compute, write, stages)


def deconv(upload_path, results_root, job_key, options, model=None):
    """Run one job. ``options`` is the web layer's normalised dict (the deconv method's options in
    visnet.methods); an option a job queued by an older version lacks takes its default, except ``seed``:
    a job queued before it existed projects whole maps, as it did then. ``reference`` (rank=distinctive)
    is a scan id, read from ``results_root``'s scans.

    Writes into a temporary folder under ``results_root`` and renames it to ``results_root/job_key``
    only when complete, so a reader sees either nothing or the whole result. ``model`` ({"name", "sha256"}) is
    the stored model the job was submitted for (None: the built-in VGG16); the worker's must be the same.
    """
    rank = options.get("rank", "norm")  # jobs queued by an older version have none
    reference = (scan_store.scan_path(scan_store.scans_root(results_root), options["reference"])
                 if rank == "distinctive" else None)

    def compute(engine, rgb, report):
        # The layers are the engine's model's: VGG16's (visnet.architecture), or a stored model's.
        layers = getattr(engine, "layers", architecture)
        values = computation_options(parse_options(DEFAULT_METHOD, {"seed": "map", **options}, layers))
        return engine.deconv(rgb[None], **{**values, "reference": reference}, progress=report)

    def write(engine, result, rgb, folder, report, input_photo, publish):
        # The stored upload's name is a 64-digit hash: the summary sheet is titled by the job, as its page is.
        return write_deconv_outputs(result, 0, rgb, folder, progress=report, image_name=input_photo["image"],
                                    input_photo=input_photo, title=f"job {job_key[:8]}", written=publish)

    description = {"options": options, **({"model": model} if model else {})}
    return _run_job(upload_path, results_root, job_key, description, compute, write, STAGES)


class WrongModel(ValueError):
    """A job that reached a worker of another model (its queue is the model's, so only by a misconfiguration)."""


def check_model(engine, description: dict) -> None:
    """The job's model (``description["model"]``, none for VGG16) must be the engine's, down to the file's hash."""
    wanted = description.get("model") or {"name": DEFAULT_MODEL}
    served = engine.describe_model() if hasattr(engine, "describe_model") else {"name": DEFAULT_MODEL}
    if wanted.get("name") != served.get("name") or wanted.get("sha256") != served.get("sha256"):
        raise WrongModel(f"this job is for model {wanted.get('name')} (sha256 {str(wanted.get('sha256'))[:12]}), "
                         f"and this worker serves {served.get('name')} (sha256 {str(served.get('sha256'))[:12]}): "
                         "submit it again")


def _run_job(upload_path, results_root, job_key, description, compute, write, stages):
    """What every job does: read the photo (made square by the options' ``fit``), ``compute(engine, rgb, report)``
    on the worker's engine, ``write(engine, result, rgb, folder, report, input_photo, publish)`` (PNGs and
    manifest.json, ``input_photo`` being the manifest's entry of the ``input.png`` written first, None for a method
    that reads no photo; ``publish(manifest so far)`` makes the pictures already written visible, see
    :meth:`Progress.publish`) into a temporary folder with
    a ``job.json`` record, then rename it to ``results_root/job_key``. Progress goes to the RQ job's meta, a failure's message
    to ``meta["error"]``. An identical job finished by another worker is reused."""
    started = time.perf_counter()
    results_root = Path(results_root)
    final = results_root / job_key
    if results.is_complete(final):  # another worker got there first
        return {"id": job_key, "reused": True}
    job = get_current_job()
    progress = Progress(job, stages)
    try:
        progress.update("prepare", 0, 1)
        engine = runtime.engine()
        check_model(engine, description)
        photo = prepare_photo(upload_path, size=getattr(engine, "input_size", INPUT_SIZE),
                              fit=photo_fit(description["options"]))
        rgb = photo.rgb
        progress.update("prepare", 1, 1)
        prepared = time.perf_counter()

        progress.update("network", 0, 1)
        result = compute(engine, rgb, progress.reporter("network"))
        progress.update("network", 1, 1)
        computed = time.perf_counter()

        temporary = partial_folder(results_root, job_key)  # removed below, or by service.recovery if killed
        try:
            # mkdtemp makes it private; the web process, maybe another user, serves its pictures as they land.
            os.chmod(temporary, 0o755)
            progress.update("write", 0, 1)
            reads_photo = get_method(description.get("method", DEFAULT_METHOD)).reads_photo
            input_photo = write_input_photo(photo, temporary, Path(upload_path).name) if reads_photo else None
            write(engine, result, rgb, temporary, progress.reporter("write"), input_photo,
                  lambda manifest: progress.publish(temporary, manifest))
            progress.update("write", 1, 1)
            finished = time.perf_counter()
            timings = {
                "prepare_seconds": round(prepared - started, 3),
                "network_seconds": round(computed - prepared, 3),
                "write_seconds": round(finished - computed, 3),
                "total_seconds": round(finished - started, 3),
            }
            record = {
                "id": job_key, **description,
                "image": {"name": Path(upload_path).name, "sha256": Path(upload_path).stem},
                "progress": progress.snapshot(), "timings": timings,
                "worker": getattr(job, "worker_name", None),
                # Earlier attempts whose worker died (service.recovery), for the record.
                "attempts": (job.meta.get("attempts") if job is not None else None) or [],
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            results.write_job_record(temporary, record)
            _publish(temporary, final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
    except Exception as error:
        _record_error(job, error, results_root)
        raise
    if job is not None:
        job.meta["progress"] = progress.snapshot()
        job.meta.pop(written.META_KEY, None)  # the folder is in place now: its manifest says it all
        job.save_meta()
    return {"id": job_key, **description, "timings": timings, "files": len(results.pictures(final))}
