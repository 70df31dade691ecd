"""Image bytes for the upload tests: valid odd ones, and every kind of bad input of issue 3."""
import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def png_chunks(data: bytes) -> list:
    """A PNG file's chunks in order, as ``(kind, body)`` bytes pairs; asserts the signature and every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


class SampleImages:
    @staticmethod
    def photo_jpeg(size=(64, 48), color=(200, 80, 40)) -> bytes:
        return encode(Image.new("RGB", size, color), "JPEG", quality=90)

    @staticmethod
    def photo_png(size=(64, 48), color=(20, 120, 220)) -> bytes:
        return encode(Image.new("RGB", size, color), "PNG")

    # --- odd but valid -------------------------------------------------------------------------
    @staticmethod
    def greyscale_jpeg() -> bytes:
        return encode(Image.new("L", (40, 30), 90), "JPEG", quality=95)

    @staticmethod
    def palette_png_with_transparency() -> bytes:
        image = Image.new("P", (40, 40), 0)
        image.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
        image.paste(1, (20, 0, 40, 40))  # right half red, left half index 0 = transparent
        return encode(image, "PNG", transparency=0)

    @staticmethod
    def rgba_png() -> bytes:
        pixels = np.zeros((40, 40, 4), np.uint8)
        pixels[:, 20:] = (0, 0, 255, 255)  # right half opaque blue, left half fully transparent
        return encode(Image.fromarray(pixels, "RGBA"), "PNG")

    @staticmethod
    def cmyk_jpeg() -> bytes:
        return encode(Image.new("CMYK", (40, 40), (255, 0, 0, 0)), "JPEG", quality=95)  # pure cyan

    @staticmethod
    def png_16bit() -> bytes:
        values = np.zeros((40, 40), np.uint16)
        values[:, :20] = 65535
        values[:, 20:] = 32768
        return encode(Image.fromarray(values), "PNG")  # mode I;16

    @staticmethod
    def exif_rotated_jpeg() -> bytes:
        """Stored 80×40, left half red, right half blue, EXIF orientation 6 (rotate 90° clockwise):
        upright it is 40×80 with red on top."""
        pixels = np.zeros((40, 80, 3), np.uint8)
        pixels[:, :40] = (255, 0, 0)
        pixels[:, 40:] = (0, 0, 255)
        exif = Image.Exif()
        exif[0x0112] = 6
        return encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())

    @staticmethod
    def large_icc_profile(size=5 * 1024 * 1024) -> bytes:
        """A real sRGB profile padded with random bytes to ``size`` (a few MB is legitimate: profiles
        with large lookup tables), its header's size field set to match."""
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        padding = np.random.default_rng(6).integers(0, 256, size - len(profile), dtype=np.uint8).tobytes()
        return struct.pack(">I", size) + profile[4:] + padding

    @classmethod
    def png_with_large_icc(cls, color=(30, 160, 90)) -> bytes:
        return encode(Image.new("RGB", (64, 48), color), "PNG", icc_profile=cls.large_icc_profile())

    # --- bad -----------------------------------------------------------------------------------
    @staticmethod
    def truncated_jpeg() -> bytes:
        noise = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)
        data = encode(Image.fromarray(noise), "JPEG", quality=90)
        return data[: len(data) // 2]

    @staticmethod
    def truncated_png() -> bytes:
        noise = np.random.default_rng(4).integers(0, 256, (256, 256, 3), dtype=np.uint8)
        data = encode(Image.fromarray(noise), "PNG")
        return data[: len(data) // 2]

    @staticmethod
    def bomb_png(width=100_000, height=100_000) -> bytes:
        """A ~100-byte PNG whose header claims width × height pixels."""
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
        row = b"\x00" + b"\x00" * 16
        return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                + _png_chunk(b"IDAT", zlib.compress(row)) + _png_chunk(b"IEND", b""))

    @staticmethod
    def png_with_large_ztxt() -> bytes:
        """A zTXt chunk of 2 MiB of spaces, compressed to a few KB: a text decompression bomb."""
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", " " * (2 * 1024 * 1024), zip=True)
        return encode(Image.new("RGB", (16, 16), (1, 2, 3)), "PNG", pnginfo=info)

    @staticmethod
    def tiff() -> bytes:
        return encode(Image.new("RGB", (20, 20), (1, 2, 3)), "TIFF")

    @staticmethod
    def zip_file() -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("hello.txt", "hello")
        return buffer.getvalue()

    TEXT = b"just some text, not an image\n"
    HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
    SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
    EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\nshowpage\n"
    PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(scope="session")
def images():
    return SampleImages()
