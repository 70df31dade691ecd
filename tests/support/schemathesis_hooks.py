"""Files of the media types that the OpenAPI document states for its uploads (``encoding.contentType``), for
Schemathesis (schemathesis.toml loads this module): a photo of each accepted format, and ZIPs of such photos.

A schema says a part is a binary file of a media type; what the service then checks (an image that decodes, an
archive that holds one) no schema states. Without these, the fuzzer's "valid" uploads are random bytes, which
the service rightly refuses, and no job or scan gets created for its later steps to use."""
import io
import zipfile

import schemathesis
from hypothesis import strategies as st
from PIL import Image

from app.openapi.forms import IMAGE_MEDIA_TYPES

# Pillow's format names are the media types' subtypes, upper case.
FORMATS = {media_type: media_type.removeprefix("image/").upper() for media_type in IMAGE_MEDIA_TYPES.split(", ")}


def _encode(image_format: str, size: tuple, colour: tuple) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, image_format)
    return buffer.getvalue()


def photos(image_format: str) -> st.SearchStrategy:
    sides = st.integers(min_value=1, max_value=48)
    return st.builds(lambda width, height, colour: _encode(image_format, (width, height), colour),
                     sides, sides, st.tuples(*[st.integers(0, 255)] * 3))


@st.composite
def photo_archives(draw) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(draw(st.integers(min_value=1, max_value=3))):
            image_format = draw(st.sampled_from(sorted(FORMATS.values())))
            archive.writestr(f"photo{index}.{image_format.lower()}", draw(photos(image_format)))
    return buffer.getvalue()


for media_type, image_format in FORMATS.items():
    schemathesis.openapi.media_type(media_type, photos(image_format))
schemathesis.openapi.media_type("application/zip", photo_archives())
