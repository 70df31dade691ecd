"""Small Keras chain models, built and saved once per test session, with random weights and batch norm
statistics far from the identity (so that folding is tested), and small real photos. Keras is imported
only when a test asks for a model."""
import numpy as np
import pytest

SEQUENTIAL_SIZE, FUNCTIONAL_SIZE = 40, 32


def randomise(model, seed: int):
    """He-scaled kernels, small random biases, batch norm γ, β, mean and variance all random."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for weight in layer.weights:
            shape, name = tuple(weight.shape), weight.name
            if name == "kernel":
                fan_in = int(np.prod(shape[:-1]))
                values.append(rng.normal(0, np.sqrt(2 / fan_in), shape))
            elif name == "moving_variance":
                values.append(rng.uniform(0.5, 2.0, shape))
            elif name == "gamma":
                values.append(rng.uniform(0.5, 1.5, shape))
            elif name in ("bias", "beta", "moving_mean"):
                values.append(rng.normal(0, 0.1, shape))
            else:
                values.append(np.asarray(weight.numpy()))
        layer.set_weights([np.asarray(value, np.float32) for value in values])
    return model


def sequential_model():
    """Rescaling, conv + batch norm + ReLU, a stride-2 conv, a 3×3/2 overlapping max pool, a valid conv with
    batch norm and Activation('relu'), a 2×2 average pool, a 2×2/1 overlapping max pool, dropout, flatten,
    a dense head with softmax: 40×40×3 in, 5 classes out."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((SEQUENTIAL_SIZE, SEQUENTIAL_SIZE, 3)),
        layers.Rescaling(1 / 127.5, offset=-1, name="rescale"),
        layers.Conv2D(8, 3, padding="same", name="conv1"),
        layers.BatchNormalization(name="bn1"),
        layers.ReLU(name="relu1"),
        layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv2_s2"),
        layers.MaxPooling2D(3, strides=2, name="pool1"),
        layers.Conv2D(12, 3, name="conv3"),
        layers.BatchNormalization(name="bn3"),
        layers.Activation("relu", name="relu3"),
        layers.AveragePooling2D(2, name="avg1"),
        layers.Conv2D(12, 3, padding="same", activation="relu", name="conv4"),
        layers.MaxPooling2D(2, strides=1, name="pool2"),
        layers.Dropout(0.5, name="drop1"),
        layers.Flatten(name="flatten"),
        layers.Dense(16, activation="relu", name="fc1"),
        layers.Dropout(0.5, name="drop2"),
        layers.Dense(5, activation="softmax", name="predictions"),
    ], name="tiny_sequential")


def functional_model():
    """Functional API, still a chain: Normalization, a 5×5 stride-2 'same' conv with batch norm and ReLU, a
    3×3/2 'same' max pool, a 2×3 kernel conv without ReLU, a 3×3/2 'same' average pool, a ReLU of its own,
    global average pooling, a dense layer and a Softmax: 32×32×3 in, 4 classes out."""
    import keras
    from keras import layers

    inputs = keras.Input((FUNCTIONAL_SIZE, FUNCTIONAL_SIZE, 3), name="image")
    signal = layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[3600.0, 2500.0, 4900.0], name="norm")(inputs)
    signal = layers.Conv2D(6, 5, strides=2, padding="same", use_bias=False, name="conv_a")(signal)
    signal = layers.BatchNormalization(name="bn_a")(signal)
    signal = layers.Activation("relu", name="relu_a")(signal)
    signal = layers.MaxPooling2D(3, strides=2, padding="same", name="pool_a")(signal)
    signal = layers.Conv2D(8, (2, 3), name="conv_b")(signal)
    signal = layers.AveragePooling2D(3, strides=2, padding="same", name="avg_b")(signal)
    signal = layers.ReLU(name="relu_b")(signal)
    signal = layers.GlobalAveragePooling2D(name="gap")(signal)
    signal = layers.Dense(4, name="logits")(signal)
    outputs = layers.Softmax(name="softmax")(signal)
    return keras.Model(inputs, outputs, name="tiny_functional")


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory) -> dict:
    """{"sequential": .keras path, "functional": .keras path, "sequential_h5": the first saved as .h5}."""
    folder = tmp_path_factory.mktemp("keras_models")
    sequential, functional = randomise(sequential_model(), 1), randomise(functional_model(), 2)
    paths = {"sequential": folder / "sequential.keras", "functional": folder / "functional.keras",
             "sequential_h5": folder / "sequential.h5"}
    sequential.save(paths["sequential"])
    functional.save(paths["functional"])
    sequential.save(paths["sequential_h5"])
    return paths


@pytest.fixture(scope="session")
def chains(keras_files) -> dict:
    """The two test models converted (and checked against Keras' output on the way)."""
    from visnet.chain.convert import convert_model_file

    return {"sequential": convert_model_file(keras_files["sequential"], "tiny-sequential"),
            "functional": convert_model_file(keras_files["functional"], "tiny-functional")}


def small_photos(side: int) -> np.ndarray:
    """Two real photos (scikit-image's cat and coffee) as RGB uint8 side × side; the cat has a flat black
    square, whose convolutions are constant, so max-pool windows there hold ties."""
    import skimage.data
    from PIL import Image

    photos = [np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR))
              for image in (skimage.data.chelsea(), skimage.data.coffee())]
    photos[0] = photos[0].copy()
    photos[0][side // 4: side // 4 + side // 2, : side // 2] = 0
    return np.stack(photos)
