"""The other views through the API (issue 4): ``method=`` and its options, validated before anything
is stored; the classifier check; job keys; view manifests with file URLs. No worker: jobs are only
enqueued, and finished ones are folders written here as the worker leaves them."""
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from rq.job import Job

from app.jobs.forms import read_method_form
from service import presence
from visnet import results
from visnet.weights import describe_weights

VIEW_METHODS = ("feature-maps", "filters", "occlusion", "activation-max", "classification", "channel-rank",
                "gradients")


def post(client, data: bytes, **fields):
    return client.post("/api/jobs", data={"image": (io.BytesIO(data), "photo.jpg"), **fields},
                       content_type="multipart/form-data")


def png_bytes(size=(32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def publish(redis_conn, has_classifier):
    presence.publish_model(redis_conn, {"weights": "hed", "weights_description": describe_weights("hed", has_classifier),
                                        "has_classifier": has_classifier, "device": "cpu"})


def test_methods_lists_every_tab_with_its_options(client, redis_conn, check_against_spec):
    response = client.get("/api/methods")
    assert response.status_code == 200
    body = response.get_json()
    check_against_spec("/api/methods", "get", 200, body)
    assert [method["name"] for method in body["methods"]] == ["deconv", *VIEW_METHODS]
    assert [method["label"] for method in body["methods"]] == [
        "Deconvnet", "Feature maps", "Filters", "Occlusion", "Activation max.", "Classes", "Channel rank", "Gradients"]
    assert body["has_classifier"] is None
    by_name = {method["name"]: method for method in body["methods"]}
    assert by_name["classification"]["needs_classifier"] and not by_name["occlusion"]["needs_classifier"]
    assert [option["name"] for option in by_name["occlusion"]["options"]] == ["sizes", "batch_size", "fit"]
    assert [option["name"] for option in by_name["filters"]["options"]] == ["layer", "channel"]  # reads no photo
    assert "unavailable" not in by_name["classification"]
    publish(redis_conn, False)
    body = client.get("/api/methods").get_json()
    check_against_spec("/api/methods", "get", 200, body)
    assert body["has_classifier"] is False
    by_name = {method["name"]: method for method in body["methods"]}
    assert [name for name, method in by_name.items() if "unavailable" in method] == ["classification"]
    assert by_name["classification"]["unavailable"] == (
        "Classes (classification) needs a classifier top (fc1, fc2, predictions), and the weights in use have none: "
        f"{describe_weights('hed', False)}. Then copy the file it writes into the models folder (if that was another "
        "machine) and restart the service")  # the words already say how to fetch it: not twice
    assert by_name["classification"]["unavailable"].count("python -m visnet weights fetch imagenet") == 1
    publish(redis_conn, True)
    assert all("unavailable" not in method for method in client.get("/api/methods").get_json()["methods"])


@pytest.mark.parametrize("method, fields, named", [
    ("feature-maps", {"layer": "block9_conv1"}, "layer"),
    ("feature-maps", {"scale": "loud"}, "scale"),
    ("filters", {"layer": "block1_conv1", "channel": "64"}, "channel"),
    ("filters", {"layer": "block3_pool"}, "layer"),
    ("occlusion", {"sizes": "50x10"}, "sizes"),
    ("occlusion", {"batch_size": "0"}, "batch_size"),
    ("activation-max", {"channels": "0,zz"}, "channels"),
    ("activation-max", {"octaves": "99"}, "octaves"),
    ("classification", {"top_k": "3"}, "top_k"),
    ("channel-rank", {"channel": "-1"}, "channel"),
    ("channel-rank", {"channel": "٣"}, "channel"),
    ("channel-rank", {"measure": "median"}, "measure"),
    ("activation-max", {"scale": "１.5"}, "scale"),
    ("gradients", {"layers": "nope"}, "layers"),
    ("gradients", {"top_k": "17"}, "top_k"),
])
def test_a_bad_view_option_is_a_400_naming_it(client, images, nothing_stored, check_against_spec,
                                               method, fields, named):
    response = post(client, images.photo_jpeg(), method=method, **fields)
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    check_against_spec("/api/jobs", "post", 400, body)
    assert named in body["error"]["message"]
    nothing_stored()


def test_an_unknown_method_is_a_400(client, images, nothing_stored):
    response = post(client, images.photo_jpeg(), method="saliency")
    assert response.status_code == 400
    message = response.get_json()["error"]["message"]
    assert "method" in message and "saliency" in message and "feature-maps" in message
    nothing_stored()


def test_classification_without_a_top_is_a_409_and_stores_nothing(client, redis_conn, images, nothing_stored,
                                                                  check_against_spec):
    publish(redis_conn, False)
    response = post(client, images.photo_jpeg(), method="classification")
    assert response.status_code == 409
    body = response.get_json()
    check_against_spec("/api/jobs", "post", 409, body)
    assert "classifier" in body["error"]["message"] and describe_weights("hed", False) in body["error"]["message"]
    assert body["error"]["message"].count("run `python -m visnet weights fetch imagenet`") == 1
    assert body["error"]["message"].endswith("and restart the service")
    redis_conn.delete(presence.MODEL_KEY)
    nothing_stored()


def test_classification_with_a_top_is_enqueued(client, redis_conn, images):
    publish(redis_conn, True)
    response = post(client, images.photo_jpeg(), method="classification")
    assert response.status_code == 202
    assert Job.fetch(response.get_json()["id"], connection=redis_conn).func_name == "service.jobs.photo.view"


def test_a_view_is_enqueued_by_dotted_path_with_normalised_options(app, client, redis_conn, images,
                                                                   check_against_spec):
    data = images.photo_jpeg()
    response = post(client, data, method="occlusion", sizes=" 112:112 ")
    assert response.status_code == 202
    body = response.get_json()
    check_against_spec("/api/jobs", "post", 202, body)
    assert body["method"] == "occlusion" and body["options"] == {"sizes": [[112, 112]], "batch_size": 32, "fit": "squash"}
    job = Job.fetch(body["id"], connection=redis_conn)
    assert job.func_name == "service.jobs.photo.view"
    upload_path, results_root, key, method, options = job.args
    assert Path(upload_path).is_file() and results_root == app.config["RESULTS_DIR"] and key == body["id"]
    assert method == "occlusion" and options == {"sizes": [[112, 112]], "batch_size": 32, "fit": "squash"}
    document = client.get(f"/api/jobs/{body['id']}").get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, document)
    assert document["method"] == "occlusion"


def test_the_job_key_includes_the_method_and_normalised_options(client, images):
    data = images.photo_jpeg()
    ids = {
        "deconv": post(client, data).get_json()["id"],
        "feature-maps": post(client, data, method="feature-maps").get_json()["id"],
        "filters": post(client, data, method="filters").get_json()["id"],
        "feature-maps shared": post(client, data, method="feature-maps", scale="shared").get_json()["id"],
    }
    assert len(set(ids.values())) == 4
    # The deconvnet's id is what it was before methods existed.
    assert ids["deconv"] == read_method_form({}).job_key(hashlib.sha256(data).hexdigest())
    # Spelling the defaults out, or the layers in another order, is the same job.
    same = post(client, data, method="feature-maps", layer="block1_conv1", scale="per-channel").get_json()
    assert same["id"] == ids["feature-maps"] and same["reused"] is True
    first = post(client, data, method="gradients", layers="block5_pool,block2_pool").get_json()["id"]
    second = post(client, data, method="gradients", layers="block2_pool, block5_pool").get_json()["id"]
    assert first == second


def test_from_job_submits_a_view_on_the_same_photo(client, redis_conn, images):
    data = images.photo_jpeg()
    first = post(client, data).get_json()
    response = client.post("/api/jobs", data={"from_job": first["id"], "method": "channel-rank", "channel": "5"},
                           content_type="multipart/form-data")
    assert response.status_code == 202
    job = Job.fetch(response.get_json()["id"], connection=redis_conn)
    assert job.args[3:] == ("channel-rank", {"layer": "block5_conv3", "channel": 5, "measure": "post-relu-mean",
                                             "fit": "squash"})
    assert Path(job.args[0]).name == Path(Job.fetch(first["id"], connection=redis_conn).args[0]).name


def make_finished_view(app, job_id):
    folder = Path(app.config["RESULTS_DIR"]) / job_id
    folder.mkdir(parents=True)
    (folder / "channel_rank.png").write_bytes(png_bytes())
    manifest = {"method": "channel-rank",
                "files": [{"file": "channel_rank.png", "caption": "ranks", "width": 32, "height": 24}],
                "data": {"layer": "block5_conv3", "channel": 5, "rank": 3}, "timings": {"compute_seconds": 0.5}}
    results.write_manifest(folder, manifest)
    results.write_job_record(folder, {"method": "channel-rank", "options": {"layer": "block5_conv3", "channel": 5},
                                      "image": {"name": "x.jpg"}})


def test_a_finished_view_has_a_url_per_png_and_an_archive(app, client, check_against_spec):
    job_id = "c" * 32
    make_finished_view(app, job_id)
    document = client.get(f"/api/jobs/{job_id}").get_json()
    check_against_spec("/api/jobs/{job_id}", "get", 200, document)
    assert document["status"] == "finished" and document["method"] == "channel-rank"
    entry = document["manifest"]["files"][0]
    assert entry["file_url"] == f"/api/jobs/{job_id}/files/channel_rank.png"
    assert document["manifest"]["data"]["rank"] == 3
    png = client.get(entry["file_url"])
    assert png.status_code == 200 and png.mimetype == "image/png"
    archive = client.get(f"/api/jobs/{job_id}/archive.zip")
    names = zipfile.ZipFile(io.BytesIO(archive.data)).namelist()
    assert sorted(names) == [f"{job_id}/channel_rank.png", f"{job_id}/manifest.json"]
