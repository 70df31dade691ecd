"""The result folder of one photo job: the contract between what writes it (the worker's job functions,
the CLI) and what reads it (the web app, cleanup, tests). Every file name lives here.

``RESULTS_DIR/<job id>/`` holds:

* ``manifest.json``: what the folder holds (visnet.outputs for the deconvnet, visnet.views.base for
  the other views); written last, so a folder with a manifest is complete;
* ``job.json``: the job record the worker adds (options, image, progress, timings, worker,
  attempts); the CLI writes none;
* the deconvnet's pictures: ``summary.png``, and per feature ``<layer>_ch<channel>_overlay.png``;
  with map seeds ``<layer>_ch<channel>.png`` (the whole-map reconstruction); with max seeds
  ``<layer>_ch<channel>_patch.png`` (the strongest activation's projection, cropped to its receptive
  field) and ``<layer>_ch<channel>_photo_patch.png`` (the photo in that field); with ``raw`` (CLI
  only) ``raw/<layer>_<channel>.npy`` and ``raw/<layer>_<channel>_max.npy``;
* a view's pictures: ``<stem>.png``;
* ``input.png``: the photo as the network saw it (224×224, after ``fit``), for every job on a photo
  (visnet.outputs.write_input_photo); the manifest's ``input`` describes it.

Every picture is a PNG directly in the folder; the web app serves and archives exactly those. A job
writes its folder as ``RESULTS_DIR/.tmp-<job id>-<random>`` (visnet.atomic.partial_folder) and
renames it into place when complete.
"""
import json
from pathlib import Path

from .atomic import read_json_if_readable, write_bytes_atomically

MANIFEST_FILE = "manifest.json"
JOB_RECORD_FILE = "job.json"
SUMMARY_FILE = "summary.png"
INPUT_FILE = "input.png"  # the photo as the network saw it
RAW_FOLDER = "raw"
PICTURE_SUFFIX = ".png"


def reconstruction_file(layer: str, channel: int) -> str:
    return f"{layer}_ch{int(channel)}{PICTURE_SUFFIX}"


def overlay_file(layer: str, channel: int) -> str:
    return f"{layer}_ch{int(channel)}_overlay{PICTURE_SUFFIX}"


def patch_file(layer: str, channel: int) -> str:
    """The projection of the channel's single strongest activation, cropped to its receptive field."""
    return f"{layer}_ch{int(channel)}_patch{PICTURE_SUFFIX}"


def photo_patch_file(layer: str, channel: int) -> str:
    """The photo inside that receptive field."""
    return f"{layer}_ch{int(channel)}_photo_patch{PICTURE_SUFFIX}"


def raw_file(layer: str, channel: int) -> str:
    return f"{RAW_FOLDER}/{layer}_{int(channel)}.npy"


def raw_patch_file(layer: str, channel: int) -> str:
    return f"{RAW_FOLDER}/{layer}_{int(channel)}_max.npy"


def picture_file(stem: str) -> str:
    """A view's picture ``stem`` as a file name."""
    return f"{stem}{PICTURE_SUFFIX}"


def is_complete(folder) -> bool:
    """Whether ``folder`` holds a whole result (its manifest is written last)."""
    return (Path(folder) / MANIFEST_FILE).is_file()


def read_manifest(folder) -> dict:
    return json.loads((Path(folder) / MANIFEST_FILE).read_text(encoding="utf-8"))


def write_manifest(folder, manifest: dict) -> Path:
    """Write the manifest atomically (a reader sees none or all of it); call it after every picture."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    return write_bytes_atomically(Path(folder) / MANIFEST_FILE, text.encode("utf-8"))


def read_job_record(folder):
    """The job record, or None where there is none or it does not read (a CLI result, a damaged file)."""
    return read_json_if_readable(Path(folder) / JOB_RECORD_FILE)


def write_job_record(folder, record: dict) -> Path:
    path = Path(folder) / JOB_RECORD_FILE
    path.write_text(json.dumps(record, indent=2))
    return path


def pictures(folder) -> list:
    """The paths of the folder's pictures, sorted by name."""
    return sorted(Path(folder).glob(f"*{PICTURE_SUFFIX}"))
