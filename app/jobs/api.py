"""The JSON API: validate, enqueue, map job state to JSON. Described by ``/api/openapi.json``."""
import io

from flask import Blueprint, Response, current_app, jsonify, request, send_file
from rq.registry import StartedJobRegistry
from werkzeug.datastructures import MultiDict

from app import models, redis_client
from app.errors import ApiError
from app.jobs import lineage, long_poll, uploads
from app.jobs import store as jobstore
from app.jobs.forms import OptionError, ViewOptions, describe_methods, read_method_form
from app.openapi.builder import build_spec
from app.redis_client import get_redis
from app.scans import store as scans
from service import presence
from visnet.architecture import LAYERS
from visnet.methods import get_method

bp = Blueprint("api", __name__, url_prefix="/api")


def read_submission(form: MultiDict, files: MultiDict):
    """(CheckedImage, JobOptions or ViewOptions) from a multipart request, or ApiError. The model (by default
    the ``from_job``'s, else VGG16), the method
    and its options (a distinctive job's reference scan too) are checked before the image is decoded, and a
    stored model must have a live worker; nothing is stored here."""
    form = form.to_dict()
    from_job = form.pop("from_job", None)
    model = models.get_model(form.pop("model", None) or _model_of_source(from_job))
    try:
        options = read_method_form(form, model.layers, model.identity)
    except OptionError as error:
        raise ApiError(400, str(error), "invalid_option") from None
    if getattr(options, "rank", None) == "distinctive":
        if not model.built_in:
            raise ApiError(400, f"rank: model {model.name} ranks channels by norm only (the distinctive ranking, "
                                "against a scan, is vgg16's only so far)", "invalid_option")
        scans.require_reference(options.reference, options.layers)
    models.require_worker(model)
    if from_job is not None:
        if "image" in files:
            raise ApiError(400, "send either an image or from_job, not both", "invalid_option")
        return jobstore.source_image(from_job.strip()), options
    upload = files.get("image")
    if upload is None:
        raise ApiError(400, "no image: send the photo as the multipart field 'image'", "missing_image")
    # MAX_CONTENT_LENGTH bounds this read.
    data = upload.read()
    try:
        checked = uploads.check_image(data, current_app.config["MAX_IMAGE_PIXELS"])
    except uploads.ImageRejected as error:
        raise ApiError(error.status, error.message, error.code) from None
    return checked, options


def _model_of_source(from_job):
    """A follow-up job (``from_job``) that names no model runs on its source job's model."""
    source = (from_job or "").strip()
    if not jobstore.JOB_ID.fullmatch(source):
        return None  # a malformed id is answered by source_image, after the options
    return (jobstore.job_model(source) or {}).get("name")


def require_classifier(options):
    """409 before anything is stored when the method needs the classifier top and the workers'
    published model has none. With no worker yet the job is queued; it fails readably if need be."""
    if not isinstance(options, ViewOptions) or not get_method(options.method).needs_classifier:
        return
    if options.model is not None:  # a stored model: its own softmax and class names
        if not models.get_model(options.model["name"]).classes:
            raise ApiError(409, f"{options.method}: model {options.model['name']} has no class names ("
                                f"{models.how_to_classify(options.model['name'])})", "classifier_required")
        return
    published = presence.published_model(get_redis())
    if published is not None and published.get("has_classifier") is False:
        raise ApiError(409, get_method(options.method).classifier_missing(weights_in_words(published)),
                       "classifier_required")


def weights_in_words(published: dict) -> str:
    """What the workers' weights are and mean (visnet.weights.describe_weights), from their published model;
    a worker of an older version published only the name."""
    return published.get("weights_description") or f"{published.get('weights')} weights"


NO_WORKER_YET = "no worker has started yet: weights and device are not known"


@bp.post("/jobs")
def create_job():
    checked, options = read_submission(request.form, request.files)
    require_classifier(options)
    document = jobstore.submit(checked, options)
    lineage.record((request.form.get("from_job") or "").strip(), document["id"], document["method"])
    document.update(lineage.describe(document["id"]))
    status = 200 if document["status"] == "finished" else 202
    response = jsonify(document)
    response.status_code = status
    response.headers["Location"] = document["links"]["self"]
    return response


@bp.get("/jobs/<job_id>")
def job(job_id):
    since, wait = long_poll.read_parameters(request.args)
    return jsonify(long_poll.describe_when_changed(job_id, since, wait))


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id):
    return jsonify(jobstore.cancel(job_id))


@bp.delete("/jobs/<job_id>")
def delete_job(job_id):
    # Before this release DELETE only cancelled; its 200 answer with the job's last state is kept for one
    # release so that those clients still see "canceled" (README, API). From the next one: 204, no body.
    return jsonify(jobstore.delete(job_id))


@bp.get("/jobs/<job_id>/files/<path:name>")
def job_file(job_id, name):
    found = jobstore.picture(job_id, name)  # a running job's picture comes as bytes
    response = send_file(io.BytesIO(found) if isinstance(found, bytes) else found, mimetype="image/png",
                         download_name=name, max_age=31536000)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"  # ids are content hashes
    return response


@bp.get("/jobs/<job_id>/archive.zip")
def archive(job_id):
    # Streamed as it is zipped: a web process's memory does not grow with the job's size.
    return Response(jobstore.archive(job_id), mimetype="application/zip",
                    headers={"Content-Disposition": f"attachment; filename=visnet-{job_id}.zip"})


@bp.get("/model")
def model():
    connection = get_redis()
    published, preparing = presence.published_model(connection), presence.preparing(connection)
    layers = [{"name": layer.name, "kind": layer.kind, "channels": layer.channels,
               "resolution": layer.resolution} for layer in LAYERS]
    if published is None:
        return jsonify({"weights": None, "weights_description": None, "has_classifier": None, "device": None,
                        "layers": layers, "source": "architecture", "message": preparing or NO_WORKER_YET})
    return jsonify({"weights": published.get("weights"), "weights_description": weights_in_words(published),
                    "has_classifier": published.get("has_classifier"),
                    "device": published.get("device"), "layers": published.get("layers") or layers,
                    "source": "worker", "message": preparing})


@bp.get("/models")
def list_models():
    """The built-in VGG16 and the stored models, with their layers and live workers."""
    return jsonify({"models": models.describe_models()})


@bp.get("/methods")
def methods():
    """Every method (tab) with its options, and whether the workers' weights have a classifier; ``?model=`` a
    stored model's (its layers' defaults and choices, its class names: the tabs of its jobs' pages)."""
    model = models.get_model(request.args.get("model"))
    if not model.built_in:
        return jsonify(_stored_model_methods(model))
    published = presence.published_model(get_redis())
    catalogue = describe_methods()
    for method in catalogue:  # the references a distinctive ranking can use, for the page's select
        for option in method["options"]:
            if option["kind"] == "scan":
                option["scans"] = [{"id": scan["id"], "label": scan["label"]} for scan in scans.references()]
    if published is not None and published.get("has_classifier") is False:
        for method in catalogue:
            if method["needs_classifier"]:
                method["unavailable"] = get_method(method["name"]).classifier_missing(weights_in_words(published))
    return jsonify({"has_classifier": None if published is None else published.get("has_classifier"),
                    "methods": catalogue})


def _stored_model_methods(model) -> dict:
    """GET /api/methods for a stored model: no reference scans (scans run on VGG16), and the methods that need
    class names unavailable without them, saying why (as a job's 409 does)."""
    catalogue = describe_methods(model.layers)
    for method in catalogue:
        for option in method["options"]:
            if option["kind"] == "scan":
                option["scans"] = []
        if method["needs_classifier"] and not model.classes:
            method["unavailable"] = (f"{method['label']} ({method['name']}) needs class names, and model {model.name} "
                                     "has none (a final softmax and python -m visnet models add … --classes FILE)")
    return {"has_classifier": bool(model.classes), "methods": catalogue}


@bp.get("/health")
def health():
    config = current_app.config
    document = {"status": "ok", "redis": {"reachable": True},
                "workers": {"alive": 0, "names": []}, "queue": {"name": config["QUEUE_NAME"], "length": None}}
    try:
        connection = get_redis()
        connection.ping()
        workers = presence.alive_workers(connection)
        document["workers"] = {"alive": len(workers), "names": [worker["name"] for worker in workers]}
        queue = jobstore.get_queue()
        document["queue"]["length"] = queue.count
        document["queue"]["cap"] = config["QUEUE_CAP"]
        document["queue"]["started"] = StartedJobRegistry(queue=queue).get_job_count(cleanup=False)
    except Exception as error:  # health answers whatever is wrong, never an error page
        document["redis"] = {"reachable": False, "error": str(error)[:200]}
        redis_client.restart_embedded_server()
        document["status"] = "down"
        return jsonify(document), 503
    if not workers:
        document["status"] = "degraded"
    return jsonify(document)


@bp.get("/openapi.json")
def openapi():
    return jsonify(build_spec())
