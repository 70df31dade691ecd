"""The JSON API against a real Redis, without a worker: enqueueing, deduplication, states, files,
cancelling, deleting, and the error shape for everything that is not there."""
import io
import json
import threading
import zipfile
from pathlib import Path

import pytest
from flask import url_for
from rq import Queue
from rq.job import Job, JobStatus

from app import create_app
from app.jobs import store
from service import presence
from tests.support.jobs import job_id_for, make_finished, post


def queue(app, redis_conn):
    return Queue(app.config["QUEUE_NAME"], connection=redis_conn)


# --- submitting ----------------------------------------------------------------------------------

def test_post_enqueues_by_dotted_path_with_ttls(app, client, redis_conn, images, check_against_spec):
    data = images.photo_jpeg()
    response = post(client, data, layers="block1_pool,block3_pool", top_k="2")
    assert response.status_code == 202
    body = response.get_json()
    check_against_spec("/api/jobs", "post", 202, body)
    assert body["id"] == job_id_for(data, layers="block1_pool,block3_pool", top_k="2")
    assert body["status"] == "queued" and body["reused"] is False
    assert response.headers["Location"] == body["links"]["self"] == f"/api/jobs/{body['id']}"
    assert body["links"]["page"] == f"/jobs/{body['id']}"

    job = Job.fetch(body["id"], connection=redis_conn)
    assert job.func_name == "service.jobs.photo.deconv"
    assert job.timeout == app.config["JOB_TIMEOUT"]
    assert job.result_ttl == app.config["RESULT_TTL"] and job.failure_ttl == app.config["FAILURE_TTL"]
    upload_path, results_root, key, options = job.args
    assert Path(upload_path).parent == Path(app.config["UPLOAD_DIR"]) and Path(upload_path).is_file()
    assert results_root == app.config["RESULTS_DIR"] and key == body["id"]
    assert options == {"layers": ["block1_pool", "block3_pool"], "top_k": 2, "channels": [], "mode": "single",
                       "rule": "deconvnet", "seed": "both", "rank": "norm", "reference": "", "fit": "squash"}
    assert queue(app, redis_conn).count == 1


def test_double_upload_reuses_the_job(app, client, redis_conn, images):
    data = images.photo_jpeg()
    first, second = post(client, data).get_json(), post(client, data)
    assert second.status_code == 202
    assert second.get_json()["id"] == first["id"] and second.get_json()["reused"] is True
    assert queue(app, redis_conn).count == 1
    assert len(list(Path(app.config["UPLOAD_DIR"]).iterdir())) == 1


def test_simultaneous_identical_uploads_enqueue_once(app, redis_conn, images):
    data = images.photo_jpeg(color=(1, 2, 3))
    results, barrier = [], threading.Barrier(6)

    def submit():
        barrier.wait()
        results.append(post(app.test_client(), data).get_json())

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({result["id"] for result in results}) == 1
    assert sorted(result["reused"] for result in results) == [False] + [True] * 5
    assert queue(app, redis_conn).count == 1


def test_different_options_are_different_jobs(app, client, redis_conn, images):
    data = images.photo_jpeg()
    ids = {post(client, data, top_k=str(k)).get_json()["id"] for k in (1, 2, 3)}
    assert len(ids) == 3 and queue(app, redis_conn).count == 3
    assert len(list(Path(app.config["UPLOAD_DIR"]).iterdir())) == 1  # one image, stored once


def test_a_finished_result_is_reused_without_enqueueing(app, client, redis_conn, images, check_against_spec):
    data = images.photo_jpeg()
    make_finished(app, job_id_for(data))
    response = post(client, data)
    assert response.status_code == 200
    body = response.get_json()
    check_against_spec("/api/jobs", "post", 200, body)
    assert body["status"] == "finished" and body["reused"] is True
    assert queue(app, redis_conn).count == 0


def test_from_job_reuses_the_stored_photo(app, client, redis_conn, images):
    data = images.photo_jpeg()
    first = post(client, data).get_json()
    response = client.post("/api/jobs", data={"from_job": first["id"], "top_k": "0", "channels": "block4_pool:11"})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["id"] == job_id_for(data, top_k="0", channels="block4_pool:11")
    assert body["options"]["channels"] == [["block4_pool", 11]]
    assert queue(app, redis_conn).count == 2


def test_a_job_made_from_another_links_to_it_and_is_listed_among_its_children(client, images, check_against_spec):
    data = images.photo_jpeg()
    first = post(client, data).get_json()
    assert first["parent"] is None and first["children"] == []
    projected = client.post("/api/jobs", data={"from_job": first["id"], "top_k": "0", "channels": "block4_pool:11"})
    view = client.post("/api/jobs", data={"from_job": first["id"], "method": "channel-rank", "channel": "5"})
    for response in (projected, view):
        check_against_spec("/api/jobs", "post", 202, response.get_json())
        assert response.get_json()["parent"]["id"] == first["id"]
        assert response.get_json()["parent"]["page"] == first["links"]["page"]
    # A grandchild's parent is the job it was made from; the first job stays a root when made again from it.
    grandchild = client.post("/api/jobs", data={"from_job": projected.get_json()["id"], "top_k": "2"}).get_json()
    assert grandchild["parent"]["id"] == projected.get_json()["id"]
    assert client.post("/api/jobs", data={"from_job": projected.get_json()["id"]}).get_json()["parent"] is None
    body = client.get(first["links"]["self"]).get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, body)
    assert body["parent"] is None
    assert sorted((child["id"], child["method"]) for child in body["children"]) == sorted(
        [(projected.get_json()["id"], "deconv"), (view.get_json()["id"], "channel-rank")])
    assert all(child["page"] == f"/jobs/{child['id']}" for child in body["children"])


def test_from_job_errors(client, images, nothing_stored):
    response = client.post("/api/jobs", data={"from_job": "f" * 32})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "job_not_found"
    response = client.post("/api/jobs", data={"from_job": "../../etc/passwd"})
    assert response.status_code == 404
    response = client.post("/api/jobs", data={"from_job": "f" * 32, "image": (io.BytesIO(images.photo_jpeg()), "a.jpg")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    nothing_stored()


# --- job states ----------------------------------------------------------------------------------

def test_queued_without_workers_says_it_waits(app, client, redis_conn, images, check_against_spec):
    job_id = post(client, images.photo_jpeg()).get_json()["id"]
    response = client.get(f"/api/jobs/{job_id}")
    body = response.get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, body)
    assert body["status"] == "queued" and body["queue_position"] == 0
    assert "waiting for a worker" in body["message"]
    presence.mark_alive(redis_conn, "w1", {})
    assert client.get(f"/api/jobs/{job_id}").get_json()["message"] is None


def _start(redis_conn, job_id, worker_name, progress=None):
    job = Job.fetch(job_id, connection=redis_conn)
    job.worker_name = worker_name
    job.save()
    job.set_status(JobStatus.STARTED)
    if progress:
        job.meta["progress"] = progress
        job.save_meta()
    return job


def test_started_job_shows_progress_while_its_worker_lives(client, redis_conn, images, check_against_spec):
    job_id = post(client, images.photo_jpeg()).get_json()["id"]
    presence.mark_alive(redis_conn, "w1", {})
    progress = {"stage": "projecting block3_pool", "stages": [
        {"name": "prepare", "label": "Reading the photo", "done": 1, "total": 1},
        {"name": "network", "label": "Projecting features", "done": 2, "total": 5},
        {"name": "write", "label": "Writing PNGs", "done": 0, "total": 1}]}
    _start(redis_conn, job_id, "w1", progress)
    body = client.get(f"/api/jobs/{job_id}").get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, body)
    assert body["status"] == "started" and body["progress"] == progress


# A started job whose worker died: tests/app/test_recovery.py.


def test_failed_job_has_a_readable_message(app, client, redis_conn, images, check_against_spec):
    data = images.photo_jpeg()
    job_id = post(client, data).get_json()["id"]
    job = Job.fetch(job_id, connection=redis_conn)
    job.meta["error"] = "top_k 9 exceeds the 8 channels of something"
    job.save_meta()
    job.set_status(JobStatus.FAILED)
    body = client.get(f"/api/jobs/{job_id}").get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, body)
    assert body["status"] == "failed" and body["message"] == "top_k 9 exceeds the 8 channels of something"


def test_cancel_a_queued_job(app, client, redis_conn, images, check_against_spec):
    data = images.photo_jpeg()
    job_id = post(client, data).get_json()["id"]
    response = client.post(f"/api/jobs/{job_id}/cancel")
    check_against_spec("/api/jobs/{job_id}/cancel", "post", 200, response.get_json())
    assert response.status_code == 200 and response.get_json()["status"] == "canceled"
    assert queue(app, redis_conn).count == 0
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "canceled"
    again = client.post(f"/api/jobs/{job_id}/cancel")
    assert again.status_code == 409
    check_against_spec("/api/jobs/{job_id}/cancel", "post", 409, again.get_json())
    resubmitted = post(client, data)
    assert resubmitted.status_code == 202 and resubmitted.get_json()["status"] == "queued"
    assert queue(app, redis_conn).count == 1


def test_cannot_cancel_a_started_or_finished_job(app, client, redis_conn, images):
    job_id = post(client, images.photo_jpeg()).get_json()["id"]
    presence.mark_alive(redis_conn, "w1", {})
    _start(redis_conn, job_id, "w1")
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 409
    finished = "e" * 32
    make_finished(app, finished)
    response = client.post(f"/api/jobs/{finished}/cancel")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "not_cancellable"


def test_delete_cancels_a_queued_job_and_removes_it(app, client, redis_conn, images, check_against_spec):
    """DELETE removes; on a queued job it still answers what it answered when it only cancelled (200, status
    canceled: the deprecated body), so that its old callers keep working."""
    data = images.photo_jpeg()
    job_id = post(client, data).get_json()["id"]
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 200 and response.get_json()["status"] == "canceled"
    check_against_spec("/api/jobs/{job_id}", "delete", 200, response.get_json())
    assert queue(app, redis_conn).count == 0 and list(redis_conn.scan_iter(match="rq:job:*")) == []
    gone = client.get(f"/api/jobs/{job_id}")
    assert gone.status_code == 404
    check_against_spec("/api/jobs/{job_id}", "get", 404, gone.get_json())
    assert client.delete(f"/api/jobs/{job_id}").status_code == 404
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 404
    assert post(client, data).get_json()["status"] == "queued"  # the same photo and options may come again


def test_delete_removes_a_finished_job_and_its_files(app, client, redis_conn):
    parent, job_id = "d" * 32, "e" * 32
    folder = make_finished(app, job_id)
    redis_conn.set(f"visnet:lineage:parent:{job_id}", parent)
    redis_conn.hset(f"visnet:lineage:children:{parent}", job_id, "deconv")
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 200 and response.get_json()["status"] == "finished"
    assert not folder.exists() and list(folder.parent.iterdir()) == []
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    assert client.get(f"/api/jobs/{job_id}/archive.zip").status_code == 404
    assert redis_conn.hgetall(f"visnet:lineage:children:{parent}") == {}
    assert not redis_conn.exists(f"visnet:lineage:parent:{job_id}")


def test_a_running_job_cannot_be_deleted(app, client, redis_conn, images, check_against_spec):
    job_id = post(client, images.photo_jpeg()).get_json()["id"]
    presence.mark_alive(redis_conn, "w1", {})
    _start(redis_conn, job_id, "w1")
    response = client.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "not_deletable"
    check_against_spec("/api/jobs/{job_id}", "delete", 409, response.get_json())
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "started"


def test_a_405_names_the_methods_the_url_takes(client):
    response = client.open("/api/jobs/" + "f" * 32, method="TRACE")
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "DELETE"}


# --- finished jobs and their files ---------------------------------------------------------------

def test_finished_job_lists_every_png_with_a_url(app, client, check_against_spec):
    job_id = "a" * 32
    folder = make_finished(app, job_id, layers=("block1_pool", "block5_pool"))
    body = client.get(f"/api/jobs/{job_id}").get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, body)
    assert body["status"] == "finished"
    assert {entry["name"] for entry in body["files"]} == {path.name for path in folder.glob("*.png")}
    feature = body["manifest"]["layers"][0]["features"][0]
    assert feature["overlay_url"] == f"/api/jobs/{job_id}/files/{feature['overlay']}"
    assert body["manifest"]["summary_url"] == f"/api/jobs/{job_id}/files/summary.png"
    assert body["timings"] == {"total_seconds": 2.0}
    with app.test_request_context(base_url="http://localhost/visnet"):  # the URLs are url_for's, a prefix too
        assert store.describe(job_id)["files"] == [
            {"name": entry["name"], "url": url_for("api.job_file", job_id=job_id, name=entry["name"])}
            for entry in body["files"]]
        assert all(entry["url"].startswith("/visnet/api/") for entry in store.describe(job_id)["files"])
    for entry in body["files"]:
        response = client.get(entry["url"])
        assert response.status_code == 200
        assert response.mimetype == "image/png"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.data == (folder / entry["name"]).read_bytes()


def test_archive_holds_the_manifest_and_every_png(app, client):
    job_id = "b" * 32
    folder = make_finished(app, job_id)
    response = client.get(f"/api/jobs/{job_id}/archive.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = set(archive.namelist())
        assert names == {f"{job_id}/{path.name}" for path in folder.iterdir() if path.suffix in (".png", ".json")
                         and path.name != "job.json"}
        assert json.loads(archive.read(f"{job_id}/manifest.json"))["weights"] == "hed"



def test_archive_is_streamed_and_memory_does_not_grow_with_its_size(app, client, tmp_path):
    """Issue 10, point 10: a 64 MB job's archive is sent as it is zipped, so the web process never
    holds it whole (traced Python allocations stay under 8 MB), and the ZIP is complete and valid."""
    import tracemalloc

    job_id = "d" * 32
    folder = make_finished(app, job_id)
    for index in range(8):  # sparse files: 8 MB each of zeros, nothing written to the disk
        with open(folder / f"big{index}.png", "wb") as handle:
            handle.truncate(8 * 2**20)
    expected = {path.name: path.stat().st_size for path in folder.iterdir() if path.suffix in (".png", ".json")
                and path.name != "job.json"}
    received = tmp_path / "archive.zip"
    tracemalloc.start()
    try:
        response = client.get(f"/api/jobs/{job_id}/archive.zip")
        assert response.status_code == 200 and response.mimetype == "application/zip"
        with open(received, "wb") as out:
            for piece in response.response:
                out.write(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received.stat().st_size > 64 * 2**20
    assert peak < 8 * 2**20, f"the web process held {peak / 2**20:.0f} MiB for the archive"
    assert "attachment" in response.headers["Content-Disposition"]
    with zipfile.ZipFile(received) as archive:
        assert archive.testzip() is None  # every member's CRC checks
        assert {info.filename: info.file_size for info in archive.infolist()} == {
            f"{job_id}/{name}": size for name, size in expected.items()}

def test_archive_of_an_unfinished_job_is_409(client, images, check_against_spec):
    job_id = post(client, images.photo_jpeg()).get_json()["id"]
    response = client.get(f"/api/jobs/{job_id}/archive.zip")
    assert response.status_code == 409
    check_against_spec("/api/jobs/{job_id}/archive.zip", "get", 409, response.get_json())


@pytest.mark.parametrize("path", [
    "/api/jobs/" + "c" * 32,
    "/api/jobs/not-a-job",
    "/api/jobs/" + "C" * 32,
    "/api/jobs/" + "x" * 5000,
    "/api/jobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/api/jobs/../../etc/passwd",
    "/api/jobs/" + "c" * 32 + "/files/a.png",
    "/api/jobs/" + "c" * 32 + "/archive.zip",
    "/api/jobs/not-a-job/files/a.png",
    "/api/jobs/not-a-job/archive.zip",
    "/api/jobs/%00/files/a.png",
])
def test_unknown_or_malformed_ids_are_404(client, path):
    for method in ("get", "delete") if path.count("/") == 3 else ("get",):
        response = getattr(client, method)(path)
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.is_json and response.get_json()["error"]["message"]


@pytest.mark.parametrize("name", [
    "missing.png", "manifest.json", "job.json", "../manifest.json", "..%2fmanifest.json", "%2e%2e/%2e%2e/etc/passwd",
    "../../../../etc/passwd", ".hidden.png", "a" * 300 + ".png", "sub/dir.png", "summary.png%00.txt",
])
def test_unknown_or_hostile_file_names_are_404(app, client, name):
    job_id = "d" * 32
    make_finished(app, job_id)
    response = client.get(f"/api/jobs/{job_id}/files/{name}")
    assert response.status_code == 404, name
    assert response.is_json


# --- model, health, errors -----------------------------------------------------------------------

def test_model_before_and_after_a_worker_published(client, redis_conn, check_against_spec):
    body = client.get("/api/model").get_json()
    check_against_spec("/api/model", "get", 200, body)
    assert body["source"] == "architecture" and body["weights"] is None and body["weights_description"] is None
    assert {layer["name"]: layer["channels"] for layer in body["layers"]}["block5_pool"] == 512
    presence.publish_model(redis_conn, {"weights": "hed", "has_classifier": False, "device": "cpu",
                                        "layers": body["layers"], "weights_path": "/x"})
    body = client.get("/api/model").get_json()
    check_against_spec("/api/model", "get", 200, body)
    assert body["source"] == "worker" and body["weights"] == "hed" and body["has_classifier"] is False
    assert body["weights_description"] == "hed weights"  # a worker that published no words: the name
    presence.publish_model(redis_conn, {"weights": "hed", "weights_description": "HED edge-detector VGG16 (…)",
                                        "has_classifier": False, "device": "cpu", "layers": body["layers"]})
    assert client.get("/api/model").get_json()["weights_description"] == "HED edge-detector VGG16 (…)"


def test_health(app, client, redis_conn, images, check_against_spec):
    body = client.get("/api/health").get_json()
    check_against_spec("/api/health", "get", 200, body)
    assert body["status"] == "degraded" and body["redis"]["reachable"] and body["workers"]["alive"] == 0
    post(client, images.photo_jpeg())
    presence.mark_alive(redis_conn, "w1", {"weights": "hed"})
    body = client.get("/api/health").get_json()
    assert body["status"] == "ok" and body["workers"] == {"alive": 1, "names": ["w1"]}
    assert body["queue"] == {"name": app.config["QUEUE_NAME"], "length": 1, "cap": app.config["QUEUE_CAP"],
                             "started": 0}


def test_without_redis_the_api_answers_503_and_pages_still_load(app_config, images, tmp_path, check_against_spec):
    app = create_app({**app_config, "REDIS_URL": f"unix://{tmp_path}/nothing-here.sock"})
    client = app.test_client()
    response = post(client, images.photo_jpeg())
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "queue_unavailable"
    check_against_spec("/api/jobs", "post", 503, response.get_json())
    assert list(Path(app.config["UPLOAD_DIR"]).iterdir()) == []
    response = client.get("/api/jobs/" + "a" * 32)
    assert response.status_code == 503
    response = client.get("/api/health")
    check_against_spec("/api/health", "get", 503, response.get_json())
    assert response.status_code == 503 and response.get_json()["redis"]["reachable"] is False
    assert client.get("/jobs/" + "a" * 32).status_code == 200
    assert client.get("/").status_code == 200


def test_api_errors_are_json_and_pages_errors_are_html(client):
    response = client.put("/api/jobs")
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"
    response = client.get("/api/nothing")
    assert response.status_code == 404 and response.is_json
    response = client.get("/nothing")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_unexpected_errors_are_a_json_500_without_traceback(app, client, monkeypatch):
    from app.jobs import store as jobstore

    def broken(job_id):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(jobstore, "describe", broken)
    response = client.get("/api/jobs/" + "a" * 32)
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True)
