"""A scan's options and plan: which images, in which chunks, for which layers.

:func:`create_scan` lists the images (or takes an explicit list), decodes every one of them once (an
unreadable file is skipped here, not in the middle of a chunk, and greyscale images are recognised),
splits the kept images into contiguous chunks and writes ``scan.json``. Nothing is computed yet.
"""
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from . import store
from .imagesets import DEFAULT_MAX_IMAGE_PIXELS, UnreadableImage, inspect_image, list_images
from .layout import VGG16_LAYOUT, engine_layout, layout_of

MAX_K = 64
MAX_IMAGE_SIZE = 1024
MAX_CHUNK_SIZE = 1024
# 2: no batch_size (images run one at a time, visnet.scan.means); 3: the projected units are the ones with the
# highest top activation (before: the first ones by index), and the classifier's layers may be scanned.
FORMAT_VERSION = 3
CLASSIFIER_PROJECTED = 64  # neurons of a flat layer (fc1, fc2, predictions…) projected by default; any other when opened


@dataclass(frozen=True)
class ScanOptions:
    """What a scan computes.

    ``layers``: layer names (``"pools"``, ``"all"`` or ``"a,b"`` are accepted and resolved).
    ``k``: how many top and bottom images each channel keeps (Zeiler & Fergus show 9).
    ``skip_grey``: leave greyscale images out (the source did).
    ``image_size``: each image is resized to image_size × image_size (bilinear) and its central
    input size × input size (VGG16's 224 × 224) is what the network sees; the input size (default) is the
    whole image.
    ``chunk_size``: images per chunk job.
    ``project_channels``: how many units per layer get projections: those with the highest top
    activation (:func:`visnet.scan.units.projected_units`); None: all of them (of a flat layer such as a
    classifier's, the 64 strongest), 0: none; any other unit is projected when someone opens it. ``project_k``: how many of each channel's top images are projected
    (None: all k). ``project_block``: channels per projection job.
    ``layout``: the model (:mod:`visnet.scan.layout`) the layers are checked against; not an option of its own:
    a chain scan's scan.json keeps it as ``model``.
    """

    layers: tuple = "pools"
    k: int = 9
    skip_grey: bool = False
    image_size: Optional[int] = None
    chunk_size: int = 32
    project_channels: Optional[int] = None
    project_k: Optional[int] = None
    project_block: int = 16
    layout: object = field(default=VGG16_LAYOUT, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layout.resolve(self.layers)))
        _integer("k", self.k, 1, MAX_K)
        if not isinstance(self.skip_grey, bool):
            raise ValueError(f"skip_grey must be true or false, received {self.skip_grey!r}")
        if self.image_size is None:
            object.__setattr__(self, "image_size", self.layout.input_size)
        _integer("image_size", self.image_size, self.layout.input_size, MAX_IMAGE_SIZE)
        _integer("chunk_size", self.chunk_size, 1, MAX_CHUNK_SIZE)
        if self.project_channels is not None:
            _integer("project_channels", self.project_channels, 0, 512)
        if self.project_k is not None:
            _integer("project_k", self.project_k, 1, self.k)
        _integer("project_block", self.project_block, 1, 512)

    @classmethod
    def from_dict(cls, values: dict, layout=VGG16_LAYOUT) -> "ScanOptions":
        known = {item.name for item in fields(cls)} - {"layout"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown scan options {unknown}; expected some of {sorted(known)}")
        return cls(**values, layout=layout)

    def as_dict(self) -> dict:
        values = {item.name: getattr(self, item.name) for item in fields(self) if item.name != "layout"}
        values["layers"] = list(self.layers)
        return values

    @property
    def projected_k(self) -> int:
        return self.k if self.project_k is None else self.project_k

    def projected_channels(self, layer: str) -> int:
        """How many units of ``layer`` the scan projects (which ones: :func:`visnet.scan.units.projected_units`).
        By default every unit of a convolutional layer, and the CLASSIFIER_PROJECTED strongest neurons of a
        flat layer (each one's projection is a full backward pass, and VGG16's fc1 alone has 4096)."""
        channels = self.layout.unit_count(layer)
        if self.project_channels is None:
            return min(CLASSIFIER_PROJECTED, channels) if self.layout.is_flat(layer) else channels
        return min(self.project_channels, channels)


def check_engine(options: ScanOptions, engine) -> None:
    """A ValueError unless ``engine`` serves the model the scan was planned for (a job on the wrong worker)."""
    served, planned = engine_layout(engine), options.layout
    if (served.name, served.sha256) != (planned.name, planned.sha256):
        raise ValueError(f"the scan was planned for model {planned.name} (sha256 {str(planned.sha256)[:12]}), and this "
                         f"worker serves {served.name} (sha256 {str(served.sha256)[:12]}); a scan runs on the model "
                         "it was planned for: scan the images again to use the other")


def _integer(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, received {value!r}")


def options_of(record: dict) -> ScanOptions:
    """A scan's options, with the layout of the model it was planned for (:func:`visnet.scan.layout.layout_of`)."""
    values = dict(record["options"])
    if record.get("version", 1) == 1:
        values.pop("batch_size", None)  # format 1 ran images in batches; they now run one at a time
    return ScanOptions.from_dict(values, layout_of(record))


def plan_chunks(count: int, chunk_size: int) -> list:
    """[[start, stop], …]: contiguous ranges of image ids, each ``chunk_size`` long but the last."""
    return [[start, min(start + chunk_size, count)] for start in range(0, count, chunk_size)]


def projection_blocks(record: dict) -> list:
    """[(layer, start, stop)]: the projection jobs of a scan, ``project_block`` units each. ``start`` and
    ``stop`` are positions in the layer's list of projected units (:func:`visnet.scan.units.projected_units`:
    strongest first), known once the scan is merged; their number is known from the plan."""
    options = options_of(record)
    blocks = []
    for layer in options.layers:
        channels = options.projected_channels(layer)
        blocks += [(layer, start, min(start + options.project_block, channels))
                   for start in range(0, channels, options.project_block)]
    return blocks


def create_scan(scan_dir, image_root, options: ScanOptions, images=None, scan_id: Optional[str] = None,
                max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, progress=None) -> dict:
    """Plan a scan of the images under ``image_root`` (all of them, or the relative paths ``images``)
    and write ``scan_dir/scan.json``; returns that record. ``scan_id`` defaults to the folder's name
    when that is a scan id, else a new one. ``progress(done, total)`` is called while images are read.

    Raises ValueError when the folder already holds a scan or no image is left to scan.
    """
    scan_dir = Path(scan_dir)
    if (scan_dir / store.SCAN_FILE).exists():
        raise ValueError(f"{str(scan_dir)!r} already holds a scan")
    root = Path(image_root)
    candidates = list_images(root) if images is None else sorted(set(images))
    kept, skipped = [], []
    for done, relative in enumerate(candidates):
        try:
            grey = inspect_image(root / relative, max_image_pixels)
        except (UnreadableImage, OSError) as error:
            skipped.append({"path": relative, "reason": f"unreadable: {error}"})
        else:
            if grey and options.skip_grey:
                skipped.append({"path": relative, "reason": "greyscale"})
            else:
                kept.append(relative)
        if progress is not None:
            progress(done + 1, len(candidates))
    if not kept:
        # An uploaded archive's folder lies inside the scan: its server path means nothing to the uploader.
        where = "in the archive" if scan_dir.resolve() in root.resolve().parents else f"under {str(root)!r}"
        reasons = sorted({item["reason"] for item in skipped})
        raise ValueError(f"no image to scan {where}: {len(candidates)} found, {len(skipped)} skipped"
                         + (f" ({'; '.join(reasons)[:200]})" if reasons else ""))
    scan_dir.mkdir(parents=True, exist_ok=True)
    resolved_root = root.resolve()
    try:
        stored_root = resolved_root.relative_to(scan_dir.resolve()).as_posix()
    except ValueError:
        stored_root = str(resolved_root)
    if scan_id is None:
        scan_id = scan_dir.name if store.SCAN_ID.fullmatch(scan_dir.name) else store.new_scan_id()
    record = {
        "version": FORMAT_VERSION,
        "id": scan_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "image_root": stored_root,
        "options": options.as_dict(),
        "layers": [{"name": name, "channels": options.layout.unit_count(name)} for name in options.layers],
        "images": kept,
        "skipped": skipped,
        "chunks": plan_chunks(len(kept), options.chunk_size),
    }
    if options.layout.describe() is not None:  # a stored model's scan; a VGG16 scan.json is as before models
        record["model"] = options.layout.describe()
    for folder in (store.CHUNKS_DIR, store.THUMBS_DIR):
        (scan_dir / folder).mkdir(exist_ok=True)
    store.write_json_atomically(scan_dir / store.SCAN_FILE, record)
    return record
