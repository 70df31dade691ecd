"""VGG16 (visnet.architecture's layout, visnet.weights' arrays) as one chain: 3×3 'same' convolutions
with ReLU, 2×2/2 max pools, and with a classifier top flatten, fc1, fc2, predictions and the softmax. The
layer names are VGG16's own (``block1_conv1`` … ``block5_pool``, ``fc1``, ``fc2``, ``predictions``)."""
from ..architecture import CLASSIFIER_LAYERS, INPUT_CHANNELS, INPUT_SIZE, LAYERS
from .spec import Chain, LayerSpec


def vgg16_chain(weights, name: str = "vgg16") -> Chain:
    """The chain of ``weights`` (:class:`visnet.weights.VGGWeights`); caffe preprocessing."""
    layers = []
    for layer in LAYERS:
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
    return Chain(name, (INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS), tuple(layers), "caffe",
                 source={"weights": weights.name, "path": weights.path})
