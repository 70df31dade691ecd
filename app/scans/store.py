"""Dataset scans as the web process sees them: upload a ZIP, follow a scan's progress, browse its units.

The scan engine is :mod:`visnet.scan` (TensorFlow-free at the top level); this module only maps it to
the API's documents, as :mod:`app.jobs.store` does for jobs.

An upload is checked and streamed to disk here, member by member (:func:`visnet.scan.extract_zip`:
zip-slip, sizes, bombs, magic bytes and each header's pixel count, but no pixel decoded), into
``RESULTS_DIR/scans/<scan id>/images/``, next to an ``upload.json`` record; a full disk is a 507 with
nothing left behind. Decoding every image is the planning's work, so it is not done in the request: the
web process enqueues :func:`service.jobs.scan.start` by dotted path, and the worker decodes the images
(those that do not decode are listed in ``scan.json``'s ``skipped``), writes ``scan.json`` and enqueues
the chunks. Until ``scan.json`` exists the scan is *planning*, and every poll looks after
the start job (service.jobs.planning.watch_start): one whose worker died, or that Redis lost, is
enqueued again; one that failed (every image greyscale with ``skip_grey``, say) fails the scan with the
worker's message in ``failed.json``.

Once planned, the folder says how far the scan is (:func:`visnet.scan.scan_progress`), and every poll
calls service.jobs.planning.heal, so a chunk whose worker died is scheduled again within seconds
of someone looking. A scan planned by a start job that died before enqueuing anything is enqueued by
the poll too. Scans planned by the admin CLI without ``--enqueue`` run in that process and are only
read here.
"""
import errno
import json
import logging
import math
import shutil
import time
from pathlib import Path

import redis
from flask import current_app, request, url_for
from rq import Queue

from app import models, queue_cap
from app.errors import ApiError
from app.file_urls import file_urls
from app.redis_client import get_redis
from service import presence
from service.jobs import planning
from service.jobs.planning import WAITING_FOR_WORKER
from service.jobs.scheduling import JobSettings, unit_projection
from visnet.distinctive import UnusableReference, check_reference
from visnet.images import ALLOWED_NAMES
from visnet.numbers import parse_whole_number
from visnet.scan import (
    UnsafeArchive,
    ZipLimits,
    extract_zip,
    layer_overview,
    list_scans,
    new_scan_id,
    resolve_file,
    scan_path,
    scan_progress,
    store,
    unit_detail,
)
from visnet.scan.browse import MAX_PER_PAGE
from visnet.scan.layout import VGG16_LAYOUT, layout_of
from visnet.scan.plan import ScanOptions
from visnet.settings import DEFAULT_MODEL

log = logging.getLogger(__name__)

UPLOAD_FILE = "upload.json"
# The options a client may set; the rest of ScanOptions (batch size, projection block) is the server's.
OPTION_FIELDS = ("layers", "k", "skip_grey", "image_size", "chunk_size", "project_channels", "project_k")
INTEGER_FIELDS = frozenset({"k", "image_size", "chunk_size", "project_channels", "project_k"})
TRUE_WORDS, FALSE_WORDS = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive's end record
DEFAULT_PER_PAGE = 32
# Pictures a page may ask for: thumbnails and projections. scan.json and topk.json stay on the server
# (a folder scan's scan.json holds a server path).
SERVED_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}
REDIS_DOWN = "the job queue (Redis) is not reachable right now; progress is read from the scan folder"


def scan_queue(model: str = DEFAULT_MODEL) -> Queue:
    """Scans' jobs have their own queue per model, served by the model's workers after its photos' (visnet.settings)."""
    return Queue(models.scans_queue_name(model), connection=get_redis(), default_timeout=current_app.config["JOB_TIMEOUT"])


def scans_root() -> Path:
    return store.scans_root(current_app.config["RESULTS_DIR"])


def scan_dir(scan_id: str) -> Path:
    """The folder of an existing scan (planned or still planning); 404 otherwise, malformed ids included."""
    try:
        folder = scan_path(scans_root(), scan_id)
    except ValueError:
        raise ApiError(404, f"no scan {str(scan_id)[:40]!r}: scan ids are 32 hexadecimal characters",
                       "scan_not_found") from None
    if not (folder / store.SCAN_FILE).is_file() and not (folder / UPLOAD_FILE).is_file():
        raise ApiError(404, f"no scan {scan_id}", "scan_not_found")
    return folder


def allow_archive_upload():
    """Raise this request's body limit from MAX_CONTENT_LENGTH (sized for photos) to the scan archives'
    own; call it before the form is read."""
    request.max_content_length = current_app.config["MAX_SCAN_UPLOAD_BYTES"]


# --- options --------------------------------------------------------------------------------------

def _whole_number(name: str, raw: str) -> int:
    try:
        return parse_whole_number(raw)
    except ValueError:
        raise ApiError(400, f"{name}: {raw!r} is not a whole number", "invalid_option") from None


def _boolean(name: str, raw: str) -> bool:
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ApiError(400, f"{name}: {raw!r} is not true or false", "invalid_option")


def read_scan_form(fields: dict, layout=VGG16_LAYOUT) -> ScanOptions:
    """Form fields (strings) → ScanOptions of the model ``layout`` (visnet.scan.layout), or ApiError 400 naming
    the option. Empty fields take the defaults; unknown fields are refused, so that a misspelt option is not
    silently ignored."""
    unknown = sorted(set(fields) - set(OPTION_FIELDS))
    if unknown:
        raise ApiError(400, f"unknown scan options {unknown}; expected some of {list(OPTION_FIELDS)}",
                       "invalid_option")
    values = {}
    for name, raw in fields.items():
        raw = str(raw).strip()
        if raw == "":
            continue
        if name in INTEGER_FIELDS:
            values[name] = _whole_number(name, raw)
        elif name == "skip_grey":
            values[name] = _boolean(name, raw)
        else:
            values[name] = raw
    if "project_k" in values:  # more than k projects all k, as the field's absence does
        values["project_k"] = min(values["project_k"], values.get("k", ScanOptions.k))
    try:
        return ScanOptions(**values, layout=layout)
    except ValueError as error:
        raise ApiError(400, str(error), "invalid_option") from None


# --- creating -------------------------------------------------------------------------------------

def _check_archive(upload):
    if upload is None:
        raise ApiError(400, "no archive: send a .zip of images as the multipart field 'archive'", "missing_archive")
    stream = upload.stream
    head = stream.read(4)
    stream.seek(0)
    if not head:
        raise ApiError(400, "the uploaded archive is empty", "empty_file")
    if head not in ZIP_MAGIC:
        raise ApiError(415, "the file is not a ZIP archive (recognised by its content, not its name); "
                            f"send a .zip of {ALLOWED_NAMES} images", "not_a_zip")
    return stream


def _no_images_message(skipped: list) -> str:
    shown = "; ".join(f"{entry['name']}: {entry['reason']}" for entry in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return (f"the archive holds no image to scan ({ALLOWED_NAMES})"
            + (f"; skipped {shown}{more}" if skipped else ""))


def workers_have_classifier():
    """Whether the workers' weights have the classifier top (True / False), None when no worker has said
    yet or Redis does not answer."""
    try:
        published = presence.published_model(get_redis())
    except redis.RedisError:
        return None
    return None if published is None else published.get("has_classifier")


def create(upload, fields: dict) -> dict:
    """Check the model, the options and the archive, extract it into a new scan folder and enqueue the
    planning job on the model's scans' queue. Returns the Scan document. Nothing is left on disk or in Redis
    when anything is refused."""
    fields = dict(fields)
    model = models.get_model(fields.pop("model", None))
    layout = models.scan_layout(model)
    options = read_scan_form(fields, layout)
    wanted = [layer for layer in options.layers if layout.is_classifier(layer)]
    if wanted and workers_have_classifier() is False:
        raise ApiError(400, f"layers: {', '.join(wanted)} belong to the classifier top, and the workers' weights have "
                            "none; scan them with the ImageNet VGG16 with its top (python -m visnet weights fetch "
                            "imagenet)", "invalid_option")
    models.require_worker(model)
    stream = _check_archive(upload)
    config = current_app.config
    queue_cap.check_capacity(scan_queue(model.name), config["QUEUE_CAP"])  # a 10,000-image scan queues ~300 chunks
    described = layout.describe()  # a stored model's, as scan.json will keep it; VGG16's upload.json is as before
    scan_id = new_scan_id()
    folder = scan_path(scans_root(), scan_id)
    limits = ZipLimits(max_image_pixels=config["MAX_IMAGE_PIXELS"])
    try:
        try:
            extracted = extract_zip(stream, folder / store.IMAGES_DIR, limits)
            if not extracted.images:
                raise ApiError(422, _no_images_message(extracted.skipped), "no_images")
            store.write_json_atomically(folder / UPLOAD_FILE, {
                "id": scan_id, "created": _now(), "options": options.as_dict(),
                "archive": {"images": len(extracted.images), "bytes": extracted.total_bytes,
                            "skipped": extracted.skipped},
                **({"model": described} if described else {}),
            })
        except UnsafeArchive as error:
            raise ApiError(422, f"archive refused: {error}", "unsafe_archive") from None
        except OSError as error:
            if error.errno not in DISK_FULL:
                raise
            log.warning("scan upload refused: the results disk is full (%s)", error)
            raise ApiError(507, "the server's disk for uploads is full, so the archive was not stored; "
                                "try again later, or with a smaller archive", "insufficient_storage") from None
        planning.enqueue_start(get_redis(), _job_settings(model.name), scan_id, folder, options.as_dict(),
                               config["MAX_IMAGE_PIXELS"], model=described)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return describe(scan_id)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _job_settings(model: str = DEFAULT_MODEL) -> JobSettings:
    config = current_app.config
    return JobSettings(models.scans_queue_name(model), config["JOB_TIMEOUT"], config["RESULT_TTL"], config["FAILURE_TTL"])


# --- the planning job -----------------------------------------------------------------------------

def _read_upload(folder: Path):
    try:
        return json.loads((folder / UPLOAD_FILE).read_text())
    except (OSError, ValueError):
        return None


def model_name(folder: Path) -> str:
    """The name of the model a scan runs on (its scan.json once planned, its upload.json before)."""
    record = store.load_scan(folder) if (folder / store.SCAN_FILE).is_file() else _read_upload(folder)
    return layout_of(record or {}).name


def _watch_start(scan_id: str, folder: Path, upload: dict) -> dict:
    model = layout_of(upload)
    return planning.watch_start(get_redis(), _job_settings(model.name), scan_id, folder, upload["options"],
                                current_app.config["MAX_IMAGE_PIXELS"], model=model.describe())


# --- describing -----------------------------------------------------------------------------------

def links(scan_id: str) -> dict:
    return {"self": url_for("scan_api.scan", scan_id=scan_id), "page": url_for("scan_pages.scan", scan_id=scan_id)}


def _layers(scan_id: str, layers: list) -> list:
    return [{**layer, "url": url_for("scan_api.layer", scan_id=scan_id, layer=layer["name"])} for layer in layers]


def _planned_layers(upload: dict) -> list:
    layout = layout_of(upload)
    return [{"name": name, "channels": layout.unit_count(name)} for name in upload["options"]["layers"]]


def _planning_document(scan_id: str, folder: Path, upload: dict) -> dict:
    failure = store.read_failure(folder)
    if failure is not None:
        state = {"state": "failed", "message": failure["error"], "progress": None}
    else:
        try:
            state = _watch_start(scan_id, folder, upload)
        except redis.RedisError as error:
            log.warning("scan %s: Redis unavailable: %s", scan_id, error)
            state = {"state": "queued", "message": "the job queue (Redis) is not reachable right now", "progress": None}
        if state["state"] == "planned":
            return None
    reading = state["progress"] or {}
    return {
        "id": scan_id, "model": layout_of(upload).name, "status": "failed" if state["state"] == "failed" else "planning",
        "message": state["message"] or ("reading the images" if state["state"] == "running" else None),
        "created": upload["created"], "options": upload["options"], "archive": upload["archive"],
        "images": None, "skipped": [], "layers": _layers(scan_id, _planned_layers(upload)),
        "planning": {"done": int(reading.get("done", 0)), "total": int(reading.get("total", upload["archive"]["images"]))},
        "progress": None, "links": links(scan_id),
    }


def describe(scan_id: str) -> dict:
    """The Scan document of the API (see app.openapi.builder), or ApiError 404."""
    folder = scan_dir(scan_id)
    upload = _read_upload(folder)
    if not (folder / store.SCAN_FILE).is_file():
        if upload is None:
            raise ApiError(404, f"no scan {scan_id}", "scan_not_found")
        document = _planning_document(scan_id, folder, upload)
        if document is not None:
            return document
    record = store.load_scan(folder)
    model = layout_of(record)
    try:
        connection = get_redis()
        message, progress = planning.heal(connection, _job_settings(model.name), scan_id, folder,
                                          upload and upload["options"], current_app.config["MAX_IMAGE_PIXELS"],
                                          model=model.describe())
        if progress["status"] not in ("done", "failed") and not message and not _has_workers(connection, model):
            message = WAITING_FOR_WORKER if model.built_in else f"waiting for a worker of model {model.name}: none " \
                                                                 "is running right now"
    except redis.RedisError as error:
        log.warning("scan %s: Redis unavailable: %s", scan_id, error)
        message, progress = REDIS_DOWN, {**scan_progress(folder), "images_in_flight": 0, "jobs": {"running": 0}}
    if progress["status"] == "failed":
        message = progress["error"]
    return {
        "id": scan_id, "model": model.name, "status": progress["status"], "message": message,
        "created": record["created"], "options": record["options"],
        "archive": upload["archive"] if upload else None,
        "images": len(record["images"]), "skipped": record["skipped"],
        "layers": _layers(scan_id, record["layers"]),
        "planning": None,
        "progress": {key: progress[key] for key in (
            "chunks_done", "chunks_total", "images_done", "images_total", "images_per_second", "seconds_left",
            "merged", "projection_blocks_done", "projection_blocks_total", "images_in_flight")}
        | {"jobs_running": progress["jobs"]["running"]},
        "links": links(scan_id),
    }


def _has_workers(connection, model) -> bool:
    """Whether a worker runs that can take the scan's jobs: any, for VGG16 (as before models), else one of its model."""
    return bool(presence.alive_workers(connection) if model.built_in else presence.alive_workers_of(connection, model.name))


def summaries() -> list:
    """Every scan, newest first, from the folders alone (no Redis): planned ones and uploads still
    being planned."""
    planned = [{**scan, "model": model_name(scan_path(scans_root(), scan["id"]))} for scan in list_scans(scans_root())]
    known = {scan["id"] for scan in planned}
    root = scans_root()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name in known or not store.SCAN_ID.fullmatch(folder.name):
            continue
        upload = _read_upload(folder)
        if upload is None or (folder / store.SCAN_FILE).is_file():
            continue
        planned.append({"id": upload["id"], "created": upload["created"], "model": layout_of(upload).name, "images": None,
                        "layers": upload["options"]["layers"],
                        "status": "failed" if store.read_failure(folder) else "planning"})
    planned.sort(key=lambda scan: scan["created"], reverse=True)
    return [{**scan, "links": links(scan["id"])} for scan in planned]


# --- references of the distinctive ranking ---------------------------------------------------------

def workers_weights():
    """The weights the workers published (None before any worker started, or without Redis)."""
    try:
        published = presence.published_model(get_redis())
    except redis.RedisError:
        return None
    return published.get("weights") if published else None


def require_reference(scan_id: str, layers) -> dict:
    """The reference scan of a distinctive job, checked before anything is stored: 404 for a scan that does
    not exist (as for ``from_job``), 409 for one that cannot serve as it is: not finished, computed on other
    weights than the workers' (when they are known; the worker checks again) or without one of ``layers``."""
    folder = scan_path(scans_root(), scan_id)
    if not folder.is_dir():
        raise ApiError(404, f"reference: there is no scan {scan_id} (the scans page lists the finished ones)",
                       "invalid_reference")
    try:
        return check_reference(folder, layers, workers_weights())
    except UnusableReference as error:
        raise ApiError(409, str(error), "invalid_reference") from None


def references() -> list:
    """The scans a distinctive job can use now, newest first: [{"id", "label", "layers", "images", "weights"}]."""
    usable = []
    weights = workers_weights()
    for scan in list_scans(scans_root()):
        try:
            checked = check_reference(scan_path(scans_root(), scan["id"]), [], weights)
        except UnusableReference:
            continue
        label = (f"{scan['id'][:8]} · {checked['images']} images · {', '.join(checked['layers'])} · "
                 f"{checked['weights']} weights · {scan['created'][:16].replace('T', ' ')}")
        usable.append({"id": scan["id"], "label": label, "layers": checked["layers"], "images": checked["images"],
                       "weights": checked["weights"]})
    return usable


# --- browsing -------------------------------------------------------------------------------------

def _with_urls(entry: dict, url) -> dict:
    projection = entry["projection"]
    if projection is not None:
        projection = {**projection, **{f"{kind}_url": name and url(name) for kind, name in projection.items()}}
    return {**entry, "thumb_url": url(entry["thumb"]), "projection": projection}


def _browsable(scan_id: str, layer: str) -> Path:
    """The folder of a merged scan that has ``layer``: 404 for an unknown scan or layer, 409 before the
    merge."""
    folder = scan_dir(scan_id)
    if not (folder / store.SCAN_FILE).is_file():
        raise ApiError(409, "the scan is still being planned; its units can be browsed once its forward pass "
                            "is done", "not_ready")
    layers = store.load_scan(folder)["options"]["layers"]
    if layer not in layers:
        raise ApiError(404, f"layer {layer[:40]!r} was not scanned; this scan has {', '.join(layers)}",
                       "layer_not_found")
    if not store.is_merged(folder):
        raise ApiError(409, "the scan's forward pass is not done yet; its units can be browsed once it is",
                       "not_ready")
    return folder


def _query_int(name: str, default: int) -> int:
    raw = request.args.get(name, "").strip()
    if raw == "":
        return default
    try:
        return parse_whole_number(raw)
    except ValueError:
        raise ApiError(400, f"{name}: {raw[:20]!r} is not a whole number", "invalid_parameter") from None


def layer_page(scan_id: str, layer: str) -> dict:
    """One page of a layer's units (``?page=``, ``?per_page=`` up to 512, ``?sort=`` index, top or
    selectivity; ``?unit=``: the page that holds that unit), with file URLs."""
    folder = _browsable(scan_id, layer)
    page, per_page = _query_int("page", 1), _query_int("per_page", DEFAULT_PER_PAGE)
    unit = _query_int("unit", None)
    sort = request.args.get("sort", "index").strip() or "index"
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ApiError(400, f"per_page must be 1 to {MAX_PER_PAGE}, received {per_page}", "invalid_parameter")
    # Past the last page, or a unit the layer does not have: no such thing, as /units/<n> answers for one.
    channels = next(entry["channels"] for entry in store.load_scan(folder)["layers"] if entry["name"] == layer)
    pages = math.ceil(channels / per_page)
    if unit is not None and unit >= channels:
        raise ApiError(404, f"no unit {unit} in {layer}: units are 0 to {channels - 1}", "unit_not_found")
    if unit is None and page > pages:
        raise ApiError(404, f"no page {page} of {layer} at {per_page} per page: pages are 1 to {pages}",
                       "page_not_found")
    try:
        overview = layer_overview(folder, layer, page=page, per_page=per_page, sort=sort, unit=unit)
    except ValueError as error:
        raise ApiError(400, str(error), "invalid_parameter") from None
    url = file_urls("scan_api.scan_file", scan_id=scan_id)
    units = [{**unit, "url": url_for("scan_api.unit", scan_id=scan_id, layer=layer, channel=unit["channel"]),
              "top": [_with_urls(entry, url) for entry in unit["top"]]} for unit in overview["units"]]
    return {**overview, "units": units}


def _unit_number(folder: Path, layer: str, channel: str) -> int:
    channels = next(entry["channels"] for entry in store.load_scan(folder)["layers"] if entry["name"] == layer)
    try:
        number = parse_whole_number(channel)
    except ValueError:
        number = -1
    if not 0 <= number < channels:
        raise ApiError(404, f"no unit {channel[:20]!r} in {layer}: units are 0 to {channels - 1}", "unit_not_found")
    return number


def _projection_state(folder: Path, layer: str, number: int, request_it: bool) -> dict:
    """The unit's on-demand projection, {"state", "message"}; ``request_it``: enqueue it when missing."""
    settings = _job_settings(layout_of(store.load_scan(folder)).name) if request_it else None
    try:
        return unit_projection(get_redis(), folder, layer, number, settings)
    except redis.RedisError as error:
        log.warning("scan %s: Redis unavailable: %s", folder.name, error)
        if request_it:
            raise ApiError(503, "the job queue (Redis) is not reachable right now, so the projection could not "
                                "be requested; try again in a moment", "redis_unavailable") from None
        return {"state": "missing", "message": "the job queue (Redis) is not reachable right now"}


def unit(scan_id: str, layer: str, channel: str) -> dict:
    """One unit's top and bottom images with their mean activations and projection URLs, and where its
    own projection (the full views, asked for by :func:`request_projection`) stands."""
    folder = _browsable(scan_id, layer)
    number = _unit_number(folder, layer, channel)
    # the state first: a projection that ends between the two reads is then in both or in neither, never
    # "done" beside pictures read before it was written (a client that stops polling at "done" misses them)
    state = _projection_state(folder, layer, number, request_it=False)
    detail = unit_detail(folder, layer, number)
    if detail["complete"]:
        state = {"state": "done", "message": None}
    url = file_urls("scan_api.scan_file", scan_id=scan_id)
    return {**detail, "top": [_with_urls(entry, url) for entry in detail["top"]],
            "bottom": [_with_urls(entry, url) for entry in detail["bottom"]],
            "projection_state": state,
            "projection_url": url_for("scan_api.unit_projection", scan_id=scan_id, layer=layer, channel=number)}


def request_projection(scan_id: str, layer: str, channel: str) -> tuple:
    """Ask for a unit's projection (every projected top image: the single strongest activation's crop, its
    patch and the whole map's projection): (document, HTTP status), 200 when it is done, 202 when it is
    queued or running (one job however often it is asked for)."""
    folder = _browsable(scan_id, layer)
    number = _unit_number(folder, layer, channel)
    if unit_detail(folder, layer, number)["complete"]:
        state = {"state": "done", "message": None}
    else:
        state = _projection_state(folder, layer, number, request_it=True)
    document = {**state, "layer": layer, "channel": number,
                "unit_url": url_for("scan_api.unit", scan_id=scan_id, layer=layer, channel=number)}
    return document, 200 if state["state"] in ("done", "failed") else 202


def file_path(scan_id: str, name: str) -> tuple:
    """(path, mimetype) of a thumbnail or projection; 404 for any other name, or one not written yet."""
    folder = scan_dir(scan_id)
    mimetype = SERVED_TYPES.get(Path(name).suffix)
    try:
        if mimetype is None:
            raise FileNotFoundError(name)
        return resolve_file(folder, name), mimetype
    except FileNotFoundError:
        raise ApiError(404, f"no file {name[:80]!r} in scan {scan_id}", "file_not_found") from None
