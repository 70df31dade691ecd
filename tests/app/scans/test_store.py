"""What app.scans.store (and the service functions it calls) keeps on disk and in Redis: no pixel
decoded in the request, nothing half-written on a full disk, the planning job looked after on every
poll, and progress read from the folder while Redis is down."""

import io
import json

import pytest
from PIL import Image
from rq import Queue
from rq.job import Job, JobStatus

from app import create_app
from tests.support.disks import tiny_tmpfs
from tests.support.scan_api import build_finished_scan, good_zip, make_zip, png, queued_ids, scans_root, upload
from visnet.scan import ScanOptions, create_scan
from visnet.settings import scan_queue_name


def test_an_upload_decodes_no_pixel_and_the_planning_reports_broken_images(app_config, redis_conn, monkeypatch):
    """Issue 10, point 11: decoding is the planning job's work (a worker), not the request's. Big-pixel
    images are streamed to disk with only their headers read; one that does not decode is kept by the
    upload and reported by the planning, in the scan's ``skipped``."""
    from PIL import ImageFile

    app = create_app({**app_config, "MAX_IMAGE_PIXELS": 36_000_000})
    client = app.test_client()
    big = io.BytesIO()
    Image.new("L", (6000, 6000), 128).save(big, "PNG")  # 36 megapixels, a few kB compressed
    archive = make_zip({"big1.png": big.getvalue(), "big2.png": big.getvalue(), "good.png": png(1),
                        "broken.png": png(2)[:60]})
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size) or real_load(image))
    response = upload(client, archive, layers="block1_pool")
    assert response.status_code == 202, response.get_data(as_text=True)
    assert decoded == []  # no pixel decoded in the request
    document = response.get_json()
    assert document["archive"]["images"] == 4 and document["archive"]["skipped"] == []

    # What the worker runs: the queued planning job's arguments, planned in this process.
    job = Job.fetch(f"scanstart-{document['id']}-1", connection=redis_conn)
    scan_folder, image_root, options = job.args
    create_scan(scan_folder, image_root, ScanOptions(**options), max_image_pixels=job.kwargs["max_image_pixels"])
    assert decoded.count((6000, 6000)) == 2  # the planning decodes them
    planned = client.get(f"/api/scans/{document['id']}").get_json()
    assert planned["images"] == 3
    assert [entry["path"] for entry in planned["skipped"]] == ["broken.png"]
    reason = planned["skipped"][0]["reason"]
    assert reason.startswith("unreadable:") and "does not decode" in reason, reason


@pytest.fixture
def full_disk(tmp_path):
    """A tmpfs of 16 KiB as the results disk: room for the folders, not for an image."""
    with tiny_tmpfs(tmp_path / "full-disk", "16k") as mount_point:
        yield mount_point


def test_a_full_upload_disk_is_a_507_and_nothing_is_half_written(app_config, redis_conn, full_disk,
                                                                  check_against_spec):
    """Issue 10, point 5 (scans): the API answers 507 JSON, the form shows itself again with the reason."""
    client = create_app({**app_config, "RESULTS_DIR": str(full_disk)}).test_client()
    archive = make_zip({"a.png": png(1, (200, 200)), "b.png": png(2, (200, 200))})  # ~120 kB each

    def nothing_kept():
        assert [path for path in full_disk.rglob("*") if not path.is_dir()] == []
        assert list((full_disk / "scans").iterdir()) == []
        assert queued_ids(client.application, redis_conn) == [] and list(redis_conn.scan_iter(match="rq:job:*")) == []

    response = upload(client, archive)
    assert response.status_code == 507, response.get_data(as_text=True)
    body = response.get_json()
    check_against_spec("/api/scans", "post", 507, body)
    assert body["error"]["code"] == "insufficient_storage" and "disk for uploads is full" in body["error"]["message"]
    nothing_kept()
    page = client.post("/scans", data={"archive": (io.BytesIO(archive), "set.zip"), "layer": "block1_pool"},
                       content_type="multipart/form-data")
    html = page.get_data(as_text=True)
    assert page.status_code == 507 and "disk for uploads is full" in html and 'id="scan-form"' in html
    nothing_kept()


def _mark_started_by_a_dead_worker(redis_conn, job_id):
    job = Job.fetch(job_id, connection=redis_conn)
    job.worker_name = "visnet-gone-12345"  # no presence key: that worker is not alive
    job.set_status(JobStatus.STARTED)
    job.save()


def test_a_planning_job_whose_worker_died_is_enqueued_again_then_given_up(client, app, redis_conn):
    scan_id = upload(client, good_zip()).get_json()["id"]
    for attempt in (1, 2, 3):
        _mark_started_by_a_dead_worker(redis_conn, f"scanstart-{scan_id}-{attempt}")
        document = client.get(f"/api/scans/{scan_id}").get_json()
        if attempt < 3:
            assert document["status"] == "planning"
            assert f"scanstart-{scan_id}-{attempt + 1}" in queued_ids(app, redis_conn)
    assert document["status"] == "failed"
    assert document["message"] == "planning was interrupted 3 times (its worker stopped); upload the archive again"
    assert json.loads((scans_root(app) / scan_id / "failed.json").read_text())["error"] == document["message"]
    assert client.get("/api/scans").get_json()["scans"][0]["status"] == "failed"
    assert client.get(f"/api/scans/{scan_id}/layers/block1_pool").status_code == 409


def test_a_scan_planned_by_a_worker_that_died_before_enqueuing_is_enqueued_by_the_poll(client, app, redis_conn):
    scan_id = upload(client, good_zip(), layers="block1_pool", chunk_size="3").get_json()["id"]
    folder = scans_root(app) / scan_id
    job_id = f"scanstart-{scan_id}-1"
    job = Job.fetch(job_id, connection=redis_conn)
    create_scan(job.args[0], job.args[1], ScanOptions.from_dict(job.args[2]))  # what the start job did first
    _mark_started_by_a_dead_worker(redis_conn, job_id)
    Queue(scan_queue_name(app.config["QUEUE_NAME"]), connection=redis_conn).remove(job_id)

    document = client.get(f"/api/scans/{scan_id}").get_json()
    assert document["status"] == "pending" and "enqueued now" in document["message"]
    assert document["images"] == 4 and document["progress"]["chunks_total"] == 2
    assert queued_ids(app, redis_conn) == [f"scan-{scan_id}-chunk-00000-1", f"scan-{scan_id}-chunk-00001-1"]
    following = client.get(f"/api/scans/{scan_id}").get_json()  # nothing enqueued twice
    assert following["message"].startswith("waiting for a worker")
    assert len(queued_ids(app, redis_conn)) == 2
    assert (folder / "scan.json").is_file()


def test_progress_is_answered_from_the_folder_when_redis_is_down(app_config, tmp_path):
    app = create_app({**app_config, "REDIS_URL": f"unix://{tmp_path}/nothing-listens-here.sock"})
    scan_id, _, _ = build_finished_scan(scans_root(app))
    response = app.test_client().get(f"/api/scans/{scan_id}")
    assert response.status_code == 200
    document = response.get_json()
    assert document["status"] == "done" and "Redis" in document["message"]
