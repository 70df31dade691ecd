"""From a photo (RGB uint8) to a chain model's input, by the convention the model was trained with.

The names are those of ``keras.applications.imagenet_utils.preprocess_input``'s modes, plus ``unit``
and ``none``; a model's own ``Rescaling`` and ``Normalization`` layers are part of the chain and run
after this.
"""
import numpy as np

from ..preprocessing import BGR_MEAN, InputSpace, from_network_input, to_network_input
from .keras_config import ChainRefused

TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's convert("L")
PREPROCESSING = {
    "caffe": "BGR, ImageNet mean subtracted, 0 to 255 (VGG16, VGG19, ResNet50 in Keras)",
    "torch": "RGB scaled to 0–1, ImageNet mean subtracted and divided by its standard deviation",
    "tf": "RGB scaled to -1 to 1",
    "unit": "RGB (or grey) scaled to 0–1",
    "none": "RGB (or grey) 0 to 255 as is: the model's own Rescaling or Normalization layers do the rest",
}
COLOUR_ONLY = ("caffe", "torch")


def check_preprocess(preprocess, channels: int, starts_with_own: bool) -> str:
    """The preprocessing a model is stored with: ``preprocess`` checked, or ``none`` by default when the model
    begins with its own Rescaling or Normalization; ChainRefused otherwise, asking for one."""
    if preprocess is None:
        if starts_with_own:
            return "none"
        raise ChainRefused("the model has no Rescaling or Normalization layer at its input, so say how a photo "
                           f"becomes its input: --preprocess {'|'.join(PREPROCESSING)}")
    if preprocess not in PREPROCESSING:
        raise ChainRefused(f"unknown preprocessing {preprocess!r}; expected one of {', '.join(PREPROCESSING)}")
    if channels not in (1, 3):
        raise ChainRefused(f"the model takes {channels} input channels; photos give 3 (RGB) or 1 (grey)")
    if channels == 1 and preprocess in COLOUR_ONLY:
        raise ChainRefused(f"preprocessing {preprocess!r} is for colour models; this one takes grey images: "
                           "use unit, tf or none")
    return preprocess


def to_model_input(rgb: np.ndarray, preprocess: str, channels: int = 3) -> np.ndarray:
    """RGB uint8 (…, H, W, 3) (or float pixel levels) to float32 model input with ``channels`` channels."""
    if preprocess == "caffe":
        return to_network_input(rgb)
    values = rgb.astype(np.float32)
    if channels == 1:
        values = (values @ LUMA)[..., None]
    if preprocess == "torch":
        return (values / 255 - TORCH_MEAN) / TORCH_STD
    if preprocess == "tf":
        return values / 127.5 - 1
    if preprocess == "unit":
        return values / 255
    return values


def from_model_input(values: np.ndarray, preprocess: str) -> np.ndarray:
    """Inverse of :func:`to_model_input`, clipped to RGB uint8 (…, H, W, 3): a grey model's one channel repeated."""
    if preprocess == "caffe":
        return from_network_input(values)
    values = np.asarray(values, np.float32)
    pixels = {"torch": lambda: (values * TORCH_STD + TORCH_MEAN) * 255, "tf": lambda: (values + 1) * 127.5,
              "unit": lambda: values * 255}.get(preprocess, lambda: values)()
    rgb = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb


def model_input_space(preprocess: str, channels: int = 3) -> InputSpace:
    """Where black, white and the ImageNet mean colour lie in the model's input, per channel (caffe's is VGG16's
    :data:`visnet.preprocessing.NETWORK_SPACE`)."""
    def value(rgb):
        return to_model_input(np.asarray(rgb, np.float32).reshape(1, 1, 3), preprocess, channels)[0, 0]

    black, white = value([0, 0, 0]), value([255, 255, 255])
    return InputSpace(value(BGR_MEAN[::-1]), ((white - black) / 255).astype(np.float32), black, white)
