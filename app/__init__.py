"""The VisNet web service: upload page, JSON API, RQ queue. See README.md.

``create_app`` reads its defaults from ``visnet.settings`` (the one place that reads the
environment); ``test_config`` overrides them.
"""
import logging
from pathlib import Path

from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import RequestRedirect

from visnet.images import ALLOWED_NAMES
from visnet.settings import PROJECT_ROOT, from_environment


class VisNet(Flask):
    def raise_routing_exception(self, request):
        """No redirects from routing. Werkzeug answers a path with ``//`` (merge_slashes), or one
        without a rule's trailing slash, with a 308 whose Location it builds from the request's Host
        header, which any client sets. Such a path is a 404 like any other unknown URL: JSON under
        /api (app.errors), a page elsewhere."""
        if isinstance(request.routing_exception, RequestRedirect):
            raise NotFound()
        super().raise_routing_exception(request)


# The largest form, the scan page's without JavaScript, has 25 parts: the archive, 18 layer boxes and 6
# options. Werkzeug's default of 1,000 let a 140 KB body cost a thousand parsed parts.
MAX_FORM_PARTS = 32


def create_app(test_config=None):
    settings = from_environment()
    app = VisNet(
        __name__,
        instance_path=str(settings.instance_dir.resolve()),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.from_mapping(
        REDIS_URL=settings.redis_url,
        RESULTS_DIR=str(settings.results_dir),
        UPLOAD_DIR=str(settings.upload_dir),
        QUEUE_NAME=settings.queue_name,
        MODELS_DIR=str(settings.models_dir),
        JOB_TIMEOUT=settings.job_timeout,
        RESULT_TTL=settings.result_ttl,
        FAILURE_TTL=settings.failure_ttl,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        MAX_FORM_PARTS=MAX_FORM_PARTS,
        MAX_IMAGE_PIXELS=settings.max_image_pixels,
        QUEUE_CAP=settings.queue_cap,
        RATE_LIMIT_SUBMIT=settings.rate_limit_submit,
        RATE_LIMIT_READ=settings.rate_limit_read,
        RATE_LIMIT_WINDOW=settings.rate_limit_window,
        RATE_LIMIT_FILES=settings.rate_limit_files,
        TRUSTED_PROXIES=settings.trusted_proxies,
        RETENTION_HOURS=settings.retention_hours,
        CLEANUP_INTERVAL=settings.cleanup_interval,
        MAX_SCAN_UPLOAD_BYTES=settings.max_scan_upload_bytes,
        # Long polls waiting at once per process: half of gunicorn's threads (gunicorn.conf.py sets it from them).
        LONG_POLL_SLOTS=2,
        JSON_SORT_KEYS=False,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False
    logging.getLogger("app").setLevel(settings.log_level)

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    for key in ("RESULTS_DIR", "UPLOAD_DIR"):
        Path(app.config[key]).mkdir(parents=True, exist_ok=True)

    from app import cleanup, errors, ratelimit, redis_client
    from app.jobs import api, long_poll, pages
    from app.scans import api as scan_api
    from app.scans import pages as scan_pages

    if app.config["TRUSTED_PROXIES"]:
        # Only then is X-Forwarded-For believed, and only as many hops as there are proxies.
        proxies = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    redis_client.init_app(app)
    errors.init_app(app)
    ratelimit.init_app(app)
    cleanup.init_app(app)
    long_poll.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(scan_api.bp)
    app.register_blueprint(scan_pages.bp)
    app.jinja_env.globals["image_formats"] = ALLOWED_NAMES  # the pages name the one list of visnet.images

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        return response

    return app
