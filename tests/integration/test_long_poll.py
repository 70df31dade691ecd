"""Long polls (GET /api/jobs/<id>?since=…&wait=…) in the real service: a real job of the session's worker
wakes a waiting poll as it writes and finishes, and gunicorn, started as production starts it, lets only half
of a process's threads wait and ends their waits when it is stopped. Timing bounds are generous: answered
before the wait ran out, or not."""
import signal
import threading
import time

import pytest
import requests

from tests.support.jobs import make_finished
from tests.support.paths import ARTIFACTS, EXAMPLES
from tests.support.servers import Gunicorn
from tests.support.service import enqueue_held_deconv, service_app_on
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FINISHED_ID = "d" * 32


def test_a_waiting_poll_answers_as_a_real_job_writes_and_finishes(worker, service_app, service_env, tmp_path):
    api = service_app.test_client()
    gate = tmp_path / "gate"
    job_id = enqueue_held_deconv(service_env, gate, EXAMPLES / "coffee.jpg", layers="block1_pool", top_k="2")
    try:
        held = wait_until(lambda: (document := api.get(f"/api/jobs/{job_id}").get_json())["files"] and document,
                          180, f"job {job_id} listed no file", interval=0.05)
        assert held["status"] == "started", held
        for _ in range(20):  # until the held writer has published all it will: a second without a change
            again = api.get(f"/api/jobs/{job_id}?since={held['revision']}&wait=1").get_json()
            if again["revision"] == held["revision"]:
                break
            held = again

        answers = []
        poll = threading.Thread(target=lambda: answers.append(
            api.get(f"/api/jobs/{job_id}?since={held['revision']}&wait=10").get_json()), daemon=True)
        poll.start()
        poll.join(0.5)
        assert poll.is_alive() and not answers
        opened_at = time.monotonic()
    finally:
        gate.touch()
    poll.join(9)
    assert answers, "the waiting poll did not answer when the job went on"
    assert time.monotonic() - opened_at < 9
    assert answers[0]["revision"] != held["revision"]
    assert answers[0]["status"] == "finished" or len(answers[0]["files"]) > len(held["files"])

    document, started = answers[0], time.monotonic()
    while document["status"] == "started" and time.monotonic() - started < 60:  # the page's loop, from here on
        document = api.get(f"/api/jobs/{job_id}?since={document['revision']}&wait=10").get_json()
    assert document["status"] == "finished", document


def test_gunicorn_lets_half_its_threads_wait_and_ends_the_waits_when_stopped(service_env, tmp_path):
    env = {**service_env, "RESULTS_DIR": str(tmp_path / "results"), "UPLOAD_DIR": str(tmp_path / "uploads"),
           "VISNET_CLEANUP_INTERVAL": "0"}
    make_finished(service_app_on(env), FINISHED_ID)  # an unchanging job: a wait runs its course
    server = Gunicorn(env, ARTIFACTS / "gunicorn-long-poll.log", workers=1)  # 4 threads (gunicorn.conf.py)
    try:
        server.wait_ready()
        url = f"{server.base}/api/jobs/{FINISHED_ID}"
        revision = requests.get(url, timeout=10).json()["revision"]
        answers = []

        def long_poll():
            try:
                answers.append(requests.get(url, params={"since": revision, "wait": 10}, timeout=30))
            except requests.RequestException as error:
                answers.append(error)

        waiting = [threading.Thread(target=long_poll, daemon=True) for _ in range(2)]
        for thread in waiting:
            thread.start()
        time.sleep(1)
        assert not answers, answers
        started = time.monotonic()  # both slots are taken: a third poll answers at once, unchanged
        third = requests.get(url, params={"since": revision, "wait": 10}, timeout=30)
        assert third.status_code == 200 and third.json()["revision"] == revision
        assert time.monotonic() - started < 3
        assert requests.get(f"{server.base}/api/health", timeout=5).status_code in (200, 503)  # threads left

        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for thread in waiting:
            thread.join(5)
        assert [getattr(answer, "status_code", answer) for answer in answers] == [200, 200]
        server.process.wait(10)
        assert time.monotonic() - stopped_at < 6, "gunicorn waited for the long polls to run their course"
    finally:
        server.stop()
