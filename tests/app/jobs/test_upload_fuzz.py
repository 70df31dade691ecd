"""Fuzzing the upload validator: whatever the bytes, ``uploads.check_image`` either accepts them or
raises ``ImageRejected`` with a 4xx, and ``POST /api/jobs`` answers a 2xx or a 4xx in the error shape.

Generated inputs: random bytes; each accepted format's magic bytes followed by junk; real JPEG, PNG,
GIF and WebP files (a photo from static/examples) with bytes flipped, cut short or repeated; and
headers that claim absurd dimensions. Example counts are bounded so the file runs in seconds;
the example database is off so that nothing is written into the checkout.
"""
import io
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app import create_app
from app.jobs import uploads
from tests.support.paths import EXAMPLES

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about some damaged files

MAX_PIXELS = 4_000_000
REJECTION_STATUSES = {400, 413, 415, 422}
FUZZ = settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PHOTO = EXAMPLES / "chelsea.jpg"


def _encode(image, format, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def _real_files() -> dict:
    with Image.open(PHOTO) as photo:
        small = photo.convert("RGB").resize((48, 40))
    return {
        "jpeg": _encode(small, "JPEG", quality=85),
        "progressive-jpeg": _encode(small, "JPEG", quality=85, progressive=True),
        "png": _encode(small, "PNG"),
        "palette-png": _encode(small.convert("P"), "PNG"),
        "gif": _encode(small.convert("P"), "GIF"),
        "webp-lossy": _encode(small, "WEBP", quality=80),
        "webp-lossless": _encode(small, "WEBP", lossless=True),
    }


REAL_FILES = _real_files()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


MAGIC = [
    b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)),
    b"GIF87a", b"GIF89a", b"GIF89a\x10\x00\x10\x00\x80\x00\x00",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\xff\xff\xff\xffWEBPVP8L", b"RIFF\x20\x00\x00\x00WEBPVP8X",
]


@st.composite
def magic_then_junk(draw):
    return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=1024))


@st.composite
def mutated_real_file(draw):
    data = bytearray(REAL_FILES[draw(st.sampled_from(sorted(REAL_FILES)))])
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "repeat", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            for offset in range(draw(st.integers(1, 8))):
                if at + offset < len(data):
                    data[at + offset] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "repeat":
            span = draw(st.integers(1, 256))
            data[at:at] = data[at:at + span]
        else:
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


@st.composite
def absurd_dimensions(draw):
    """(bytes, claimed width × height, junk after the header?): a header of each format claiming
    sizes from 0 to the format's maximum, then junk or nothing."""
    data, claimed, tail = draw(_absurd_dimensions())
    return data, claimed, bool(tail)


@st.composite
def _absurd_dimensions(draw):
    tail = draw(st.one_of(st.just(b""), st.binary(max_size=256)))
    kind = draw(st.sampled_from(["png", "gif", "jpeg", "webp"]))
    if kind == "png":
        width, height = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
        depth, colour = draw(st.sampled_from([(8, 0), (8, 2), (16, 2), (1, 0), (8, 3), (8, 6)]))
        header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                + _png_chunk(b"IDAT", zlib.compress(tail)) + _png_chunk(b"IEND", b"")), width * height, tail
    if kind == "gif":
        width, height = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
        return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00" * 6
                + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02" + tail), width * height, tail
    if kind == "jpeg":
        width, height = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
        frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
        return b"\xff\xd8\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame + tail, width * height, tail
    width, height = draw(st.integers(1, 2**24)), draw(st.integers(1, 2**24))
    canvas = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(canvas)) + canvas + tail
    return b"RIFF" + struct.pack("<I", len(body)) + body, width * height, tail


ANY_UPLOAD = st.one_of(st.binary(max_size=2048), magic_then_junk(), mutated_real_file(),
                       absurd_dimensions().map(lambda drawn: drawn[0]))


def assert_checked_or_rejected(data: bytes):
    try:
        checked = uploads.check_image(data, MAX_PIXELS)
    except uploads.ImageRejected as rejected:
        assert rejected.status in REJECTION_STATUSES, (rejected.status, rejected.code, rejected.message)
        assert rejected.code and rejected.message
        return rejected.status
    assert checked.width * checked.height <= MAX_PIXELS and checked.width >= 1 and checked.height >= 1
    return 200


def test_the_real_files_are_accepted():
    for name, data in REAL_FILES.items():
        checked = uploads.check_image(data, MAX_PIXELS)
        assert (checked.width, checked.height) == (48, 40), name


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    assert_checked_or_rejected(data)


@FUZZ
@given(magic_then_junk())
def test_accepted_magic_bytes_followed_by_junk(data):
    assert assert_checked_or_rejected(data) in REJECTION_STATUSES | {200}


@settings(FUZZ, max_examples=400)
@given(mutated_real_file())
def test_mutated_real_files(data):
    assert_checked_or_rejected(data)


@FUZZ
@given(absurd_dimensions())
def test_absurd_dimensions_in_headers(drawn):
    data, claimed, junk_follows = drawn
    status = assert_checked_or_rejected(data)
    if claimed > MAX_PIXELS or claimed == 0:
        assert status != 200
    if claimed > MAX_PIXELS and not junk_follows and not data.startswith(b"RIFF"):
        # From the header alone, before any pixel is decoded. (libwebp reads a WebP's header and
        # rejects a canvas without image data as damaged first: a 422, as asserted above.)
        assert status == 413


@settings(FUZZ, max_examples=120, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=ANY_UPLOAD)
def test_the_api_answers_only_2xx_or_4xx(app_config, data):
    client = _fuzz_client(app_config)
    response = client.post("/api/jobs", data={"image": (io.BytesIO(data), "upload.bin")},
                           content_type="multipart/form-data")
    assert response.status_code in (200, 202) or response.status_code in REJECTION_STATUSES, response.get_data()
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert set(error) == {"code", "message"} and error["message"]


_clients = {}


def _fuzz_client(app_config):
    """One app per test (not per example): every valid upload is a new job, so no queue cap."""
    key = app_config["UPLOAD_DIR"]
    if key not in _clients:
        _clients.clear()
        _clients[key] = create_app({**app_config, "QUEUE_CAP": 10**9}).test_client()
    return _clients[key]
