"""``python -m visnet models add | list | remove``: accepted chains are converted and stored as data,
everything else is refused with a message that names the problem, and nothing is stored."""
import json
import re

import numpy as np
import pytest

from visnet import cli


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv("VISNET_MODELS_DIR", str(folder))
    return folder


def _stored(folder) -> list:
    """Everything under the models folder, hidden leftovers included."""
    return sorted(path.name for path in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def refused_files(tmp_path_factory) -> dict:
    """A residual Add, a Lambda, a custom layer, two outputs, a ReLU6, a non-square input, a weights-only .h5 and a
    PNG."""
    import keras
    from keras import layers

    folder = tmp_path_factory.mktemp("refused")
    inputs = keras.Input((8, 8, 3), name="image")
    first = layers.Conv2D(3, 3, padding="same", name="conv_a")(inputs)
    second = layers.Conv2D(3, 3, padding="same", name="conv_b")(first)
    keras.Model(inputs, layers.Add(name="residual")([first, second])).save(folder / "residual.keras")
    doubled = layers.Lambda(lambda tensor: tensor * 2, name="double")(first)
    keras.Model(inputs, layers.Flatten(name="flat")(doubled)).save(folder / "lambda.keras")
    keras.Model(inputs, [first, second]).save(folder / "two_outputs.keras")

    @keras.saving.register_keras_serializable(package="visnet_tests")
    class Scale(layers.Layer):
        def call(self, tensor):
            return tensor * 3

    keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3, name="conv"), Scale(name="scale")]).save(
        folder / "custom.keras")
    relu6 = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3, name="conv"), layers.ReLU(6.0, name="relu6"),
                              layers.BatchNormalization(name="late_bn")])
    relu6.save(folder / "relu6.keras")
    relu6.save_weights(folder / "only.weights.h5")
    keras.Sequential([keras.Input((8, 12, 3)), layers.Conv2D(2, 3, name="conv")]).save(folder / "oblong.keras")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    return {path.stem.split(".")[0]: path for path in folder.iterdir()}


@pytest.mark.parametrize("case, expected", [
    ("residual", [r"layer 4 of 4 'residual' \(Add\)", "takes 'conv_a', 'conv_b'", "merges branches"]),
    ("lambda", [r"'double' \(Lambda\)", "runs Python code", "safe mode"]),
    ("custom", [r"layer 3 of 3 'scale' \(Scale\)", "custom layer"]),
    ("two_outputs", ["has 2 outputs; a chain has one"]),
    ("relu6", [r"'relu6' \(ReLU\): a ReLU with max_value", r"'late_bn' \(BatchNormalization\): batch norm can only"]),
    ("oblong", ["takes 8×12 inputs", "square models only"]),
    ("only", ["without the attribute model_config", "weights only"]),
    ("photo", ["not a Keras model file"]),
])
def test_a_file_that_is_not_a_chain_is_refused_and_nothing_is_stored(refused_files, models_dir, capsys, case,
                                                                     expected):
    status = cli.main(["models", "add", str(refused_files[case]), "--name", "mine", "--preprocess", "unit"])
    error = capsys.readouterr().err
    assert status == cli.USAGE_ERROR
    assert error.startswith("refused: ") and "Traceback" not in error
    for pattern in expected:
        assert re.search(pattern, error), (pattern, error)
    assert _stored(models_dir) == []


def test_add_list_and_remove_a_chain_with_its_classes(keras_files, chains, models_dir, tmp_path, capsys):
    from visnet.chain.store import load_chain

    classes = tmp_path / "classes.txt"
    classes.write_text("cat\ndog\nbird\nfish\nfrog\n")
    status = cli.main(["models", "add", str(keras_files["sequential"]), "--name", "tiny", "--classes", str(classes)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "tiny: stored in" in out and "preprocessing none" in out and "5 class names" in out
    assert _stored(models_dir) == ["chain.json", "tiny", "weights.npz"]
    stored, converted = load_chain(models_dir, "tiny"), chains["sequential"]
    assert stored.classes == ("cat", "dog", "bird", "fish", "frog")
    assert stored.describe()["layers"] == converted.describe()["layers"]
    for ours, theirs in zip(stored.layers, converted.layers):
        assert ours.weights.keys() == theirs.weights.keys()
        for field, value in ours.weights.items():
            np.testing.assert_array_equal(value, theirs.weights[field])
    description = json.loads((models_dir / "tiny" / "chain.json").read_text())
    assert description["source"]["file"] == "sequential.keras" and len(description["source"]["sha256"]) == 64
    assert description["source"]["keras_difference"] < 1e-5

    assert cli.main(["models", "add", str(keras_files["sequential"]), "--name", "tiny"]) == cli.USAGE_ERROR
    assert "exists already" in capsys.readouterr().err
    assert cli.main(["models", "list"]) == 0
    assert "tiny  input 40×40×3  preprocess none  9 layers  classes 5  from sequential.keras" in capsys.readouterr().out
    assert cli.main(["models", "remove", "tiny"]) == 0
    assert _stored(models_dir) == []
    assert cli.main(["models", "remove", "tiny"]) == cli.USAGE_ERROR
    assert "no stored model 'tiny'" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, expected", [
    (["--name", "VGG 16"], "model name 'VGG 16'"),
    (["--name", "vgg16"], "kept for the built-in model"),
    (["--name", "ok", "--classes", "{classes}"], "3 class names for a softmax over 5 outputs"),
])
def test_bad_names_and_classes_are_refused_before_anything_is_stored(keras_files, models_dir, tmp_path, capsys,
                                                                     arguments, expected):
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps(["a", "b", "c"]))
    arguments = [argument.format(classes=classes) for argument in arguments]
    assert cli.main(["models", "add", str(keras_files["sequential"]), *arguments]) == cli.USAGE_ERROR
    assert expected in capsys.readouterr().err
    assert _stored(models_dir) == []


def test_a_model_without_its_own_preprocessing_needs_one(refused_files, keras_files, tmp_path):
    """The sequential .h5 is read like the .keras file; a model that does not start with Rescaling or
    Normalization must be told its preprocessing."""
    import keras

    from visnet.chain.convert import convert_model_file
    from visnet.chain.keras_config import ChainRefused

    from_h5 = convert_model_file(keras_files["sequential_h5"], "h5", verify=False)
    assert [layer.name for layer in from_h5.layers][:3] == ["rescale", "conv1", "conv2_s2"]
    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="conv")]).save(plain)
    with pytest.raises(ChainRefused, match=r"say how a photo becomes its input: --preprocess caffe\|torch"):
        convert_model_file(plain, "plain", verify=False)
    assert convert_model_file(plain, "plain", preprocess="caffe").preprocess == "caffe"


def test_the_check_against_keras_refuses_a_chain_that_computes_something_else(chains, keras_files):
    """The check at ``models add`` can fail: the same chain with one logit's bias changed is refused (a change of all
    of them by the same amount would not change the softmax)."""
    from dataclasses import replace

    import keras

    from visnet.chain.keras_config import ChainRefused
    from visnet.chain.verify import check_against_keras

    chain = chains["functional"]
    model = keras.saving.load_model(keras_files["functional"], safe_mode=True, compile=False)
    assert check_against_keras(chain, model) < 1e-5
    layers = list(chain.layers)
    index = next(index for index, layer in enumerate(layers) if layer.name == "logits")
    layers[index] = replace(layers[index], bias=layers[index].bias + np.eye(4, dtype=np.float32)[0])  # not a shift
    with pytest.raises(ChainRefused, match="does not reproduce Keras' output"):
        check_against_keras(replace(chain, layers=tuple(layers)), model)


def test_a_sub_model_is_flattened_into_the_chain(tmp_path):
    """Transfer learning's usual shape: a Sequential feature extractor inside a functional model with a new
    head. Its layers join the chain in order, and the chain computes what Keras computes."""
    import keras
    from keras import layers

    from visnet.chain.convert import convert_model_file

    features = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(4, 3, activation="relu", name="c1"),
                                 layers.MaxPooling2D(2, name="p1")], name="features")
    inputs = keras.Input((16, 16, 3))
    signal = features(layers.Rescaling(1 / 255, name="scale")(inputs))
    outputs = layers.Dense(3, activation="softmax", name="head")(layers.GlobalAveragePooling2D(name="gap")(signal))
    keras.Model(inputs, outputs).save(tmp_path / "nested.keras")
    chain = convert_model_file(tmp_path / "nested.keras", "nested")
    assert [(layer.name, layer.kind) for layer in chain.layers] == [
        ("scale", "affine"), ("c1", "conv"), ("p1", "max_pool"), ("gap", "global_avg_pool"), ("head", "dense"),
        ("head_softmax", "softmax")]
    assert chain.source["keras_difference"] < 1e-5
