"""Chunked pairwise distances: BLAS for Euclidean, scipy for L1; never an n x m x genes tensor.

All comparisons are made on *scores*: squared Euclidean distances or L1 distances. Squaring is monotone,
so radii comparisons are the same as on distances, and integer-valued data keep exact ties.

Accuracy (Euclidean): the score of ``a`` and ``b`` is ``|a|^2 + |b|^2 - 2 a.b`` computed with BLAS in the
working dtype and clamped at 0. Its absolute error is at most a few units of ``eps * (|a|^2 + |b|^2)``
(float64: eps = 2.2e-16; float32: 1.2e-7), tiny against typical distances of expression profiles, but two
scores small enough to be dominated by that error (below ``2 * genes * eps * (|a|^2 + |b|^2)``, a
worst-case rounding bound) are recomputed directly as ``sum (a - b)^2``, so duplicated and near-duplicated
profiles get exact (0 for copies) distances. When every product is exactly representable (small integers,
as in the tests), all scores are exact. A point's distance to itself is never computed: it is excluded by
position. L1 distances are computed directly (``scipy.spatial.distance.cdist``) and are exact up to the
rounding of one sum.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.spatial.distance import cdist

METRICS = ("euclidean", "l1")
DEFAULT_BLOCK_BYTES = 256 * 2**20


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    return metric


def check_block_bytes(block_bytes: int) -> int:
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, (int, np.integer)) or block_bytes < 1:
        raise ValueError(f"block_bytes must be a positive int (bytes of one distance block), got {block_bytes!r}.")
    return int(block_bytes)


def row_chunks(n_rows: int, n_cols: int, itemsize: int, block_bytes: int) -> Iterator[slice]:
    """Row slices so that one ``rows x n_cols`` block stays under ``block_bytes`` (at least one row)."""
    step = max(1, min(n_rows, block_bytes // max(1, n_cols * itemsize)))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


class Scorer:
    """Scores (squared Euclidean or L1) between row blocks of ``a`` and all rows of ``b``.

    With ``exclude_self`` (``b is a``), the score of a point with itself is set to ``inf`` (excluded by
    position, so that a duplicate of it still counts at distance 0).
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, metric: str, exclude_self: bool = False) -> None:
        if exclude_self and b is not a:
            raise ValueError("exclude_self needs b to be a (one set against itself).")
        self.a, self.b, self.metric = a, b, check_metric(metric)
        self.same = bool(exclude_self)
        if metric == "euclidean":
            self.a_sq = np.einsum("ij,ij->i", a, a)
            self.b_sq = self.a_sq if b is a else np.einsum("ij,ij->i", b, b)
            self.b_sq_max = float(self.b_sq.max())

    def block(self, rows: slice) -> np.ndarray:
        if self.metric == "l1":
            out = cdist(self.a[rows], self.b, metric="cityblock").astype(self.a.dtype, copy=False)
            if self.same:
                idx = np.arange(rows.start, rows.stop)
                out[idx - rows.start, idx] = np.inf
            return out
        return self._finish(self.a[rows] @ self.b.T, rows)

    def full_self(self) -> np.ndarray:
        """All scores of ``a`` with itself (``b is a``); uses the symmetric BLAS product when Euclidean."""
        if self.metric == "l1":
            return self.block(slice(0, self.a.shape[0]))
        return self._finish(self.a @ self.a.T, slice(0, self.a.shape[0]))  # numpy dispatches a @ a.T to syrk

    def _finish(self, out: np.ndarray, rows: slice) -> np.ndarray:
        """Turn the products ``a_i . b_j`` (in place) into clamped squared distances; refine tiny ones."""
        a_sq = self.a_sq[rows, None]
        out *= -2.0
        out += a_sq
        out += self.b_sq[None, :]
        np.maximum(out, 0.0, out=out)
        if self.same:  # a point and itself: never a neighbour, never refined
            idx = np.arange(rows.start, rows.stop)
            out[idx - rows.start, idx] = np.inf
        tol = 2.0 * self.a.shape[1] * np.finfo(out.dtype).eps
        # coarse per-row bound first (no temporary float block), then the exact per-pair bound
        suspect = np.nonzero(out <= tol * (a_sq + self.b_sq_max))
        if suspect[0].size:
            keep = out[suspect] <= tol * (self.a_sq[rows][suspect[0]] + self.b_sq[suspect[1]])
            suspect = (suspect[0][keep], suspect[1][keep])
        if suspect[0].size:
            a_rows = self.a[rows]
            step = max(1, 32 * 2**20 // (8 * self.a.shape[1]))
            for start in range(0, suspect[0].size, step):
                i, j = suspect[0][start:start + step], suspect[1][start:start + step]
                diff = a_rows[i] - self.b[j]
                out[i, j] = np.einsum("ij,ij->i", diff, diff)
        return out


def scores_to_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    return np.sqrt(scores) if metric == "euclidean" else scores


def knn_scores(
    a: np.ndarray,
    b: np.ndarray | None,
    k: int,
    metric: str = "euclidean",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> np.ndarray:
    """The ``k`` smallest scores from each row of ``a`` to the rows of ``b``, ascending (``n_a x k``).

    ``b=None`` means ``a`` against itself, each point's own entry excluded by position (so a duplicate of a
    point counts as a neighbour at distance 0, the point itself does not).
    """
    same = b is None
    b = a if same else b
    n_other = b.shape[0] - (1 if same else 0)
    if k < 1 or k > n_other:
        raise ValueError(f"k={k} nearest neighbours need 1 <= k <= {n_other} (the number of other points).")
    scorer = Scorer(a, b, metric, exclude_self=same)
    out = np.empty((a.shape[0], k), dtype=a.dtype)
    itemsize = a.dtype.itemsize
    if same and a.shape[0] ** 2 * itemsize <= block_bytes:
        blocks = [(slice(0, a.shape[0]), scorer.full_self())]
    else:
        blocks = ((rows, None) for rows in row_chunks(a.shape[0], b.shape[0], itemsize, block_bytes))
    for rows, block in blocks:
        if block is None:
            block = scorer.block(rows)
        if k < block.shape[1]:
            block.partition(k - 1, axis=1)  # in place: the block is ours (np.partition would copy, 0.6 s at 5k x 5k)
            part = block[:, :k]
        else:
            part = block[:, :k]
        out[rows] = np.sort(part, axis=1)
    return out
