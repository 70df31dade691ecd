"""Dataset scans through the live service: a ZIP of real photos posted to gunicorn's ``POST /api/scans``,
planned, scanned and projected by the session's real worker, polled to "done", then browsed through the
JSON API and checked against the activation table the merge stored."""
import io
import time
from pathlib import Path

import pytest
import redis
import requests
from PIL import Image

from tests.support.scan_uploads import GREY_PHOTO, build_zip, photo_members, post_scan, wait_for_scan
from visnet.scan import load_table

pytestmark = pytest.mark.integration

STATUS_ORDER = ["planning", "pending", "scanning", "merging", "projecting", "done"]


def get(base, path, status=200):
    response = requests.get(base + path, timeout=10)
    assert response.status_code == status, f"{path}: {response.status_code} {response.text[:500]}"
    return response


def test_an_uploaded_zip_is_scanned_to_the_end(web_scan, live_server, check_against_spec):
    assert web_scan["posted"]["status"] == "planning"
    documents = web_scan["documents"]
    final = documents[-1]
    check_against_spec("/api/scans/{scan_id}", "get", 200, final)
    assert final["status"] == "done" and final["message"] is None, final

    photos = sorted(name for name in web_scan["archive"] if name.endswith(".jpg"))
    kept = [name for name in photos if GREY_PHOTO not in name]
    assert final["images"] == len(kept) == 14
    assert final["skipped"] == [{"path": f"grey/{GREY_PHOTO}.jpg", "reason": "greyscale"}]
    assert final["archive"]["images"] == 15 and [entry["name"] for entry in final["archive"]["skipped"]] == ["notes.txt"]
    progress = final["progress"]
    assert progress["chunks_done"] == progress["chunks_total"] == 4  # 14 images, 4 per chunk
    assert progress["images_done"] == 14 and progress["merged"]
    assert progress["images_per_second"] > 0 and progress["seconds_left"] == 0
    assert progress["projection_blocks_done"] == progress["projection_blocks_total"] == 2

    # Polled while it ran: statuses only move forward, and so do the chunks.
    ranks = [STATUS_ORDER.index(document["status"]) for document in documents]
    assert ranks == sorted(ranks), [document["status"] for document in documents]
    chunks = [document["progress"]["chunks_done"] for document in documents if document["progress"]]
    assert chunks == sorted(chunks)
    for document in documents:
        check_against_spec("/api/scans/{scan_id}", "get", 200, document)

    listed = get(live_server, "/api/scans").json()["scans"]
    assert {"id": web_scan["id"], "status": "done", "images": 14} in [
        {key: scan[key] for key in ("id", "status", "images")} for scan in listed]
    assert web_scan["id"][:8] in get(live_server, "/scans").text
    assert get(live_server, f"/scans/{web_scan['id']}").status_code == 200


def _folder(service_env, scan_id) -> Path:
    return Path(service_env["RESULTS_DIR"]) / "scans" / scan_id


def test_every_unit_of_a_layer_and_its_top_images_agree_with_the_stored_table(web_scan, live_server, service_env,
                                                                               check_against_spec):
    scan_id = web_scan["id"]
    table = load_table(_folder(service_env, scan_id), "block1_pool")
    assert table.shape == (14, 64)
    page = get(live_server, f"/api/scans/{scan_id}/layers/block1_pool?per_page=64").json()
    check_against_spec("/api/scans/{scan_id}/layers/{layer}", "get", 200, page)
    assert (page["pages"], len(page["units"]), page["k"]) == (1, 64, 4)
    strongest = strongest_units(table, 3)
    for unit in page["units"]:
        column = table[:, unit["channel"]]
        means = [entry["mean"] for entry in unit["top"]]
        assert means == pytest.approx(sorted(column.tolist(), reverse=True)[:4])
        assert [float(column[entry["id"]]) for entry in unit["top"]] == pytest.approx(means)
        projected = [entry["projection"] is not None for entry in unit["top"]]
        assert projected == ([True, True, False, False] if unit["channel"] in strongest else [False] * 4)
        assert unit["dead"] == (column.max() == 0) and unit["projected"] == (unit["channel"] in strongest)

    top = page["units"][strongest[2]]["top"][0]
    thumb = get(live_server, top["thumb_url"])
    assert thumb.headers["Content-Type"] == "image/jpeg" and "immutable" in thumb.headers["Cache-Control"]
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.size == (96, 96)
    assert top["projection"]["full_url"] is None  # the scan projects the strongest activation (max seeds) only
    for kind in ("crop", "patch"):
        with Image.open(io.BytesIO(get(live_server, top["projection"][f"{kind}_url"]).content)) as image:
            assert image.format == "PNG" and image.size == (6, 6)  # block1_pool's receptive field

    paged = get(live_server, f"/api/scans/{scan_id}/layers/block2_pool?page=3&per_page=50").json()
    assert [unit["channel"] for unit in paged["units"]] == list(range(100, 128))


def strongest_units(table, count):
    """The units a scan projects, by brute force over its table: highest top activation, ties to the lower unit."""
    return sorted(range(table.shape[1]), key=lambda unit: (-float(table[:, unit].max()), unit))[:count]


def test_a_unit_has_its_top_and_bottom_images(web_scan, live_server, service_env, check_against_spec):
    scan_id = web_scan["id"]
    table = load_table(_folder(service_env, scan_id), "block2_pool")
    strongest = strongest_units(table, 1)[0]
    column = table[:, strongest]
    unit = get(live_server, f"/api/scans/{scan_id}/layers/block2_pool/units/{strongest}").json()
    check_against_spec("/api/scans/{scan_id}/layers/{layer}/units/{channel}", "get", 200, unit)
    assert [entry["mean"] for entry in unit["top"]] == pytest.approx(sorted(column.tolist(), reverse=True)[:4])
    assert [entry["mean"] for entry in unit["bottom"]] == pytest.approx(sorted(column.tolist())[:4])
    assert [entry["projection"] is not None for entry in unit["top"]] == [True, True, False, False]
    assert all(entry["projection"] is None for entry in unit["bottom"])
    names = {entry["path"] for entry in unit["top"] + unit["bottom"]}
    assert names <= set(web_scan["archive"]) and f"grey/{GREY_PHOTO}.jpg" not in names
    assert get(live_server, f"/api/scans/{scan_id}/layers/block2_pool/units/128", 404).json()["error"]["code"] == "unit_not_found"


def test_opening_a_unit_projects_it_on_the_worker(web_scan, live_server, service_env, check_against_spec):
    """A unit the scan did not project: asked for twice, projected once by the session's worker, then served
    with the projection of its strongest activation on each top image and of its whole map."""
    scan_id = web_scan["id"]
    folder = _folder(service_env, scan_id)
    table = load_table(folder, "block2_pool")
    strongest = strongest_units(table, 3)
    unit = next(unit for unit in reversed(strongest_units(table, 128)) if table[:, unit].max() > 0)
    assert unit not in strongest
    path = f"/api/scans/{scan_id}/layers/block2_pool/units/{unit}"
    before = get(live_server, path).json()
    assert before["projection_state"]["state"] == "missing" and not before["complete"]
    assert all(entry["projection"] is None for entry in before["top"])
    asked = [requests.post(live_server + before["projection_url"], timeout=10) for _ in range(2)]
    for response in asked:
        assert response.status_code == 202, response.text
        check_against_spec("/api/scans/{scan_id}/layers/{layer}/units/{channel}/projection", "post", 202, response.json())
    deadline = time.monotonic() + 120
    while True:
        after = get(live_server, path).json()
        if after["projection_state"]["state"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    check_against_spec("/api/scans/{scan_id}/layers/{layer}/units/{channel}", "get", 200, after)
    assert after["projection_state"] == {"state": "done", "message": None} and after["complete"], after
    for entry in after["top"][:2]:
        sizes = {kind: Image.open(io.BytesIO(get(live_server, entry["projection"][f"{kind}_url"]).content)).size
                 for kind in ("full", "crop", "patch")}
        assert sizes == {"full": (224, 224), "crop": (16, 16), "patch": (16, 16)}
    assert after["top"][2]["projection"] is None  # project_k = 2
    connection = redis.Redis.from_url(service_env["REDIS_URL"])
    assert connection.exists(f"rq:job:scan-{scan_id}-unit-block2_pool-{unit}-1")
    assert not connection.exists(f"rq:job:scan-{scan_id}-unit-block2_pool-{unit}-2")  # asked twice, run once
    again = requests.post(live_server + before["projection_url"], timeout=10)
    assert again.status_code == 200 and again.json()["state"] == "done"


def test_an_archive_left_with_no_colour_image_fails_with_the_workers_reason(live_server, worker):
    archive = build_zip(photo_members(photos=(), generated=0, grey=True))
    response = post_scan(live_server, archive, layers="block1_pool", skip_grey="true")
    assert response.status_code == 202, response.text
    final = wait_for_scan(live_server, response.json()["id"], timeout=120)[-1]
    assert final["status"] == "failed"
    assert final["message"].startswith("planning failed: ValueError: no image to scan in the archive")
    assert "1 skipped (greyscale)" in final["message"] and "/" not in final["message"]  # no server path
