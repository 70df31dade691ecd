"""Killing the worker while the web app (gunicorn) runs: the page and the API keep answering, the
job goes back to the queue for its second attempt and says so, new jobs wait. Runs last: it kills the
session's worker. (tests/integration/test_fault_tolerance.py has a supervisor restart workers.)"""
import io
import time

import pytest
import requests

from service import presence
from tests.support.paths import EXAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.kills_worker]



def test_killing_the_worker_mid_job(live_server, worker):
    data = (EXAMPLES / "coffee.jpg").read_bytes()
    # All 18 layers, one pass each, 16 features: long enough to be killed in the middle.
    response = requests.post(f"{live_server}/api/jobs", files={"image": ("coffee.jpg", io.BytesIO(data), "image/jpeg")},
                             data={"layers": "all", "top_k": "16", "mode": "per-layer"}, timeout=30)
    assert response.status_code == 202, response.text
    job_url = live_server + response.json()["links"]["self"]
    page_url = live_server + response.json()["links"]["page"]

    deadline = time.monotonic() + 120
    while requests.get(job_url, timeout=10).json()["status"] != "started":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    worker.kill()

    statuses = []
    deadline = time.monotonic() + presence.ALIVE_TTL_SECONDS + 20
    while time.monotonic() < deadline:
        for url in (job_url, page_url, f"{live_server}/api/health", f"{live_server}/api/model", f"{live_server}/"):
            answer = requests.get(url, timeout=10)
            assert answer.status_code < 500 or url.endswith("/api/health"), (url, answer.status_code, answer.text[:300])
        document = requests.get(job_url, timeout=10).json()
        statuses.append(document["status"])
        if document["status"] != "started":
            break
        time.sleep(0.5)
    assert document["status"] == "queued", statuses
    assert document["message"].startswith("retrying (attempt 2 of 2): the worker running this job stopped")
    assert "waiting for a worker" in document["message"]

    health = requests.get(f"{live_server}/api/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["workers"]["alive"] == 0

    waiting = requests.post(f"{live_server}/api/jobs", data={"layers": "block1_pool", "top_k": "1"},
                            files={"image": ("astronaut.jpg", (EXAMPLES / "astronaut.jpg").read_bytes(), "image/jpeg")},
                            timeout=30)
    assert waiting.status_code == 202, waiting.text
    assert waiting.json()["status"] == "queued" and "waiting for a worker" in waiting.json()["message"]
    assert requests.get(live_server + waiting.json()["links"]["page"], timeout=10).status_code == 200
