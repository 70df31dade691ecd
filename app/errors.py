"""One error shape for the API, ``{"error": {"code", "message"}}``, and handlers that make sure no
request ends in a traceback: API paths answer JSON, pages answer a small HTML page."""
import logging

import redis
from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from . import redis_client

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 409: "conflict",
    413: "too_large", 415: "unsupported_media_type", 422: "unprocessable", 429: "rate_limited",
    500: "internal_error", 503: "unavailable",
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


def _answer(status, message, code=None, headers=None):
    if _wants_json():
        body, status = error_response(status, message, code)
        return body, status, headers or {}
    return render_template("error.html", status=status, message=message), status, headers or {}


def init_app(app):
    @app.errorhandler(ApiError)
    def api_error(error):
        return _answer(error.status, error.message, error.code, error.headers)

    @app.errorhandler(HTTPException)
    def http_error(error):
        message = error.description or error.name
        if error.code == 413:
            limit = request.max_content_length  # a view may raise it (scan archives have their own limit)
            message = f"the request body is larger than the limit of {limit // (1024 * 1024)} MiB" if limit else message
        return _answer(error.code or 500, message)

    @app.errorhandler(redis.RedisError)
    def redis_error(error):
        log.warning("Redis unavailable: %s", error)
        redis_client.restart_embedded_server()
        return _answer(503, "the job queue (Redis) is not reachable right now; try again shortly", "queue_unavailable")

    @app.errorhandler(Exception)
    def unexpected(error):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _answer(500, "an unexpected error occurred; it has been logged")
