"""The pictures a running photo job has already written, as its worker publishes them in the RQ job's meta
(service.jobs.photo.Progress.publish) and the web app reads them back (app.jobs.store): a job's page and
API list and serve each picture as soon as it lands, before the result folder is renamed into place.

``job.meta["written"]`` is ``{"folder": the partial folder's name (visnet.atomic.partial_folder, under
the results root), "manifest": the manifest so far (visnet.outputs.write_deconv_outputs' ``written``)}``.
No Flask and no TensorFlow here: both sides import it.
"""
import re
from pathlib import Path

from visnet.atomic import PARTIAL_PREFIX

META_KEY = "written"


def record(folder: Path, manifest: dict) -> dict:
    """What the worker stores under ``META_KEY`` for ``manifest``, written so far into ``folder``."""
    return {"folder": Path(folder).name, "manifest": manifest}


def read(meta: dict, results_root, job_id: str):
    """``(folder, manifest so far)`` of the running job ``job_id`` from its meta, or None where it has
    published nothing (or something that is not its own partial folder directly under ``results_root``)."""
    written = meta.get(META_KEY)
    if not isinstance(written, dict) or not isinstance(written.get("manifest"), dict):
        return None
    name = written.get("folder")
    own_folder = re.escape(f"{PARTIAL_PREFIX}{job_id}-") + r"[A-Za-z0-9_]+"
    if not isinstance(name, str) or not re.fullmatch(own_folder, name):
        return None
    return Path(results_root) / name, written["manifest"]
