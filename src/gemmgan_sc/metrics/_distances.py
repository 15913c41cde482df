"""Chunked pairwise distances on torch (CPU or GPU): one implementation for every k-NN metric.

Comparisons are made on *scores*: squared Euclidean distances or L1 distances. Squaring is monotone, so
radii comparisons are the same as on distances, and integer-valued data keep exact ties.

Euclidean scores are ``|a|^2 + |b|^2 - 2 a.b`` (matrix products, ``torch.addmm``), with an absolute error of
a few ``eps * (|a|^2 + |b|^2)``. Scores small enough to be dominated by that error (below
``2 * genes * eps * (|a|^2 + |b|^2)``, a worst-case rounding bound; negative ones always are) are recomputed
directly as ``sum (a - b)^2``, so copies get exactly 0 and no score is negative. L1 scores come from
``torch.cdist(p=1)``. A point's score with itself is never used: it is set to ``inf`` by position, so that a
duplicate of the point still counts at distance 0.

Memory: the distance blocks computed together never exceed ``block_bytes``. Data stored in a narrower float
than the working precision (float32 data, float64 work) are converted one gene slab at a time, the scores
accumulating over the slabs, so the data are never copied whole; each slab is converted once for all the
blocks computed together. A set against itself is scored in row chunks against the points from the chunk on
(each pair once, about half the products of a full square).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from functools import cached_property

import numpy as np
import torch

METRICS = ("euclidean", "l1")
DEFAULT_BLOCK_BYTES = 256 * 2**20
SLAB_BYTES = 64 * 2**20  # one converted gene slab of the rows of all blocks computed together
SELF_CHUNKS = 8  # a set against itself: at least this many row chunks (more chunks: closer to half the work)
_REFINE_BYTES = 32 * 2**20  # row differences of one batch of recomputed pairs
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}

Span = tuple[slice, slice]  # (rows of a, rows of b) of one distance block


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    return metric


def check_block_bytes(block_bytes: int) -> int:
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, (int, np.integer)) or block_bytes < 1:
        raise ValueError(f"block_bytes must be a positive int (bytes of one distance block), got {block_bytes!r}.")
    return int(block_bytes)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`, failing clearly when it is not a usable one."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} needs CUDA, which torch cannot use here; use device='cpu'.")
    return dev


def chunk_rows(n_rows: int, n_cols: int, itemsize: int, block_bytes: int) -> int:
    """Rows of one ``rows x n_cols`` block that stays under ``block_bytes`` (at least one row)."""
    return max(1, min(n_rows, block_bytes // max(1, n_cols * itemsize)))


def _convert(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` in the working dtype (itself when it already is); every conversion of the data goes here."""
    return x.to(dtype)


class Points:
    """The rows of one data matrix on ``device`` (shared with numpy on the CPU, not copied), to be scored in
    the working ``dtype`` (the data may be stored in a narrower float dtype)."""

    def __init__(self, x: np.ndarray, dtype=None, device: str | torch.device = "cpu") -> None:
        with warnings.catch_warnings():  # read-only arrays: torch warns about writes, and none are made
            warnings.simplefilter("ignore", UserWarning)
            self.x = torch.as_tensor(x, device=check_device(device))
        self.dtype = _TORCH_DTYPES[np.dtype(x.dtype if dtype is None else dtype)]
        self.itemsize = torch.finfo(self.dtype).bits // 8

    def __len__(self) -> int:
        return self.x.shape[0]

    def slab_width(self, n_rows: int) -> int:
        """Genes of one converted slab of ``n_rows`` rows (all genes when no conversion is needed)."""
        if self.x.dtype == self.dtype:
            return self.x.shape[1]
        return max(64, SLAB_BYTES // (self.itemsize * n_rows))

    def rows(self, rows: slice | torch.Tensor, genes: slice = slice(None)) -> torch.Tensor:
        return _convert(self.x[rows, genes], self.dtype)

    @cached_property
    def sq_norms(self) -> torch.Tensor:
        """``|x_i|^2`` in the working dtype, summed over converted gene slabs."""
        width = self.slab_width(len(self))
        out = torch.zeros(len(self), dtype=self.dtype, device=self.x.device)
        for j in range(0, self.x.shape[1], width):
            s = self.rows(slice(None), slice(j, j + width))
            out += torch.einsum("ij,ij->i", s, s)
        return out


class Pairwise:
    """Scores (squared Euclidean or L1) between the rows of ``a`` and those of ``b`` (``b=None``: ``a``
    against itself, each point's score with itself ``inf``), a few blocks at a time."""

    def __init__(self, a: Points, b: Points | None = None, metric: str = "euclidean") -> None:
        self.a, self.b, self.same, self.metric = a, a if b is None else b, b is None, check_metric(metric)
        self.dtype, self.itemsize = a.dtype, a.itemsize
        if metric == "euclidean":
            self.tol = 2.0 * a.x.shape[1] * torch.finfo(self.dtype).eps

    def blocks(self, spans: list[Span]) -> list[torch.Tensor]:
        """The score blocks ``a[rows] x b[cols]`` of ``spans``; each gene slab is converted once for all."""
        r0, r1 = min(r.start for r, _ in spans), max(r.stop for r, _ in spans)
        c0, c1 = min(c.start for _, c in spans), max(c.stop for _, c in spans)
        if self.same:  # one slab of the rows of both sides
            r0 = c0 = min(r0, c0)
            r1 = c1 = max(r1, c1)
        outs = [self._start(rows, cols) for rows, cols in spans]
        width = min(p.slab_width((r1 - r0) + (0 if self.same else c1 - c0)) for p in (self.a, self.b))
        for j in range(0, self.a.x.shape[1], width):
            genes = slice(j, j + width)
            sa = self.a.rows(slice(r0, r1), genes)
            sb = sa if self.same else self.b.rows(slice(c0, c1), genes)
            for out, (rows, cols) in zip(outs, spans):
                x, y = sa[rows.start - r0:rows.stop - r0], sb[cols.start - c0:cols.stop - c0]
                if self.metric == "euclidean":
                    out.addmm_(x, y.T, alpha=-2)
                else:
                    out += torch.cdist(x, y, p=1)
        for out, (rows, cols) in zip(outs, spans):
            self._finish(out, rows, cols)
        return outs

    def _start(self, rows: slice, cols: slice) -> torch.Tensor:
        if self.metric == "euclidean":
            return self.a.sq_norms[rows, None] + self.b.sq_norms[None, cols]
        return torch.zeros(rows.stop - rows.start, cols.stop - cols.start, dtype=self.dtype, device=self.a.x.device)

    def _finish(self, out: torch.Tensor, rows: slice, cols: slice) -> None:
        """Exclude each point's score with itself; recompute the scores rounding may dominate (module notes)."""
        if self.same:
            i = torch.arange(max(rows.start, cols.start), min(rows.stop, cols.stop), device=out.device)
            out[i - rows.start, i - cols.start] = torch.inf
        if self.metric != "euclidean":
            return
        a_sq, b_sq = self.a.sq_norms[rows], self.b.sq_norms[cols]
        # a coarse per-row bound first (no block-sized temporary), then the per-pair bound on those rows
        near = torch.nonzero(out.amin(1) <= self.tol * (a_sq + b_sq.max())).flatten()
        i, j = torch.nonzero(out[near] <= self.tol * (a_sq[near, None] + b_sq[None, :]), as_tuple=True)
        i = near[i]
        step = max(1, _REFINE_BYTES // (self.itemsize * self.a.x.shape[1]))
        for s in range(0, len(i), step):
            ii, jj = i[s:s + step], j[s:s + step]
            diff = self.a.rows(ii + rows.start) - self.b.rows(jj + cols.start)
            out[ii, jj] = torch.einsum("ij,ij->i", diff, diff)

    def row_blocks(self, block_bytes: int) -> Iterator[tuple[slice, torch.Tensor]]:
        """``(rows, scores of a[rows] against all of b)`` for row chunks of at most ``block_bytes``.

        A caller keeping its block while the next one is computed holds two: ``del`` it at the end of the loop.
        """
        n, m = len(self.a), len(self.b)
        step = chunk_rows(n, m, self.itemsize, block_bytes)
        for r0 in range(0, n, step):
            rows = slice(r0, min(n, r0 + step))
            yield rows, self.blocks([(rows, slice(0, m))])[0]

    def knn(self, k: int, block_bytes: int) -> torch.Tensor:
        """The ``k`` smallest scores of each row of ``a`` to the rows of ``b``, ascending (``n_a x k``)."""
        if self.same:
            return self._knn_self(k, block_bytes)
        out = []
        for _, d in self.row_blocks(block_bytes):
            out.append(_smallest(d, k))
            del d  # freed before the next block is computed
        return torch.cat(out)

    def _knn_self(self, k: int, block_bytes: int) -> torch.Tensor:
        """k-NN of a set against itself, each pair scored once.

        Chunk ``[i0, i1)`` is scored against points ``[i0, n)`` only: its rows take their candidates from that
        block, and its columns beyond ``i1`` (later points) give those points theirs through the transposed
        block. ``best`` holds each point's k smallest so far.
        """
        n = len(self.a)
        step = min(chunk_rows(n, n, self.itemsize, block_bytes), -(-n // SELF_CHUNKS))
        best = torch.full((n, k), torch.inf, dtype=self.dtype, device=self.a.x.device)
        for group in _groups([(slice(i, min(n, i + step)), slice(i, n)) for i in range(0, n, step)],
                             self.itemsize, block_bytes):
            for (rows, _), d in zip(group, self.blocks(group)):
                best[rows] = _merge(best[rows], _smallest(d, k), k)
                if rows.stop < n:
                    later = d[:, rows.stop - rows.start:]
                    best[rows.stop:] = _merge(best[rows.stop:], _smallest(later.T, k), k)
        return best


def _groups(spans: list[Span], itemsize: int, block_bytes: int) -> list[list[Span]]:
    """Consecutive spans in groups whose blocks together stay under ``block_bytes`` (at least one each)."""
    groups, size = [], block_bytes + 1
    for rows, cols in spans:
        nbytes = (rows.stop - rows.start) * (cols.stop - cols.start) * itemsize
        if size + nbytes > block_bytes:
            groups.append([])
            size = 0
        groups[-1].append((rows, cols))
        size += nbytes
    return groups


def _smallest(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``min(k, columns)`` smallest entries of each row of ``x``, ascending."""
    return torch.topk(x, min(k, x.shape[1]), dim=1, largest=False).values


def _merge(best: torch.Tensor, cand: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` smallest of each row of ``best`` and ``cand`` together, ascending."""
    return _smallest(torch.cat([best, cand], dim=1), k)


def knn_scores(a: np.ndarray, b: np.ndarray | None, k: int, metric: str = "euclidean",
               block_bytes: int = DEFAULT_BLOCK_BYTES, *, dtype=None,
               device: str | torch.device = "cpu") -> np.ndarray:
    """The ``k`` smallest scores from each row of ``a`` to the rows of ``b``, ascending (``n_a x k``).

    ``b=None`` means ``a`` against itself, each point's own entry excluded by position (a duplicate of a
    point counts as a neighbour at distance 0, the point itself does not). ``dtype``: working precision
    (default ``a.dtype``).

    Examples
    --------
    >>> import numpy as np
    >>> knn_scores(np.array([[0.0], [1.0], [3.0]]), None, 1)
    array([[1.],
           [1.],
           [4.]])
    """
    n_other = len(a) - 1 if b is None else len(b)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_other:
        raise ValueError(f"k={k!r} nearest neighbours need an int 1 <= k <= {n_other} (the number of other points).")
    dt = a.dtype if dtype is None else dtype
    pb = None if b is None else Points(b, dt, device)
    return Pairwise(Points(a, dt, device), pb, metric).knn(int(k), block_bytes).cpu().numpy()
