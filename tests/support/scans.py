"""Fixtures for the scan tests: a set of 200+ real and synthetic images, the engine, a brute-force
table over a representative quarter of them, and real RQ workers (``worker.py``) on the session's embedded Redis.

The image set mixes scikit-image's photos (and crops, flips and rotations of them), greyscale photos,
seeded noise, gradients, shapes, flat colours and exact duplicates (which tie on every channel, so the
tie rule is exercised). Files are small (at most 160 px) so the folder stays a few MB.
"""
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image, ImageDraw

from tests.support.paths import ARTIFACTS
from tests.support.workers import Worker

# Two layers as deep as the suite's time allows (the forward pass stops at block3_pool: 18.7 of the 30.7
# GFLOP per image). VISNET_SCAN_TEST_LAYERS=block3_pool,block5_pool runs the scans through the whole network.
TEST_LAYERS = ("block2_pool", "block3_pool")
TEST_K = 5
GENERATED_EACH = 33  # noise, gradients and shapes: with the photos, 208 images in all
SCAN_REDIS_DB = 2  # database 0 and 1 belong to the service tests (tests.support.redis_server)

COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                 "retina", "colorwheel", "cat", "logo")
GREY_PHOTOS = ("camera", "coins", "moon", "page", "text", "clock", "grass", "brick")


def _small(image: Image.Image, side: int = 160) -> Image.Image:
    image = image.copy()
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image


def _save(image: Image.Image, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    format = {".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP", ".gif": "GIF"}[path.suffix]
    options = {"quality": 90} if format == "JPEG" else {"lossless": True} if format == "WEBP" else {}
    if format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(path, format, **options)


def _photo_variants(array: np.ndarray) -> dict:
    image = Image.fromarray(array)
    width, height = image.size
    side = min(width, height)
    crops = {
        "full": image,
        "centre": image.crop(((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)),
        "top_left": image.crop((0, 0, width * 2 // 3, height * 2 // 3)),
        "bottom_right": image.crop((width // 3, height // 3, width, height)),
        "top_right": image.crop((width // 3, 0, width, height * 2 // 3)),
        "zoom": image.crop((width // 4, height // 4, width * 3 // 4, height * 3 // 4)),
    }
    crops["mirror"] = crops["full"].transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    crops["upside_down"] = crops["full"].transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    crops["turned"] = crops["centre"].transpose(Image.Transpose.ROTATE_90)
    return crops


def _shapes(rng, side=128) -> Image.Image:
    image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 7))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, y0 = (int(v) for v in rng.integers(0, side - 20, 2))
        x1, y1 = x0 + int(rng.integers(10, side - x0)), y0 + int(rng.integers(10, side - y0))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 9)))
    return image


def _gradient(rng, side=128) -> Image.Image:
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:side, 0:side] / (side - 1)
    t = np.clip((np.cos(angle) * x + np.sin(angle) * y + 1) / 2, 0, 1)[..., None]
    return Image.fromarray(np.round(start * (1 - t) + end * t).astype(np.uint8))


def build_image_set(root: Path) -> dict:
    """Write the test image set under ``root``; returns counts by kind."""
    from skimage import data

    rng = np.random.default_rng(20140101)
    counts = {}
    suffixes = (".jpg", ".png", ".jpg", ".webp", ".jpg", ".bmp", ".jpg", ".png", ".gif")
    for name in COLOUR_PHOTOS:
        for index, (variant, image) in enumerate(_photo_variants(getattr(data, name)()).items()):
            suffix = suffixes[index % len(suffixes)]
            image = image.convert("RGB") if suffix == ".gif" else image
            _save(_small(image), root / "photos" / name / f"{variant}{suffix}")
            counts["photos"] = counts.get("photos", 0) + 1
    for index, name in enumerate(GREY_PHOTOS):
        image = _small(Image.fromarray(getattr(data, name)()))
        if index % 3 == 2:  # greyscale stored as RGB with equal channels
            _save(image.convert("RGB"), root / "grey" / f"{name}_rgb.png")
        else:
            _save(image, root / "grey" / f"{name}.{'jpg' if index % 2 else 'png'}")
        counts["grey"] = counts.get("grey", 0) + 1
    _save(_small(Image.fromarray(data.horse()).convert("1")), root / "grey" / "horse_1bit.png")
    _save(_small(Image.fromarray(data.camera()).convert("LA")), root / "grey" / "camera_la.png")
    counts["grey"] += 2
    for index in range(GENERATED_EACH):
        noise = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        _save(Image.fromarray(noise), root / "generated" / "noise" / f"{index:03d}.jpg")
        _save(_gradient(rng), root / "generated" / "gradients" / f"{index:03d}.png")
        _save(_shapes(rng), root / "generated" / "shapes" / f"{index:03d}.png")
    counts["generated"] = 3 * GENERATED_EACH
    for index in range(6):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        _save(Image.new("RGB", (64, 64), colour), root / "generated" / "flat" / f"{index}.png")
    counts["flat"] = 6
    for source in ("photos/chelsea/full.jpg", "generated/shapes/000.png", "generated/noise/001.jpg"):
        target = root / "duplicates" / source.replace("/", "_")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / source, target)
    counts["duplicates"] = 3
    return counts


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scan_images")
    build_image_set(root)
    return root


@pytest.fixture(scope="session")
def test_layers():
    """The layers of the network scans: VISNET_SCAN_TEST_LAYERS (comma-separated) or TEST_LAYERS."""
    from visnet.architecture import resolve_layers

    return tuple(resolve_layers(os.environ.get("VISNET_SCAN_TEST_LAYERS") or ",".join(TEST_LAYERS)))


def representative_images(paths) -> list:
    """A quarter of the image set that keeps every kind of image in it: every fourth path, the exact
    duplicates with the images they copy (so ties are still exercised), and the odd greyscale modes
    (1-bit, grey with alpha, grey stored as RGB). Sorted: 61 of the 208, four chunks of 16."""
    duplicates = [path for path in paths if path.startswith("duplicates/")]
    originals = [path.split("/", 1)[1].replace("_", "/", 2) for path in duplicates]
    odd_greys = [path for path in paths if path.startswith("grey/") and path.endswith(("_1bit.png", "_la.png", "_rgb.png"))]
    chosen = set(paths[::4]) | set(duplicates) | set(originals) | set(odd_greys)
    assert chosen <= set(paths), sorted(chosen - set(paths))
    return sorted(chosen)


@pytest.fixture(scope="session")
def scan_images(image_folder) -> list:
    """The relative paths that the distributed scan tests scan: ``representative_images`` of the set."""
    from visnet.scan.imagesets import list_images

    return representative_images(list_images(image_folder))


@pytest.fixture(scope="session")
def brute_force_tables(engine, image_folder, scan_images, test_layers):
    """The brute force: every image of ``scan_images`` (sorted relative paths, no skipping) through the
    network in this process, {layer: float32 (N, C)}, plus the paths and the seconds it took."""
    from visnet.scan.imagesets import load_scan_image
    from visnet.scan.means import channel_means

    paths = scan_images
    images = np.stack([load_scan_image(image_folder / path) for path in paths])
    started = time.perf_counter()
    tables = channel_means(engine, images, test_layers)
    return {"paths": paths, "tables": tables, "seconds": time.perf_counter() - started}


# --- Redis and workers ------------------------------------------------------------------------------

ScanWorker = Worker  # python worker.py serving the scan tests' queue, its output in test-artifacts/


class WorkerPool:
    """The scan tests' workers. ``launch(n)`` starts n processes without waiting (a worker takes ~15 s to
    load, which can overlap other work); ``exactly(n)`` stops or starts workers until n are alive and
    ready."""

    def __init__(self, env, log_prefix):
        self.env, self.log_prefix = env, log_prefix
        self.alive, self.launched, self.gone, self.started = [], [], [], 0

    def launch(self, count):
        for _ in range(count):
            self.launched.append(ScanWorker(self.env, ARTIFACTS / f"{self.log_prefix}-worker{self.started}.log"))
            self.started += 1

    def exactly(self, count):
        while len(self.alive) + len(self.launched) > count:
            self.stop((self.launched or self.alive)[-1])
        self.launch(count - len(self.alive) - len(self.launched))
        self.alive += [worker.wait_ready() for worker in self.launched]
        self.launched = []
        return list(self.alive)

    def kill(self, worker):
        worker.kill()
        self.alive.remove(worker)
        self.gone.append(worker)

    def stop(self, worker):
        worker.stop()
        for group in (self.alive, self.launched):
            if worker in group:
                group.remove(worker)
        self.gone.append(worker)

    def close(self):
        running = self.alive + self.launched
        for worker in running:  # all at once: each waits for its warm shutdown
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in running + self.gone:
            worker.stop()


@pytest.fixture(scope="session")
def scan_service(redis_instance, tmp_path_factory):
    """A Redis database of the session's embedded server (emptied first) and a pool of ``worker.py``
    processes serving the scan tests' queue on it; two are launched at once, so that they load while the
    brute force runs (ask for this fixture before ``brute_force_tables``)."""
    url = f"{redis_instance['url']}?db={SCAN_REDIS_DB}"
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    connection.close()
    ARTIFACTS.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "REDIS_URL": url,
        "RESULTS_DIR": str(tmp_path_factory.mktemp("scan_results")),
        "VISNET_INSTANCE_DIR": str(redis_instance["instance"]),
        "VISNET_QUEUE": "scan-test",
        "VISNET_WEIGHTS": "hed",
        "VISNET_DEVICE": "cpu",
        "VISNET_LOG_LEVEL": "INFO",
        "VISNET_WORKER_WARM_UP": "0",  # a scan's chunks run other fetches than the photo job the warm-up runs
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    pool = WorkerPool(env, "scan")
    pool.launch(2)
    yield {"url": url, "queue": "scan-test", "workers": pool}
    pool.close()
