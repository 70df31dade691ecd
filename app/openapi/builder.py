"""The OpenAPI 3.1 description of ``/api``, assembled from one module per resource (jobs, status, scans)
and the shared schemas; tests validate real responses against it."""
from app.openapi.forms import form_schemas
from app.openapi.jobs import JOB_SCHEMAS, job_paths, method_form_schemas
from app.openapi.scans import SCAN_SCHEMAS, scan_paths
from app.openapi.schemas import ERROR_SCHEMA, RATE_LIMITED
from app.openapi.status import STATUS_SCHEMAS, status_paths
from app.ratelimit import UNCOUNTED_PATHS


def _with_rate_limit_answers(spec: dict) -> dict:
    """Every operation but the uncounted ones can answer 429 (app.ratelimit counts them all)."""
    for path, item in spec["paths"].items():
        if path in UNCOUNTED_PATHS:
            continue
        for method, operation in item.items():
            if method != "parameters":
                operation["responses"].setdefault("429", RATE_LIMITED)
    return spec


def build_spec() -> dict:
    return _with_rate_limit_answers({
        "openapi": "3.1.0",
        "info": {"title": "VisNet deconvnet service", "version": "1.0.0",
                 "description": "Upload a photo, get back the VGG16 deconvnet projections of its strongest "
                                "features (Zeiler & Fergus 2014) as PNGs. Every error is "
                                '{"error": {"code", "message"}}.'},
        "paths": {**job_paths(), **status_paths(), **scan_paths()},
        "components": {"schemas": {"Error": ERROR_SCHEMA, **JOB_SCHEMAS, **method_form_schemas(), **form_schemas(),
                                   **STATUS_SCHEMAS,
                                   **SCAN_SCHEMAS}},
    })
