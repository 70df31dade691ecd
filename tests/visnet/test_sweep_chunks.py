"""The bundled sweep in chunks under a memory budget: the plan, the settings, and results bit-identical to the
one-run sweep on real photos (the session's engine: its sweeps are reused, the budget is set per call)."""
import numpy as np
import pytest

from visnet import cli, sweep_chunks
from visnet.architecture import resolve_layers
from visnet.settings import from_environment
from visnet.sweep_chunks import MIB, Chunk, map_seed_bytes, max_seed_bytes, plan_chunks


def test_everything_within_the_budget_is_one_chunk_in_one_run():
    pools = {name: 3 for name in resolve_layers("pools")}
    assert plan_chunks(pools, 1, 1024 * MIB, "both") == [Chunk({name: (0, 3) for name in reversed(list(pools))}, "both")]


def test_whole_maps_split_pair_by_pair_deepest_first_and_windows_stay_whole_per_layer_while_they_fit():
    pairs = {"block1_pool": 2, "block5_pool": 3}
    chunks = plan_chunks(pairs, 1, 2 * map_seed_bytes("block5_pool"), "both")
    # block5_pool's three 212-pixel windows (49 MiB each) are more than the budget: two, then one with block1_pool's
    assert chunks == [Chunk({"block5_pool": (0, 2)}, "map"), Chunk({"block5_pool": (2, 3), "block1_pool": (0, 1)}, "map"),
                      Chunk({"block1_pool": (1, 2)}, "map"), Chunk({"block5_pool": (0, 2)}, "max"),
                      Chunk({"block5_pool": (2, 3), "block1_pool": (0, 2)}, "max")]
    assert plan_chunks(pairs, 1, 4 * map_seed_bytes("block5_pool"), "max") == [
        Chunk({"block5_pool": (0, 3), "block1_pool": (0, 2)}, "max")]
    # a budget below one seed still projects one per chunk
    assert plan_chunks(pairs, 2, 1, "max") == [Chunk({"block5_pool": (column, column + 1)}, "max") for column in range(3)] + [
        Chunk({"block1_pool": (column, column + 1)}, "max") for column in range(2)]
    assert len(plan_chunks(pairs, 2, 1, "map")) == 5
    # every chunk's estimate is within the budget, whatever top_k, unless it holds a single pair
    many = {name: 16 for name in resolve_layers("all")}
    for chunk in plan_chunks(many, 1, 512 * MIB, "both"):
        per_pair = map_seed_bytes if chunk.seed == "map" else max_seed_bytes
        assert sum((stop - start) * per_pair(name) for name, (start, stop) in chunk.columns.items()) <= 512 * MIB
    assert max_seed_bytes("block1_pool") < max_seed_bytes("block5_pool") < map_seed_bytes("block5_pool")


def estimate(chunk):
    per_pair = map_seed_bytes if chunk.seed == "map" else max_seed_bytes
    return sum((stop - start) * per_pair(name) for name, (start, stop) in chunk.columns.items())


def test_chunks_are_as_few_as_the_budget_needs_and_evened_out():
    """The largest chunk sets a job's peak: 54 reconstructions at 768 MiB run in five whole-map chunks of 11 seeds
    (605 MiB estimated) and the windows, not four of 13 seeds (715 MiB) and a last one of two."""
    every = {name: 3 for name in resolve_layers("all")}
    chunks = plan_chunks(every, 1, 768 * MIB, "both")
    assert [chunk.seed for chunk in chunks] == ["map"] * 5 + ["max"]
    assert [estimate(chunk) // map_seed_bytes("block1_pool") for chunk in chunks[:5]] == [11, 11, 11, 11, 10]
    for budget_mb in (256, 512, 1024, 4096):
        for seed in ("map", "max", "both"):
            chunks = plan_chunks(every, 2, budget_mb * MIB, seed)
            assert all(estimate(chunk) * 2 <= budget_mb * MIB for chunk in chunks), (budget_mb, seed)
            covered = {}
            for chunk in chunks:  # every pair of every layer once, of each kind asked
                for name, (start, stop) in chunk.columns.items():
                    covered.setdefault((name, chunk.seed), []).extend(range(start, stop))
            kinds = ["map", "max"] if seed == "both" else [seed]
            assert covered == {(name, kind): [0, 1, 2] for name in every for kind in kinds}, (budget_mb, seed)


def test_the_budget_is_a_setting_and_a_cli_flag(capsys):
    assert from_environment({}).sweep_memory_mb == 896
    assert from_environment({"VISNET_SWEEP_MEMORY_MB": "300"}).sweep_memory_mb == 300
    with pytest.raises(ValueError, match="VISNET_SWEEP_MEMORY_MB"):
        from_environment({"VISNET_SWEEP_MEMORY_MB": "0"})
    with pytest.raises(ValueError, match="positive"):
        plan_chunks({"block1_pool": 1}, 1, 0, "map")
    assert cli.main(["deconv", "a.jpg", "--out", "o", "--sweep-memory-mb", "0"]) == 2
    assert "--sweep-memory-mb: expected 1 or more" in capsys.readouterr().err


def features(result):
    return [feature for image in result.images for layer in image.layers.values() for feature in layer]


def assert_same_features(chunked, whole):
    assert len(features(chunked)) == len(features(whole)) > 0
    for a, b in zip(features(chunked), features(whole), strict=True):
        assert (a.layer, a.channel, a.norm, a.explicit, a.max_position, a.max_value, a.field) == (
            b.layer, b.channel, b.norm, b.explicit, b.max_position, b.max_value, b.field)
        for name in ("reconstruction", "max_reconstruction", "activation"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None and y is None) or np.array_equal(x, y), (a.layer, a.channel, name)


@pytest.fixture
def budget(engine):
    """Sets the engine's budget for one test, then puts the default back."""
    default = engine.memory_budget_mb

    def set_budget(megabytes):
        engine.memory_budget_mb = megabytes

    yield set_budget
    engine.memory_budget_mb = default


def test_chunked_results_equal_the_one_run_sweep_bit_for_bit_on_a_batch(engine, photo_batch, batch_pools_top2, budget,
                                                                        megabytes=300):
    options = dict(layers="pools", top_k=2, channels="block3_conv1:7", seed="both")  # batch_pools_top2's
    pairs = {name: 2 for name in resolve_layers("pools")} | {"block3_conv1": 1}
    chunks = plan_chunks(pairs, len(photo_batch), megabytes * MIB, "both")
    assert len(chunks) >= 4
    assert not any(chunk.seed == "max" and chunk.columns.get(name, (0, 2)) != (0, 2) for chunk in chunks
                   for name in resolve_layers("pools"))  # every layer's windows in one run: bit for bit
    whole = batch_pools_top2  # the same options under the default budget
    budget(megabytes)
    assert_same_features(engine.deconv(photo_batch, **options), whole)


def test_chunked_guided_backprop_equals_the_one_run_sweep(engine, chelsea_rgb, budget):
    whole = engine.deconv(chelsea_rgb, layers="block3_pool", top_k=3, rule="guided", seed="both")
    budget(50)
    assert_same_features(engine.deconv(chelsea_rgb, layers="block3_pool", top_k=3, rule="guided", seed="both"), whole)


def test_windows_past_the_budget_are_split_and_equal_the_one_run_to_rounding(engine, chelsea_rgb, budget):
    options = dict(layers="block5_pool", top_k=3, seed="max")
    whole = engine.deconv(chelsea_rgb, **options)
    budget(60)  # one 212-pixel window (49 MiB estimated) per run
    assert len(plan_chunks({"block5_pool": 3}, 1, 60 * MIB, "max")) == 3
    chunked = engine.deconv(chelsea_rgb, **options)
    assert len(features(chunked)) == len(features(whole)) == 3
    for a, b in zip(features(chunked), features(whole), strict=True):
        assert (a.channel, a.max_position, a.max_value, a.field) == (b.channel, b.max_position, b.max_value, b.field)
        scale = np.abs(b.max_reconstruction).max()
        assert scale > 0 and np.abs(a.max_reconstruction - b.max_reconstruction).max() <= 1e-5 * scale


def test_a_chunk_of_windows_runs_only_its_own_layers(engine, chelsea_rgb, budget):
    """A layer with no windows in a chunk is left out of its run: as an empty batch, oneDNN's conv2d gave its
    windows the input's channels, and the next unpooling failed (all 18 layers, top 16, under the default budget)."""
    options = dict(layers="block2_pool,block3_pool", top_k=1, seed="max")
    whole = engine.deconv(chelsea_rgb, **options)
    budget(1)
    chunks = plan_chunks({"block3_pool": 1, "block2_pool": 1}, 1, 1 * MIB, "max")
    assert [set(chunk.columns) for chunk in chunks] == [{"block3_pool"}, {"block2_pool"}]
    assert_same_features(engine.deconv(chelsea_rgb, **options), whole)


def test_the_merge_orders_the_chunks_rows_without_copying_them():
    """The results are held once: each merged row is a view into its chunk's block, in the one-run order."""
    blocks = [np.arange(3 * 4, dtype=np.float32).reshape(3, 2, 2), -np.arange(2 * 4, dtype=np.float32).reshape(2, 2, 2)]
    dense = [{"reconstructions": block} for block in blocks]
    order = np.array([3, 0, 4, 2, 1])
    rows = sweep_chunks._ordered_rows(dense, order)
    np.testing.assert_array_equal(np.stack(rows), np.concatenate(blocks)[order])
    for row, source in zip(rows, order):
        block = blocks[0] if source < 3 else blocks[1]
        assert np.shares_memory(row, block)
    assert all("reconstructions" not in outputs for outputs in dense)  # the merge holds the only references
