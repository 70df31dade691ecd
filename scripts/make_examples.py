"""Writes the three example photos of the upload page (static/examples/*.jpg) from scikit-image's
bundled sample images, at most 400 px on the long side. Run once; the JPEGs are committed.

    .venv/bin/python scripts/make_examples.py
"""
from pathlib import Path

from PIL import Image
from skimage import data

EXAMPLES = ("chelsea", "astronaut", "coffee")
LONG_SIDE = 400
TARGET = Path(__file__).resolve().parent.parent / "static" / "examples"


def main():
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLES:
        image = Image.fromarray(getattr(data, name)())
        image.thumbnail((LONG_SIDE, LONG_SIDE), Image.LANCZOS)
        path = TARGET / f"{name}.jpg"
        image.convert("RGB").save(path, "JPEG", quality=85, optimize=True, progressive=True)
        print(f"{path} {image.size[0]}×{image.size[1]} {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
