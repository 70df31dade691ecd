"""The dataset scans' JSON API (app.scans.api) without a worker: upload checks (bad ZIPs, zip-slip, no
images, bad options, size limits, the queue cap), unknown ids, and browsing a finished scan whose chunk
files are written here by hand (the network's part is tested in tests/visnet/scan and, through the live
service, in tests/integration/test_scan_service.py)."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from rq import Queue
from rq.job import Job

from app import create_app
from app.scans import store as scans_store
from tests.support.scan_api import POOLS, K, good_zip, make_zip, png, queued_ids, scans_root, upload
from visnet.scan import ScanOptions, store
from visnet.scan.units import projected_units


def test_an_upload_is_extracted_and_its_planning_job_queued(client, app, redis_conn, check_against_spec):
    response = upload(client, good_zip(), layers="block1_pool, block3_pool", k="4", skip_grey="true",
                      image_size="256", chunk_size="2", project_channels="3")
    assert response.status_code == 202, response.get_data(as_text=True)
    document = response.get_json()
    check_against_spec("/api/scans", "post", 202, document)
    scan_id = document["id"]
    assert response.headers["Location"] == f"/api/scans/{scan_id}" == document["links"]["self"]
    assert document["status"] == "planning" and document["message"].startswith("waiting for a worker")
    assert document["options"]["layers"] == ["block1_pool", "block3_pool"]
    assert (document["options"]["k"], document["options"]["skip_grey"], document["options"]["image_size"],
            document["options"]["chunk_size"], document["options"]["project_channels"]) == (4, True, 256, 2, 3)
    assert document["archive"]["images"] == 4
    assert {entry["name"] for entry in document["archive"]["skipped"]} == {"readme.txt", "__MACOSX/._a.png"}
    assert [layer["name"] for layer in document["layers"]] == ["block1_pool", "block3_pool"]
    assert document["planning"] == {"done": 0, "total": 4} and document["progress"] is None

    folder = scans_root(app) / scan_id
    assert sorted(path.relative_to(folder / "images").as_posix() for path in (folder / "images").rglob("*.png")) == [
        "a.png", "b.png", "sub/c.png", "sub/d.png"]
    assert not (folder / "images" / "readme.txt").exists() and not (folder / "scan.json").exists()
    assert queued_ids(app, redis_conn) == [f"scanstart-{scan_id}-1"]  # on the scans' queue, not the photos'
    assert Queue(app.config["QUEUE_NAME"], connection=redis_conn).job_ids == []
    job = Job.fetch(f"scanstart-{scan_id}-1", connection=redis_conn)
    assert job.func_name == "service.jobs.scan.start"
    assert job.args[0] == str(folder.resolve()) and job.args[1] == str((folder / "images").resolve())
    assert ScanOptions.from_dict(job.args[2]) == ScanOptions(layers="block1_pool,block3_pool", k=4, skip_grey=True,
                                                             image_size=256, chunk_size=2, project_channels=3)
    assert job.timeout == app.config["JOB_TIMEOUT"]

    again = client.get(f"/api/scans/{scan_id}")
    assert again.status_code == 200 and again.get_json()["status"] == "planning"
    listed = client.get("/api/scans").get_json()
    check_against_spec("/api/scans", "get", 200, listed)
    assert [(scan["id"], scan["status"], scan["images"]) for scan in listed["scans"]] == [(scan_id, "planning", None)]
    assert client.get(f"/scans/{scan_id}").status_code == 200
    assert scan_id[:8] in client.get("/scans").get_data(as_text=True)


def test_the_default_options_are_the_five_pools_k_9(client):
    document = upload(client, make_zip({"x.png": png(5)})).get_json()
    assert document["options"]["layers"] == POOLS
    assert (document["options"]["k"], document["options"]["skip_grey"], document["options"]["image_size"]) == (9, False, 224)


def test_project_k_above_k_projects_all_k(client):
    options = upload(client, good_zip(), k="3", project_k="5").get_json()["options"]
    assert (options["k"], options["project_k"]) == (3, 3)


def test_scan_archives_have_their_own_size_limit(app_config, redis_url):
    # app_config's MAX_CONTENT_LENGTH (photos) is 2 MiB; a 3 MiB archive is fine under the scan limit.
    big = make_zip({f"noise{index}.png": png(index, (700, 500)) for index in range(3)}, zipfile.ZIP_STORED)
    assert 2.5 * 2**20 < len(big) < 4 * 2**20
    roomy = create_app({**app_config, "MAX_SCAN_UPLOAD_BYTES": 8 * 2**20}).test_client()
    assert upload(roomy, big).status_code == 202
    tight = create_app({**app_config, "MAX_SCAN_UPLOAD_BYTES": 2**20}).test_client()
    response = upload(tight, big)
    assert response.status_code == 413
    assert response.get_json()["error"]["message"] == "the request body is larger than the limit of 1 MiB"
    page = tight.post("/scans", data={"archive": (io.BytesIO(big), "big.zip"), "layer": "block1_pool"},
                      content_type="multipart/form-data")
    assert page.status_code == 413 and "larger than the limit of 1 MiB" in page.get_data(as_text=True)
    assert 'id="scan-form"' in page.get_data(as_text=True)


def _truncated_zip():
    data = good_zip()
    return data[: len(data) // 2]


def _zip_slip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.png", png(1))
        archive.writestr(zipfile.ZipInfo("../../escaped.png"), png(2))
    return buffer.getvalue()


def _absolute_member():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("/tmp/visnet-absolute.png"), png(2))
    return buffer.getvalue()


def _bomb():
    # One member of 40 MB of zeros, compressed ~1000×: refused by its ratio while it is decompressed.
    return make_zip({"bomb.png": b"\x89PNG\r\n\x1a\n" + bytes(40 * 2**20)})


@pytest.mark.parametrize("data, status, code, words", [
    (None, 400, "missing_archive", "archive"),
    (b"", 400, "empty_file", "empty"),
    (png(1), 415, "not_a_zip", "not a ZIP"),
    (b"just text, called images.zip", 415, "not_a_zip", "not a ZIP"),
    (_truncated_zip(), 422, "unsafe_archive", "ZIP"),
    (_zip_slip(), 422, "unsafe_archive", "'..'"),
    (_absolute_member(), 422, "unsafe_archive", "absolute path"),
    (_bomb(), 422, "unsafe_archive", "compression ratio"),
    (make_zip({"readme.txt": b"hello", "notes/more.md": b"# notes"}), 422, "no_images", "readme.txt"),
    (make_zip({"fake.png": b"\x89PNG\r\n\x1a\n not a png", "fake.jpg": b"\xff\xd8\xff\xe0 not a jpeg"}), 422,
     "no_images", "fake.png"),
    (make_zip({}), 422, "no_images", "no image"),
], ids=["no-archive", "empty", "a-photo", "text", "truncated", "zip-slip", "absolute", "bomb", "no-images",
        "only-broken-images", "empty-zip"])
def test_bad_archives_are_refused_and_nothing_is_kept(client, no_scan_stored, check_against_spec, data, status,
                                                      code, words, tmp_path):
    response = upload(client, data)
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    check_against_spec("/api/scans", "post", status, body)
    assert body["error"]["code"] == code and words in body["error"]["message"]
    no_scan_stored()
    assert not Path("/tmp/visnet-absolute.png").exists()
    assert not list(tmp_path.rglob("escaped.png"))


@pytest.mark.parametrize("fields, words", [
    ({"k": "0"}, "k must be a whole number from 1 to 64"),
    ({"k": "many"}, "k: 'many' is not a whole number"),
    ({"layers": "block9_pool"}, "unknown layer 'block9_pool'"),
    ({"layers": " , "}, "no layers requested"),
    ({"image_size": "100"}, "image_size must be a whole number from 224"),
    ({"skip_grey": "perhaps"}, "skip_grey: 'perhaps' is not true or false"),
    ({"project_k": "0"}, "project_k must be a whole number from 1 to"),
    ({"chunk_size": "2.5"}, "chunk_size: '2.5' is not a whole number"),
    ({"colour": "yes"}, "unknown scan options ['colour']"),
    ({"batch_size": "64"}, "unknown scan options ['batch_size']"),
])
def test_bad_options_are_a_400_naming_the_option(client, no_scan_stored, check_against_spec, fields, words):
    response = upload(client, good_zip(), **fields)
    assert response.status_code == 400
    body = response.get_json()
    check_against_spec("/api/scans", "post", 400, body)
    assert body["error"]["code"] == "invalid_option" and words in body["error"]["message"], body
    no_scan_stored()


def test_unknown_and_malformed_ids_are_404_json(client, check_against_spec):
    unknown = "f" * 32
    for path, template in [
        (f"/api/scans/{unknown}", "/api/scans/{scan_id}"),
        ("/api/scans/..%2f..%2fetc", "/api/scans/{scan_id}"),
        ("/api/scans/XYZ", "/api/scans/{scan_id}"),
        (f"/api/scans/{unknown}/layers/block1_pool", "/api/scans/{scan_id}/layers/{layer}"),
        (f"/api/scans/{unknown}/layers/block1_pool/units/0", "/api/scans/{scan_id}/layers/{layer}/units/{channel}"),
        (f"/api/scans/{unknown}/files/thumbs/0.jpg", "/api/scans/{scan_id}/files/{name}"),
    ]:
        response = client.get(path)
        assert response.status_code == 404, path
        check_against_spec(template, "get", 404, response.get_json())
        if "%2f" not in path:  # a decoded '/' matches no route at all: the plain 404
            assert response.get_json()["error"]["code"] == "scan_not_found"
    assert client.get(f"/scans/{unknown}").status_code == 404
    assert client.get("/scans/not-a-scan").status_code == 404


def test_a_finished_scan_is_done_and_listed(client, finished, check_against_spec):
    scan_id, _, _ = finished
    document = client.get(f"/api/scans/{scan_id}").get_json()
    check_against_spec("/api/scans/{scan_id}", "get", 200, document)
    assert document["status"] == "done" and document["message"] is None
    progress = document["progress"]
    assert (progress["chunks_done"], progress["chunks_total"], progress["images_done"]) == (3, 3, 7)
    assert progress["merged"] and progress["projection_blocks_done"] == progress["projection_blocks_total"] == 2
    assert progress["seconds_left"] == 0 and progress["images_per_second"] > 0
    assert [(layer["name"], layer["channels"]) for layer in document["layers"]] == [("block1_pool", 64), ("block2_pool", 128)]
    assert document["layers"][0]["url"] == f"/api/scans/{scan_id}/layers/block1_pool"
    listed = client.get("/api/scans").get_json()["scans"]
    assert [(scan["id"], scan["status"], scan["images"]) for scan in listed] == [(scan_id, "done", 7)]


def _expected_top(table, channel, bottom=False):
    column = table[:, channel]
    order = np.argsort(column if bottom else -column, kind="stable")[:K]
    return order.tolist(), column[order].tolist()


def test_layer_pages_hold_each_units_top_images_and_projections(client, finished, check_against_spec):
    scan_id, folder, tables = finished
    chosen = {layer: projected_units(folder, layer) for layer in tables}
    response = client.get(f"/api/scans/{scan_id}/layers/block2_pool?page=2&per_page=50")
    assert response.status_code == 200
    page = response.get_json()
    check_against_spec("/api/scans/{scan_id}/layers/{layer}", "get", 200, page)
    assert (page["channels"], page["k"], page["page"], page["per_page"], page["pages"]) == (128, K, 2, 50, 3)
    assert [unit["channel"] for unit in page["units"]] == list(range(50, 100))
    for unit in page["units"]:
        ids, means = _expected_top(tables["block2_pool"], unit["channel"])
        assert [entry["id"] for entry in unit["top"]] == ids
        assert [entry["mean"] for entry in unit["top"]] == pytest.approx(means)
        assert [entry["path"] for entry in unit["top"]] == [f"img{image_id}.png" for image_id in ids]
        projected = unit["channel"] in chosen["block2_pool"]  # the two strongest units only
        assert unit["projected"] == projected
        assert all((entry["projection"] is not None) == projected for entry in unit["top"])
        assert unit["url"] == f"/api/scans/{scan_id}/layers/block2_pool/units/{unit['channel']}"

    first = client.get(f"/api/scans/{scan_id}/layers/block1_pool").get_json()
    assert (first["page"], first["per_page"], [unit["channel"] for unit in first["units"]]) == (1, 32, list(range(32)))
    unit = chosen["block1_pool"][0]
    projection = first["units"][unit]["top"][2]["projection"]
    assert projection["crop_url"] == f"/api/scans/{scan_id}/files/projections/block1_pool/{unit}_2_crop.png"
    assert projection["full"] is None and projection["full_url"] is None  # max seeds: the unit's own job adds it
    for kind in ("crop", "patch"):
        picture = client.get(projection[f"{kind}_url"])
        assert picture.status_code == 200 and picture.mimetype == "image/png" and picture.data[:4] == b"\x89PNG"
    thumb = client.get(first["units"][0]["top"][0]["thumb_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg" and thumb.data[:3] == b"\xff\xd8\xff"
    assert thumb.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert thumb.headers["X-Content-Type-Options"] == "nosniff"

    everything = client.get(f"/api/scans/{scan_id}/layers/block2_pool?per_page=512").get_json()
    assert everything["pages"] == 1 and len(everything["units"]) == 128


@pytest.mark.parametrize("query, status, words", [
    ("block2_pool?page=4&per_page=50", 404, "no page 4 of block2_pool at 50 per page: pages are 1 to 3"),
    ("block2_pool?unit=128", 404, "no unit 128 in block2_pool: units are 0 to 127"),
    ("block2_pool?page=0", 400, "page must be 1 to"),
    ("block2_pool?per_page=513", 400, "per_page must be 1 to 512"),
    ("block2_pool?page=two", 400, "page: 'two' is not a whole number"),
    ("block2_pool?page=%D9%A2", 400, "page: '٢' is not a whole number"),
    ("block5_pool", 404, "was not scanned; this scan has block1_pool, block2_pool"),
    ("block9_pool", 404, "was not scanned"),
])
def test_bad_layer_queries(client, finished, check_against_spec, query, status, words):
    scan_id, _, _ = finished
    response = client.get(f"/api/scans/{scan_id}/layers/{query}")
    assert response.status_code == status
    check_against_spec("/api/scans/{scan_id}/layers/{layer}", "get", status, response.get_json())
    assert words in response.get_json()["error"]["message"]


def test_a_unit_has_its_top_and_bottom_images_with_mean_activations(client, finished, check_against_spec):
    scan_id, folder, tables = finished
    strongest = projected_units(folder, "block1_pool")[0]
    for layer, channel in (("block1_pool", strongest), ("block2_pool", 127)):
        response = client.get(f"/api/scans/{scan_id}/layers/{layer}/units/{channel}")
        assert response.status_code == 200
        unit = response.get_json()
        check_against_spec("/api/scans/{scan_id}/layers/{layer}/units/{channel}", "get", 200, unit)
        assert (unit["layer"], unit["channel"], unit["k"]) == (layer, channel, K)
        for which, bottom in (("top", False), ("bottom", True)):
            ids, means = _expected_top(tables[layer], channel, bottom)
            assert [entry["id"] for entry in unit[which]] == ids
            assert [entry["mean"] for entry in unit[which]] == pytest.approx(means)
            assert all(client.get(entry["thumb_url"]).status_code == 200 for entry in unit[which])
        assert all(entry["projection"] is None for entry in unit["bottom"])
        assert all((entry["projection"] is not None) == (channel == strongest) for entry in unit["top"])
        assert unit["top_activation"] == pytest.approx(tables[layer][:, channel].max())
        assert unit["projection_state"] == {"state": "missing", "message": None} and not unit["complete"]
    for channel in ("64", "-1", "abc", "1e3", "%C2%B2", "%D9%A1", "%EF%BC%91"):  # "²" was a 500; "١", "１" unit 1
        response = client.get(f"/api/scans/{scan_id}/layers/block1_pool/units/{channel}")
        assert response.status_code == 404, channel
        assert response.get_json()["error"]["code"] == "unit_not_found"


def test_a_projection_that_ends_while_its_unit_is_read_is_not_done_beside_its_old_pictures(client, finished,
                                                                                           monkeypatch):
    """A client stops polling a unit at "done", so "done" must come with the pictures: a worker that wrote the
    unit's projection between the API's two reads (its pictures, then the queue's state) gave "done" beside
    pictures read before it (the live-service test saw it once)."""
    scan_id, folder, _ = finished
    layer, channel = "block2_pool", 7
    read_unit = scans_store.unit_detail

    def read_then_the_worker_finishes(*args):
        detail = read_unit(*args)
        entries = []
        for rank in range(K):
            names = store.projection_names(layer, channel, rank)
            for name in names.values():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(png(rank, (8, 8)))
            entries.append({"rank": rank, "image": 0, **names})
        store.write_json_atomically(store.unit_marker(folder, layer, channel),
                                    {"layer": layer, "unit": channel, "channels": {str(channel): entries}})
        return detail

    monkeypatch.setattr(scans_store, "unit_detail", read_then_the_worker_finishes)
    url = f"/api/scans/{scan_id}/layers/{layer}/units/{channel}"
    unit = client.get(url).get_json()
    assert unit["complete"] == (unit["projection_state"]["state"] == "done"), unit["projection_state"]
    monkeypatch.undo()
    unit = client.get(url).get_json()
    assert unit["complete"] and unit["projection_state"] == {"state": "done", "message": None}
    assert all(entry["projection"]["full"] is not None for entry in unit["top"][:unit["projected_k"]])


def test_sorted_pages_and_the_page_of_a_unit(client, finished, check_against_spec):
    scan_id, _, tables = finished
    table = tables["block2_pool"]
    page = client.get(f"/api/scans/{scan_id}/layers/block2_pool?sort=top&per_page=16&unit=5").get_json()
    check_against_spec("/api/scans/{scan_id}/layers/{layer}", "get", 200, page)
    order = sorted(range(128), key=lambda unit: (-table[:, unit].max(), unit))
    assert page["page"] == order.index(5) // 16 + 1 and page["sort"] == "top"
    assert [unit["channel"] for unit in page["units"]] == order[(page["page"] - 1) * 16:page["page"] * 16]
    for query, words in (("sort=size", "sort must be one of index, top, selectivity"),
                         ("unit=-1", "unit must be 0 to 127"), ("unit=x", "unit: 'x' is not a whole number")):
        response = client.get(f"/api/scans/{scan_id}/layers/block2_pool?{query}")
        assert response.status_code == 400 and words in response.get_json()["error"]["message"], query


def test_opening_a_unit_enqueues_its_projection_once(client, app, finished, redis_conn, check_against_spec):
    scan_id, folder, _ = finished
    url = f"/api/scans/{scan_id}/layers/block2_pool/units/7/projection"
    first = client.post(url)
    assert first.status_code == 202, first.get_json()
    check_against_spec("/api/scans/{scan_id}/layers/{layer}/units/{channel}/projection", "post", 202, first.get_json())
    assert first.get_json()["state"] == "queued"
    assert first.get_json()["unit_url"] == f"/api/scans/{scan_id}/layers/block2_pool/units/7"
    again = client.post(url)
    assert again.status_code == 202 and again.get_json()["state"] == "queued"
    jobs = [job_id for job_id in queued_ids(app, redis_conn) if "unit-block2_pool-7" in job_id]
    assert jobs == [f"scan-{scan_id}-unit-block2_pool-7-1"]  # asked twice, queued once
    job = Job.fetch(jobs[0], connection=redis_conn)
    assert job.func_name == "service.jobs.scan.project_one"
    assert job.args == (str(folder.resolve()), "block2_pool", 7)
    unit = client.get(f"/api/scans/{scan_id}/layers/block2_pool/units/7").get_json()
    assert unit["projection_state"]["state"] == "queued" and unit["projection_url"] == url
    assert client.post(f"/api/scans/{scan_id}/layers/block2_pool/units/128/projection").status_code == 404


def test_only_thumbnails_and_projections_are_served(client, finished, check_against_spec):
    scan_id, folder, _ = finished
    for name in ("scan.json", "topk.json", "upload.json", "chunks/00000.npz", "table_block1_pool.npy",
                 "images/img0.png", "../" + scan_id + "/scan.json", "thumbs/../scan.json", "thumbs/%2e%2e/scan.json",
                 "thumbs/99.jpg", "projections/block1_pool/5_0_crop.png", "projections/block1_pool/block_0-2.json",
                 "/etc/passwd", "thumbs/0.jpg/"):
        response = client.get(f"/api/scans/{scan_id}/files/{name}", follow_redirects=True)
        assert response.status_code == 404, name
        if response.is_json:
            check_against_spec("/api/scans/{scan_id}/files/{name}", "get", 404, response.get_json())
    assert client.get(f"/api/scans/{scan_id}/files/thumbs/0.jpg").status_code == 200


def test_units_cannot_be_browsed_before_the_merge(client, finished):
    scan_id, folder, _ = finished
    (folder / "topk.json").unlink()
    response = client.get(f"/api/scans/{scan_id}/layers/block1_pool")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "not_ready"
    assert client.get(f"/api/scans/{scan_id}/layers/block1_pool/units/0").status_code == 409
    assert client.get(f"/api/scans/{scan_id}").get_json()["status"] == "merging"


def test_past_the_queue_cap_a_scan_upload_is_a_503_and_nothing_is_stored(app_config, redis_conn, check_against_spec):
    """Scans are capped on their own queue: a big scan's chunks never refuse a photo, but a new scan
    waits until the scans' queue is under the cap."""
    capped = create_app({**app_config, "QUEUE_CAP": 1})
    client = capped.test_client()
    assert upload(client, good_zip()).status_code == 202
    refused = upload(client, good_zip())
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    body = refused.get_json()
    check_against_spec("/api/scans", "post", 503, body)
    assert body["error"]["code"] == "queue_full"
    assert len(list(scans_root(capped).iterdir())) == 1 and len(queued_ids(capped, redis_conn)) == 1
    photo = client.post("/api/jobs", data={"image": (io.BytesIO(png(7)), "p.png")}, content_type="multipart/form-data")
    assert photo.status_code == 202  # the photos' queue is empty: a scan does not count against it


def test_classifier_layers_are_refused_when_the_workers_have_no_top(client, app, redis_conn, no_scan_stored):
    from service import presence

    presence.publish_model(redis_conn, {"weights": "hed", "has_classifier": False, "device": "cpu", "layers": []})
    try:
        response = upload(client, good_zip(), layers="block5_pool,fc1,predictions")
        assert response.status_code == 400
        message = response.get_json()["error"]["message"]
        assert "fc1, predictions belong to the classifier top, and the workers' weights have none" in message
        no_scan_stored()
        form = client.get("/scans").get_data(as_text=True)
        assert 'value="fc2"' in form and "needs the classifier top, which the" in form
    finally:
        redis_conn.delete(presence.MODEL_KEY)
    accepted = upload(client, good_zip(), layers="block5_pool,fc1,predictions")  # no worker has said: the job will
    assert accepted.status_code == 202 and accepted.get_json()["options"]["layers"] == ["block5_pool", "fc1", "predictions"]
