"""The photo jobs' part of the OpenAPI document: ``/api/jobs`` and its files, the Job document, and each
method's form fields, derived from the method registry (visnet.methods)."""
from app.jobs.long_poll import MAX_WAIT_SECONDS
from app.jobs.uploads import ALLOWED_NAMES
from app.openapi.forms import IMAGE_MEDIA_TYPES, method_form, submission_schema
from app.openapi.schemas import NULLABLE_STRING
from app.openapi.schemas import error_response as _error
from app.openapi.schemas import json_response as _json
from app.openapi.schemas import ref as _ref
from visnet.architecture import LAYER_NAMES
from visnet.chain.catalogue import CHAIN_METHODS
from visnet.methods import (
    DEFAULT_METHOD,
    FIT,
    FITS,
    METHOD_NAMES,
    METHODS,
    MODES,
    RANKINGS,
    RULES,
    SEEDS,
    VIEW_NAMES,
    get_method,
)

TOP_K = get_method(DEFAULT_METHOD).option("top_k")
WEIGHTS_DESCRIPTION = {"type": ["string", "null"], "description": "which weights computed the result and what "
                       "that means for its pictures, in words (absent in results of older versions)"}

# Where a manifest names its photo and the photo as the network saw it (visnet.outputs.write_input_photo).
PHOTO_FIELDS = {
    "image": {"type": ["string", "null"], "description": "the photo's name (a job: its stored upload, the SHA-256 of its "
              "bytes and its extension)"},
    "input": _ref("InputPhoto"),
}

# A layer of the job's model: VGG16's, or a stored model's own (GET /api/models lists them).
MODEL_LAYER = {"type": "string", "description": f"a layer of the job's model: VGG16's ({', '.join(LAYER_NAMES)}), "
                                                "or a stored model's (GET /api/models)"}
JOB_SCHEMAS = {
    "Options": {
        "type": "object", "required": ["layers", "top_k", "channels", "mode"],
        "properties": {
            "layers": {"type": "array", "items": MODEL_LAYER},
            "top_k": {"type": "integer", "minimum": TOP_K.minimum, "maximum": TOP_K.maximum},
            "channels": {"type": "array", "items": {
                "type": "array", "prefixItems": [MODEL_LAYER, {"type": "integer", "minimum": 0}],
                "minItems": 2, "maxItems": 2}},
            "mode": {"enum": list(MODES)},
            "rule": {"enum": list(RULES)},
            "seed": {"enum": list(SEEDS)},
            "rank": {"enum": list(RANKINGS), "description": "how top_k picked the channels (absent in jobs of "
                     "older versions: norm)"},
            "reference": {"type": "string", "description": "with rank distinctive: the reference scan's id"},
            "fit": {"enum": list(FITS), "description": FIT.help + " (absent in jobs of older versions: squash)"},
        },
    },
    "ViewOptions": {
        "type": "object", "not": {"required": ["mode"]},
        "description": "a view's checked options (see GET /api/methods), normalised: lists instead of strings",
    },
    "Stage": {
        "type": "object", "required": ["name", "label", "done", "total"],
        "properties": {"name": {"type": "string"}, "label": {"type": "string"},
                       "done": {"type": "integer", "minimum": 0}, "total": {"type": "integer", "minimum": 0}},
    },
    "Progress": {
        "type": "object", "required": ["stage", "stages"],
        "properties": {"stage": NULLABLE_STRING, "stages": {"type": "array", "items": _ref("Stage")}},
    },
    "Feature": {
        "type": "object", "required": ["channel", "norm", "overlay"],
        "description": "one projected channel: `reconstruction` with map seeds, `patch` and `photo_patch` with max "
                       "seeds (visnet.outputs); `max_position`, `max_value` and `field` in results of this version",
        "properties": {
            "channel": {"type": "integer", "minimum": 0}, "norm": {"type": "number"},
            "score": {"type": ["number", "null"], "description": "what the ranking ranked the feature by: its "
                      "norm, or its distinctive score (null where the reference scan gives none)"},
            "mean": {"type": "number", "description": "distinctive ranking: this photo's post-ReLU mean"},
            "reference_mean": {"type": "number"}, "reference_std": {"type": "number"},
            "reconstruction": {"type": "string"}, "overlay": {"type": "string"},
            "reconstruction_url": {"type": "string"}, "overlay_url": {"type": "string"},
            "patch": {"type": "string"}, "patch_url": {"type": "string"},
            "photo_patch": {"type": "string"}, "photo_patch_url": {"type": "string"},
            "max_position": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2},
            "max_value": {"type": "number"},
            "field": {"type": "object", "required": ["top", "left", "side"], "properties": {
                "top": {"type": "integer", "minimum": 0}, "left": {"type": "integer", "minimum": 0},
                "side": {"type": "integer", "minimum": 1}}},
        },
    },
    "InputPhoto": {
        "type": ["object", "null"], "required": ["file", "fit", "original_size", "size", "squashed", "note"],
        "description": "input.png, the photo as the network saw it (null for a method that reads no photo, and in "
                       "results of older versions)",
        "properties": {
            "file": {"type": "string"}, "file_url": {"type": "string"},
            "image": {"type": ["string", "null"], "description": "the photo it was made from (a job: its stored upload, "
                      "the SHA-256 of its bytes and its extension)"},
            "fit": {"enum": list(FITS)}, "fit_words": {"type": "string"},
            "original_size": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2,
                              "description": "the upright photo's width and height"},
            "size": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
            "squashed": {"type": "boolean", "description": "a photo that is not square, stretched by fit squash"},
            "note": {"type": ["string", "null"], "description": "what fit did to a photo that is not square"},
        },
    },
    "Manifest": {"oneOf": [_ref("DeconvManifest"), _ref("ViewManifest")]},
    "ViewManifest": {
        "type": "object", "required": ["method", "files", "data"],
        "description": "manifest.json of a view job: every PNG with its caption and size, plus the view's figures",
        "properties": {
            "method": {"enum": list(VIEW_NAMES)},
            "files": {"type": "array", "items": {
                "type": "object", "required": ["file", "file_url", "caption", "width", "height"],
                "properties": {"file": {"type": "string"}, "file_url": {"type": "string"},
                               "caption": {"type": "string"}, "width": {"type": "integer", "minimum": 1},
                               "height": {"type": "integer", "minimum": 1}}}},
            "data": {"type": "object"}, "timings": {"type": "object"},
            **PHOTO_FIELDS,
            "weights": {"type": ["string", "null"]}, "weights_description": WEIGHTS_DESCRIPTION,
        },
    },
    "DeconvManifest": {
        "type": "object", "required": ["layers"],
        "description": "manifest.json of the result folder, with a `<key>_url` beside every PNG name",
        "properties": {
            "layers": {"type": "array", "items": {
                "type": "object", "required": ["name", "features"],
                "properties": {"name": MODEL_LAYER,
                               "features": {"type": "array", "items": _ref("Feature")}}}},
            "model": {"type": "object", "required": ["name"], "description": "the model that made it: vgg16 "
                      "(built in; its weights are `weights`), vgg19 (built in, with the name and SHA-256 of its weights "
                      "file) or a stored model with the SHA-256 of the Keras file "
                      "it was converted from, its input size and preprocessing (absent in results of older versions)",
                      "properties": {"name": {"type": "string"}, "built_in": {"type": "boolean"},
                                     "sha256": {"type": "string"}, "file": {"type": "string"},
                                     "input_size": {"type": "integer"}, "preprocess": {"type": "string"}}},
            "summary": {"type": "string"}, "summary_url": {"type": "string"},
            **PHOTO_FIELDS,
            "weights": {"type": "string"}, "weights_description": WEIGHTS_DESCRIPTION,
            "device": {"type": "string"}, "mode": {"type": "string"}, "rule": {"enum": list(RULES)},
            "seed": {"enum": list(SEEDS)}, "timings": {"type": "object"},
            "terms": {"type": "object", "description": "what each feature's norm and max_value are, in words (absent "
                      "in results of older versions)", "additionalProperties": {"type": "string"}},
            "ranking": {"type": "object", "required": ["rank", "words", "measure"],
                        "description": "how top_k chose the channels (absent in results of older versions)",
                        "properties": {"rank": {"enum": list(RANKINGS)}, "words": {"type": "string"},
                                       "measure": {"type": "string"},
                                       "layers": {"type": "array", "items": {"enum": list(LAYER_NAMES)}},
                                       "reference": {"type": "object", "properties": {
                                           "scan": {"type": "string"}, "images": {"type": "integer"},
                                           "weights": {"type": "string"}}}}},
        },
    },
    "Job": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "status", "message", "method", "options", "progress", "queue_position", "manifest", "files",
                     "timings", "links", "parent", "children", "revision"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$",
                   "description": "hash of the image bytes and the normalised options"},
            "status": {"enum": ["queued", "started", "finished", "failed", "canceled"]},
            "message": {**NULLABLE_STRING, "description": "why a job waits, is retried or failed, readable"},
            "method": {"enum": list(METHOD_NAMES), "description": "deconv, or one of the other views"},
            "model": {"type": "string", "description": "the model it runs on: vgg16, or a stored model "
                                                       "(GET /api/models)"},
            "options": {"oneOf": [_ref("Options"), _ref("ViewOptions"), {"type": "null"}]},
            "progress": {"oneOf": [_ref("Progress"), {"type": "null"}]},
            "queue_position": {"type": ["integer", "null"]},
            "manifest": {"oneOf": [_ref("Manifest"), {"type": "null"}],
                         "description": "the result's, when finished; while a deconvnet job writes its pictures, "
                                        "the part written so far (no summary yet)"},
            "files": {"type": "array", "description": "every PNG, when finished; while a job runs, those "
                                                      "already written, each served at once", "items": {
                "type": "object", "required": ["name", "url"],
                "properties": {"name": {"type": "string"}, "url": {"type": "string"}}}},
            "timings": {"type": ["object", "null"]},
            "links": {"type": "object", "required": ["self", "page", "archive"],
                      "properties": {"self": {"type": "string"}, "page": {"type": "string"},
                                     "archive": {"type": "string"}}},
            "reused": {"type": "boolean", "description": "POST only: true when an identical job already existed"},
            "parent": {"oneOf": [_ref("JobLink"), {"type": "null"}],
                       "description": "the job this one was first made from (from_job), if any"},
            "children": {"type": "array", "items": _ref("JobLink"),
                         "description": "the jobs made from this one (from_job), with their method"},
            "revision": {"type": "string", "pattern": "^[0-9a-f]{16}$",
                         "description": "changes whenever anything else in the document does (status, progress, "
                                        "files written, message, queue position, children): send it back as "
                                        "`since` to wait for the next change"},
        },
    },
    "JobLink": {
        "type": "object", "required": ["id", "page", "self"],
        "properties": {"id": {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "page": {"type": "string"},
                       "self": {"type": "string"}, "method": {"enum": list(METHOD_NAMES)}},
    },
}

PHOTO_SOURCE = {
    "image": {"type": "string", "format": "binary", "description": f"the photo: {ALLOWED_NAMES}, recognised by content"},
    "from_job": {"type": "string", "description": "instead of image: reuse that job's photo (a 404 when it has none)"},
}
# What a client does next with the id a POST answers (OpenAPI links: Schemathesis's stateful phase follows them).
JOB_LINKS = {
    "GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"},
               "description": "poll the job until its status is finished, failed or canceled"},
    "CancelJob": {"operationId": "cancelJob", "parameters": {"job_id": "$response.body#/id"}},
    "DeleteJob": {"operationId": "deleteJob", "parameters": {"job_id": "$response.body#/id"}},
    "GetJobArchive": {"operationId": "getJobArchive", "parameters": {"job_id": "$response.body#/id"}},
}
JOB_ID_PARAMETER = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"},
                    "example": "3f0c9a1e5b7d4c2a8e6f1b3d5a7c9e0f",
                    "description": "a job id (anything else is a 404)"}

LONG_POLL_PARAMETERS = [
    {"name": "since", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
     "description": "the `revision` of the document the client has: with `wait`, answer once the job differs "
                    "from it"},
    {"name": "wait", "in": "query", "required": False,
     "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
     "description": f"seconds to wait for a change from `since` (at most {MAX_WAIT_SECONDS})"},
]


def method_form_schemas() -> dict:
    """``MethodForm-<method>``: every method's form fields, sent with ``method`` to POST /api/jobs."""
    return {f"MethodForm-{method.name}": method_form(method) for method in METHODS}


def job_paths() -> dict:
    return {
        "/api/jobs": {"post": {
            "operationId": "createJob",
            "summary": "Submit a photo; identical bytes and options reuse the existing job",
            "description": "The photo (`image`) or an existing job's photo (`from_job`), exactly one of them; "
                           "`method` (default deconv) and that method's options (GET /api/methods; the schemas "
                           "MethodForm-<method>), and `model` (default vgg16), nothing else. The alternatives "
                           "spell out VGG16's layers; a stored model (GET /api/models) takes its own layer names "
                           "and channel ranges, serves " + ", ".join(CHAIN_METHODS) + ", and needs a live worker.",
            "requestBody": {"required": True, "content": {"multipart/form-data": {
                "schema": submission_schema(PHOTO_SOURCE),
                "examples": {"another view of a job's photo": {"value": {
                    "from_job": "3f0c9a1e5b7d4c2a8e6f1b3d5a7c9e0f", "method": "occlusion", "sizes": "50:10,20:5"}}},
                "encoding": {"image": {"contentType": IMAGE_MEDIA_TYPES}}}}},
            "responses": {
                "202": {**_json("Job", "queued (or already pending: `reused` is true)"), "links": JOB_LINKS},
                "200": {**_json("Job", "an identical job has already finished"), "links": JOB_LINKS},
                "400": _error("missing or empty image, unknown method or model (code unknown_model), an invalid "
                              "option (named), or a method the model does not serve"),
                "404": _error("from_job names no job with a stored image, or reference no scan (code "
                              "invalid_reference)"),
                "409": _error("the method needs a classifier top and the workers' weights have none, or the "
                              "reference scan cannot serve: not finished, other weights, a ranked layer it did not "
                              "record (code invalid_reference)"),
                "413": _error("request body, form parts (code too_many_parts), a form field (code "
                              "field_too_large) or image pixel count over the limit"),
                "415": _error("not an image in an accepted format"),
                "422": _error("truncated or damaged image"),
                "503": _error("Redis is not reachable, the queue is full (code queue_full, with "
                              "Retry-After: a new job is refused; existing ones are still answered), or no live "
                              "worker serves the stored model asked for (code no_worker_for_model)"),
                "507": _error("the server's upload disk is full (code insufficient_storage); nothing was "
                              "stored or queued"),
            }}},
        "/api/jobs/{job_id}": {
            "parameters": [JOB_ID_PARAMETER],
            "get": {"operationId": "getJob", "summary": "Status, progress and, when finished, the manifest with file URLs",
                    "description": "A long poll with `since` and `wait`: the answer comes as soon as the job's "
                                   "`revision` is no longer `since`, or after `wait` seconds with the job unchanged "
                                   "(the same revision). Without them, or when `since` is not the current "
                                   "revision, it comes at once. A server answers at once too, unchanged, when "
                                   "too many requests already wait in its process, or when it is stopping: a "
                                   "client then polls again on its own schedule.",
                    "parameters": LONG_POLL_PARAMETERS,
                    "responses": {"200": _json("Job", "the job"),
                                  "400": _error("since is not a revision, or wait is not a number of seconds from 0 "
                                                f"to {MAX_WAIT_SECONDS} (code invalid_parameter)"),
                                  "404": _error("no such job"),
                                  "503": _error("Redis is not reachable")}},
            "delete": {"operationId": "deleteJob",
                       "summary": "Delete a job and its results; a queued job is canceled first",
                       "description": "Afterwards the job is a 404 (its id may be submitted again). The 200 body, "
                                      "the job's last state (status canceled for a queued job), is deprecated: "
                                      "DELETE used to cancel only, and its callers read that body. The next "
                                      "release answers 204 without one. To cancel and keep a job: "
                                      "POST /api/jobs/{job_id}/cancel.",
                       "responses": {"200": {**_json("Job", "deleted; the job as it stood (deprecated body)"),
                                             "links": {"GetDeletedJob": {
                                                 "operationId": "getJob",
                                                 "parameters": {"job_id": "$request.path.job_id"},
                                                 "description": "a 404 from now on"}}},
                                     "404": _error("no such job"),
                                     "409": _error("the job is running (code not_deletable): delete it once it "
                                                   "has finished or failed"),
                                     "503": _error("Redis is not reachable")}},
        },
        "/api/jobs/{job_id}/cancel": {
            "parameters": [JOB_ID_PARAMETER],
            "post": {"operationId": "cancelJob", "summary": "Cancel a queued job; it stays, with status canceled",
                     "responses": {"200": _json("Job", "canceled"), "404": _error("no such job"),
                                   "409": _error("the job is running or done, or was canceled already (code "
                                                 "not_cancellable)"),
                                   "503": _error("Redis is not reachable")}},
        },
        "/api/jobs/{job_id}/files/{name}": {
            "parameters": [JOB_ID_PARAMETER, {"name": "name", "in": "path", "required": True,
                                              "schema": {"type": "string"}}],
            "get": {"operationId": "getJobFile",
                    "summary": "One PNG of a job: a finished one's, or one a running job lists in its files",
                    "responses": {"200": {"description": "the PNG (X-Content-Type-Options: nosniff)",
                                          "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
                                  "404": _error("no such job or file")}}},
        "/api/jobs/{job_id}/archive.zip": {
            "parameters": [JOB_ID_PARAMETER],
            "get": {"operationId": "getJobArchive", "summary": "manifest.json and every PNG of a finished job",
                    "responses": {"200": {"description": "a ZIP archive",
                                          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                                  "404": _error("no such job"), "409": _error("the job has not finished"),
                                  "503": _error("Redis is not reachable")}}},
    }
