"""The dataset scans' JSON API: upload a ZIP, poll a scan, browse its layers and units, fetch its
pictures. The logic is in :mod:`app.scans.store`; described by ``/api/openapi.json``."""
from flask import Blueprint, jsonify, request, send_file

from app.scans import store as scans

bp = Blueprint("scan_api", __name__, url_prefix="/api")


@bp.post("/scans")
def create_scan():
    scans.allow_archive_upload()
    fields = request.form.to_dict()
    document = scans.create(request.files.get("archive"), fields)
    response = jsonify(document)
    response.status_code = 202
    response.headers["Location"] = document["links"]["self"]
    return response


@bp.get("/scans")
def list_scans():
    return jsonify({"scans": scans.summaries()})


@bp.get("/scans/<scan_id>")
def scan(scan_id):
    return jsonify(scans.describe(scan_id))


@bp.get("/scans/<scan_id>/layers/<layer>")
def layer(scan_id, layer):
    return jsonify(scans.layer_page(scan_id, layer))


@bp.get("/scans/<scan_id>/layers/<layer>/units/<channel>")
def unit(scan_id, layer, channel):
    return jsonify(scans.unit(scan_id, layer, channel))


@bp.post("/scans/<scan_id>/layers/<layer>/units/<channel>/projection")
def unit_projection(scan_id, layer, channel):
    document, status = scans.request_projection(scan_id, layer, channel)
    response = jsonify(document)
    response.status_code = status
    return response


@bp.get("/scans/<scan_id>/files/<path:name>")
def scan_file(scan_id, name):
    path, mimetype = scans.file_path(scan_id, name)
    response = send_file(path, mimetype=mimetype, max_age=31536000)
    # Written once, atomically, under a random scan id: never changes.
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
