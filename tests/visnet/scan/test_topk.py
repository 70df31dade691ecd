"""Exact mergeable top-k / bottom-k: partials merged in any order and grouping equal the brute force."""
import random

import numpy as np
import pytest

from visnet.scan import topk


def by_python_sort(table, k):
    """The tie rule written out with Python's sort, column by column."""
    rows = range(table.shape[0])
    top = [sorted(rows, key=lambda i: (-table[i, c], i))[:k] for c in range(table.shape[1])]
    bottom = [sorted(rows, key=lambda i: (table[i, c], i))[:k] for c in range(table.shape[1])]
    return np.array(top).T, np.array(bottom).T


def tie_heavy_table(rng, rows, columns):
    """Few distinct values (many exact ties), zeros as after a ReLU, and some tiny differences."""
    table = rng.integers(0, 4, (rows, columns)).astype(np.float32)
    table[rng.random((rows, columns)) < 0.3] = 0.0
    table += (rng.random((rows, columns)) < 0.1) * np.float32(1e-7)
    return table.astype(np.float32)


def test_brute_force_follows_the_tie_rule():
    table = tie_heavy_table(np.random.default_rng(0), 60, 9)
    ranking = topk.brute_force(table, 7)
    top, bottom = by_python_sort(table, 7)
    assert np.array_equal(ranking.top_ids, top) and np.array_equal(ranking.bottom_ids, bottom)
    assert np.array_equal(ranking.top_values, np.take_along_axis(table, top, 0))
    assert ranking.top_ids.dtype == np.int64 and ranking.top_values.dtype == np.float32


@pytest.mark.parametrize("seed", range(6))
def test_merging_chunks_in_any_order_equals_the_brute_force(seed):
    rng = np.random.default_rng(seed)
    py_random = random.Random(seed)
    rows, k = int(rng.integers(1, 300)), int(rng.integers(1, 12))
    table = tie_heavy_table(rng, rows, 16)
    cuts = sorted({0, rows, *rng.integers(0, rows, int(rng.integers(0, 12))).tolist()})
    partials = [topk.rank(table[a:b], np.arange(a, b), k) for a, b in zip(cuts, cuts[1:])]
    py_random.shuffle(partials)
    # a random merge tree: pairs merged, then their merges merged, …
    while len(partials) > 1:
        index = py_random.randrange(len(partials) - 1)
        partials[index:index + 2] = [topk.merge(partials[index:index + 2], k)]
    assert partials[0].equals(topk.brute_force(table, k))
    assert partials[0].k == min(k, rows)


def test_duplicate_rows_tie_by_image_id():
    table = np.zeros((5, 2), np.float32)
    table[[1, 3], 0] = 2.5  # two identical images
    table[4, 1] = -0.0  # -0.0 and 0.0 are equal: the id decides
    ranking = topk.brute_force(table, 3)
    assert ranking.top_ids[:, 0].tolist() == [1, 3, 0]
    assert ranking.bottom_ids[:, 0].tolist() == [0, 2, 4]
    assert ranking.bottom_ids[:, 1].tolist() == [0, 1, 2]


def test_equals_compares_float_bits():
    table = np.array([[1.0], [2.0]], np.float32)
    ranking = topk.brute_force(table, 1)
    other = topk.brute_force(np.array([[1.0], [np.nextafter(np.float32(2.0), np.float32(3.0))]], np.float32), 1)
    assert ranking.equals(topk.brute_force(table.copy(), 1))
    assert not ranking.equals(other)


@pytest.mark.parametrize("values, ids, k, message", [
    (np.zeros((3, 2), np.float64), np.arange(3), 1, "float32"),
    (np.zeros((3, 2), np.float32), np.arange(2), 1, "ids"),
    (np.array([[np.nan]], np.float32), np.arange(1), 1, "finite"),
    (np.zeros((3, 2), np.float32), np.arange(3), 0, "positive"),
])
def test_rank_checks_its_arguments(values, ids, k, message):
    with pytest.raises(ValueError, match=message):
        topk.rank(values, ids, k)


def test_merge_refuses_different_layers():
    one = topk.brute_force(np.zeros((2, 3), np.float32), 1)
    other = topk.brute_force(np.zeros((2, 4), np.float32), 1)
    with pytest.raises(ValueError, match="channel counts"):
        topk.merge([one, other], 1)
