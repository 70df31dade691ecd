"""Long polling a job (app.jobs.long_poll): GET /api/jobs/<id>?since=<revision>&wait=<seconds> against a real
Redis, without a worker; the test changes the RQ job the way a worker does (its status, its meta). The timing
bounds are functional and generous: answered before the wait ran out, or not before it."""
import threading
import time

import pytest
from rq.job import Job, JobStatus

from app import create_app
from app.errors import ApiError
from app.jobs import long_poll, store
from service import presence
from tests.support.jobs import make_finished, post

FINISHED_ID = "f" * 32
OTHER_REVISION = "0123456789abcdef"


class Poll(threading.Thread):
    """One GET of the job page's API in a thread of its own: its answer and how long it took."""

    def __init__(self, app, path):
        super().__init__(daemon=True)
        self.app, self.path = app, path
        self.response = self.seconds = None

    def run(self):
        started = time.monotonic()
        self.response = self.app.test_client().get(self.path)
        self.seconds = time.monotonic() - started

    def answered(self, within: float) -> bool:
        self.join(within)
        return not self.is_alive()


def timed_get(client, path):
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def waiting_on_a_new_job(app, client, images):
    """A queued job and a long poll since its revision, seen waiting: (job id, revision, Poll)."""
    job_id = post(client, images.photo_jpeg()).get_json()["id"]
    revision = client.get(f"/api/jobs/{job_id}").get_json()["revision"]
    poll = Poll(app, f"/api/jobs/{job_id}?since={revision}&wait=8")
    poll.start()
    assert not poll.answered(within=0.5), poll.response.get_json()  # nothing changed: it waits
    return job_id, revision, poll


def started_by_hand(redis_conn, job_id, stage_done=0):
    """What a live worker does to a job: takes it (its name on the job, its presence key beating, so that the
    API does not settle the job as a dead worker's once Redis has been up a while) and publishes its progress."""
    presence.mark_alive(redis_conn, "long-poll-test-worker", {})
    job = Job.fetch(job_id, connection=redis_conn)
    job.worker_name = "long-poll-test-worker"
    job.save()
    job.set_status(JobStatus.STARTED)
    job.meta["progress"] = {"stage": "Projecting features", "stages": [
        {"name": "network", "label": "Projecting features", "done": stage_done, "total": 3}]}
    job.save_meta()


def test_the_document_carries_a_revision_that_changes_with_it(client, redis_conn, images, check_against_spec):
    created = post(client, images.photo_jpeg()).get_json()
    check_against_spec("/api/jobs", "post", 202, created)
    again = client.get(f"/api/jobs/{created['id']}").get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, again)
    assert again["revision"] == created["revision"]  # reused, on a POST only, is not part of it
    started_by_hand(redis_conn, created["id"])
    started = client.get(f"/api/jobs/{created['id']}").get_json()
    assert started["status"] == "started" and started["revision"] != created["revision"]
    started_by_hand(redis_conn, created["id"], stage_done=1)
    assert client.get(f"/api/jobs/{created['id']}").get_json()["revision"] != started["revision"]


def test_a_wait_answers_soon_after_the_job_changes(app, client, redis_conn, images, check_against_spec):
    job_id, revision, poll = waiting_on_a_new_job(app, client, images)
    changed_at = time.monotonic()
    started_by_hand(redis_conn, job_id)
    assert poll.answered(within=4), "the poll did not answer after the job changed"
    assert time.monotonic() - changed_at < 4 and poll.seconds < 8
    body = poll.response.get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, body)
    assert body["status"] == "started" and body["revision"] != revision
    assert body["progress"]["stages"][0]["done"] == 0


def test_a_wait_answers_when_the_job_finishes(app, client, images):
    job_id, _, poll = waiting_on_a_new_job(app, client, images)
    make_finished(app, job_id)  # as the worker renames its complete result folder into place
    assert poll.answered(within=4), "the poll did not answer after the job finished"
    assert poll.response.get_json()["status"] == "finished" and poll.seconds < 8


def test_an_unchanged_job_answers_after_the_wait_with_the_same_revision(app, client):
    make_finished(app, FINISHED_ID)
    revision = client.get(f"/api/jobs/{FINISHED_ID}").get_json()["revision"]
    response, seconds = timed_get(client, f"/api/jobs/{FINISHED_ID}?since={revision}&wait=1.5")
    assert response.status_code == 200
    assert response.get_json()["revision"] == revision
    assert 1.4 <= seconds < 6


def test_a_stale_since_no_wait_or_an_unknown_job_answers_at_once(app, client):
    make_finished(app, FINISHED_ID)
    revision = client.get(f"/api/jobs/{FINISHED_ID}").get_json()["revision"]
    for query in (f"since={OTHER_REVISION}&wait=10", f"since={revision}", f"since={revision}&wait=0", "wait=10"):
        response, seconds = timed_get(client, f"/api/jobs/{FINISHED_ID}?{query}")
        assert response.status_code == 200 and response.get_json()["revision"] == revision, query
        assert seconds < 3, query
    plain = client.get(f"/api/jobs/{'e' * 32}")  # an unknown job: today's 404, at once
    waited, seconds = timed_get(client, f"/api/jobs/{'e' * 32}?since={revision}&wait=5")
    assert plain.status_code == waited.status_code == 404 and waited.get_json() == plain.get_json()
    assert seconds < 3


@pytest.mark.parametrize("query, named", [
    ("wait=11", "wait"), ("wait=-1", "wait"), ("wait=soon", "wait"), ("wait=", "wait"), ("wait=inf", "wait"),
    ("wait=nan", "wait"), ("since=abc&wait=1", "since"), ("since=&wait=1", "since"),
    (f"since={OTHER_REVISION.upper()}", "since"),
])
def test_bad_parameters_are_a_400_that_names_them(app, client, query, named, check_against_spec):
    make_finished(app, FINISHED_ID)
    response = client.get(f"/api/jobs/{FINISHED_ID}?{query}")
    assert response.status_code == 400
    body = response.get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 400, body)
    assert body["error"]["code"] == "invalid_parameter" and body["error"]["message"].startswith(named + ":")
    if named == "wait":
        assert str(long_poll.MAX_WAIT_SECONDS) in body["error"]["message"]


def test_a_job_deleted_while_a_poll_waits_is_a_404(app, client, images):
    job_id, _, poll = waiting_on_a_new_job(app, client, images)
    assert client.delete(f"/api/jobs/{job_id}").status_code == 200
    assert poll.answered(within=4) and poll.response.status_code == 404


def test_a_poll_that_finds_no_free_slot_answers_at_once(app_config):
    app = create_app({**app_config, "LONG_POLL_SLOTS": 1})
    make_finished(app, FINISHED_ID)
    client = app.test_client()
    revision = client.get(f"/api/jobs/{FINISHED_ID}").get_json()["revision"]
    path = f"/api/jobs/{FINISHED_ID}?since={revision}&wait=3"
    holder = Poll(app, path)
    holder.start()
    assert not holder.answered(within=0.5)  # it holds the one slot
    response, seconds = timed_get(client, path)
    assert response.status_code == 200 and response.get_json()["revision"] == revision
    assert seconds < 2 and holder.is_alive()
    assert holder.answered(within=10) and holder.seconds >= 2.9
    _, seconds = timed_get(client, f"/api/jobs/{FINISHED_ID}?since={revision}&wait=1")
    assert seconds >= 0.9  # the slot was given back


def test_a_stopping_process_ends_its_waits(app, client):
    make_finished(app, FINISHED_ID)
    stopping = threading.Event()
    long_poll.configure(app, slots=2, stopping=stopping.is_set)  # what gunicorn.conf.py does in a worker
    revision = client.get(f"/api/jobs/{FINISHED_ID}").get_json()["revision"]
    poll = Poll(app, f"/api/jobs/{FINISHED_ID}?since={revision}&wait=10")
    poll.start()
    assert not poll.answered(within=0.3)
    stopping.set()
    assert poll.answered(within=3) and poll.seconds < 5
    assert poll.response.status_code == 200 and poll.response.get_json()["revision"] == revision


def test_a_queued_job_goes_in_one_transaction(app, client, images, monkeypatch):
    """What a poll may read while DELETE runs is the queued job or a 404. The deletion used to cancel the job and
    then delete it: a waiting poll that looked between the two answered 200 "canceled" instead of the 404 (seen
    once in a full run). This looks where a poll could, as RQ's Job.delete starts and as it returns."""
    job_id = post(client, images.photo_jpeg()).get_json()["id"]
    seen, original = [], Job.delete

    def look():
        try:
            seen.append(store.describe(job_id)["status"])
        except ApiError as error:
            seen.append(error.status)

    def delete_and_look(job, *args, **kwargs):
        look()
        original(job, *args, **kwargs)
        look()

    with app.app_context():
        assert job_id in store.get_queue().job_ids
    monkeypatch.setattr(Job, "delete", delete_and_look)
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 200 and response.get_json()["status"] == "canceled"
    assert seen == ["queued", "queued"]  # nothing of the deletion shows before its transaction runs
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    with app.app_context():
        assert job_id not in store.get_queue().job_ids  # off its queue: no worker takes it
