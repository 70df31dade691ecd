"""VGG16 as one chain: its engine's graph is built by the chain builder, and the generic chain sweep agrees with
the optimised VGG16 sweep (visnet.deconvnet.Sweep) with the suite's hed weights."""
import numpy as np
import pytest

from visnet.architecture import LAYER_NAMES

LAYERS = ["block5_pool", "block2_pool"]


@pytest.fixture(scope="module")
def vgg16_graph(engine):
    from visnet.chain.graph import ChainGraph
    from visnet.chain.vgg import vgg_chain

    graph = ChainGraph(vgg_chain(engine.weights), device="cpu")
    yield graph
    graph.close()


def test_vgg16s_engine_runs_the_graph_of_its_chain(engine):
    from visnet.chain.graph import ChainGraph

    assert isinstance(engine.model, ChainGraph)
    assert engine.model.chain.name == "vgg16" and engine.model.chain.layer_names == LAYER_NAMES
    assert list(engine.model.activations) == list(LAYER_NAMES) and set(engine.model.kernels) == set(
        engine.model.pre_activations) == {name for name in LAYER_NAMES if "conv" in name}
    for name, (kernel, bias) in engine.weights.convs.items():
        assert np.array_equal(engine.model.run(engine.model.kernels[name]), kernel), name


def test_vgg16s_chain_has_its_layers_and_figures(vgg16_graph):
    from visnet.architecture import forward_flops
    from visnet.chain.fields import receptive_fields
    from visnet.chain.flops import forward_flops as chain_flops
    from visnet.receptive_fields import FIELDS

    chain = vgg16_graph.chain
    assert chain.layer_names == LAYER_NAMES and chain.preprocess == "caffe" and not chain.has_softmax
    assert chain_flops(chain, "block5_pool") == forward_flops("block5_pool") == 30_693_261_312
    fields = receptive_fields(chain)
    for name in LAYER_NAMES:
        rows, columns = fields[name]
        assert rows == columns == FIELDS[name], name


def test_the_chain_deconvnet_on_vgg16_equals_the_optimised_sweep(engine, vgg16_graph, chelsea_rgb):
    """The forward pass is the same ops on the same weights: equal to the bit. The projections agree to float
    tolerance (about 2e-7 of the largest value here), not to the bit; likely because the optimised sweep does a
    seed's first transposed convolution as a 9-tap matrix product on its one channel
    (visnet.deconvnet.single_channel_transposed_conv) where the chain does the dense transposed convolution:
    the same sums in another order."""
    from visnet.architecture import resolve_layers
    from visnet.chain.projection import ChainSweep
    from visnet.preprocessing import to_network_input

    images, layers = to_network_input(chelsea_rgb[None]), LAYERS
    maps = vgg16_graph.run({name: vgg16_graph.activations[name] for name in layers}, {vgg16_graph.images: images})
    channels = {name: list(np.argsort(-np.linalg.norm(maps[name][0], axis=(0, 1)))[:1]) for name in layers}
    ours = ChainSweep(vgg16_graph, layers).project(images, channels)
    sweep = engine.sweep(resolve_layers("pools"), "deconvnet")  # built with the engine; other pools get no seeds
    feed = {engine.model.images: images, **{sweep.explicit[name]: np.array(channels[name]) for name in layers}}
    theirs = engine.model.run({"reconstructions": sweep.reconstructions, "layer": sweep.seed_layer,
                               "channel": sweep.seed_channel, "pool": engine.model.activations["block5_pool"]}, feed)
    np.testing.assert_array_equal(vgg16_graph.run(vgg16_graph.activations["block5_pool"], {vgg16_graph.images: images}),
                                  theirs["pool"])
    mine = {(layers[layer], channel): row for row, (layer, channel) in
            enumerate(zip(ours["layer"], ours["channel"]))}
    assert len(theirs["reconstructions"]) == len(mine) == 2
    for row, (layer, channel) in enumerate(zip(theirs["layer"], theirs["channel"])):
        expected = theirs["reconstructions"][row]
        found = ours["reconstructions"][mine[(sweep.layers[layer], channel)]]
        scale = np.abs(expected).max()
        assert scale > 0
        assert np.abs(found - expected).max() <= 1e-5 * scale, (layers[layer], channel,
                                                                 np.abs(found - expected).max() / scale)
