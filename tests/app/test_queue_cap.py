"""The queue cap (app.queue_cap): past QUEUE_CAP queued jobs a new job is a 503 with Retry-After and
nothing is stored; jobs that already exist are still answered."""
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import FinishedJobRegistry

from app import create_app
from app.queue_cap import DEFAULT_JOB_SECONDS, MIN_RETRY_SECONDS, retry_after_seconds
from service import presence
from tests.support.jobs import job_id_for, make_finished, post


@pytest.fixture
def capped(app_config):
    return create_app({**app_config, "QUEUE_CAP": 2})


def stored_uploads(app):
    return sorted(path.name for path in Path(app.config["UPLOAD_DIR"]).iterdir())


def test_past_the_cap_a_new_job_is_refused_before_anything_is_stored(capped, redis_conn, images, check_against_spec):
    client = capped.test_client()
    queue = Queue(capped.config["QUEUE_NAME"], connection=redis_conn)
    first, second = images.photo_jpeg(color=(1, 1, 1)), images.photo_jpeg(color=(2, 2, 2))
    assert post(client, first).status_code == 202 and post(client, second).status_code == 202
    uploads_before = stored_uploads(capped)

    refused = post(client, images.photo_jpeg(color=(3, 3, 3)))
    assert refused.status_code == 503
    body = refused.get_json()
    check_against_spec("/api/jobs", "post", 503, body)
    assert body["error"]["code"] == "queue_full" and "2 jobs waiting" in body["error"]["message"]
    # No worker has finished anything: the default job time, one job to wait for, no worker alive.
    assert int(refused.headers["Retry-After"]) == max(MIN_RETRY_SECONDS, int(DEFAULT_JOB_SECONDS))
    assert queue.count == 2 and stored_uploads(capped) == uploads_before

    # What already exists is still answered: a pending job, and a finished one.
    again = post(client, first)
    assert again.status_code == 202 and again.get_json()["reused"] is True
    done = images.photo_jpeg(color=(4, 4, 4))
    make_finished(capped, job_id_for(done))
    assert post(client, done).status_code == 200
    # The health document says where the queue stands.
    assert client.get("/api/health").get_json()["queue"] == {"name": capped.config["QUEUE_NAME"], "length": 2,
                                                             "cap": 2, "started": 0}
    # Once a job leaves the queue, new jobs are accepted again.
    queue.remove(queue.job_ids[0])
    assert post(client, images.photo_jpeg(color=(3, 3, 3))).status_code == 202


def test_the_upload_form_past_the_cap_shows_the_reason(capped, images):
    client = capped.test_client()
    for color in ((1, 1, 1), (2, 2, 2)):
        assert post(client, images.photo_jpeg(color=color)).status_code == 202
    response = client.post("/jobs", data={"image": (io.BytesIO(images.photo_jpeg(color=(9, 9, 9))), "a.jpg"),
                                          "preset": "pools", "top_k": "3"}, content_type="multipart/form-data")
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert int(response.headers["Retry-After"]) >= MIN_RETRY_SECONDS
    assert "the queue is full" in response.get_data(as_text=True)


def _finished(redis_conn, queue, job_id, seconds):
    job = Job.create("service.jobs.photo.deconv", connection=redis_conn, id=job_id, origin=queue.name)
    job.started_at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    job.ended_at = job.started_at + timedelta(seconds=seconds)
    job.save()
    FinishedJobRegistry(queue=queue).add(job, ttl=3600)


def test_retry_after_comes_from_recent_job_times_and_live_workers(app_config, redis_conn):
    queue = Queue("visnet-test", connection=redis_conn)
    for index, seconds in enumerate((20, 30, 40, 1000)):
        _finished(redis_conn, queue, f"{index:032x}", seconds)  # median 35 s, not swayed by one slow job
    presence.mark_alive(redis_conn, "w1", {})
    presence.mark_alive(redis_conn, "w2", {})
    # 13 queued, cap 10: four jobs must start before a new one fits; two workers share them.
    assert retry_after_seconds(queue, queued=13, cap=10) == 4 * 35 / 2
    presence.mark_gone(redis_conn, "w2")
    assert retry_after_seconds(queue, queued=13, cap=10) == 4 * 35
