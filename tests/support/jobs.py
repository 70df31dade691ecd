"""Photo jobs without a worker: a submission through the test client, the id it gets, and a result
folder as a worker leaves it."""
import hashlib
import io
from pathlib import Path

from PIL import Image

from app.jobs.forms import read_method_form
from visnet import results


def post(client, data: bytes, **options):
    return client.post("/api/jobs", data={"image": (io.BytesIO(data), "photo.jpg"), **options},
                       content_type="multipart/form-data")


def job_id_for(data: bytes, **options) -> str:
    return read_method_form(options).job_key(hashlib.sha256(data).hexdigest())


def png_bytes(color=(10, 20, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (224, 224), color).save(buffer, "PNG")
    return buffer.getvalue()


def make_finished(app, job_id, layers=("block5_pool",)):
    """A result folder as the worker leaves it (visnet.results: manifest, PNGs, job record)."""
    folder = Path(app.config["RESULTS_DIR"]) / job_id
    folder.mkdir(parents=True)
    manifest = {"image": "upload", "weights": "hed", "device": "cpu", "mode": "single",
                "summary": results.SUMMARY_FILE, "layers": [], "timings": {"network_seconds": 1.0}}
    for layer in layers:
        features = []
        for channel in (7, 3):
            recon, overlay = results.reconstruction_file(layer, channel), results.overlay_file(layer, channel)
            (folder / recon).write_bytes(png_bytes())
            (folder / overlay).write_bytes(png_bytes((200, 0, 0)))
            features.append({"channel": channel, "norm": 12.5, "reconstruction": recon, "overlay": overlay})
        manifest["layers"].append({"name": layer, "features": features})
    (folder / results.SUMMARY_FILE).write_bytes(png_bytes())
    results.write_job_record(folder, {"options": read_method_form({}).as_dict(), "image": {"name": "x.jpg"},
                                      "timings": {"total_seconds": 2.0}})
    results.write_manifest(folder, manifest)
    return folder
