"""The two pages: upload, and a job's live progress and result sheet. The JavaScript in static/
talks to the JSON API; the upload form also works without it (POST /jobs, then a redirect)."""
from flask import Blueprint, redirect, render_template, request, url_for
from redis.exceptions import RedisError
from werkzeug.datastructures import MultiDict

from app import models
from app.errors import ApiError
from app.jobs import lineage
from app.jobs import store as jobstore
from app.jobs.api import NO_WORKER_YET, read_submission, weights_in_words
from app.jobs.forms import DEFAULTS, MAX_TOP_K
from app.redis_client import get_redis
from app.scans import store as scans
from service import presence
from visnet.architecture import LAYERS, POOL_LAYERS, get_layer
from visnet.chain.catalogue import stored_model
from visnet.chain.keras_config import ChainRefused
from visnet.methods import FITS, RANKING_LABELS, RANKINGS

bp = Blueprint("pages", __name__)

EXAMPLES = (
    ("chelsea.jpg", "Chelsea the cat"),
    ("astronaut.jpg", "Astronaut Eileen Collins"),
    ("coffee.jpg", "A cup of coffee"),
)


@bp.app_context_processor
def weights_in_use():
    """Every page says which weights the workers serve and what that means (their published model), or,
    while ``make run`` downloads the ImageNet weights before its worker starts, how far that is."""
    try:
        connection = get_redis()
        preparing, published = presence.preparing(connection), presence.published_model(connection)
    except (RedisError, OSError):  # the page still renders; the status line says why the weights are unknown
        return {"weights_note": "not known: Redis is not reachable"}
    return {"weights_note": preparing or (weights_in_words(published) if published else NO_WORKER_YET)}


def _upload_page(error=None, status=200, headers=None):
    return render_template("upload.html", layers=LAYERS, pool_layers=POOL_LAYERS, examples=EXAMPLES,
                           defaults=DEFAULTS, max_top_k=MAX_TOP_K, rankings=RANKINGS,
                           ranking_labels=RANKING_LABELS, fits=FITS, references=scans.references(),
                           served_models=models.served_models(), error=error), status, headers or {}




@bp.get("/")
def index():
    return _upload_page()


@bp.post("/jobs")
def submit():
    form = request.form
    preset = form.get("preset", "pools")
    layers = ",".join(form.getlist("layer")) if preset == "custom" else preset
    if not layers:
        return _upload_page("choose at least one layer", 400)
    fields = MultiDict({"layers": layers, **{name: form.get(name, "") for name in ("top_k", "mode", "rank", "reference", "fit", "model")}})
    try:
        checked, options = read_submission(fields, request.files)
        document = jobstore.submit(checked, options)
        lineage.record("", document["id"], document["method"])
    except ApiError as error:
        return _upload_page(error.message, error.status, error.headers)
    return redirect(url_for("pages.job", job_id=document["id"]), code=303)


@bp.get("/jobs/<job_id>")
def job(job_id):
    jobstore.result_dir(job_id)  # 404 page for a malformed id
    model = _model_of(job_id)
    channels = {layer.name: layer.channels for layer in (model.layers.layers if model else LAYERS)}
    return render_template("job.html", job_id=job_id, channels=channels, model=model)


def _model_of(job_id: str):
    """A stored model's job: that model (its name, file hash and layers), for the page to say which model made
    the result; None for VGG16 (and while Redis is away, or for a model removed since)."""
    try:
        identity = jobstore.job_model(job_id)
        return stored_model(models.models_dir(), identity["name"]) if identity else None
    except (RedisError, OSError, ChainRefused):
        return None


@bp.get("/jobs/<job_id>/explore/<layer>")
def explore(job_id, layer):
    """The layer explorer: every channel of one layer on the job's photo, each projected on a click."""
    jobstore.result_dir(job_id)
    try:
        chosen = get_layer(layer)
    except ValueError as error:
        raise ApiError(404, str(error)) from None
    index = LAYERS.index(chosen)
    return render_template("explore.html", job_id=job_id, layer=chosen,
                           previous=LAYERS[index - 1] if index else None,
                           next=LAYERS[index + 1] if index + 1 < len(LAYERS) else None)
