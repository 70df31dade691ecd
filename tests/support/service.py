"""One real worker (``worker.py``: TensorFlow graph built once) and one real gunicorn per test session,
on database 0 of the session's Redis; the helpers that wait for their jobs and scans."""
import json
import os
import time
from pathlib import Path

import pytest

from app import create_app
from tests.support.paths import ARTIFACTS
from tests.support.redis_server import db_url
from tests.support.servers import Gunicorn
from tests.support.workers import Worker


@pytest.fixture(scope="session")
def service_env(redis_instance, tmp_path_factory):
    """Environment shared by the session's worker, gunicorn and in-process app (Redis database 0)."""
    root = tmp_path_factory.mktemp("service")
    env = {
        **os.environ,
        "REDIS_URL": db_url(redis_instance["url"], 0),
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
    return service_app_on(service_env)


def service_app_on(env, models_dir=None):
    """An in-process app on the Redis database and folders of ``env`` (service_env's), and ``models_dir`` if given."""
    return create_app({
        "TESTING": True, "REDIS_URL": env["REDIS_URL"], "RESULTS_DIR": env["RESULTS_DIR"],
        "UPLOAD_DIR": env["UPLOAD_DIR"], "QUEUE_NAME": env["VISNET_QUEUE"],
        "RATE_LIMIT_SUBMIT": int(env["VISNET_RATE_LIMIT_SUBMIT"]), "RATE_LIMIT_READ": int(env["VISNET_RATE_LIMIT_READ"]),
        **({"MODELS_DIR": str(models_dir)} if models_dir is not None else {}),
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


def enqueue_held_deconv(service_env, gate, photo, **form) -> str:
    """A real deconvnet job on ``photo`` with the options of ``form``, run by the session's worker, whose writer
    holds all but its first feature until the file ``gate`` exists (tests.support.fault_jobs); its id."""
    import uuid

    from app.jobs.forms import read_method_form
    from service import recovery

    job_id, options = uuid.uuid4().hex, read_method_form(form).as_dict()
    return enqueue_fault_job(
        service_env, "deconv_held_while_writing", str(gate), str(photo), service_env["RESULTS_DIR"], job_id, options,
        job_id=job_id, **recovery.enqueue_options({"method": "deconv", "options": options,
                                                   "image": {"sha256": "0" * 64, "name": Path(photo).name}}))


def enqueue_fault_job(service_env, function, *args, timeout=300, job_id=None, **options) -> str:
    """A tests.support.fault_jobs job for the session's worker, with the time limit ``timeout`` and RQ's other
    enqueue ``options``; its id."""
    import uuid

    import redis
    from rq import Queue

    job_id = job_id or uuid.uuid4().hex
    with redis.Redis.from_url(service_env["REDIS_URL"]) as connection:
        Queue(service_env["VISNET_QUEUE"], connection=connection).enqueue_call(
            f"tests.support.fault_jobs.{function}", args=args, job_id=job_id, timeout=timeout, result_ttl=3600,
            failure_ttl=3600, **options)
    return job_id


def rq_job_status(service_env, job_id) -> str:
    """RQ's status of a job of the session's queue ("queued", "started", "failed", …)."""
    import redis
    from rq.job import Job

    with redis.Redis.from_url(service_env["REDIS_URL"]) as connection:
        return Job.fetch(job_id, connection=connection).get_status()


@pytest.fixture(scope="session")
def wait_for_job():
    """wait(get_json, job_id, timeout=180, until=(...)): poll until the job reaches a status in
    ``until`` and return the last document."""
    return _wait_for_job


@pytest.fixture(scope="session")
def web_scan(live_server, worker):
    """One dataset scan uploaded to the live gunicorn (tests/support/scan_uploads.py: real photos, early layers)
    and run to the end by the session's worker; shared by the integration and browser tests.
    {"id", "archive": {member: bytes}, "documents": every Scan document polled, "fields"}."""
    from tests.support.scan_uploads import SCAN_FIELDS, build_zip, photo_members, post_scan, wait_for_scan

    members = photo_members()
    response = post_scan(live_server, build_zip(members), **SCAN_FIELDS)
    assert response.status_code == 202, response.text
    scan_id = response.json()["id"]
    return {"id": scan_id, "archive": members, "fields": SCAN_FIELDS, "posted": response.json(),
            "documents": wait_for_scan(live_server, scan_id)}
