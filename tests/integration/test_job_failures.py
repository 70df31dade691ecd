"""Jobs that fail on a healthy worker, run by the session's real worker: over their time limit, or
with a results disk that is full or read-only, or stopped by its limit inside TensorFlow's graph lock. Each fails
with a message that says so, leaves no partial file, and the worker takes the next job."""
import io
import subprocess
import time
from pathlib import Path

import pytest

from app import create_app
from tests.support.paths import EXAMPLES
from tests.support.service import enqueue_fault_job, rq_job_status

pytestmark = pytest.mark.integration



def service_client(service_env, **overrides):
    """The web app on the session worker's Redis and queue, with some settings changed: the worker
    takes the time limit and the results folder from each job."""
    config = {
        "TESTING": True, "REDIS_URL": service_env["REDIS_URL"], "RESULTS_DIR": service_env["RESULTS_DIR"],
        "UPLOAD_DIR": service_env["UPLOAD_DIR"], "QUEUE_NAME": service_env["VISNET_QUEUE"],
        "RATE_LIMIT_SUBMIT": 100_000, "RATE_LIMIT_READ": 1_000_000,
    }
    return create_app({**config, **overrides}).test_client()


def submit(client, photo, **options):
    data = (EXAMPLES / photo).read_bytes()
    response = client.post("/api/jobs", data={"image": (io.BytesIO(data), photo), **options},
                           content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def getter(client):
    return lambda job_id: client.get(f"/api/jobs/{job_id}").get_json()


def test_a_job_over_its_time_limit_fails_and_the_worker_takes_the_next(worker, service_env, wait_for_job):
    hurried = service_client(service_env, JOB_TIMEOUT=2)
    # Every layer, four features each, a pass per layer: far longer than 2 s.
    job_id = submit(hurried, "coffee.jpg", layers="all", top_k="4", mode="per-layer")
    document = wait_for_job(getter(hurried), job_id, timeout=120)
    assert document["status"] == "failed", document
    assert document["message"] == "the job took longer than the limit of 2 seconds (VISNET_JOB_TIMEOUT)"
    results = Path(service_env["RESULTS_DIR"])
    assert not (results / job_id).exists() and not list(results.glob(f".tmp-{job_id}-*"))

    following = submit(service_client(service_env), "coffee.jpg", layers="block1_pool,block2_pool", top_k="2")
    assert wait_for_job(getter(service_client(service_env)), following)["status"] == "finished"


def test_a_job_stopped_inside_tensorflows_graph_lock_leaves_the_worker_serving(worker, service_env, wait_for_job):
    """A time limit that struck while TensorFlow held its graph lock left the lock taken, and the next job waited for
    it until its own limit, as did every job after it. The worker now starts its engine on a fresh graph after a job
    its time limit stopped."""
    stuck = enqueue_fault_job(service_env, "take_the_graph_lock_then_sleep", 60, timeout=2)
    deadline = time.monotonic() + 60
    while rq_job_status(service_env, stuck) != "failed":
        assert time.monotonic() < deadline, rq_job_status(service_env, stuck)
        time.sleep(0.2)
    following = submit(service_client(service_env), "chelsea.jpg", layers="block2_pool", top_k="1")
    assert wait_for_job(getter(service_client(service_env)), following, timeout=120)["status"] == "finished"


def test_a_full_or_read_only_results_disk_fails_the_job_with_nothing_left(worker, service_env, small_disk,
                                                                           wait_for_job):
    cramped = service_client(service_env, RESULTS_DIR=str(small_disk))
    job_id = submit(cramped, "chelsea.jpg", layers="block1_pool", top_k="1")
    document = wait_for_job(getter(cramped), job_id)
    assert document["status"] == "failed", document
    assert document["message"].startswith("could not write the results: no space left on the results disk")
    assert list(small_disk.rglob("*")) == []  # no partial result, no temporary file or folder

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    job_id = submit(cramped, "chelsea.jpg", layers="block2_pool", top_k="1")
    document = wait_for_job(getter(cramped), job_id)
    assert document["status"] == "failed", document
    assert document["message"].startswith("could not write the results: the results folder is on a read-only")
    assert list(small_disk.rglob("*")) == []

    following = submit(service_client(service_env), "chelsea.jpg", layers="block1_pool,block3_pool", top_k="2")
    assert wait_for_job(getter(service_client(service_env)), following)["status"] == "finished"
