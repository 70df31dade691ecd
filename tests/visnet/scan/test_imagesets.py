"""Image sets: listing, greyscale detection, what the network sees, and safe ZIP extraction."""
import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from visnet.preprocessing import load_image
from visnet.scan.imagesets import (
    UnsafeArchive,
    ZipLimits,
    extract_zip,
    inspect_image,
    is_greyscale,
    list_images,
    load_scan_image,
    safe_member_path,
)


def png_bytes(image: Image.Image, format="PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format)
    return buffer.getvalue()


def photo(colour=(200, 80, 40), size=(40, 30)):
    image = Image.new("RGB", size, colour)
    image.putpixel((0, 0), (0, 255, 0))
    return image


def make_zip(members) -> bytes:
    """members: [(name, bytes)] or [(ZipInfo, bytes)]."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


# --- listing and greyscale --------------------------------------------------------------------------

def test_list_images_is_sorted_relative_and_skips_hidden(tmp_path):
    for name in ("b.jpg", "a/z.PNG", "a/b/c.webp", ".hidden.jpg", ".git/x.jpg", "__MACOSX/a.jpg", "notes.txt", "B.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert list_images(tmp_path) == ["B.gif", "a/b/c.webp", "a/z.PNG", "b.jpg"]


def test_list_images_needs_a_folder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        list_images(tmp_path / "missing")


@pytest.mark.parametrize("mode", ["1", "L", "LA", "I", "I;16", "F"])
def test_grey_modes_are_greyscale(mode):
    assert is_greyscale(Image.new(mode, (8, 8)))


def test_colour_images_whose_channels_are_equal_are_greyscale():
    grey = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    assert is_greyscale(Image.fromarray(np.stack([grey] * 3, -1)))
    tinted = np.stack([grey] * 3, -1)
    tinted[5, 7, 2] ^= 1  # one channel of one pixel differs
    assert not is_greyscale(Image.fromarray(tinted))
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 90, 90, 90] + [0] * 762)
    assert is_greyscale(palette)
    palette.putpalette([0, 0, 0, 90, 91, 90] + [0] * 762)
    assert not is_greyscale(palette)


def test_inspect_image_decodes_and_rejects_truncated_files(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(photo()))
    assert inspect_image(good) is False
    truncated = tmp_path / "cut.jpg"
    noise = np.random.default_rng(2).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    whole = png_bytes(Image.fromarray(noise), "JPEG")
    truncated.write_bytes(whole[:len(whole) * 2 // 3])
    with pytest.raises(ValueError, match="decode"):
        inspect_image(truncated)
    renamed = tmp_path / "text.jpg"
    renamed.write_text("hello")
    with pytest.raises(ValueError, match="not a JPEG"):
        inspect_image(renamed)
    with pytest.raises(ValueError, match="pixels"):
        inspect_image(good, max_pixels=100)


def test_a_png_with_a_5_mb_icc_profile_is_inspected_like_any_png(tmp_path):
    profile = np.random.default_rng(5).integers(0, 256, 5 * 1024 * 1024, dtype=np.uint8).tobytes()
    path = tmp_path / "profiled.png"
    Image.open(io.BytesIO(png_bytes(photo()))).save(path, "PNG", icc_profile=profile)
    assert inspect_image(path) is False  # decodes; not refused as damaged


def test_load_scan_image_is_load_image_at_224_and_a_centre_crop_above(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "noise.png"
    path.write_bytes(png_bytes(Image.fromarray(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8))))
    assert np.array_equal(load_scan_image(path), load_image(path))
    assert np.array_equal(load_scan_image(path, 256), load_image(path, 256)[16:240, 16:240])


# --- ZIP extraction ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png", "C:/evil.png", "..\\evil.png",
                                  "a\\..\\..\\evil.png", "ok/\x01.png"])
def test_traversal_and_absolute_names_reject_the_archive(tmp_path, name):
    archive = make_zip([("fine.png", png_bytes(photo())), (name, png_bytes(photo()))])
    dest = tmp_path / "images"
    with pytest.raises(UnsafeArchive):
        extract_zip(archive, dest)
    assert not dest.exists(), "a refused archive leaves nothing behind"
    assert not (tmp_path / "evil.png").exists()


def test_safe_member_path_normalises_harmless_names():
    assert safe_member_path("./a//b/./c.png").as_posix() == "a/b/c.png"
    assert safe_member_path("a\\b.png").as_posix() == "a/b.png"


def test_extracts_images_keeps_folders_and_skips_the_rest(tmp_path):
    data = png_bytes(photo())
    link = zipfile.ZipInfo("link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = make_zip([
        ("set/b.png", data), ("set/a.jpg", png_bytes(photo(), "JPEG")), ("set/", b""),
        ("__MACOSX/set/._a.jpg", b"junk"), ("set/.DS_Store", b"junk"), ("readme.txt", b"hello"),
        ("fake.jpg", b"not an image at all"), (link, b"/etc/passwd"), ("SET/B.png", data),
    ])
    result = extract_zip(archive, tmp_path / "images")
    assert result.images == ["set/a.jpg", "set/b.png"]
    assert (tmp_path / "images" / "set" / "b.png").read_bytes() == data
    reasons = {entry["name"]: entry["reason"] for entry in result.skipped}
    assert reasons["readme.txt"].startswith("not an image")
    assert "not a JPEG" in reasons["fake.jpg"]
    assert reasons["link.png"].startswith("not a regular file")
    assert reasons["SET/B.png"] == "duplicate name"
    assert reasons["__MACOSX/set/._a.jpg"] == "hidden file"
    assert list_images(tmp_path / "images") == result.images


def test_a_decompression_bomb_is_refused_before_it_is_inflated(tmp_path):
    bomb = b"\x89PNG\r\n\x1a\n" + bytes(8 * 1024 * 1024)  # 8 MiB of zeros deflate to ~8 KiB
    with pytest.raises(UnsafeArchive, match="ratio"):
        extract_zip(make_zip([("bomb.png", bomb)]), tmp_path / "a")
    with pytest.raises(UnsafeArchive, match="member size"):
        extract_zip(make_zip([("big.png", bomb)]), tmp_path / "b",
                    ZipLimits(max_member_bytes=1024 * 1024, max_ratio=10 ** 6))
    with pytest.raises(UnsafeArchive, match="total size"):
        extract_zip(make_zip([(f"{i}.png", png_bytes(photo())) for i in range(5)]), tmp_path / "c",
                    ZipLimits(max_total_bytes=300))


def test_an_image_with_too_many_pixels_is_skipped_from_its_header(tmp_path):
    result = extract_zip(make_zip([("huge.png", png_bytes(Image.new("L", (3000, 3000))))]), tmp_path / "images",
                         ZipLimits(max_image_pixels=1_000_000))
    assert result.images == [] and "pixels" in result.skipped[0]["reason"]


def test_count_limits_and_broken_archives(tmp_path):
    data = png_bytes(photo())
    with pytest.raises(UnsafeArchive, match="images"):
        extract_zip(make_zip([(f"{i}.png", data) for i in range(4)]), tmp_path / "a", ZipLimits(max_images=3))
    with pytest.raises(UnsafeArchive, match="members"):
        extract_zip(make_zip([(f"{i}.txt", b"") for i in range(4)]), tmp_path / "b", ZipLimits(max_members=3))
    with pytest.raises(UnsafeArchive, match="not a readable ZIP"):
        extract_zip(b"PK\x03\x04 broken", tmp_path / "c")
    (tmp_path / "exists").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        extract_zip(make_zip([("a.png", data)]), tmp_path / "exists")
