"""Expiry (service.cleanup): results, uploads and ended scans older than the retention go, what is young
or still in use stays; once per interval across processes; from the CLI and in the background."""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rq import Queue
from rq.job import Job

from app import cleanup as web_cleanup
from app import create_app
from service import cleanup
from tests.support.jobs import job_id_for, make_finished, post
from tests.support.paths import PROJECT_ROOT
from visnet.scan import ScanOptions, create_scan
from visnet.scan import store as scan_store
from visnet.settings import model_queue_name

HOUR = 3600
EXAMPLES = PROJECT_ROOT / "static" / "examples"


def age(path: Path, hours: float):
    """Set the mtime of ``path`` and everything under it ``hours`` into the past."""
    when = time.time() - hours * HOUR
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (when, when), follow_symlinks=False)


def make_scan(results_dir: Path, name: str, state: str) -> Path:
    """A planned scan (two example photos, no projections) that is done, failed or still pending."""
    scan_dir = results_dir / "scans" / (name * 32)
    create_scan(scan_dir, EXAMPLES, ScanOptions(layers="block1_pool", k=1, project_channels=0),
                images=["chelsea.jpg", "coffee.jpg"])
    if state == "done":
        (scan_dir / scan_store.TOPK_JSON).write_text("{}")
    elif state == "failed":
        scan_store.write_failure(scan_dir, "stopped")
    return scan_dir


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(app, redis_conn, **kwargs):
    return cleanup.run_cleanup(app.config["RESULTS_DIR"], app.config["UPLOAD_DIR"], redis_conn,
                               app.config["QUEUE_NAME"], 24 * HOUR, job_timeout=600, **kwargs)


def test_what_has_expired_goes_and_the_rest_stays(app, client, redis_conn, images):
    results, uploads = Path(app.config["RESULTS_DIR"]), Path(app.config["UPLOAD_DIR"])
    old_photo, young_photo, queued_photo = (images.photo_jpeg(color=(n, n, n)) for n in (1, 2, 3))
    old_result, young_result = make_finished(app, job_id_for(old_photo)), make_finished(app, job_id_for(young_photo))
    for data in (old_photo, young_photo, queued_photo):
        assert post(client, data, top_k="1").status_code == 202  # stores the upload; queues a job
    queue = Queue(app.config["QUEUE_NAME"], connection=redis_conn)
    for job_id in list(queue.job_ids):
        if Job.fetch(job_id, connection=redis_conn).meta["image"]["name"] != f"{_sha(queued_photo)}.jpg":
            queue.remove(job_id)  # only the third photo's job still waits
    age(old_result, 25)
    age(uploads / f"{_sha(old_photo)}.jpg", 25)
    age(uploads / f"{_sha(queued_photo)}.jpg", 25)  # old, but a queued job will read it
    stale_partial = results / ".tmp-0123-abcd"
    stale_partial.mkdir()
    age(stale_partial, 25)
    (uploads / ".upload-stale").write_bytes(b"half")
    age(uploads / ".upload-stale", 25)
    young_partial = results / ".tmp-4567-efgh"  # a worker may be writing this one
    young_partial.mkdir()
    ended, failed, running, young_scan = (make_scan(results, "a", "done"), make_scan(results, "b", "failed"),
                                          make_scan(results, "c", "pending"), make_scan(results, "d", "done"))
    # Uploaded scans before a worker planned them: one whose planning failed, one still waiting.
    unplanned_failed, planning = results / "scans" / ("e" * 32), results / "scans" / ("f" * 32)
    for folder in (unplanned_failed, planning):
        (folder / scan_store.IMAGES_DIR).mkdir(parents=True)
        (folder / scan_store.IMAGES_DIR / "chelsea.jpg").write_bytes((EXAMPLES / "chelsea.jpg").read_bytes())
        (folder / "upload.json").write_text("{}")
    scan_store.write_failure(unplanned_failed, "every image is greyscale")
    for scan_dir in (ended, failed, running, unplanned_failed, planning):
        age(scan_dir, 30)

    report = run(app, redis_conn)

    assert report["results"] == [old_result.name]
    assert report["uploads"] == [f"{_sha(old_photo)}.jpg"]
    assert report["scans"] == sorted([ended.name, failed.name, unplanned_failed.name])
    assert report["partial"] == sorted([".tmp-0123-abcd", ".upload-stale"])
    assert report["kept_in_use"] == 1 and report["errors"] == []
    assert not old_result.exists() and young_result.is_dir()
    assert sorted(path.name for path in uploads.iterdir()) == sorted(
        f"{_sha(data)}.jpg" for data in (young_photo, queued_photo))
    assert sorted(path.name for path in (results / "scans").iterdir()) == sorted(
        [running.name, young_scan.name, planning.name])
    assert young_partial.is_dir()



def test_a_partial_result_goes_once_no_attempt_can_be_writing_it(app, redis_conn):
    """A killed job's ``.tmp-*`` folder goes once older than the job timeout (600 s here) plus the margin,
    long before the retention (24 h); a younger one may be a running job's and stays."""
    results = Path(app.config["RESULTS_DIR"])
    results.mkdir(parents=True, exist_ok=True)
    stale, running = results / f".tmp-{'a' * 32}-x1", results / f".tmp-{'b' * 32}-x2"
    for folder, hours in ((stale, 1), (running, 10 / 60)):  # 10 minutes: under 600 s + the margin
        folder.mkdir()
        (folder / "block1_pool_ch0.png").write_bytes(b"half")
        age(folder, hours)
    assert run(app, redis_conn, dry_run=True)["partial"] == [stale.name] and stale.is_dir()
    assert run(app, redis_conn)["partial"] == [stale.name]
    assert not stale.exists() and running.is_dir()


def test_an_expired_result_then_answers_404(app, client, redis_conn, images):
    data = images.photo_jpeg(color=(7, 7, 7))
    job_id = job_id_for(data)
    folder = make_finished(app, job_id)
    record = Job.create("service.jobs.photo.deconv", connection=redis_conn, id=job_id, origin=app.config["QUEUE_NAME"])
    record.set_status("finished")
    record.save()
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "finished"
    age(folder, 48)
    run(app, redis_conn)
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 404 and "expired" in response.get_json()["error"]["message"]
    assert client.get(f"/api/jobs/{job_id}/archive.zip").status_code == 404
    assert post(client, data).status_code == 202  # submitting again computes it again


def test_a_dry_run_deletes_nothing(app, redis_conn, images):
    folder = make_finished(app, job_id_for(images.photo_jpeg()))
    age(folder, 48)
    report = run(app, redis_conn, dry_run=True)
    assert report["dry_run"] is True and report["results"] == [folder.name]
    assert (folder / "manifest.json").is_file()


def test_reusing_an_old_upload_makes_it_young_again(app, client, redis_conn, images):
    data = images.photo_jpeg(color=(5, 6, 7))
    assert post(client, data, top_k="1").status_code == 202
    stored = Path(app.config["UPLOAD_DIR"]) / f"{_sha(data)}.jpg"
    Queue(app.config["QUEUE_NAME"], connection=redis_conn).empty()
    age(stored, 48)
    assert post(client, data, top_k="2").status_code == 202  # a new job on the same photo
    Queue(app.config["QUEUE_NAME"], connection=redis_conn).empty()
    assert run(app, redis_conn)["uploads"] == [] and stored.is_file()


def test_one_run_per_interval_across_processes(app_config, redis_conn, images):
    first = create_app({**app_config, "CLEANUP_INTERVAL": 120, "RETENTION_HOURS": 1})
    second = create_app({**app_config, "CLEANUP_INTERVAL": 120, "RETENTION_HOURS": 1})
    folder = make_finished(first, job_id_for(images.photo_jpeg()))
    age(folder, 2)
    report = web_cleanup.run_if_due(first)
    assert report["results"] == [folder.name]
    assert web_cleanup.run_if_due(second) is None and web_cleanup.run_if_due(first) is None
    lock_ttl = redis_conn.ttl(f"visnet:cleanup:{app_config['QUEUE_NAME']}:lock")
    assert 110 <= lock_ttl <= 120
    last = json.loads(redis_conn.get(cleanup.last_run_key(app_config["QUEUE_NAME"])))
    assert last["results"] == 1 and last["uploads"] == 0 and last["by"].endswith(f":{os.getpid()}")


def test_the_background_thread_cleans_without_a_request(app_config, images):
    app = create_app({**app_config, "CLEANUP_INTERVAL": 1, "RETENTION_HOURS": 1})
    folder = make_finished(app, job_id_for(images.photo_jpeg()))
    age(folder, 2)
    periodic = web_cleanup.start_periodic(app, 1, first_check=0.1)
    try:
        deadline = time.monotonic() + 10
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not folder.exists()
    finally:
        periodic.stop()


def test_the_web_app_starts_the_thread_unless_testing_or_switched_off(app_config):
    assert "visnet.cleanup" not in create_app(app_config).extensions  # TESTING
    assert "visnet.cleanup" not in create_app({**app_config, "TESTING": False, "CLEANUP_INTERVAL": 0}).extensions
    app = create_app({**app_config, "TESTING": False, "CLEANUP_INTERVAL": 3600})
    periodic = app.extensions["visnet.cleanup"]
    try:
        assert periodic.interval == 3600 and periodic._thread.is_alive() and periodic._thread.daemon
    finally:
        periodic.stop()


def test_the_command_line(app_config, redis_url, images, tmp_path):
    app = create_app(app_config)
    old = make_finished(app, job_id_for(images.photo_jpeg()))
    young = make_finished(app, job_id_for(images.photo_png()))
    age(old, 3)
    partial = Path(app_config["RESULTS_DIR"]) / f".tmp-{'c' * 32}-x3"  # a killed job's, older than its timeout
    partial.mkdir()
    age(partial, 1)
    env = {"PATH": os.environ["PATH"], "REDIS_URL": redis_url, "RESULTS_DIR": app_config["RESULTS_DIR"],
           "UPLOAD_DIR": app_config["UPLOAD_DIR"], "VISNET_QUEUE": app_config["QUEUE_NAME"],
           "VISNET_INSTANCE_DIR": str(tmp_path / "instance"), "VISNET_RETENTION_HOURS": "2"}
    command = [sys.executable, "-m", "service.cleanup"]
    dry = subprocess.run(command + ["--dry-run"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["results"] == [old.name] and old.is_dir()
    assert json.loads(dry.stdout)["partial"] == [partial.name] and partial.is_dir()
    done = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and json.loads(done.stdout)["results"] == [old.name]
    assert not old.exists() and young.is_dir()
    wider = subprocess.run(command + ["--hours", "0.0001"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert json.loads(wider.stdout)["results"] == [young.name]
    refused = subprocess.run(command + ["--hours", "0"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "--hours must be greater than 0" in refused.stderr


def test_an_old_upload_a_stored_models_queued_job_reads_stays(app, redis_conn, images):
    uploads = Path(app.config["UPLOAD_DIR"])
    photo = images.photo_jpeg(color=(9, 9, 9))
    path = uploads / f"{_sha(photo)}.jpg"
    path.write_bytes(photo)
    age(path, 25)
    Queue(model_queue_name(app.config["QUEUE_NAME"], "tiny"), connection=redis_conn).enqueue_call(
        "service.jobs.photo.deconv", args=(str(path), app.config["RESULTS_DIR"], "a" * 32, {}),
        meta={"image": {"name": path.name}})
    report = run(app, redis_conn)
    assert report["uploads"] == [] and report["kept_in_use"] == 1 and path.is_file()
