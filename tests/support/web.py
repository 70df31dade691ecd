"""The Flask app in-process, without a worker, on database 1 of the session's Redis; and the OpenAPI
document the API's answers are checked against."""
from pathlib import Path

import jsonschema
import pytest

from app import create_app


@pytest.fixture
def app_config(tmp_path, redis_url, monkeypatch):
    monkeypatch.setenv("VISNET_INSTANCE_DIR", str(tmp_path / "instance"))  # not the project's instance/
    return {
        "TESTING": True,
        "REDIS_URL": redis_url,
        "RESULTS_DIR": str(tmp_path / "results"),
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "QUEUE_NAME": "visnet-test",
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        "MAX_IMAGE_PIXELS": 4_000_000,
        # Generous: a test that loops must not meet the limits; tests/app/test_ratelimit.py sets its own.
        "RATE_LIMIT_SUBMIT": 10_000,
        "RATE_LIMIT_READ": 100_000,
    }


@pytest.fixture
def app(app_config):
    return create_app(app_config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def nothing_stored(app, redis_conn):
    """Call after a rejected request: nothing enqueued, no job in Redis, no file on disk."""
    def check():
        assert redis_conn.llen(f"rq:queue:{app.config['QUEUE_NAME']}") == 0
        assert list(redis_conn.scan_iter(match="rq:job:*")) == []
        for key in ("UPLOAD_DIR", "RESULTS_DIR"):
            assert list(Path(app.config[key]).rglob("*")) == []
    return check


@pytest.fixture(scope="session")
def openapi_spec():
    from app.openapi.builder import build_spec

    spec = build_spec()
    jsonschema.Draft202012Validator.check_schema({"$defs": spec["components"]["schemas"]})
    return spec


@pytest.fixture(scope="session")
def check_against_spec(openapi_spec):
    """check(path_template, method, status, body): the status is documented for that operation and a
    JSON body matches its schema."""
    def check(path, method, status, body=None, content_type="application/json"):
        operation = openapi_spec["paths"][path][method.lower()]
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{method} {path} answered {status}, which the spec does not list"
        content = documented.get("content", {})
        assert content_type in content, f"{method} {path} {status}: {content_type} not documented"
        schema = content[content_type].get("schema")
        if schema is not None and content_type == "application/json":
            root = {**schema, "components": openapi_spec["components"]}
            jsonschema.Draft202012Validator(root).validate(body)
    return check
