"""The service's own part of the OpenAPI document: the model, the methods, health and the document."""
from app.openapi.forms import MODEL_FIELD
from app.openapi.schemas import NULLABLE_STRING
from app.openapi.schemas import error_response as _error
from app.openapi.schemas import json_response as _json
from visnet.architecture import LAYER_NAMES
from visnet.methods import METHOD_NAMES

STATUS_SCHEMAS = {
    "Model": {
        "type": "object", "required": ["weights", "weights_description", "has_classifier", "device", "layers", "source",
                                       "message"],
        "properties": {
            "weights": NULLABLE_STRING, "has_classifier": {"type": ["boolean", "null"]},
            "weights_description": {"type": ["string", "null"], "description": "which weights the workers serve "
                                    "and what that means for the pictures, in words"},
            "device": NULLABLE_STRING, "source": {"enum": ["worker", "architecture"]}, "message": {
                **NULLABLE_STRING, "description": "no worker yet, or what the service does before its worker starts "
                "(make run downloading the ImageNet weights: bytes, rate, time left)"},
            "layers": {"type": "array", "items": {
                "type": "object", "required": ["name", "kind", "channels", "resolution"],
                "properties": {"name": {"enum": list(LAYER_NAMES)}, "kind": {"enum": ["conv", "pool"]},
                               "channels": {"type": "integer"}, "resolution": {"type": "integer"}}}},
        },
    },
    "Models": {
        "type": "object", "required": ["models"],
        "properties": {"models": {"type": "array", "description": "vgg16 (built in) first, then vgg19 (built in: a "
                                  "chain model on Keras' ImageNet file), then the models stored with python -m visnet "
                                  "models add, by name", "items": {
            "type": "object", "required": ["name", "built_in", "sha256", "input", "preprocess", "classes", "layers",
                                           "workers"],
            "properties": {
                "name": {"type": "string"}, "built_in": {"type": "boolean"},
                "sha256": {**NULLABLE_STRING, "description": "of the Keras file a stored model was converted from; "
                           "vgg19: of its weights file (null while it is missing)"},
                "input": {"type": "object", "required": ["height", "width", "channels"],
                          "properties": {key: {"type": "integer"} for key in ("height", "width", "channels")}},
                "preprocess": {"type": "string", "description": "how a photo becomes the model's input "
                               "(python -m visnet models add --help)"},
                "classes": {"type": "object", "required": ["count", "classifies"], "properties": {
                    "count": {"type": ["integer", "null"], "description": "class names known (vgg16: null until a "
                              "worker has said whether its weights have the classifier top)"},
                    "classifies": {"type": ["boolean", "null"], "description": "whether it ends in a softmax"}}},
                "source": {"type": "object"},
                "weights": {"type": "object", "required": ["present", "name", "file", "fetch"],
                            "description": "vgg19 only: its weights file in the models folder (the one with the "
                            "classifier top when both are there)",
                            "properties": {"present": {"type": "boolean"}, "name": NULLABLE_STRING,
                                           "file": NULLABLE_STRING,
                                           "fetch": {"type": "string", "description": "the commands that download "
                                                     "it"}}},
                "layers": {"type": "array", "items": {
                    "type": "object", "required": ["name", "kind", "channels", "shape"],
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                   "channels": {"type": "integer"},
                                   "shape": {"type": "array", "items": {"type": "integer"}}}}},
                "workers": {"type": "object", "required": ["alive", "names"],
                            "properties": {"alive": {"type": "integer", "minimum": 0},
                                           "names": {"type": "array", "items": {"type": "string"}}}},
            }}}},
    },
    "Methods": {
        "type": "object", "required": ["has_classifier", "methods"],
        "properties": {
            "has_classifier": {"type": ["boolean", "null"], "description": "null: no worker has started yet"},
            "methods": {"type": "array", "items": {
                "type": "object", "required": ["name", "label", "needs_classifier", "options"],
                "properties": {
                    "name": {"enum": list(METHOD_NAMES)}, "label": {"type": "string"},
                    "needs_classifier": {"type": "boolean"},
                    "unavailable": {"type": "string", "description": "only when the method cannot run on the "
                                    "workers' weights: why, and how to enable it"},
                    "options": {"type": "array", "items": {
                        "type": "object", "required": ["name", "kind", "default", "help"],
                        "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                       "default": {}, "help": {"type": "string"},
                                       "minimum": {"type": ["number", "null"]},
                                       "maximum": {"type": ["number", "null"]},
                                       "choices": {"type": "array", "items": {"type": "string"}},
                                       "scans": {"type": "array", "description": "only for an option of kind "
                                                 "scan (the deconvnet's reference): the finished scans on the "
                                                 "workers' weights it can name, newest first",
                                                 "items": {"type": "object", "required": ["id", "label"],
                                                           "properties": {"id": {"type": "string"},
                                                                          "label": {"type": "string"}}}}}}}}}},
        },
    },
    "Health": {
        "type": "object", "required": ["status", "redis", "workers", "queue"],
        "properties": {
            "status": {"enum": ["ok", "degraded", "down"],
                       "description": "degraded: Redis answers but no worker is alive"},
            "redis": {"type": "object", "required": ["reachable"],
                      "properties": {"reachable": {"type": "boolean"}, "error": {"type": "string"}}},
            "workers": {"type": "object", "required": ["alive", "names"],
                        "properties": {"alive": {"type": "integer", "minimum": 0},
                                       "names": {"type": "array", "items": {"type": "string"}}}},
            "queue": {"type": "object", "required": ["name", "length"],
                      "properties": {"name": {"type": "string"}, "length": {"type": ["integer", "null"]},
                                     "cap": {"type": "integer", "description": "queued jobs past which "
                                             "POST /api/jobs answers 503"},
                                     "started": {"type": "integer", "description": "jobs in RQ's started "
                                                 "registry (running, or left by a worker that died)"}}},
        },
    },
}


def status_paths() -> dict:
    return {
        "/api/model": {"get": {"summary": "Layers with channel counts, the weights in use, classifier presence",
                               "responses": {"200": _json("Model", "the model the workers serve"),
                                             "503": _error("Redis is not reachable")}}},
        "/api/models": {"get": {"summary": "The models a job can name (model=): layers, input, preprocessing, "
                                          "classes and live workers of each",
                                "responses": {"200": _json("Models", "vgg16 and the stored models"),
                                              "503": _error("Redis is not reachable")}}},
        "/api/methods": {"get": {"summary": "Every method (a tab of the job page) with its options",
                                 "parameters": [{"name": "model", "in": "query", "required": False,
                                                 "schema": MODEL_FIELD,
                                                 "description": "vgg16 (the default), or a stored model (GET "
                                                                "/api/models): its own defaults, layer choices and "
                                                                "class names; a 400 names the models for an unknown "
                                                                "one"}],
                                 "responses": {"200": _json("Methods", "methods and classifier presence"),
                                               "400": _error("no such model (unknown_model)"),
                                               "503": _error("Redis is not reachable")}}},
        "/api/health": {"get": {"summary": "Redis reachable, workers alive, queue length",
                                "responses": {"200": _json("Health", "Redis answers (status ok or degraded)"),
                                              "503": _json("Health", "Redis is not reachable")}}},
        "/api/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {}}}}}},
    }
