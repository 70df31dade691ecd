"""A chain CNN that learns in a few seconds on two CPU cores, on photos where the right answer is visible:
64×64 RGB noisy grey backgrounds with one filled square, one ring (each of a random colour, size and
place) or nothing. Every photo comes with its class and the shape's bounding box, so a test can say where
a picture should light up. Everything is seeded: the same seed gives the same photos and the same training.

The third class, "empty", makes the model find rings as well as squares: with two classes it may learn a
square detector and call everything else a ring, and then on a ring its strongest channels answer the
background.

README's worked example writes the model and two photos with::

    .venv/bin/python -m tests.visnet.chain.shapes /tmp/shapes

Keras is imported only by the functions that build or train the model.
"""
import json
import sys
from pathlib import Path

import numpy as np

SIDE = 64
CLASSES = ("square", "ring", "empty")
TRAIN_SEED, HELD_OUT_SEED, FRESH_SEED = 1, 2, 3
TRAIN_COUNT, EPOCHS = 768, 8


def draw_shape(rng, label: int):
    """One photo (SIDE, SIDE, 3) uint8 of class ``label`` and the shape's box (top, left, bottom, right),
    bottom and right exclusive; (0, 0, 0, 0) for an empty photo."""
    photo = rng.normal(128, 32, (SIDE, SIDE, 3))
    if CLASSES[label] == "empty":
        return np.clip(np.round(photo), 0, 255).astype(np.uint8), (0, 0, 0, 0)
    size = int(rng.integers(16, 25))
    top, left = (int(value) for value in rng.integers(2, SIDE - size - 2, 2))
    rows, columns = np.mgrid[:size, :size] + 0.5
    if CLASSES[label] == "square":
        mask = np.ones((size, size), bool)
    else:
        distance = np.hypot(rows - size / 2, columns - size / 2)
        mask = (distance <= size / 2) & (distance >= size / 2 - max(3, size // 5))
    # every channel far from the background's mid-grey, dark or bright, so the shape stands out in any colour
    colour = np.where(rng.random(3) < 0.5, rng.uniform(0, 56, 3), rng.uniform(200, 255, 3))
    patch = photo[top:top + size, left:left + size]
    patch[mask] = colour + rng.normal(0, 8, (int(mask.sum()), 3))
    return np.clip(np.round(photo), 0, 255).astype(np.uint8), (top, left, top + size, left + size)


def shapes_dataset(count: int, seed: int):
    """``count`` photos (count, SIDE, SIDE, 3) uint8, their labels (count,) taking the classes in turn, and
    their boxes (count, 4)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASSES)
    drawn = [draw_shape(rng, int(label)) for label in labels]
    return np.stack([photo for photo, _ in drawn]), labels, np.array([box for _, box in drawn])


def shapes_model():
    """Rescaling to −1…1, conv + batch norm + ReLU, an overlapping 3×3/2 max pool, two conv + ReLU with a 2×2
    max pool between them, global average pooling and a dense softmax over the classes. The last conv has no
    bias, so a channel cannot fire all over the background just by its bias."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((SIDE, SIDE, 3), name="photo"),
        layers.Rescaling(1 / 127.5, offset=-1, name="rescale"),
        layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1"),
        layers.BatchNormalization(momentum=0.9, name="bn1"),
        layers.ReLU(name="relu1"),
        layers.MaxPooling2D(3, strides=2, name="pool1"),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Conv2D(16, 3, padding="same", use_bias=False, activation="relu", name="conv3"),
        layers.GlobalAveragePooling2D(name="gap"),
        layers.Dense(len(CLASSES), activation="softmax", name="predictions"),
    ], name="shapes")


def write_models(folder, epochs: int = EPOCHS) -> dict:
    """Build the model with seeded weights, save it untrained, train it on TRAIN_COUNT photos and save it
    again: {"untrained", "trained": .keras paths, "classes": a classes file}."""
    import keras

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(TRAIN_SEED)
    model = shapes_model()
    paths = {"untrained": folder / "shapes-untrained.keras", "trained": folder / "shapes.keras",
             "classes": folder / "classes.json"}
    model.save(paths["untrained"])
    photos, labels, _ = shapes_dataset(TRAIN_COUNT, TRAIN_SEED)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy")
    model.fit(photos.astype(np.float32), labels, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    model.save(paths["trained"])
    paths["classes"].write_text(json.dumps(list(CLASSES)))
    return paths


def main(argv) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.visnet.chain.shapes FOLDER", file=sys.stderr)
        return 2
    from PIL import Image

    folder = Path(argv[0])
    paths = write_models(folder)
    photos, labels, _ = shapes_dataset(len(CLASSES), FRESH_SEED)
    for photo, label in zip(photos, labels):
        paths[CLASSES[label]] = folder / f"{CLASSES[label]}.png"
        Image.fromarray(photo).save(paths[CLASSES[label]])
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
