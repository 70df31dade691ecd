"""Dense FLOPs of a chain's forward pass, 2 per multiply-add, counting the convolutions and dense layers
(pools, biases, ReLUs and affine layers are negligible beside them), as visnet.architecture counts VGG16."""


def layer_flops(chain, layer: str) -> int:
    """FLOPs of ``layer`` for one image: out rows × out columns × window × in channels × out channels × 2 for
    a convolution, inputs × outputs × 2 for a dense layer, 0 otherwise."""
    spec = chain.layer(layer)
    if spec.kind == "conv":
        rows, columns, _ = chain.output_shape(layer)
        return 2 * rows * columns * int(spec.kernel.size)
    if spec.kind == "dense":
        return 2 * int(spec.kernel.size)
    return 0


def forward_flops(chain, up_to: str | None = None) -> int:
    """FLOPs of one image's forward pass through every layer up to and including ``up_to`` (default: all)."""
    last = len(chain.layers) - 1 if up_to is None else chain.index(up_to)
    return sum(layer_flops(chain, layer.name) for layer in chain.layers[: last + 1])
