"""The VisNet web service: upload page, JSON API, RQ queue. See README.md.

``create_app`` reads its defaults from ``visnet.settings`` (the one place that reads the
environment); ``test_config`` overrides them.
"""
import logging
from pathlib import Path

from flask import Flask

from visnet.settings import PROJECT_ROOT, from_environment


def create_app(test_config=None):
    settings = from_environment()
    app = Flask(
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
        JOB_TIMEOUT=settings.job_timeout,
        RESULT_TTL=settings.result_ttl,
        FAILURE_TTL=settings.failure_ttl,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        MAX_IMAGE_PIXELS=settings.max_image_pixels,
        JSON_SORT_KEYS=False,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False
    logging.getLogger("app").setLevel(settings.log_level)

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    for key in ("RESULTS_DIR", "UPLOAD_DIR"):
        Path(app.config[key]).mkdir(parents=True, exist_ok=True)

    from . import api, errors, pages, redis_client

    redis_client.init_app(app)
    errors.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)

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
