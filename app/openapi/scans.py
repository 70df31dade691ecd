"""The dataset scans' part of the OpenAPI document (:mod:`app.openapi.builder` merges it in): schemas of the
Scan documents and the ``/api/scans`` paths. Tests validate real responses against them."""
from app.openapi.forms import anchored, listing, or_blank
from app.openapi.schemas import NULLABLE_STRING
from app.openapi.schemas import error_response as _error
from app.openapi.schemas import json_response as _json
from app.openapi.schemas import ref as _ref
from app.scans.store import DEFAULT_PER_PAGE, OPTION_FIELDS
from visnet.architecture import INPUT_SIZE
from visnet.images import ALLOWED_NAMES
from visnet.scan.browse import MAX_PER_PAGE
from visnet.scan.layout import CLASSIFIER_NAMES, FILE_SAFE_LAYER
from visnet.scan.layout import SCAN_LAYER_NAMES as LAYER_NAMES
from visnet.scan.plan import MAX_CHUNK_SIZE, MAX_IMAGE_SIZE, MAX_K
from visnet.scan.units import SORTS
from visnet.settings import DEFAULT_MODEL

STATUSES = ["planning", "pending", "scanning", "merging", "projecting", "done", "failed"]
COUNT = {"type": "integer", "minimum": 0}
LINKS = {"type": "object", "required": ["self", "page"],
         "properties": {"self": {"type": "string"}, "page": {"type": "string"}}}
# A layer of the scan's model: VGG16's, or a stored model's own (visnet.scan.layout.FILE_SAFE_LAYER).
SCAN_LAYER = {"type": "string", "pattern": anchored(FILE_SAFE_LAYER.pattern),
              "description": f"a layer of the scan's model: VGG16's ({', '.join(LAYER_NAMES)}), or a stored model's "
                             "(GET /api/models)"}
SCAN_MODEL = {"type": "string", "description": "the model the scan runs on: vgg16, or a stored model (GET /api/models)"}

UNIT_FIGURES = {
    "label": {**NULLABLE_STRING, "description": "the ImageNet class of a VGG16 predictions neuron; null otherwise"},
    "top_activation": {"type": "number", "description": "the unit's value on its top image"},
    "mean_activation": {"type": "number", "description": "its mean value over every image of the scan"},
    "selectivity": {"type": ["number", "null"], "description": "(top − mean) / standard deviation of the unit's "
                                                              "values over the images; null when they are all equal"},
    "dead": {"type": "boolean", "description": "zero on every image of the scan"},
}

SCAN_SCHEMAS = {
    "ScanOptions": {
        "type": "object", "required": ["layers", "k", "skip_grey", "image_size", "chunk_size"],
        "properties": {
            "layers": {"type": "array", "items": SCAN_LAYER, "minItems": 1},
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
            "skip_grey": {"type": "boolean"},
            "image_size": {"type": "integer", "minimum": 1, "maximum": MAX_IMAGE_SIZE,
                           "description": f"at least the model's input size ({INPUT_SIZE} for vgg16)"},
            "chunk_size": {"type": "integer", "minimum": 1},
            "project_channels": {"type": ["integer", "null"], "minimum": 0,
                                 "description": "units projected per layer (those with the highest top "
                                                "activation); null: all"},
            "project_k": {"type": ["integer", "null"], "minimum": 1, "description": "null: all k"},
            "project_block": {"type": "integer", "minimum": 1},
        },
    },
    "ScanLayer": {
        "type": "object", "required": ["name", "channels", "url"],
        "properties": {"name": SCAN_LAYER, "channels": {"type": "integer", "minimum": 1},
                       "url": {"type": "string", "description": "its units, page 1"}},
    },
    "ScanSummary": {
        "type": "object", "required": ["id", "created", "model", "images", "layers", "status", "links"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "created": {"type": "string"}, "model": SCAN_MODEL,
            "images": {"type": ["integer", "null"], "description": "null while planning"},
            "layers": {"type": "array", "items": SCAN_LAYER},
            "status": {"enum": STATUSES}, "links": LINKS,
        },
    },
    "ScanList": {"type": "object", "required": ["scans"],
                 "properties": {"scans": {"type": "array", "items": _ref("ScanSummary")}}},
    "ScanProgress": {
        "type": "object",
        "required": ["chunks_done", "chunks_total", "images_done", "images_total", "images_per_second",
                     "seconds_left", "merged", "projection_blocks_done", "projection_blocks_total",
                     "images_in_flight", "jobs_running"],
        "properties": {
            "chunks_done": COUNT, "chunks_total": COUNT, "images_done": COUNT, "images_total": COUNT,
            "images_per_second": {"type": ["number", "null"], "description": "over the time chunks were computing"},
            "seconds_left": {"type": ["number", "null"], "description": "of the forward pass, at that rate"},
            "merged": {"type": "boolean", "description": "the units can be browsed"},
            "projection_blocks_done": COUNT, "projection_blocks_total": COUNT,
            "images_in_flight": COUNT, "jobs_running": COUNT,
        },
    },
    "Scan": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "model", "status", "message", "created", "options", "archive", "images", "skipped",
                     "layers", "planning", "progress", "links"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "model": SCAN_MODEL,
            "status": {"enum": STATUSES, "description": "planning: a worker reads the uploaded images"},
            "message": {**NULLABLE_STRING, "description": "why the scan waits or failed, readable"},
            "created": {"type": "string"},
            "options": _ref("ScanOptions"),
            "archive": {"oneOf": [{"type": "null"}, {
                "type": "object", "required": ["images", "bytes", "skipped"],
                "description": "the uploaded ZIP (null for a scan of a server folder)",
                "properties": {"images": COUNT, "bytes": COUNT, "skipped": {"type": "array", "items": {
                    "type": "object", "required": ["name", "reason"],
                    "properties": {"name": {"type": "string"}, "reason": {"type": "string"}}}}}}]},
            "images": {"type": ["integer", "null"], "description": "images scanned; null while planning"},
            "skipped": {"type": "array", "items": {
                "type": "object", "required": ["path", "reason"],
                "properties": {"path": {"type": "string"}, "reason": {"type": "string"}}},
                "description": "images left out when planning (greyscale, unreadable)"},
            "layers": {"type": "array", "items": _ref("ScanLayer")},
            "planning": {"oneOf": [{"type": "null"}, {
                "type": "object", "required": ["done", "total"],
                "properties": {"done": COUNT, "total": COUNT}}]},
            "progress": {"oneOf": [{"type": "null"}, _ref("ScanProgress")]},
            "links": LINKS,
        },
    },
    "ScanImage": {
        "type": "object", "required": ["rank", "id", "path", "thumb", "thumb_url", "mean", "projection"],
        "properties": {
            "rank": COUNT, "id": {"type": "integer", "minimum": 0, "description": "the image's index in the scan"},
            "path": {"type": "string", "description": "inside the archive"},
            "thumb": {"type": "string"}, "thumb_url": {"type": "string"},
            "mean": {"type": "number", "description": "the unit's mean activation over the image"},
            "projection": {"oneOf": [{"type": "null"}, {
                "type": "object", "required": ["full", "crop", "patch", "full_url", "crop_url", "patch_url"],
                "description": "crop: the projection of the unit's single strongest activation on the image, "
                               "inside its receptive field; patch: the image there; full: the projection of the "
                               "whole map, full frame (null until the unit's own projection is done). A VGG16 "
                               "classifier neuron's is its gradient in pixel space, full frame; a stored model's "
                               "flat layer's unit is projected by its deconvnet, full frame",
                "properties": {**{name: {"type": "string"} for name in ("crop", "patch", "crop_url", "patch_url")},
                               **{name: NULLABLE_STRING for name in ("full", "full_url")}}}]},
        },
    },
    "ScanLayerPage": {
        "type": "object", "required": ["scan", "layer", "channels", "k", "sort", "page", "per_page", "pages",
                                       "dead_units", "projected_units", "units"],
        "properties": {
            "scan": {"type": "string"}, "layer": SCAN_LAYER, "channels": COUNT, "k": COUNT,
            "sort": {"enum": list(SORTS)},
            "page": {"type": "integer", "minimum": 1}, "per_page": {"type": "integer", "minimum": 1},
            "pages": {"type": "integer", "minimum": 1}, "dead_units": COUNT,
            "projected_units": {**COUNT, "description": "units the scan projects (the highest top activations)"},
            "units": {"type": "array", "items": {
                "type": "object", "required": ["channel", "url", "top", "projected", *UNIT_FIGURES],
                "properties": {"channel": COUNT, "url": {"type": "string"}, **UNIT_FIGURES,
                               "projected": {"type": "boolean", "description": "one of the units the scan projects"},
                               "top": {"type": "array", "items": _ref("ScanImage")}}}},
        },
    },
    "ProjectionState": {
        "type": "object", "required": ["state", "message"],
        "properties": {"state": {"enum": ["done", "queued", "running", "failed", "missing"]},
                       "message": {**NULLABLE_STRING, "description": "why it failed"}},
    },
    "ScanUnit": {
        "type": "object", "required": ["scan", "layer", "channel", "k", "projected_k", "complete", "top", "bottom",
                                       "projection_state", "projection_url", *UNIT_FIGURES],
        "properties": {
            "scan": {"type": "string"}, "layer": SCAN_LAYER, "channel": COUNT, "k": COUNT,
            **UNIT_FIGURES, "projected_k": COUNT,
            "complete": {"type": "boolean", "description": "every projected top image has its three pictures"},
            "top": {"type": "array", "items": _ref("ScanImage")},
            "bottom": {"type": "array", "items": _ref("ScanImage"), "description": "no projections"},
            "projection_state": _ref("ProjectionState"),
            "projection_url": {"type": "string", "description": "POST: ask for the unit's projection"},
        },
    },
    "ProjectionRequest": {
        "allOf": [_ref("ProjectionState"), {
            "type": "object", "required": ["layer", "channel", "unit_url"],
            "properties": {"layer": SCAN_LAYER, "channel": COUNT,
                           "unit_url": {"type": "string", "description": "poll it until the state is done"}}}],
    },
}

# What a client does next with the id POST /api/scans answers (OpenAPI links).
SCAN_LINKS = {
    "GetScan": {"operationId": "getScan", "parameters": {"scan_id": "$response.body#/id"},
                "description": "poll the scan until its status is done or failed"},
    "GetScanLayer": {"operationId": "getScanLayer", "parameters": {"scan_id": "$response.body#/id",
                                                                   "layer": "$response.body#/layers/0/name"},
                     "description": "browse the units of its first layer once its forward pass is done"},
    "GetScanUnit": {"operationId": "getScanUnit", "parameters": {"scan_id": "$response.body#/id",
                                                                 "layer": "$response.body#/layers/0/name",
                                                                 "channel": 0}},
}
SCAN_ID_PARAMETER = {"name": "scan_id", "in": "path", "required": True, "schema": {"type": "string"},
                     "example": "9c1e5a7b3d2f4e6a8b0c1d3e5f7a9b2c",
                     "description": "a scan id (anything else is a 404)"}
LAYER_PARAMETER = {"name": "layer", "in": "path", "required": True,
                   "schema": {key: value for key, value in SCAN_LAYER.items() if key != "description"},
                   "example": "block1_pool", "description": "a layer the scan has (anything else is a 404)"}
MAX_PROJECT_CHANNELS = 512  # visnet.scan.plan.ScanOptions' bound
_CLASSIFIER = "(?:" + "|".join(CLASSIFIER_NAMES) + ")"
# visnet.scan.plan.resolve_scan_layers: 'pools' or 'all' alone or among classifier layers, or layer names.
SCAN_LAYERS_PATTERN = or_blank(f"(?:{_CLASSIFIER},)*(?:pools|all)(?:,{_CLASSIFIER})*|"
                               + listing("(?:" + "|".join(LAYER_NAMES) + ")"))
SCAN_FIELDS = {
    "model": {"type": "string", "enum": [DEFAULT_MODEL, ""], "default": DEFAULT_MODEL,
              "description": "vgg16 (the default), or a stored model (GET /api/models) with a live worker: a 400 names "
                             "the models for an unknown one (code unknown_model), a 503 says when none of its workers "
                             "is live (code no_worker_for_model); a stored model takes its own layer names and input "
                             "size (the patterns here spell out VGG16's) and its scan runs on its own workers"},
    "layers": {"type": "string", "pattern": SCAN_LAYERS_PATTERN,
               "description": "'pools' (default), 'all' or comma-separated layer names; fc1, fc2 and predictions need "
                              "the classifier top"},
    "k": {"type": "integer", "minimum": 1, "maximum": MAX_K,
          "description": f"top and bottom images kept per unit, 1 to {MAX_K} (default 9)"},
    "skip_grey": {"type": "boolean", "description": "leave greyscale images out (default false)"},
    "image_size": {"type": "integer", "minimum": INPUT_SIZE, "maximum": MAX_IMAGE_SIZE,
                   "description": f"resize to this square, then the central 224 × 224; 224 to {MAX_IMAGE_SIZE} "
                                  "(default 224; a stored model: from its input size, the default)"},
    "chunk_size": {"type": "integer", "minimum": 1, "maximum": MAX_CHUNK_SIZE,
                   "description": "images per chunk job (default 32)"},
    "project_channels": {"type": "integer", "minimum": 0, "maximum": MAX_PROJECT_CHANNELS,
                         "description": "units projected per layer, those with the highest top activation (default: "
                                        "all; 64 of a classifier layer; 0: none; any other unit is projected when "
                                        "asked for)"},
    "project_k": {"type": "integer", "minimum": 1, "maximum": MAX_K,
                  "description": "top images projected per unit (default, or more than k: all k)"},
}


def scan_paths() -> dict:
    upload_fields = {"archive": {"type": "string", "format": "binary",
                                 "description": f"a .zip of {ALLOWED_NAMES} images; other members are skipped"},
                     **{name: SCAN_FIELDS[name] for name in ("model", *OPTION_FIELDS)}}
    return {
        "/api/scans": {
            "post": {
                "summary": "Upload a ZIP of images and start a dataset scan",
                "operationId": "createScan",
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["archive"], "properties": upload_fields,
                               "additionalProperties": False},
                    "encoding": {"archive": {"contentType": "application/zip"}}}}},
                "responses": {
                    "202": {**_json("Scan", "extracted and queued: a worker plans it (status planning), then scans it"),
                            "links": SCAN_LINKS},
                    "400": _error("no archive, an empty file, an unknown model (code unknown_model), or an invalid "
                                  "or unknown option (named)"),
                    "413": _error("the request body is over VISNET_MAX_SCAN_UPLOAD_MB"),
                    "415": _error("not a ZIP archive"),
                    "422": _error("an unsafe archive (a member leaving the folder, a bomb, a limit), or no image in it "
                                  "(by name, magic bytes and header; images that do not decode are skipped by the "
                                  "planning and listed in the scan's `skipped`)"),
                    "503": _error("the scans' queue is full (`queue_full`, with `Retry-After`), Redis is not "
                                  "reachable, or no live worker serves the stored model asked for (code "
                                  "no_worker_for_model)"),
                    "507": _error("the disk that holds uploads is full (`insufficient_storage`); nothing was kept"),
                }},
            "get": {"summary": "Every scan, newest first",
                    "responses": {"200": _json("ScanList", "the scans")}},
        },
        "/api/scans/{scan_id}": {
            "parameters": [SCAN_ID_PARAMETER],
            "get": {"operationId": "getScan", "summary": "Status and progress (chunks, images per second, time left); reschedules the "
                               "work of a worker that died",
                    "responses": {"200": _json("Scan", "the scan"), "404": _error("no such scan")}}},
        "/api/scans/{scan_id}/layers/{layer}": {
            "parameters": [SCAN_ID_PARAMETER, LAYER_PARAMETER,
                           {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1},
                            "example": 2},
                           {"name": "per_page", "in": "query", "schema": {
                               "type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE}},
                           {"name": "sort", "in": "query", "schema": {"enum": list(SORTS), "default": "index"},
                            "description": "unit number, top activation or selectivity (highest first)"},
                           {"name": "unit", "in": "query", "schema": {"type": "integer", "minimum": 0},
                            "description": "instead of page: the page that holds this unit"}],
            "get": {"operationId": "getScanLayer",
                    "summary": "One page of a layer's units, each with its top images and their projections",
                    "responses": {"200": _json("ScanLayerPage", "the units"),
                                  "400": _error("page, per_page or unit is not a whole number in its range, or an "
                                                "unknown sort"),
                                  "404": _error("no such scan, the layer was not scanned, a page past the layer's "
                                                "last (`pages`; code page_not_found) or a unit it does not have "
                                                "(code unit_not_found)"),
                                  "409": _error("the scan's forward pass is not done yet")}}},
        "/api/scans/{scan_id}/layers/{layer}/units/{channel}": {
            "parameters": [SCAN_ID_PARAMETER, LAYER_PARAMETER,
                           {"name": "channel", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}],
            "get": {"operationId": "getScanUnit", "summary": "One unit: its top and bottom images with their mean activations",
                    "responses": {"200": _json("ScanUnit", "the unit"),
                                  "404": _error("no such scan, layer or unit"),
                                  "409": _error("the scan's forward pass is not done yet")}}},
        "/api/scans/{scan_id}/layers/{layer}/units/{channel}/projection": {
            "parameters": [SCAN_ID_PARAMETER, LAYER_PARAMETER,
                           {"name": "channel", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}],
            "post": {"operationId": "projectScanUnit", "summary": "Project one unit's top images (single strongest activation and whole map) as a small "
                                "job on the scans' queue; asking again reuses it",
                     "responses": {"200": _json("ProjectionRequest", "done (or failed, with the reason)"),
                                   "202": _json("ProjectionRequest", "queued or running"),
                                   "404": _error("no such scan, layer or unit"),
                                   "409": _error("the scan's forward pass is not done yet"),
                                   "503": _error("Redis is not reachable")}}},
        "/api/scans/{scan_id}/files/{name}": {
            "parameters": [SCAN_ID_PARAMETER, {"name": "name", "in": "path", "required": True,
                                               "schema": {"type": "string"},
                                               "description": "thumbs/<id>.jpg or projections/<layer>/<unit>_<rank>_<full|crop|patch>.png"}],
            "get": {"summary": "A thumbnail or a projection (cached for a year: they never change)",
                    "responses": {"200": {"description": "the picture",
                                          "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                                                      "image/png": {"schema": {"type": "string", "format": "binary"}}}},
                                  "404": _error("no such scan or file, or not written yet")}}},
    }
