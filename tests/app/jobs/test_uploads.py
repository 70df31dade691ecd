"""Upload validation: every bad input of issue 3 is a 4xx JSON error with nothing enqueued and no file
left behind; odd but valid images are accepted and decode right."""
import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app import MAX_FORM_PARTS, create_app
from app.jobs import uploads
from visnet.architecture import LAYERS
from visnet.preprocessing import load_image, without_icc_profile


def post(client, data: bytes, filename="photo.jpg", **options):
    return client.post("/api/jobs", data={"image": (io.BytesIO(data), filename), **options},
                       content_type="multipart/form-data")


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


# --- size limits ---------------------------------------------------------------------------------

def test_body_over_the_limit_is_413(client, nothing_stored):
    too_big = b"\xff\xd8\xff" + b"\0" * (3 * 1024 * 1024)
    error = assert_error(post(client, too_big), 413)
    assert "MiB" in error["message"]
    nothing_stored()


def test_a_form_of_many_small_parts_is_413_naming_the_part_limit(client, nothing_stored, check_against_spec):
    fields = {f"field{index}": "x" for index in range(1200)}  # about 140 KB: the body limit is not the reason
    response = client.post("/api/jobs", data=fields, content_type="multipart/form-data")
    error = assert_error(response, 413, "too_many_parts")
    assert error["message"] == f"the form has more parts (fields and files) than the limit of {MAX_FORM_PARTS}"
    check_against_spec("/api/jobs", "post", 413, response.get_json())

    page = client.post("/jobs", data=fields, content_type="multipart/form-data")
    assert page.status_code == 413 and page.mimetype == "text/html"
    assert f"than the limit of {MAX_FORM_PARTS}" in page.get_data(as_text=True)
    nothing_stored()


def test_a_form_field_over_its_limit_is_413_naming_that_limit(client, nothing_stored):
    response = client.post("/api/jobs", data={"channels": "x" * 600_000}, content_type="multipart/form-data")
    assert assert_error(response, 413, "field_too_large")["message"] == \
        "a form field is larger than the limit of 500 kB (files are not counted)"
    nothing_stored()


def test_the_largest_forms_fit_the_part_limit(client, images, redis_conn):
    layers = [layer.name for layer in LAYERS]
    upload_page = client.post("/jobs", data={"image": (io.BytesIO(images.photo_jpeg()), "a.jpg"), "preset": "custom",
                                             "layer": layers, "top_k": "1", "mode": "single"},
                              content_type="multipart/form-data")
    assert upload_page.status_code == 303  # 22 parts
    scans_page = client.post("/scans", data={"archive": (io.BytesIO(b"not a zip"), "a.zip"), "layer": layers,
                                             "k": "9", "image_size": "224", "skip_grey": "true", "chunk_size": "32",
                                             "project_channels": "", "project_k": ""},
                             content_type="multipart/form-data")
    # 25 parts: read, then the archive refused for what it is
    assert scans_page.status_code in (400, 415) and "parts" not in scans_page.get_data(as_text=True)


def test_missing_image_part_is_400(client, nothing_stored):
    response = client.post("/api/jobs", data={"top_k": "3"}, content_type="multipart/form-data")
    assert "image" in assert_error(response, 400, "missing_image")["message"]
    nothing_stored()


def test_not_multipart_is_400(client, nothing_stored):
    assert_error(client.post("/api/jobs", json={"image": "nope"}), 400, "missing_image")
    nothing_stored()


def test_empty_file_is_400(client, nothing_stored):
    assert_error(post(client, b""), 400, "empty_file")
    nothing_stored()


# --- formats -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, filename", [
    ("TEXT", "notes.png"), ("HTML", "page.jpg"), ("ZIP", "archive.png"),
    ("EPS", "drawing.jpg"), ("PDF", "paper.png"), ("SVG", "vector.png"), ("TIFF", "scan.jpg"),
])
def test_non_images_and_formats_outside_the_allow_list_are_415(client, images, nothing_stored, name, filename):
    data = {"ZIP": images.zip_file(), "TIFF": images.tiff()}.get(name) or getattr(images, name)
    error = assert_error(post(client, data, filename), 415, "unsupported_format")
    assert "JPEG" in error["message"]
    nothing_stored()


@pytest.mark.parametrize("name", ["TEXT", "HTML", "EPS", "PDF", "SVG", "tiff", "zip_file"])
def test_rejected_formats_never_reach_a_decoder(images, monkeypatch, name):
    data = getattr(images, name)
    data = data() if callable(data) else data

    def no_decoding(*args, **kwargs):
        raise AssertionError("Image.open was called on a file outside the allow-list")

    monkeypatch.setattr(uploads.images.Image, "open", no_decoding)
    with pytest.raises(uploads.ImageRejected) as rejected:
        uploads.check_image(data, 1_000_000)
    assert rejected.value.status == 415


@pytest.mark.parametrize("name", ["truncated_jpeg", "truncated_png"])
def test_truncated_images_are_422(client, images, nothing_stored, name):
    error = assert_error(post(client, getattr(images, name)()), 422, "corrupt_image")
    assert "truncated" in error["message"]
    nothing_stored()


def test_header_only_checks_pass_but_load_catches_truncation(images):
    """The reason for load(): verify() and opening both accept a truncated JPEG."""
    data = images.truncated_jpeg()
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with pytest.raises(uploads.ImageRejected):
        uploads.check_image(data, 1_000_000)


def test_a_png_with_a_5_mb_icc_profile_is_accepted_stored_as_sent_and_decoded(app_config, images):
    data = images.png_with_large_icc()
    assert b"iCCP" in data[:64] and len(data) > 5 * 1024 * 1024  # the random profile does not compress
    app = create_app({**app_config, "MAX_CONTENT_LENGTH": 20 * 1024 * 1024})
    stored = stored_upload(app, post(app.test_client(), data, "profiled.png"))
    assert stored.read_bytes() == data  # the upload itself is kept whole; only decoding skips the profile
    rgb = load_image(stored)  # as the worker reads it
    assert rgb.shape == (224, 224, 3) and tuple(rgb[112, 112]) == (30, 160, 90)


def test_without_icc_profile_drops_only_that_chunk(images):
    data = images.png_with_large_icc()
    stripped = without_icc_profile(data)
    assert len(stripped) < 10_000 and b"iCCP" not in stripped
    with Image.open(io.BytesIO(stripped)) as image:
        image.load()
        assert image.getpixel((0, 0)) == (30, 160, 90) and "icc_profile" not in image.info
    plain = images.photo_png()
    assert without_icc_profile(plain) is plain and without_icc_profile(images.TEXT) is images.TEXT
    truncated = data[:100_000]  # the chunk runs past the end: left for the decoder to call truncated
    assert without_icc_profile(truncated) is truncated


def test_compressed_text_past_the_decoders_limit_is_refused_saying_why(client, images, nothing_stored):
    error = assert_error(post(client, images.png_with_large_ztxt(), "bomb.png"), 422, "metadata_too_large")
    assert "zTXt or iTXt" in error["message"] and "1 MiB" in error["message"]
    assert "decompression bomb" in error["message"]
    nothing_stored()


@pytest.mark.parametrize("size", [(100_000, 100_000), (3000, 3000)])
def test_decompression_bomb_is_413_from_the_header(client, images, nothing_stored, size):
    data = images.bomb_png(*size)
    assert len(data) < 200
    tracemalloc.start()
    response = post(client, data, "bomb.png")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    error = assert_error(response, 413, "image_too_large")
    assert "pixels" in error["message"]
    assert peak < 20 * 1024 * 1024  # the 9 or 10 000 megapixels were never allocated
    nothing_stored()


def test_pixel_limit_is_configurable(app, images):
    limit = app.config["MAX_IMAGE_PIXELS"]
    side = int(limit ** 0.5)
    uploads.check_image(images.photo_png((side, side)), limit)
    with pytest.raises(uploads.ImageRejected) as rejected:
        uploads.check_image(images.photo_png((side + 1, side + 1)), limit)
    assert rejected.value.status == 413


# --- odd but valid images ------------------------------------------------------------------------

def stored_upload(app, response) -> Path:
    assert response.status_code == 202, response.get_data(as_text=True)
    files = list(Path(app.config["UPLOAD_DIR"]).iterdir())
    assert len(files) == 1
    return files[0]


def test_greyscale_is_accepted_and_grey(app, client, images):
    rgb = load_image(stored_upload(app, post(client, images.greyscale_jpeg())))
    assert rgb.shape == (224, 224, 3)
    assert np.ptp(rgb.astype(int), axis=2).max() == 0
    assert abs(int(rgb[100, 100, 0]) - 90) <= 2


def test_palette_with_transparency_is_composited_on_white(app, client, images):
    rgb = load_image(stored_upload(app, post(client, images.palette_png_with_transparency(), "p.png")))
    assert tuple(rgb[112, 20]) == (255, 255, 255)
    assert tuple(rgb[112, 200]) == (255, 0, 0)


def test_rgba_is_composited_on_white(app, client, images):
    rgb = load_image(stored_upload(app, post(client, images.rgba_png(), "a.png")))
    assert tuple(rgb[112, 20]) == (255, 255, 255)
    assert tuple(rgb[112, 200]) == (0, 0, 255)


def test_cmyk_jpeg_is_converted(app, client, images):
    rgb = load_image(stored_upload(app, post(client, images.cmyk_jpeg())))
    red, green, blue = (int(value) for value in rgb[112, 112])
    assert red < 30 and green > 225 and blue > 225  # cyan


def test_16_bit_png_is_scaled_not_clipped(app, client, images):
    rgb = load_image(stored_upload(app, post(client, images.png_16bit(), "deep.png")))
    assert tuple(rgb[112, 20]) == (255, 255, 255)
    assert abs(int(rgb[112, 200, 0]) - 128) <= 1  # 32768 / 65535 of full scale, not 255


def test_exif_rotated_jpeg_comes_out_upright(app, client, images):
    rgb = load_image(stored_upload(app, post(client, images.exif_rotated_jpeg())))
    top, bottom = rgb[10, 112].astype(int), rgb[214, 112].astype(int)
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue below


@pytest.mark.parametrize("filename", [
    "../../etc/passwd", "..\\..\\windows\\win.ini", "a" * 5000 + ".jpg", "nul\x00byte.jpg", "/abs/path.jpg", "",
])
def test_hostile_names_never_reach_a_path(app, client, images, filename, tmp_path):
    data = images.photo_jpeg()
    response = post(client, data, filename)
    stored = stored_upload(app, response)
    assert stored.name == f"{uploads.check_image(data, 10**6).sha256}.jpg"
    assert stored.parent == Path(app.config["UPLOAD_DIR"])
    assert not (tmp_path / "etc").exists()


def test_the_format_comes_from_the_content_not_the_name(app, client, images):
    stored = stored_upload(app, post(client, images.photo_png(), "really-a-png.jpg"))
    assert stored.suffix == ".png"


def test_a_full_upload_disk_is_a_507_with_nothing_stored(app_config, redis_conn, small_disk, images,
                                                          check_against_spec):
    app = create_app({**app_config, "UPLOAD_DIR": str(small_disk)})
    client = app.test_client()
    noise = np.random.default_rng(5).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    assert len(buffer.getvalue()) > 16 * 1024  # more than the disk holds

    response = post(client, buffer.getvalue(), "noise.png")
    error = assert_error(response, 507, "insufficient_storage")
    assert error["message"].startswith("the server's upload disk is full") and "nothing was stored" in error["message"]
    check_against_spec("/api/jobs", "post", 507, response.get_json())

    page = client.post("/jobs", data={"image": (io.BytesIO(buffer.getvalue()), "noise.png"), "preset": "pools",
                                      "top_k": "3", "mode": "single"}, content_type="multipart/form-data")
    assert page.status_code == 507 and page.mimetype == "text/html"
    assert "upload disk is full" in page.get_data(as_text=True)

    assert list(small_disk.iterdir()) == []  # no partial upload, no temporary file
    assert redis_conn.llen(f"rq:queue:{app.config['QUEUE_NAME']}") == 0
    assert list(redis_conn.scan_iter(match="rq:job:*")) == []
    assert post(client, images.photo_png(), "small.png").status_code == 202  # a photo that fits is stored as before


@pytest.mark.parametrize("pillow_format, extension", [("BMP", "bmp"), ("WEBP", "webp"), ("GIF", "gif")])
def test_uploads_accept_every_format_the_scans_accept(app, client, pillow_format, extension):
    """One allow-list (visnet.images) for uploads and scans: a BMP, which scans always took, is a photo too."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (0, 128, 255)).save(buffer, pillow_format, lossless=True)  # (WebP's option)
    stored = stored_upload(app, post(client, buffer.getvalue(), "picture.bin"))
    assert stored.suffix == f".{extension}"
    assert tuple(load_image(stored)[112, 112]) == (0, 128, 255)
