"""Activation maximisation (Erhan, Bengio, Courville & Vincent 2009, "Visualizing Higher-Layer
Features of a Deep Network"): the input that a channel responds to most, found by gradient ascent.

For each requested channel of a layer, one image starts as small noise around the ImageNet mean in
the network's input space (normal, standard deviation START_STD, drawn from
``numpy.random.default_rng([seed, channel])``, so a channel's picture does not depend on which other
channels are asked for), ``start_size`` pixels square. Then, for each of ``octaves`` octaves,
``steps`` gradient-ascent steps on the channel's mean response, each step the gradient divided by
its mean absolute value times STEP_SIZE (in 0–255 pixel units), the image clipped after every step to
the colours a photo can have; between octaves the image is upscaled by ``scale`` (bilinear, at most
224) and blurred with a Gaussian of BLUR_SIGMA pixels. The last octave's image is resized
(bilinear) to 224×224 where it is not already. Because of the clipping the result is a valid photo
and is shown with its own colours (:func:`visnet.preprocessing.from_network_input`), not stretched.

The objective is the channel's mean pre-ReLU response over the map: the ReLU'd mean has no gradient
where the channel is silent everywhere, as it often is for noise. For a pool layer it is the max
pool of the preceding conv's pre-ReLU response, which is the pool's output before the ReLU (ReLU and
max commute). All channels ascend together as one batch, one image per channel, on a copy of the
conv stack that reads the model's own kernel and bias variables and takes images of any size; its
pools use SAME padding, which equals the model's VALID pools on even sizes and lets odd sizes
through. On the CPU the same seed and options give a bit-identical picture.
"""
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from ..architecture import INPUT_SIZE, LAYERS, get_layer
from ..display import grid
from ..preprocessing import BGR_MEAN, from_network_input
from .base import View, ViewResult
from .drawing import labelled

START_STD = 8.0  # of the starting noise, in pixel units around the mean colour
STEP_SIZE = 1.5  # mean absolute change per step, in pixel units
BLUR_SIGMA = 0.5  # pixels, after each upscale
PIXEL_LOW = (-BGR_MEAN).astype(np.float32)  # network-space bounds of a photo's colours, BGR
PIXEL_HIGH = (255.0 - BGR_MEAN).astype(np.float32)
GRID_COLUMNS = 4
GRID_PAD = 4
LABEL_HEIGHT = 18
FONT_SIZE = 12


class ActivationMaximisationView(View):
    """One picture per channel that maximises the channel's mean response, and a grid of them."""

    method = "activation-max"

    def compute(self, rgb, progress, layer="block4_conv3", channels=(0, 1, 2, 3), seed=0, octaves=12, steps=20,
                scale=1.2, start_size=28) -> ViewResult:
        layer = get_layer(layer).name
        channels = [int(channel) for channel in channels]
        model = self.engine.model
        ops = ascent_ops(model, layer)
        feed_channels = np.array(channels, np.int32)

        def objective_and_gradient(images):
            return model.run([ops["objective"], ops["gradient"]],
                             {ops["images"]: images, ops["channels"]: feed_channels})

        def objective(images):
            return model.run(ops["objective"], {ops["images"]: images, ops["channels"]: feed_channels})

        started = time.perf_counter()
        images = starting_images(seed, channels, start_size)
        sizes = octave_sizes(start_size, scale, octaves)
        per_octave = [[] for _ in channels]
        session_runs = 0
        for octave, size in enumerate(sizes):
            progress(f"octave {octave + 1} of {octaves} ({size}×{size} px)", octave, octaves)
            if octave:
                images = gaussian_blur(resize(images, size), BLUR_SIGMA)
            for step in range(steps):
                values, gradient = objective_and_gradient(images)
                if step == 0:
                    at_start = values
                images = ascent_step(images, gradient)
            at_end = objective(images)
            session_runs += steps + 1
            for index in range(len(channels)):
                per_octave[index].append({"size": size, "start": float(at_start[index]), "end": float(at_end[index])})
        progress(f"octave {octaves} of {octaves}", octaves, octaves)
        if images.shape[1] != INPUT_SIZE:
            images = resize(images, INPUT_SIZE)
        final = objective(images)
        session_runs += 1
        seconds = time.perf_counter() - started

        result = ViewResult(self.method)
        tiles = []
        for index, channel in enumerate(channels):
            picture = from_network_input(images[index])
            stem = f"activation_max_{layer}_ch{channel}"
            result.images[stem] = picture
            result.captions[stem] = (f"Input that maximises the mean pre-ReLU response of {layer} channel {channel} "
                                     f"(seed {seed}, {octaves} octaves × {steps} steps)")
            tiles.append(labelled(picture, f"ch {channel}", LABEL_HEIGHT, FONT_SIZE))
        result.images[f"activation_max_{layer}"] = grid(tiles, GRID_COLUMNS, pad=GRID_PAD)
        result.captions[f"activation_max_{layer}"] = f"Activation maximisation of {layer}, channels {channels}"
        result.data = {
            "layer": layer,
            "seed": seed,
            "objective": "mean pre-ReLU response of the channel over its map",
            "options": {"octaves": octaves, "steps": steps, "scale": scale, "start_size": start_size,
                        "start_std": START_STD, "step_size": STEP_SIZE, "blur_sigma": BLUR_SIGMA},
            "octave_sizes": sizes,
            "display": "the image's own colours (from_network_input); ascent keeps them within 0-255",
            "channels": [{"channel": channel, "objective_start": per_octave[index][0]["start"],
                          "objective_end": float(final[index]), "octaves": per_octave[index]}
                         for index, channel in enumerate(channels)],
            "session_runs": session_runs,
            "seconds_per_channel": seconds / len(channels),
        }
        result.timings["ascent_seconds"] = seconds
        return result


def starting_images(seed: int, channels, size: int) -> np.ndarray:
    """(len(channels), size, size, 3) float32 noise around the mean colour, one per channel, each
    drawn from its own generator seeded by (seed, channel)."""
    return np.stack([np.random.default_rng([seed, channel]).normal(0.0, START_STD, (size, size, 3))
                     for channel in channels]).astype(np.float32)


def octave_sizes(start_size: int, scale: float, octaves: int) -> list:
    """The image side during each octave: start_size · scale^k, rounded, at most 224."""
    return [min(INPUT_SIZE, int(round(start_size * scale ** octave))) for octave in range(octaves)]


def ascent_step(images, gradient) -> np.ndarray:
    """One normalised gradient-ascent step per image, then clipped to a photo's colours."""
    scale = np.mean(np.abs(gradient), axis=(1, 2, 3), keepdims=True)
    step = gradient / np.maximum(scale, 1e-12) * STEP_SIZE
    return np.clip(images + step.astype(np.float32), PIXEL_LOW, PIXEL_HIGH)


def resize(images, size: int) -> np.ndarray:
    """Bilinear resize of (N, h, w, C) float32 to (N, size, size, C), channel by channel."""
    return np.stack([
        np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
            (size, size), Image.Resampling.BILINEAR)) for c in range(image.shape[-1])], axis=-1)
        for image in images]).astype(np.float32)


def gaussian_blur(images, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (radius 3σ, reflected edges) over the two spatial axes of (N, h, w, C)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    blurred = np.asarray(images, np.float64)
    for axis in (1, 2):
        padding = [(0, 0)] * 4
        padding[axis] = (radius, radius)
        padded = np.pad(blurred, padding, mode="reflect")
        length = blurred.shape[axis]
        blurred = sum(tap * np.take(padded, range(offset, offset + length), axis=axis)
                      for offset, tap in enumerate(taps))
    return blurred.astype(np.float32)


def ascent_ops(model, layer: str) -> dict:
    """Placeholders ``images`` (N, H, W, 3) and ``channels`` (N,), the per-image ``objective`` and its
    ``gradient`` with respect to the images, built into the model's graph once per layer."""
    cache = vars(model).setdefault("view_ops", {})
    key = ("activation-max", layer)
    if key not in cache:
        with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope("activation_max"):
            images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="images")
            channels = tf.compat.v1.placeholder(tf.int32, [None], name="channels")
            response = pre_relu_response(model, images, layer)
            chosen = tf.gather(response, channels, axis=3, batch_dims=1)  # (N, h, w)
            objective = tf.reduce_mean(chosen, axis=[1, 2])
            gradient = tf.gradients(tf.reduce_sum(objective), images)[0]
        cache[key] = {"images": images, "channels": channels, "objective": objective, "gradient": gradient}
    return cache[key]


def pre_relu_response(model, images, layer: str):
    """The layer's output before its ReLU, for images of any size, from the model's own variables."""
    signal = response = images
    for current in LAYERS:
        if current.is_pool:
            response = tf.nn.max_pool2d(response, 2, 2, "SAME")
            signal = tf.nn.max_pool2d(signal, 2, 2, "SAME")
        else:
            bias = model.pre_activations[current.name].op.inputs[1]  # the BiasAdd's bias, read from its variable
            response = tf.nn.bias_add(tf.nn.conv2d(signal, model.kernels[current.name], 1, "SAME"), bias)
            signal = tf.nn.relu(response)
        if current.name == layer:
            return response
    raise ValueError(f"unknown layer {layer!r}")
