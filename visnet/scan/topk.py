"""Exact, mergeable top-k and bottom-k of every channel over a set of images.

The order is a strict total order on (value, image id) pairs, so that ties never depend on where an
image was computed:

* top: value descending, then image id ascending;
* bottom: value ascending, then image id ascending.

Because it is a total order and image ids are unique, the k first elements of a union are among the k
first elements of each part. A chunk's partial is therefore its own top-k and bottom-k, and merging
partials (the top-k of their concatenation under the same order) gives exactly the brute-force result
over the whole table, in any order and any grouping: the same ids and the same float32 values.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class Ranking:
    """The k' = min(k, n) extreme images of every channel of one layer.

    ``top_ids`` / ``bottom_ids`` are int64 and ``top_values`` / ``bottom_values`` float32, all of
    shape (k', C): row r is the (r+1)-th image of each channel's order.
    """

    top_ids: np.ndarray
    top_values: np.ndarray
    bottom_ids: np.ndarray
    bottom_values: np.ndarray

    @property
    def k(self) -> int:
        return int(self.top_ids.shape[0])

    @property
    def channels(self) -> int:
        return int(self.top_ids.shape[1])

    def arrays(self, prefix: str = "") -> dict:
        """The four arrays keyed ``<prefix>top_ids`` … for ``np.savez``."""
        return {f"{prefix}top_ids": self.top_ids, f"{prefix}top_values": self.top_values,
                f"{prefix}bottom_ids": self.bottom_ids, f"{prefix}bottom_values": self.bottom_values}

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "") -> "Ranking":
        return cls(*(np.asarray(arrays[f"{prefix}{name}"]) for name in
                     ("top_ids", "top_values", "bottom_ids", "bottom_values")))

    def equals(self, other: "Ranking") -> bool:
        """Same ids and bit-identical values."""
        return all(np.array_equal(mine, theirs) and mine.dtype == theirs.dtype for mine, theirs in zip(
            (self.top_ids, self.top_values.view(np.uint32), self.bottom_ids, self.bottom_values.view(np.uint32)),
            (other.top_ids, other.top_values.view(np.uint32), other.bottom_ids, other.bottom_values.view(np.uint32))))


def _check(values, ids, k):
    values = np.asarray(values)
    if values.ndim != 2 or values.dtype != np.float32:
        raise ValueError(f"values must be a float32 (n, C) table, received dtype {values.dtype} shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must be finite, received NaN or infinity")
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim == 1:
        if ids.shape[0] != values.shape[0]:
            raise ValueError(f"{ids.shape[0]} ids for {values.shape[0]} rows")
        ids = np.broadcast_to(ids[:, None], values.shape)
    elif ids.shape != values.shape:
        raise ValueError(f"ids of shape {ids.shape} do not match values of shape {values.shape}")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, received {k!r}")
    return values, ids, int(k)


def rank(values, ids, k: int) -> Ranking:
    """Top-k and bottom-k of each column of ``values`` (float32, (n, C)).

    ``ids`` are the image ids of the rows, (n,) or per column (n, C) (what a merge concatenates); they
    must be unique within a column.
    """
    values, ids, k = _check(values, ids, k)
    keep = min(k, values.shape[0])
    # np.lexsort sorts by its last key first; negating a float32 is exact, so -value descending ties
    # exactly where value does.
    top = np.lexsort((ids, -values), axis=0)[:keep]
    bottom = np.lexsort((ids, values), axis=0)[:keep]
    return Ranking(np.take_along_axis(ids, top, 0).copy(), np.take_along_axis(values, top, 0).copy(),
                   np.take_along_axis(ids, bottom, 0).copy(), np.take_along_axis(values, bottom, 0).copy())


def merge(rankings, k: int) -> Ranking:
    """The ranking of the union of disjoint image sets, from their rankings (any order, any grouping)."""
    rankings = list(rankings)
    if not rankings:
        raise ValueError("merge needs at least one ranking, received none")
    channels = {ranking.channels for ranking in rankings}
    if len(channels) != 1:
        raise ValueError(f"rankings of different channel counts cannot be merged: {sorted(channels)}")
    top = rank(np.concatenate([r.top_values for r in rankings]), np.concatenate([r.top_ids for r in rankings]), k)
    bottom = rank(np.concatenate([r.bottom_values for r in rankings]),
                  np.concatenate([r.bottom_ids for r in rankings]), k)
    return Ranking(top.top_ids, top.top_values, bottom.bottom_ids, bottom.bottom_values)


def brute_force(table, k: int) -> Ranking:
    """The ranking of a whole (N, C) table whose row i is image id i."""
    table = np.asarray(table)
    return rank(table, np.arange(table.shape[0], dtype=np.int64), k)
