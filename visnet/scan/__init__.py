"""Dataset scans: the images that most (and least) excite every unit, and their deconvnet projections.

Zeiler & Fergus (ECCV 2014, section 4 and fig. 2) ran a whole validation set through the network, kept
each feature map's strongest activations and projected them to pixel space. A scan does that for a
folder or ZIP of images:

1. :mod:`.imagesets` lists or safely extracts the images; :mod:`.plan` decodes each once, skips
   greyscale ones if asked, and splits them into chunks (``scan.json``);
2. :mod:`.chunks` computes a chunk's per-image, per-channel mean activations (:mod:`.means`, one
   ``session.run`` per batch) and its partial top-k / bottom-k (:mod:`.topk`, exact and mergeable);
3. :mod:`.merge` writes the full activation tables and the merged rankings;
4. :mod:`.projection` projects the top images of the units with the highest top activation
   (:mod:`.units`): each one's single strongest activation, inside its receptive field (:mod:`visnet.receptive_fields`);
   a unit opened in the browser gets its own projection job, with the whole map's projection too;
5. :mod:`.browse`, :mod:`.units` and :mod:`.progress` answer what the pages show.

:mod:`.runner` runs steps 2–4 in one process; :mod:`service.jobs.scheduling` runs them as RQ jobs
(:mod:`service.jobs.scan`) on the workers of the scan's model and resumes a scan after anything stopped. The
folder layout is in :mod:`.store`. This package knows nothing of queues.

A scan runs on VGG16 or on a stored chain model (:mod:`visnet.chain`): :mod:`.layout` says what a scan needs
of either (its layers and units, its input size and preprocessing), and ``scan.json`` names the model.

Importing this package does not import TensorFlow: only :mod:`.means`, :mod:`.projection` and
:mod:`.runner` do.
"""
from .browse import describe_scan, layer_overview, list_scans, unit_detail
from .imagesets import UnsafeArchive, ZipLimits, extract_zip, list_images
from .merge import load_table, top_images
from .plan import ScanOptions, create_scan
from .progress import scan_progress
from .store import new_scan_id, resolve_file, scan_path

__all__ = [
    "ScanOptions", "UnsafeArchive", "ZipLimits", "create_scan", "describe_scan", "extract_zip",
    "layer_overview", "list_images", "list_scans", "load_table", "new_scan_id", "resolve_file",
    "scan_path", "scan_progress", "top_images", "unit_detail",
]
