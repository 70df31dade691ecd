"""The dataset scan pages: ``/scans`` (the scans, and a form to upload a ZIP) and ``/scans/<id>``
(progress, then the unit browser). The form works without JavaScript (POST /scans, then a 303 to the
scan's page; a refused upload shows the form again with the reason); static/scans.js sends it to the
API with an upload progress bar instead, and static/scan.js draws the scan page from the JSON API."""
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from app import models
from app.errors import ApiError
from app.scans import store as scans
from visnet.architecture import LAYERS, POOL_LAYERS
from visnet.scan.browse import MAX_PER_PAGE
from visnet.scan.layout import CLASSIFIER_NAMES, unit_count
from visnet.scan.plan import MAX_IMAGE_SIZE, MAX_K, ScanOptions
from visnet.scan.units import SORT_LABELS, SORTS
from visnet.settings import DEFAULT_MODEL

bp = Blueprint("scan_pages", __name__)

PER_PAGE_CHOICES = (16, 32, 64, 128, MAX_PER_PAGE)


def _stored_choices(served: list, values: dict) -> list:
    """The layers of each stored model with a live worker, for the form: its pools ticked (or what was sent)."""
    choices = []
    for described in served:
        if described["built_in"]:
            continue
        try:
            layout = models.scan_layout(models.get_model(described["name"]))
        except ApiError:  # removed since it was listed
            continue
        try:
            pools = layout.resolve("pools")
        except ValueError:
            pools = []
        choices.append({"name": layout.name, "input_size": layout.input_size,
                        "layers": [(name, layout.unit_count(name)) for name in layout.layer_names],
                        "checked": values["layers"] if values["model"] == layout.name else pools})
    return choices


def _layer_field(model: str) -> str:
    """The form's checkboxes of ``model``'s layers: ``layer`` for VGG16 (as before models), ``layer-<name>``."""
    return "layer" if model == DEFAULT_MODEL else f"layer-{model}"


def _scans_page(values=None, error=None, status=200):
    served = models.served_models()
    picker = len(served) > 1
    defaults = ScanOptions()
    values = values or {"model": DEFAULT_MODEL, "layers": [layer.name for layer in POOL_LAYERS], "k": defaults.k,
                        # with a model picker, blank: the chosen model's input size
                        "image_size": "" if picker else defaults.image_size, "skip_grey": defaults.skip_grey,
                        "chunk_size": defaults.chunk_size, "project_channels": "", "project_k": ""}
    stored = _stored_choices(served, values) if picker else []
    vgg16_layers = values["layers"] if values["model"] == DEFAULT_MODEL else [layer.name for layer in POOL_LAYERS]
    return render_template("scans.html", scans=scans.summaries(), layers=LAYERS, values=values, error=error,
                           max_k=MAX_K, max_image_size=MAX_IMAGE_SIZE, has_classifier=scans.workers_have_classifier(),
                           classifier_layers=[(name, unit_count(name)) for name in CLASSIFIER_NAMES],
                           served_models=served if picker else [], stored_models=stored, vgg16_layers=vgg16_layers,
                           min_image_size=min([defaults.image_size, *(model["input_size"] for model in stored)])), status


@bp.get("/scans")
def index():
    return _scans_page()


@bp.post("/scans")
def submit():
    scans.allow_archive_upload()
    try:
        form = request.form
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_SCAN_UPLOAD_BYTES"] // (1024 * 1024)
        return _scans_page(None, f"the archive is larger than the limit of {limit} MiB", 413)
    model = form.get("model", "").strip() or DEFAULT_MODEL
    values = {"model": model, "layers": form.getlist(_layer_field(model)), "skip_grey": form.get("skip_grey") == "true",
              **{name: form.get(name, "").strip()
                 for name in ("k", "image_size", "chunk_size", "project_channels", "project_k")}}
    if not values["layers"]:
        return _scans_page(values, "choose at least one layer", 400)
    fields = {**{name: value for name, value in values.items() if name not in ("layers", "skip_grey")},
              "layers": ",".join(values["layers"]), "skip_grey": "true" if values["skip_grey"] else "false"}
    try:
        document = scans.create(request.files.get("archive"), fields)
    except ApiError as error:
        return _scans_page(values, error.message, error.status)
    return redirect(url_for("scan_pages.scan", scan_id=document["id"]), code=303)


@bp.get("/scans/<scan_id>")
def scan(scan_id):
    folder = scans.scan_dir(scan_id)  # 404 page for a malformed or unknown id; the page itself needs no Redis
    return render_template("scan.html", scan_id=scan_id, model=scans.model_name(folder), per_page_choices=PER_PAGE_CHOICES,
                           default_per_page=scans.DEFAULT_PER_PAGE,
                           sort_choices=[(sort, SORT_LABELS[sort]) for sort in SORTS])
