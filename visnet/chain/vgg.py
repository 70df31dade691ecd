"""VGG16 and VGG19 (visnet.architecture's layouts, visnet.weights' arrays) as chains: 3×3 'same' convolutions
with ReLU, 2×2/2 max pools, and with a classifier top flatten, fc1, fc2, predictions and the softmax over the
1000 ImageNet classes (the class names VGG16's classification uses). The layer names are Keras' own
(``block1_conv1`` … ``block5_pool``, ``fc1``, ``fc2``, ``predictions``); caffe preprocessing.

VGG16 has an engine of its own (visnet.engine). VGG19 is the built-in chain model: a worker with
``VISNET_MODEL=vgg19`` serves it as a :class:`~visnet.chain.engine.ChainEngine` on Keras' ImageNet file in the
models folder (``python -m visnet weights fetch vgg19``, or ``vgg19-notop`` without the top), the one with the
top when both are there. The web process describes it from the layout alone (:func:`vgg_layout`), without
reading the weights.
"""
import numpy as np

from ..architecture import CLASSIFIER_LAYERS, CONVS_PER_BLOCK, INPUT_CHANNELS, INPUT_SIZE, vgg_layers
from ..weights import CLASSIFIER_SHAPES, KNOWN_WEIGHTS, VGGWeights, conv_shapes, file_digest, load_weights
from .spec import Chain, LayerSpec

BUILT_IN_CHAINS = ("vgg19",)  # built-in models served as chains (VGG16 is served by visnet.engine)


def vgg_chain(weights, name: str = None, source: dict = None) -> Chain:
    """The chain of ``weights`` (:class:`visnet.weights.VGGWeights` of VGG16 or VGG19), named ``name`` (by
    default the weights' model); ``source`` adds to what the chain says of its origin."""
    from ..views.classification import class_names

    layers = []
    for layer in vgg_layers(CONVS_PER_BLOCK[weights.model]):
        if layer.is_pool:
            layers.append(LayerSpec(layer.name, "max_pool", window=(2, 2), strides=(2, 2), padding="VALID"))
        else:
            kernel, bias = weights.convs[layer.name]
            layers.append(LayerSpec(layer.name, "conv", kernel=kernel, bias=bias, window=(3, 3), padding="SAME",
                                    relu=True))
    if weights.has_top:
        layers.append(LayerSpec("flatten", "flatten"))
        for layer_name, _, _ in CLASSIFIER_LAYERS:
            kernel, bias = weights.classifier[layer_name]
            layers.append(LayerSpec(layer_name, "dense", kernel=kernel, bias=bias, relu=layer_name != "predictions"))
        layers.append(LayerSpec("probabilities", "softmax"))
    return Chain(name or weights.model, (INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS), tuple(layers), "caffe",
                 classes=class_names() if weights.has_top else None,
                 source={"weights": weights.name, "path": weights.path, **(source or {})})


def load_built_in(models_dir, name: str) -> Chain:
    """The built-in chain model ``name`` on the weights ``auto`` finds for it in ``models_dir`` (a
    :class:`visnet.weights.WeightsError` naming the fetch command when there are none). Its source says it
    is built in, and gives the weights file's name and SHA-256, which jobs for it are checked against."""
    check_built_in(name)
    weights = load_weights("auto", models_dir, model=name)
    spec = KNOWN_WEIGHTS.get(weights.name)
    return vgg_chain(weights, source={"built_in": True, "file": spec.filename if spec else weights.path,
                                      "sha256": file_digest(weights.path, "sha256")})


def vgg_layout(name: str, has_top: bool) -> Chain:
    """The chain of the VGG ``name`` (vgg16 or vgg19) with or without its top, for its layers, shapes and
    receptive fields only: its weights are read-only zeros that take no memory (NumPy broadcasts)."""
    def zeros(shapes):
        return tuple(np.broadcast_to(np.float32(0), shape) for shape in shapes)

    classifier = {layer: zeros(shapes) for layer, shapes in CLASSIFIER_SHAPES.items()} if has_top else None
    convs = {layer: zeros(shapes) for layer, shapes in conv_shapes(name).items()}
    return vgg_chain(VGGWeights(f"{name} layout", "", convs, classifier, model=name))


def check_built_in(name: str) -> str:
    if name not in BUILT_IN_CHAINS:
        raise ValueError(f"{name!r} is not a built-in chain model; expected one of {', '.join(BUILT_IN_CHAINS)}")
    return name
