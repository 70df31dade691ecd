"""Uploaded originals are never served: every GET route of the app, with every argument set to the
stored upload's name, hash, or a path that climbs from the results folder to the uploads folder,
answers something other than the upload's bytes. The check walks ``app.url_map``, so a route added
later is checked too."""
import hashlib
import io
import itertools
import re
import urllib.parse
import zipfile
from pathlib import Path

from tests.support.jobs import job_id_for, make_finished, post

ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def candidates(job_id: str, stored_name: str, upload_path: Path) -> list:
    sha = stored_name.split(".")[0]
    climbs = [f"{'../' * depth}uploads/{stored_name}" for depth in range(1, 5)]
    return [job_id, stored_name, sha, f"uploads/{stored_name}", str(upload_path), str(upload_path).lstrip("/"),
            *climbs, *(urllib.parse.quote(climb, safe="") for climb in climbs),
            *(climb.replace("../", "..%2f") for climb in climbs), *(climb.replace("/", "\\") for climb in climbs)]


def urls_for(rule: str, job_id: str, values: list):
    """``rule`` with one argument at a time set to each candidate, the others to natural values."""
    names = ARGUMENT.findall(rule)
    natural = {name: job_id if name.endswith("id") else values[1] for name in names}
    for name, value in itertools.product(names, values):
        filled = {**natural, name: value}
        yield ARGUMENT.sub(lambda match: filled[match.group(1)], rule)


def test_no_route_serves_an_upload(app, client, images):
    data = images.photo_jpeg(size=(80, 60), color=(12, 34, 56))
    assert post(client, data).status_code == 202
    stored_name = f"{hashlib.sha256(data).hexdigest()}.jpg"
    upload_path = Path(app.config["UPLOAD_DIR"]) / stored_name
    assert upload_path.read_bytes() == data
    job_id = job_id_for(data, top_k="2")
    make_finished(app, job_id)  # a finished job of the same photo, with files and an archive
    values = candidates(job_id, stored_name, upload_path)

    checked = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        for url in set(urls_for(rule.rule, job_id, values)):
            response = client.get(url)
            checked += 1
            body = response.get_data()
            assert data not in body, f"{url} answered {response.status_code} with the upload in it"
            if response.mimetype == "application/zip" and response.status_code == 200:
                with zipfile.ZipFile(io.BytesIO(body)) as archive:
                    for member in archive.namelist():
                        assert archive.read(member) != data, f"{url}: {member} is the upload"
    assert checked > 50
