"""A small ZIP of real photos for the dataset scan tests of the live service (tests/integration and
tests/browser), and the calls that upload it and wait for the scan: shared, like tests/support/workers.py."""
import io
import time
import zipfile

import numpy as np
import requests
from PIL import Image, ImageDraw

# scikit-image's bundled colour photos (no download), plus generated pictures and one greyscale photo.
COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "hubble_deep_field",
                 "retina", "colorwheel", "logo")
GREY_PHOTO = "camera"
GENERATED = 4
# Early layers, few projected units, tiny chunks: the whole scan takes seconds on two CPU cores.
SCAN_FIELDS = {"layers": "block1_pool,block2_pool", "k": "4", "skip_grey": "true", "chunk_size": "4",
               "project_channels": "3", "project_k": "2"}
SCAN_TIMEOUT = 240


def _jpeg(image: Image.Image, side=160) -> bytes:
    image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def _shapes(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (128, 128), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = (int(v) for v in rng.integers(0, 100, 2))
        draw.ellipse((x0, y0, x0 + 28, y0 + 28), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def photo_members(photos=COLOUR_PHOTOS, generated=GENERATED, grey=True) -> dict:
    """{member name: bytes}: the photos, generated shapes, a greyscale photo and a text file."""
    from skimage import data

    members = {f"photos/{name}.jpg": _jpeg(Image.fromarray(getattr(data, name)())) for name in photos}
    members.update({f"generated/shapes{index}.jpg": _jpeg(_shapes(index)) for index in range(generated)})
    if grey:
        members[f"grey/{GREY_PHOTO}.jpg"] = _jpeg(Image.fromarray(getattr(data, GREY_PHOTO)()))
    members["notes.txt"] = b"not an image: skipped by the extraction"
    return members


def build_zip(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def post_scan(base_url: str, archive: bytes, **fields) -> requests.Response:
    return requests.post(base_url + "/api/scans", files={"archive": ("photos.zip", archive, "application/zip")},
                         data=fields, timeout=60)


def wait_for_scan(base_url: str, scan_id: str, timeout: float = SCAN_TIMEOUT, until=("done", "failed")) -> list:
    """Poll the scan until its status is in ``until``; returns every document seen (the last one last)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        response = requests.get(f"{base_url}/api/scans/{scan_id}", timeout=10)
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["status"] in until:
            return seen
        time.sleep(0.25)
    raise AssertionError(f"scan {scan_id} still {seen[-1]['status'] if seen else '?'} after {timeout} s: "
                         f"{seen[-1] if seen else None}")
