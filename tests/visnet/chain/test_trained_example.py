"""README's worked example: a small chain CNN trained here in a few seconds (tests/visnet/chain/shapes.py:
a filled square, a ring or nothing on a noisy background), added with the real CLI, served by
ChainEngine. The checks say that the pictures mean something, and each is also run on the same model
before training, where it fails: the classes come out right on held-out and fresh photos, the
classification view names them, and the deconvnet reconstructions of the last conv layer's strongest
channels sit on the shape. The figure is written to test-artifacts/ and, with --update-screenshot, to
docs/trained-example.png."""
import contextlib
import io

import numpy as np
import pytest

from tests.support.paths import ARTIFACTS, PROJECT_ROOT
from tests.visnet.chain import shapes
from visnet import cli, display
from visnet.outputs import feature_pictures

FIGURE = "trained-example.png"
LAST_CONV = "conv3"
MARGIN = 2  # pixels around the shape's box that still count as on the shape
ON_SHAPE = 0.75  # the least share of the strongest channel's reconstruction energy on the shape


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The model trained and untrained, added with ``python -m visnet models add`` into a models folder of
    its own: {"dir", "outputs": what each add printed, "trained", "untrained": ChainEngine}."""
    from visnet.chain.engine import ChainEngine

    folder = tmp_path_factory.mktemp("trained_example")
    files = shapes.write_models(folder / "keras")
    models_dir, outputs = folder / "models", {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VISNET_MODELS_DIR", str(models_dir))
        for key, name in (("trained", "shapes"), ("untrained", "shapes-untrained")):
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                status = cli.main(["models", "add", str(files[key]), "--name", name, "--classes", str(files["classes"])])
            assert status == 0, printed.getvalue()
            outputs[key] = printed.getvalue()
        listing = io.StringIO()
        with contextlib.redirect_stdout(listing):
            assert cli.main(["models", "list"]) == 0
    engines = {key: ChainEngine.load(models_dir, name, device="cpu")
               for key, name in (("trained", "shapes"), ("untrained", "shapes-untrained"))}
    yield {"dir": models_dir, "outputs": outputs, "listing": listing.getvalue(), **engines}
    for key in ("trained", "untrained"):
        engines[key].model.close()


def predicted(engine, photos) -> np.ndarray:
    """The converted chain's class probabilities (N, 2), from the engine's own graph."""
    from visnet.chain.preprocess import to_model_input

    chain = engine.chain
    inputs = to_model_input(photos, chain.preprocess, chain.input_shape[2])
    return engine.model.run(engine.model.probabilities, {engine.model.images: inputs})


def share_on_shape(reconstruction, box) -> float:
    """The share of a reconstruction's energy (sum of squares) inside the shape's box, MARGIN pixels wider."""
    top, left, bottom, right = box
    energy = np.square(np.asarray(reconstruction, np.float64)).sum(axis=-1)
    return float(energy[max(top - MARGIN, 0):bottom + MARGIN, max(left - MARGIN, 0):right + MARGIN].sum() / energy.sum())


def test_the_cli_stores_the_trained_model_with_its_classes(models):
    printed = models["outputs"]["trained"]
    assert printed.startswith("shapes: stored in ")
    assert "7 layers (conv1, pool1, conv2, pool2, conv3, gap, predictions)" in printed
    assert "input 64×64×3, preprocessing none, 3 class names" in printed
    assert "shapes  input 64×64×3  preprocess none  7 layers  classes 3  from shapes.keras" in models["listing"]
    assert models["trained"].chain.classes == shapes.CLASSES


def test_the_trained_model_classifies_held_out_photos(models):
    photos, labels, _ = shapes.shapes_dataset(300, shapes.HELD_OUT_SEED)
    accuracy = {key: float(np.mean(predicted(models[key], photos).argmax(axis=1) == labels))
                for key in ("trained", "untrained")}
    assert accuracy["trained"] >= 0.9, accuracy
    assert accuracy["untrained"] < 0.5, accuracy  # the same check before training: about chance, a third


def test_the_classification_view_names_the_class_of_fresh_photos(models):
    from visnet.chain.views import ChainClassificationView

    photos, labels, _ = shapes.shapes_dataset(6, shapes.FRESH_SEED)
    named = {key: [ChainClassificationView(models[key]).run(photo).data["top5"][0]["name"] for photo in photos]
             for key in ("trained", "untrained")}
    truth = [shapes.CLASSES[label] for label in labels]
    assert named["trained"] == truth
    assert named["untrained"] != truth


def test_deconvnet_reconstructions_of_the_last_conv_layer_sit_on_the_shape(models):
    """The three strongest channels of conv3 (by the norm of their maps), each projected down by the deconvnet,
    on 16 fresh photos of a square or a ring, whose box covers 10 to 20 % of the photo (with the margin). On the
    trained model the strongest channel puts most of its reconstruction's energy on the shape on at least three
    photos in four, and so do most of the three; before training none does."""
    photos, labels, boxes = shapes.shapes_dataset(24, shapes.FRESH_SEED)
    with_shape = labels != shapes.CLASSES.index("empty")
    photos, boxes = photos[with_shape], boxes[with_shape]
    shares = {}
    for key in ("trained", "untrained"):
        result = models[key].deconv(photos, layers=LAST_CONV, top_k=3)
        shares[key] = np.array([[share_on_shape(feature.reconstruction, box) for feature in image.layers[LAST_CONV]]
                                for image, box in zip(result.images, boxes)])
    trained = shares["trained"]
    assert np.mean(trained[:, 0] >= ON_SHAPE) >= 0.75 and np.median(trained) >= ON_SHAPE, trained.round(2)
    assert shares["untrained"].max() < 0.5, shares["untrained"].round(2)


def test_the_readme_figure(models, request):
    """A fresh square and a fresh ring, each with the model's answer, and for each conv layer its three strongest
    channels: the channel's map over the photo beside its deconvnet reconstruction."""
    engine = models["trained"]
    photos, labels, _ = shapes.shapes_dataset(2, shapes.FRESH_SEED)
    probabilities = predicted(engine, photos)
    result = engine.deconv(photos, layers="conv1,conv2,conv3", top_k=3)
    sheets = []
    for photo, label, image, chances in zip(photos, labels, result.images, probabilities):
        answer = int(np.argmax(chances))
        assert answer == label
        rows = [(layer, [{"channel": feature.channel, "norm": feature.norm,
                          **{kind: picture for kind, picture in feature_pictures(feature, photo).items()
                             if kind in ("reconstruction", "overlay")}}
                         for feature in features])
                for layer, features in image.layers.items()]
        title = (f"a {shapes.CLASSES[label]} · model shapes says {shapes.CLASSES[answer]} "
                 f"({chances[answer]:.1%}) · deconvnet, top 3 channels")
        sheets.append(display.summary_sheet(photo, rows, title=title))
    width = max(sheet.shape[1] for sheet in sheets)
    figure = np.concatenate([np.pad(sheet, ((0, 0), (0, width - sheet.shape[1]), (0, 0)), constant_values=255)
                             for sheet in sheets])
    assert np.ptp(figure) == 255

    ARTIFACTS.mkdir(exist_ok=True)
    png = display.encode_png(figure, compress_level=9)  # noise compresses badly; this file is committed
    (ARTIFACTS / FIGURE).write_bytes(png)
    if request.config.getoption("--update-screenshot"):
        (PROJECT_ROOT / "docs" / FIGURE).write_bytes(png)
