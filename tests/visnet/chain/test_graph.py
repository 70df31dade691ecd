"""The chain's graph: placement as VGG16's (visnet.graph.resolve_placement), and the classifier's tensors."""
import numpy as np
import pytest

from tests.visnet.chain.conftest import small_photos
from visnet.graph import CPU, GPU


@pytest.mark.parametrize("policy, compute, switches", [("mostly-cpu", CPU, GPU), ("gpu", GPU, GPU)])
def test_placement_is_visible_in_the_graph_and_soft_placement_runs_it(chains, policy, compute, switches):
    from visnet.chain.graph import ChainGraph
    from visnet.chain.preprocess import to_model_input

    chain = chains["sequential"]
    graph = ChainGraph(chain, device=policy, gpu_available=False)
    try:
        devices = graph.op_devices()
        assert devices["MaxPoolWithArgmax"] == {switches} and devices["Conv2D"] == {compute}
        images = to_model_input(small_photos(chain.input_shape[0]), chain.preprocess)
        logits, probabilities = graph.run([graph.logits, graph.probabilities], {graph.images: images})
        assert probabilities.shape == (2, 5)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)
        np.testing.assert_allclose(probabilities, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True),
                                   rtol=1e-5)
    finally:
        graph.close()
