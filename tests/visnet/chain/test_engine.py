"""The chain engine a worker of a stored model loads: the deconvnet job's request on a small model, ranked
and projected as the chain's own sweep and autodiff say, written by the VGG16 writer with the model named."""
import numpy as np
import pytest

from tests.visnet.chain.conftest import small_photos


@pytest.fixture(scope="module")
def engine(chains):
    from visnet.chain.engine import ChainEngine

    built = ChainEngine(chains["sequential"], device="cpu")
    yield built
    built.model.close()


def test_top_k_by_norm_explicit_channels_and_both_seeds(engine, chains):
    from visnet.chain.autodiff import ChainAutodiff
    from visnet.chain.preprocess import to_model_input

    chain = chains["sequential"]
    photos = small_photos(chain.input_shape[0])
    result = engine.deconv(photos, layers="pools", top_k=2, channels="conv3:5,fc1:3", seed="both", rule="guided")
    assert result.layers == ["pool1", "conv3", "avg1", "pool2", "fc1"]  # 'pools': max and average pools; model order
    reference = ChainAutodiff(chain, "guided")
    inputs = to_model_input(photos, chain.preprocess)
    for index, image in enumerate(result.images):
        for layer, features in image.layers.items():
            maps = reference.activation(inputs[index:index + 1], layer).numpy()[0]
            maps = maps.reshape(1, 1, -1) if maps.ndim == 1 else maps
            norms = np.sqrt((maps.astype(np.float64) ** 2).sum(axis=(0, 1)))
            ranked = [feature.channel for feature in features if not feature.explicit]
            explicit = [feature.channel for feature in features if feature.explicit]
            assert ranked == (list(np.argsort(-norms, kind="stable")[:2]) if layer in ("pool1", "avg1", "pool2") else [])
            assert explicit == {"conv3": [5], "fc1": [3]}.get(layer, [])
            for feature in features:
                assert feature.norm == pytest.approx(norms[feature.channel], rel=1e-5)
                expected = reference.project(inputs[index:index + 1], layer, [feature.channel], "map")[0]
                # the writer reads BGR: an RGB model's projection comes with its channels reversed
                np.testing.assert_allclose(feature.reconstruction, expected[..., ::-1], atol=1e-4 * np.abs(expected).max())
                top, left, side = feature.field
                patch = reference.project(inputs[index:index + 1], layer, [feature.channel], "max")[0][..., ::-1]
                np.testing.assert_allclose(feature.max_reconstruction, patch[top:top + side, left:left + side],
                                           atol=1e-4 * max(np.abs(patch).max(), 1e-12))
                assert np.abs(patch).sum() == pytest.approx(np.abs(feature.max_reconstruction).sum(), rel=1e-4)


def test_a_renewed_chain_engine_runs_on_a_fresh_graph_with_the_same_bits(chains):
    from visnet.chain.engine import ChainEngine

    engine = ChainEngine(chains["sequential"], device="cpu")
    photos = small_photos(chains["sequential"].input_shape[0])
    before = engine.deconv(photos, layers="pools", top_k=1, seed="both")
    old = engine.model
    old.graph._mutation_lock().__enter__()  # as a job stopped by its time limit inside TensorFlow's lock code left it
    assert engine.renew(warm_up=False) > 0 and engine.model.graph is not old.graph and old.session._closed
    after = engine.deconv(photos, layers="pools", top_k=1, seed="both")
    for image_before, image_after in zip(before.images, after.images, strict=True):
        for name, features in image_before.layers.items():
            for a, b in zip(features, image_after.layers[name], strict=True):
                assert a.channel == b.channel and np.array_equal(a.reconstruction, b.reconstruction)
                assert np.array_equal(a.max_reconstruction, b.max_reconstruction)
    engine.model.close()


def test_the_writer_draws_a_chain_result_and_names_the_model(engine, chains, tmp_path):
    from visnet.outputs import write_deconv_outputs

    chain = chains["sequential"]
    photo = small_photos(chain.input_shape[0])[0]
    result = engine.deconv(photo, layers="fc1,pool2", top_k=1, seed="both")
    manifest = write_deconv_outputs(result, 0, photo, tmp_path, image_name="cat")
    assert manifest["model"] == {"name": "tiny-sequential", "built_in": False, "sha256": chain.source["sha256"],
                                 "file": "sequential.keras", "input_size": 40, "preprocess": "none"}
    assert manifest["weights"] == "tiny-sequential"
    assert [layer["name"] for layer in manifest["layers"]] == ["pool2", "fc1"]
    for layer in manifest["layers"]:
        for entry in layer["features"]:
            for key in ("overlay", "reconstruction", "patch", "photo_patch"):
                assert (tmp_path / entry[key]).is_file()
    assert manifest["layers"][1]["features"][0]["field"] == {"top": 0, "left": 0, "side": 40}


def test_requests_are_checked_against_the_models_layers(engine):
    photo = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown layer 'block5_pool' of model tiny-sequential"):
        engine.deconv(photo, layers="block5_pool")
    with pytest.raises(ValueError, match="channel 16 is out of range for fc1 of model tiny-sequential"):
        engine.deconv(photo, channels="fc1:16", top_k=0)
    with pytest.raises(ValueError, match="ranks channels by norm only"):
        engine.deconv(photo, rank="distinctive")
    with pytest.raises(ValueError, match=r"\(N, 40, 40, 3\)"):
        engine.deconv(np.zeros((224, 224, 3), np.uint8))
