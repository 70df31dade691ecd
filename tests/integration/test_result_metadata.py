"""Result PNGs carry nothing from the upload but its pixels: uploads with EXIF, an ICC profile (5 MB in the PNG), PNG
text chunks and a JPEG comment go through the session's real worker, and every PNG it writes has
only the chunks of a bare image (IHDR, PLTE, IDAT, IEND, pHYs), and no byte of that metadata appears
in any file of the result, nor the client's file name."""
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from tests.support.images import png_chunks
from tests.support.paths import EXAMPLES

pytestmark = pytest.mark.integration

MARKER = "visnet-private-marker-4f1c"
BARE_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"pHYs"}


def png_chunk_types(data: bytes) -> list:
    return [kind for kind, _ in png_chunks(data)]


def _photo():
    with Image.open(EXAMPLES / "coffee.jpg") as photo:
        return photo.convert("RGB").resize((160, 120))


def _exif():
    exif = Image.Exif()
    exif[0x010F] = f"Make {MARKER}"  # Make
    exif[0x013B] = f"Artist {MARKER}"  # Artist
    exif[0x0112] = 1  # orientation: upright
    return exif.tobytes()


def _icc(padding=0):
    """An sRGB profile with trailing bytes (still parsed as a profile, and easy to find); ``padding``
    random bytes make it as large as profiles with big lookup tables are (Pillow's PNG decoder refused
    more than 1 MiB until the upload check and the worker dropped PNG profiles before decoding)."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    filler = np.random.default_rng(8).integers(0, 256, padding, dtype=np.uint8).tobytes()
    tail = filler + MARKER.encode()
    return struct.pack(">I", len(profile) + len(tail)) + profile[4:] + tail


def png_with_metadata() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"tEXt {MARKER}")
    info.add_text("Author", f"zTXt {MARKER}", zip=True)
    info.add_itxt("Description", f"iTXt {MARKER}", lang="en")
    buffer = io.BytesIO()
    _photo().save(buffer, "PNG", pnginfo=info, exif=_exif(), icc_profile=_icc(padding=5 * 1024 * 1024), dpi=(300, 300))
    data = buffer.getvalue()
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"} <= set(png_chunk_types(data))
    return data


def jpeg_with_metadata() -> bytes:
    buffer = io.BytesIO()
    _photo().save(buffer, "JPEG", quality=90, exif=_exif(), icc_profile=_icc(), comment=f"COM {MARKER}",
                  dpi=(300, 300))
    data = buffer.getvalue()
    assert MARKER.encode() in data
    return data


@pytest.fixture(scope="module")
def api(worker, service_app):
    return service_app.test_client()


def run_job(api, wait_for_job, data, filename, **fields):
    response = api.post("/api/jobs", data={"image": (io.BytesIO(data), filename), **fields},
                        content_type="multipart/form-data")
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    document = wait_for_job(lambda job_id: api.get(f"/api/jobs/{job_id}").get_json(), response.get_json()["id"])
    assert document["status"] == "finished", document
    return document


def assert_nothing_from_the_upload(api, service_app, document, filename):
    folder = Path(service_app.config["RESULTS_DIR"]) / document["id"]
    pngs = sorted(folder.glob("*.png"))
    assert pngs and {path.name for path in pngs} == {entry["name"] for entry in document["files"]}
    for path in pngs:
        data = api.get(f"/api/jobs/{document['id']}/files/{path.name}").data
        assert data == path.read_bytes()
        assert set(png_chunk_types(data)) <= BARE_CHUNKS, (path.name, png_chunk_types(data))
        with Image.open(io.BytesIO(data)) as image:
            assert not image.info.get("icc_profile") and not image.getexif()
    for path in folder.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert MARKER.encode() not in content, path.name
            assert filename.encode() not in content, path.name
    archive = api.get(document["links"]["archive"]).data
    assert MARKER.encode() not in archive and filename.encode() not in archive


def test_deconv_results_of_a_png_with_text_exif_and_a_5_mb_icc_carry_none_of_it(api, service_app, wait_for_job):
    filename = f"holiday-{MARKER}.png"
    document = run_job(api, wait_for_job, png_with_metadata(), filename, layers="block1_pool,block3_pool", top_k="1")
    assert_nothing_from_the_upload(api, service_app, document, filename)


def test_view_results_of_a_jpeg_with_exif_icc_and_comment_carry_none_of_it(api, service_app, wait_for_job):
    filename = f"portrait-{MARKER}.jpg"
    document = run_job(api, wait_for_job, jpeg_with_metadata(), filename,
                       method="feature-maps", layer="block1_conv1")
    assert_nothing_from_the_upload(api, service_app, document, filename)
