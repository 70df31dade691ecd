"""A converted chain checked against Keras itself: both run the same random photo, and the outputs must
agree, so that a layer option the conversion does not model shows up at ``models add``, not in a picture."""
import numpy as np

from .keras_config import ChainRefused
from .preprocess import to_model_input

RELATIVE_TOLERANCE = 1e-3


def check_against_keras(chain, keras_model, seed: int = 0) -> float:
    """The largest difference between the chain's output and Keras', relative to Keras' largest output;
    ChainRefused above RELATIVE_TOLERANCE."""
    from .graph import ChainGraph

    height, width, channels = chain.input_shape
    rgb = np.random.default_rng(seed).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    images = to_model_input(rgb, chain.preprocess, channels)
    expected = np.asarray(keras_model(images, training=False))
    model = ChainGraph(chain, device="cpu")
    try:
        found = model.run(model.activations[chain.layers[-1].name], {model.images: images})
    finally:
        model.close()
    difference = float(np.max(np.abs(found - expected)) / max(np.max(np.abs(expected)), 1e-12))
    if found.shape != expected.shape or difference > RELATIVE_TOLERANCE:
        raise ChainRefused(f"{chain.source.get('file', chain.name)}: the converted chain does not reproduce Keras' "
                           f"output (shape {found.shape} against {expected.shape}, relative difference "
                           f"{difference:.2g}); a layer option is not modelled: please report this model")
    return difference
