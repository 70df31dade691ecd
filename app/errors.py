"""One error shape for the API, ``{"error": {"code", "message"}}``, and handlers that make sure no
request ends in a traceback: API paths answer JSON, pages answer a small HTML page."""
import logging

import redis
from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app import redis_client

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 409: "conflict",
    413: "too_large", 415: "unsupported_media_type", 422: "unprocessable", 429: "rate_limited",
    500: "internal_error", 503: "unavailable", 507: "insufficient_storage",
}


class ApiError(Exception):
    """Raised anywhere in a request to answer ``status`` with a readable message. ``headers`` go on
    the answer too (``Retry-After`` on a 429 or a full queue's 503)."""

    def __init__(self, status: int, message: str, code: str = None, headers: dict = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code or CODES.get(status, "error")
        self.headers = dict(headers or {})


def error_response(status: int, message: str, code: str = None):
    body = {"error": {"code": code or CODES.get(status, "error"), "message": message}}
    return jsonify(body), status


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def answer(status, message, code=None, headers=None):
    """The error answer of the current request: JSON under /api, a page elsewhere."""
    if _wants_json():
        body, status = error_response(status, message, code)
        return body, status, headers or {}
    return render_template("error.html", status=status, message=message), status, headers or {}


def _raised_in(error) -> str:
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    return "" if traceback is None else traceback.tb_frame.f_code.co_name


def _too_large(error) -> tuple:
    """(message, code) of a 413. Werkzeug raises one RequestEntityTooLarge, without a description, for
    three limits: the body over max_content_length, more multipart parts than max_form_parts, and a
    text field over max_form_memory_size. Its multipart decoder counts the parts in ``next_event`` and
    the form parser adds up a field's bytes in ``parse`` (Werkzeug 3.1); no attribute tells them apart,
    so the function that raised it does. Anything else is the body's size."""
    limit = request.max_content_length  # a view may raise it (scan archives have their own limit)
    body_size = request.content_length
    if body_size is None or limit is None or body_size <= limit:
        raised_in = _raised_in(error)
        if raised_in == "next_event" and request.max_form_parts is not None:
            return (f"the form has more parts (fields and files) than the limit of {request.max_form_parts}",
                    "too_many_parts")
        if raised_in in ("parse", "receive_data") and request.max_form_memory_size is not None:
            return (f"a form field is larger than the limit of {request.max_form_memory_size // 1000} kB "
                    "(files are not counted)", "field_too_large")
    if limit:
        return f"the request body is larger than the limit of {limit // (1024 * 1024)} MiB", "too_large"
    return error.description or error.name, "too_large"


def _protocol_headers(error: HTTPException) -> dict:
    """The headers HTTP requires with the error, which werkzeug's own answer carries: ``Allow`` on a 405
    (RFC 9110 15.5.6: the methods the URL takes), say. Its Content-Type is for its HTML page, not ours."""
    return {name: value for name, value in error.get_headers() if name.lower() != "content-type"}


def init_app(app):
    @app.errorhandler(ApiError)
    def api_error(error):
        return answer(error.status, error.message, error.code, error.headers)

    @app.errorhandler(HTTPException)
    def http_error(error):
        if error.code == 413:
            return answer(413, *_too_large(error))
        return answer(error.code or 500, error.description or error.name, headers=_protocol_headers(error))

    @app.errorhandler(redis.RedisError)
    def redis_error(error):
        log.warning("Redis unavailable: %s", error)
        redis_client.restart_embedded_server()
        return answer(503, "the job queue (Redis) is not reachable right now; try again shortly", "queue_unavailable")

    @app.errorhandler(Exception)
    def unexpected(error):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return answer(500, "an unexpected error occurred; it has been logged")
