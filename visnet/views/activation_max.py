"""Activation maximisation (Erhan, Bengio, Courville & Vincent 2009, "Visualizing Higher-Layer
Features of a Deep Network"): the input that a channel responds to most, found by gradient ascent,
with the image priors of Yosinski, Clune, Nguyen, Fuchs & Lipson 2015 ("Understanding Neural Networks
Through Deep Visualization": L2 decay, a Gaussian blur every few steps) and random jitter (Mordvintsev,
Olah & Tyka 2015, "Inceptionism").

For each requested channel of a layer, one image starts as small noise around the ImageNet mean in
the network's input space (normal, standard deviation START_STD, drawn from
``numpy.random.default_rng([seed, channel])``, the generator that then draws that channel's jitter, so
a channel's picture does not depend on which other channels are asked for). ``octaves`` counts the
optimised sizes: they grow by ``scale`` and END at 224, the output size (``224 / scale^(octaves − 1 − k)``,
rounded, at least MIN_SIZE), so the picture written is the last image optimised, and
``objective_end`` is the objective of that very image. At each size, ``steps`` gradient-ascent steps on
the channel's mean response: the gradient is taken on the image rolled by a random shift of at most
``jitter`` pixels each way (and rolled back), divided by its mean absolute value times a step size (in
0–255 pixel units) that falls linearly over the octave from STEP_SIZE to LAST_STEP_SIZE, added; the image is then shrunk towards the mean colour by ``decay`` (L2 decay),
clipped to the colours a photo can have, and every ``blur_every`` steps blurred with a Gaussian of
``blur_sigma`` pixels, except after an octave's last step (the octave's end, and so the picture, is an
ascent step's result; between octaves the upscale blurs anyway). Between sizes the image is upscaled (bilinear) and blurred with a Gaussian of
BLUR_SIGMA pixels. Because of the clipping the result is a valid photo and is shown with its own
colours (:func:`visnet.preprocessing.from_network_input`), not stretched.

The objective is the channel's mean pre-ReLU response over the map: the ReLU'd mean has no gradient
where the channel is silent everywhere, as it often is for noise. The post-ReLU mean (what a ranking
of channels by mean activation reads) is reported beside it. For a pool layer the objective is the max
pool of the preceding conv's pre-ReLU response, which is the pool's output before the ReLU (ReLU and
max commute). Each size's start and end are evaluated on the unjittered image; the curve in between is
the objective of the jittered image at each gradient evaluation. All channels ascend together as one
batch, one image per channel, on a copy of the conv stack that reads the model's own kernel and bias
variables and takes images of any size; its pools use SAME padding, which equals the model's VALID
pools on even sizes and lets odd sizes through. On the CPU the same seed and options give a
bit-identical picture.

The network space is VGG16's (:data:`visnet.preprocessing.NETWORK_SPACE`); the steps, the noise and the decay
are in pixel levels, so a stored model's view (:mod:`visnet.chain.views`) runs the same ascent in its own input
space, on its own layers, from the smallest size its layer answers to its input's side.
"""
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from ..architecture import INPUT_SIZE, LAYERS
from ..preprocessing import NETWORK_SPACE, from_network_input
from .base import View, ViewResult
from .drawing import line_chart

START_STD = 8.0  # of the starting noise, in pixel units around the mean colour
STEP_SIZE = 3.0  # mean absolute change of an octave's first step, in pixel units
LAST_STEP_SIZE = 0.75  # of its last: large steps climb fast, small ones settle instead of oscillating
BLUR_SIGMA = 0.5  # pixels, after each upscale
MIN_SIZE = 16  # the smallest side optimised: block5's maps are then 1×1
PIXEL_LOW, PIXEL_HIGH = NETWORK_SPACE.low, NETWORK_SPACE.high  # network-space bounds of a photo's colours, BGR


class ActivationMaximisationView(View):
    """One picture per channel that maximises the channel's mean response, and the objective's curve over
    the ascent."""

    method = "activation-max"
    input_space = NETWORK_SPACE  # where the ascent moves, and a photo's bounds there

    def smallest_side(self, layer: str) -> int:
        """The smallest image side the ascent may start at for ``layer``."""
        return MIN_SIZE

    def response(self, model, images, layer: str):
        """The objective's map: :func:`pre_relu_response`."""
        return pre_relu_response(model, images, layer)

    def picture(self, image) -> np.ndarray:
        """An ascended image (network space) as the RGB uint8 photo it is."""
        return from_network_input(image)

    def compute(self, rgb, progress, layer="block4_conv3", channels=(0, 1, 2, 3), seed=0, octaves=5, steps=8,
                scale=1.5, jitter=4, decay=0.002, blur_every=4, blur_sigma=0.8) -> ViewResult:
        layer = self.layers.get_layer(layer).name
        channels = [self.layers.check_channel(layer, channel)[1] for channel in channels]
        model, space = self.engine.model, self.input_space
        ops = ascent_ops(model, layer, self.response, len(space.centre))
        feed_channels = np.array(channels, np.int32)

        def objective_and_gradient(images):
            return model.run([ops["objective"], ops["gradient"]],
                             {ops["images"]: images, ops["channels"]: feed_channels})

        def measure(images):
            return model.run([ops["objective"], ops["post_relu_mean"]],
                             {ops["images"]: images, ops["channels"]: feed_channels})

        started = time.perf_counter()
        generators = [np.random.default_rng([seed, channel]) for channel in channels]
        sizes = octave_sizes(scale, octaves, self.layers.input_size, self.smallest_side(layer))
        images = starting_images(generators, sizes[0], space)
        per_octave = [[] for _ in channels]
        session_runs = 0
        for octave, size in enumerate(sizes):
            progress(f"octave {octave + 1} of {octaves} ({size}×{size} px)", octave, octaves)
            if octave:
                images = gaussian_blur(resize(images, size), BLUR_SIGMA)
            at_start, post_relu_at_start = measure(images)
            curves = [[] for _ in channels]
            step_sizes = np.linspace(STEP_SIZE, LAST_STEP_SIZE, steps) if steps > 1 else [STEP_SIZE]
            for step in range(steps):
                shifts = jitter_shifts(generators, jitter)
                values, gradient = objective_and_gradient(roll(images, shifts))
                for index, value in enumerate(values):
                    curves[index].append(float(value))
                images = ascent_step(images, roll(gradient, [(-dy, -dx) for dy, dx in shifts]), decay,
                                     step_sizes[step], space)
                if blur_every and (step + 1) % blur_every == 0 and step + 1 < steps:  # an octave ends on a step
                    images = gaussian_blur(images, blur_sigma)
            at_end, post_relu_at_end = measure(images)
            session_runs += steps + 2
            for index in range(len(channels)):
                per_octave[index].append({
                    "size": size, "start": float(at_start[index]), "end": float(at_end[index]),
                    "post_relu_mean_start": float(post_relu_at_start[index]),
                    "post_relu_mean_end": float(post_relu_at_end[index]),
                    "curve": curves[index] + [float(at_end[index])]})
        progress(f"octave {octaves} of {octaves}", octaves, octaves)
        seconds = time.perf_counter() - started

        # One picture per channel, each shown once (a grid of them besides would show every picture twice).
        result = ViewResult(self.method)
        for index, channel in enumerate(channels):
            picture = self.picture(images[index])
            stem = f"activation_max_{layer}_ch{channel}"
            result.images[stem] = picture
            result.arrays[stem] = images[index]
            result.captions[stem] = (f"Input that maximises the mean pre-ReLU response of {layer} channel {channel} "
                                     f"(seed {seed}, {octaves} sizes up to {sizes[-1]} px × {steps} steps); "
                                     f"objective {per_octave[index][0]['start']:.3g} → {per_octave[index][-1]['end']:.3g}")
        result.images[f"activation_max_{layer}_curve"] = objective_chart(channels, per_octave, steps)
        result.captions[f"activation_max_{layer}_curve"] = (
            f"The objective (mean pre-ReLU response) of each channel against the step, one line per channel "
            f"and octave; "
            f"grey lines mark the octaves (image sizes {', '.join(str(size) for size in sizes)} px)")
        result.data = {
            "layer": layer,
            "seed": seed,
            "objective": "objective_* is the mean pre-ReLU response of the channel over its map (what the ascent "
                         "maximises); post_relu_mean_* is the mean of the same map after the ReLU",
            "options": {"octaves": octaves, "steps": steps, "scale": scale, "jitter": jitter, "decay": decay,
                        "blur_every": blur_every, "blur_sigma": blur_sigma, "start_std": START_STD,
                        "first_step_size": STEP_SIZE, "last_step_size": LAST_STEP_SIZE,
                        "upscale_blur_sigma": BLUR_SIGMA},
            "octave_sizes": sizes,
            "display": "the image's own colours (from_network_input); ascent keeps them within 0-255",
            "channels": [{"channel": channel,
                          "objective_start": per_octave[index][0]["start"],
                          "objective_end": per_octave[index][-1]["end"],
                          "post_relu_mean_start": per_octave[index][0]["post_relu_mean_start"],
                          "post_relu_mean_end": per_octave[index][-1]["post_relu_mean_end"],
                          "octaves": per_octave[index]}
                         for index, channel in enumerate(channels)],
            "session_runs": session_runs,
            "seconds_per_channel": seconds / len(channels),
        }
        result.timings["ascent_seconds"] = seconds
        return result


def starting_images(generators, size: int, space=NETWORK_SPACE) -> np.ndarray:
    """(len(generators), size, size, C) float32 noise around the mean colour of ``space`` (C of its channels), one
    per channel, each drawn from its channel's generator in pixel units."""
    noise = np.stack([generator.normal(0.0, START_STD, (size, size, len(space.centre))) for generator in generators])
    return (space.centre + noise * space.unit).astype(np.float32)


def octave_sizes(scale: float, octaves: int, final: int = INPUT_SIZE, smallest: int = MIN_SIZE) -> list:
    """The image side of each octave: final / scale^(octaves − 1 − k), rounded, at least ``smallest``; the
    last is ``final`` (224, the input's side)."""
    return [max(smallest, int(round(final / scale ** (octaves - 1 - octave)))) for octave in range(octaves)]


def jitter_shifts(generators, jitter: int) -> list:
    """One (dy, dx) shift per image, each in [−jitter, jitter], from the image's own generator."""
    if not jitter:
        return [(0, 0)] * len(generators)
    return [tuple(int(shift) for shift in generator.integers(-jitter, jitter + 1, 2)) for generator in generators]


def roll(images, shifts) -> np.ndarray:
    """Each (h, w, C) image of the batch rolled (cyclically) by its own (dy, dx)."""
    return np.stack([np.roll(image, shift, axis=(0, 1)) for image, shift in zip(images, shifts)])


def ascent_step(images, gradient, decay: float = 0.0, step_size: float = STEP_SIZE, space=NETWORK_SPACE) -> np.ndarray:
    """One normalised gradient-ascent step per image in pixel units (mean absolute change ``step_size`` pixel
    levels), the L2 decay towards the mean colour (network-space zero for VGG16), then clipped to a photo's colours.
    ``gradient`` is with respect to the images in ``space``; times its ``unit``, with respect to pixel levels."""
    pixel_gradient = gradient * space.unit
    scale = np.mean(np.abs(pixel_gradient), axis=(1, 2, 3), keepdims=True)
    step = pixel_gradient / np.maximum(scale, 1e-12) * step_size * space.unit
    stepped = (images - space.centre + step.astype(np.float32)) * np.float32(1.0 - decay) + space.centre
    return np.clip(stepped, space.low, space.high)


def objective_chart(channels, per_octave, steps: int) -> np.ndarray:
    """The objective against the step (counted over all octaves), one line per channel and octave, the
    octaves marked by grey lines labelled with their size."""
    per_size = steps + 1  # the evaluations of one octave: each step's gradient run, then the end
    series = [(f"ch {channel}", [(np.arange(octave * per_size, (octave + 1) * per_size), entry["curve"])
                                 for octave, entry in enumerate(octaves)])
              for channel, octaves in zip(channels, per_octave)]
    boundaries = [(octave * per_size, f"{entry['size']} px") for octave, entry in enumerate(per_octave[0])]
    return line_chart(series, "step", "objective (mean pre-ReLU response)", boundaries)


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


def ascent_ops(model, layer: str, response=None, input_channels: int = 3) -> dict:
    """Placeholders ``images`` (N, H, W, ``input_channels``) and ``channels`` (N,), the per-image ``objective``
    (the mean of ``response(model, images, layer)``: by default :func:`pre_relu_response`), its ``gradient`` with
    respect to the images and the ``post_relu_mean``, built into the model's graph once per layer."""
    cache = vars(model).setdefault("view_ops", {})
    key = ("activation-max", layer)
    if key not in cache:
        with model.graph.as_default(), tf.device(model.placement.compute), tf.name_scope("activation_max"):
            images = tf.compat.v1.placeholder(tf.float32, [None, None, None, input_channels], name="images")
            channels = tf.compat.v1.placeholder(tf.int32, [None], name="channels")
            response = (response or pre_relu_response)(model, images, layer)
            if response.shape.rank == 2:  # a flat layer's: one value per channel
                response = response[:, None, None, :]
            chosen = tf.gather(response, channels, axis=3, batch_dims=1)  # (N, h, w)
            objective = tf.reduce_mean(chosen, axis=[1, 2])
            post_relu_mean = tf.reduce_mean(tf.nn.relu(chosen), axis=[1, 2])
            gradient = tf.gradients(tf.reduce_sum(objective), images)[0]
        cache[key] = {"images": images, "channels": channels, "objective": objective,
                      "post_relu_mean": post_relu_mean, "gradient": gradient}
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
