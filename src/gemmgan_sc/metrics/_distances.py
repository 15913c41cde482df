"""Chunked pairwise distances: BLAS for Euclidean, scipy for L1; never an n x m x genes tensor.

All comparisons are made on *scores*: squared Euclidean distances or L1 distances. Squaring is monotone,
so radii comparisons are the same as on distances, and integer-valued data keep exact ties.

Accuracy (Euclidean): the score of ``a`` and ``b`` is ``|a|^2 + |b|^2 - 2 a.b`` computed with BLAS in the
working dtype. Its absolute error is at most a few units of ``eps * (|a|^2 + |b|^2)`` (float64:
eps = 2.2e-16; float32: 1.2e-7), tiny against typical distances of expression profiles, but two scores
small enough to be dominated by that error (below ``2 * genes * eps * (|a|^2 + |b|^2)``, a worst-case
rounding bound; negative scores always are) are recomputed directly as ``sum (a - b)^2``, so duplicated and
near-duplicated profiles get exact (0 for copies) distances and no score is negative. When every product is
exactly representable (small integers, as in the tests), all scores are exact. A point's distance to itself
is never computed: it is excluded by position. L1 distances are computed directly
(``scipy.spatial.distance.cdist``) and are exact up to the rounding of one sum.

Speed and memory. The products go straight to BLAS (``scipy.linalg.blas`` gemm, and syrk for a set against
itself, half the flops) with ``-2`` as BLAS's ``alpha`` (exact: a power of two) and the output written into
one distance block that is reused for every chunk and every call sharing a :class:`Workspace`. A set too
large for one symmetric block is searched in row chunks that score each pair once (see
:func:`_knn_self_chunked`). Row norms are computed once per matrix and workspace. Inputs stored
in a narrower float than the working dtype (float32 data, float64 work) are never converted as a whole: the
products accumulate over gene slabs converted into two small reused buffers (``beta=1``), and the few
refined pairs convert their own rows. The rest of the work (adding the norms, excluding self, finding the
pairs to refine, and the caller's k-NN selection or comparisons) is done tile by tile, a few rows at a
time, while the tile is in cache. Fresh memory is expensive on some machines (first-touch page faults cost
seconds per GB on some VMs), so none of this allocates per chunk.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.linalg import blas as _blas
from scipy.spatial.distance import cdist

METRICS = ("euclidean", "l1")
DEFAULT_BLOCK_BYTES = 256 * 2**20
SLAB_BYTES = 64 * 2**20  # both gene-slab conversion buffers together (float32 data, float64 work)
TILE_BYTES = 2**19  # rows of a distance block finished and consumed together (about half an L2 cache)
_REFINE_BYTES = 32 * 2**20  # memory of the row differences of one batch of refined pairs


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    return metric


def check_block_bytes(block_bytes: int) -> int:
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, (int, np.integer)) or block_bytes < 1:
        raise ValueError(f"block_bytes must be a positive int (bytes of one distance block), got {block_bytes!r}.")
    return int(block_bytes)


def chunk_rows(n_rows: int, n_cols: int, itemsize: int, block_bytes: int) -> int:
    """Rows of one ``rows x n_cols`` block that stays under ``block_bytes`` (at least one row)."""
    return max(1, min(n_rows, block_bytes // max(1, n_cols * itemsize)))


def row_chunks(n_rows: int, n_cols: int, itemsize: int, block_bytes: int) -> Iterator[slice]:
    """Row slices so that one ``rows x n_cols`` block stays under ``block_bytes`` (at least one row)."""
    step = chunk_rows(n_rows, n_cols, itemsize, block_bytes)
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def self_in_one_block(n: int, itemsize: int, block_bytes: int) -> bool:
    """Whether a set of ``n`` points against itself is scored as one symmetric ``n x n`` block."""
    return n * n * itemsize <= block_bytes


def block_elements(n_a: int, n_b: int, itemsize: int, block_bytes: int, same: bool) -> int:
    """Elements of the largest distance block of ``n_a`` rows against ``n_b`` (``same``: a set and itself)."""
    if same and self_in_one_block(n_a, itemsize, block_bytes):
        return n_a * n_a
    return chunk_rows(n_a, n_b, itemsize, block_bytes) * n_b


class Workspace:
    """Scratch buffers kept for reuse (the distance block, the gene-slab conversion buffers) and row norms.

    Share one between the calls of one computation (the fidelity metrics use three distance sets of the same
    size); it is freed with the last reference. :meth:`get` hands out views, valid until the next request
    under the same name.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}
        self._norms: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

    def norms(self, x: np.ndarray, dtype) -> np.ndarray:
        """Squared row norms of ``x`` in ``dtype``, computed once per matrix (kept with a reference to it)."""
        key = (id(x), np.dtype(dtype).str)
        if key not in self._norms:
            self._norms[key] = (x, squared_norms(x, dtype))
        return self._norms[key][1]

    def reserve(self, name: str, size: int, dtype) -> None:
        """Make sure ``name`` holds at least ``size`` elements of ``dtype`` (one allocation for later gets)."""
        dtype = np.dtype(dtype)
        buf = self._bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            self._bufs.pop(name, None)  # release the old buffer before allocating the new one
            self._bufs[name] = np.empty(int(size), dtype=dtype)

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A C-contiguous ``shape`` view of the buffer ``name`` (uninitialised; grown when too small)."""
        size = int(np.prod(shape))
        self.reserve(name, size, dtype)
        return self._bufs[name][:size].reshape(shape)


def _native(x: np.ndarray, dtype: np.dtype) -> bool:
    return x.dtype == dtype and x.flags.c_contiguous


def _blas_out(res: np.ndarray, out: np.ndarray) -> None:
    # f2py writes into ``c`` in place when it is Fortran-contiguous of the right dtype (always so here);
    # this copy is only a safeguard should a scipy version return a new array.
    if not np.shares_memory(res, out):  # pragma: no cover - defensive
        out[...] = res.T


def products(out: np.ndarray, a: np.ndarray, b: np.ndarray | None, dtype: np.dtype, work: Workspace,
             alpha: float = -2.0) -> None:
    """``out = alpha * a @ b.T`` with BLAS in ``dtype``; ``b=None``: ``a`` against itself (syrk, half the
    flops), of which only the lower triangle of ``out`` is written.

    ``out`` is a C-contiguous ``n_a x n_b`` array of ``dtype``. Rows stored in another dtype are converted
    one gene slab at a time into reused buffers, the products accumulating over the slabs.
    """
    dtype = np.dtype(dtype)
    sym = b is None
    if dtype == np.float64:
        gemm, syrk = _blas.dgemm, _blas.dsyrk
    elif dtype == np.float32:
        gemm, syrk = _blas.sgemm, _blas.ssyrk
    else:  # pragma: no cover - dtypes are checked at the entry points
        raise TypeError(f"no BLAS product for dtype {dtype}.")
    # BLAS is column-major: C-ordered out (n_a x n_b) is Fortran-ordered out.T = b @ a.T, and a C-ordered
    # matrix x (n x g) is the Fortran-ordered x.T (g x n), so nothing below is copied by f2py.
    c = out.T
    if _native(a, dtype) and (sym or _native(b, dtype)):
        if sym:
            _blas_out(syrk(alpha, a.T, beta=0.0, c=c, trans=1, lower=0, overwrite_c=1), out)
        else:
            _blas_out(gemm(alpha, b.T, a.T, beta=0.0, c=c, trans_a=1, overwrite_c=1), out)
        return
    n_a, genes = a.shape
    n_b = n_a if sym else b.shape[0]
    width = max(64, SLAB_BYTES // (dtype.itemsize * (n_a + (0 if sym else n_b))))
    for j0 in range(0, genes, width):
        j1 = min(genes, j0 + width)
        beta = 0.0 if j0 == 0 else 1.0
        sa = work.get("slab_a", (n_a, j1 - j0), dtype)
        np.copyto(sa, a[:, j0:j1])
        if sym:
            _blas_out(syrk(alpha, sa.T, beta=beta, c=c, trans=1, lower=0, overwrite_c=1), out)
        else:
            sb = work.get("slab_b", (n_b, j1 - j0), dtype)
            np.copyto(sb, b[:, j0:j1])
            _blas_out(gemm(alpha, sb.T, sa.T, beta=beta, c=c, trans_a=1, overwrite_c=1), out)


def squared_norms(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``|x_i|^2`` in ``dtype``; rows stored in another dtype are converted a few at a time (in cache), which
    gives the same numbers as converting the whole matrix first."""
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return np.einsum("ij,ij->i", x, x)
    out = np.empty(x.shape[0], dtype=dtype)
    step = max(1, 2**20 // (dtype.itemsize * x.shape[1]))
    buf = np.empty((step, x.shape[1]), dtype=dtype)
    for r0 in range(0, x.shape[0], step):
        r1 = min(x.shape[0], r0 + step)
        rows = buf[: r1 - r0]
        np.copyto(rows, x[r0:r1])
        out[r0:r1] = np.einsum("ij,ij->i", rows, rows)
    return out


class Scorer:
    """Scores (squared Euclidean or L1) between row blocks of ``a`` and all rows of ``b``.

    With ``exclude_self`` (``b is a``), the score of a point with itself is set to ``inf`` (excluded by
    position, so that a duplicate of it still counts at distance 0). ``dtype`` is the working precision
    (default ``a.dtype``); ``a`` and ``b`` may be stored in another float dtype (converted as needed, see the
    module notes). Blocks live in ``work`` and are overwritten by the next block.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, metric: str, exclude_self: bool = False,
                 dtype=None, work: Workspace | None = None) -> None:
        if exclude_self and b is not a:
            raise ValueError("exclude_self needs b to be a (one set against itself).")
        self.a, self.b, self.metric = a, b, check_metric(metric)
        self.same = bool(exclude_self)
        self.dtype = np.dtype(a.dtype if dtype is None else dtype)
        self.work = Workspace() if work is None else work
        if metric == "euclidean":
            self.a_sq = self.work.norms(a, self.dtype)
            self.b_sq = self.work.norms(b, self.dtype)
            self.b_sq_max = float(self.b_sq.max())
            self.tol = 2.0 * a.shape[1] * np.finfo(self.dtype).eps

    def _compute(self, rows: slice, cols: slice, symmetric: bool) -> np.ndarray:
        """Raw block of ``a[rows]`` x ``b[cols]`` (``-2 a.b`` or L1 scores); ``symmetric``: lower triangle only."""
        out = self.work.get("block", (rows.stop - rows.start, cols.stop - cols.start), self.dtype)
        if self.metric == "l1":
            if out.dtype == np.float64:
                cdist(self.a[rows], self.b[cols], metric="cityblock", out=out)
            else:
                out[...] = cdist(self.a[rows], self.b[cols], metric="cityblock")
        else:
            products(out, self.a[rows], None if symmetric else self.b[cols], self.dtype, self.work)
        return out

    def tiles(self, rows: slice, symmetric: bool = False, cols: slice | None = None
              ) -> Iterator[tuple[slice, np.ndarray]]:
        """Finished scores of ``a[rows]`` against ``b[cols]`` (default: all of ``b``), a few rows at a time:
        ``(rows of a, scores)``.

        The scores are views into the block, finished in place; the caller may overwrite a tile (e.g.
        partition it) once it has it. ``symmetric`` (all rows of ``a`` against itself, Euclidean): one syrk
        product, each tile completed from the rows below it before they are finished.
        """
        cols = slice(0, self.b.shape[0]) if cols is None else cols
        if symmetric and not (self.b is self.a and rows == slice(0, self.a.shape[0]) and cols == rows):
            raise ValueError("symmetric needs all rows of a set against itself.")
        symmetric = symmetric and self.metric == "euclidean"
        out = self._compute(rows, cols, symmetric)
        n_rows, n_cols = out.shape
        step = max(1, TILE_BYTES // (n_cols * out.itemsize))
        upper, upper_n = None, -1
        for t0 in range(0, n_rows, step):
            t1 = min(n_rows, t0 + step)
            tile = out[t0:t1]
            if symmetric:  # syrk wrote the lower triangle; rows >= t1 are still raw products
                if t1 < n_cols:
                    tile[:, t1:] = out[t1:, t0:t1].T
                diag = tile[:, t0:t1]
                if t1 - t0 != upper_n:  # the same for every tile but the last
                    upper, upper_n = np.triu_indices(t1 - t0, 1), t1 - t0
                diag[upper] = diag.T[upper]
            grows = slice(rows.start + t0, rows.start + t1)
            self._finish(tile, grows, cols)
            yield grows, tile

    def block(self, rows: slice, cols: slice | None = None) -> np.ndarray:
        """All finished scores of ``a[rows]`` against ``b[cols]`` (a view of the workspace block)."""
        cols = slice(0, self.b.shape[0]) if cols is None else cols
        for _ in self.tiles(rows, cols=cols):
            pass
        return self.work.get("block", (rows.stop - rows.start, cols.stop - cols.start), self.dtype)

    def full_self(self) -> np.ndarray:
        """All scores of ``a`` with itself (``b is a``); uses the symmetric BLAS product when Euclidean."""
        rows = slice(0, self.a.shape[0])
        for _ in self.tiles(rows, symmetric=self.b is self.a):
            pass
        return self.work.get("block", (rows.stop, rows.stop), self.dtype)

    def _finish(self, out: np.ndarray, rows: slice, cols: slice) -> None:
        """Turn ``-2 a_i . b_j`` (in place) into squared distances and refine tiny ones; exclude self."""
        if self.same:  # a point and itself: never a neighbour, never refined
            i = np.arange(max(rows.start, cols.start), min(rows.stop, cols.stop))
            out[i - rows.start, i - cols.start] = np.inf
        if self.metric == "l1":
            return
        a_sq, b_sq = self.a_sq[rows], self.b_sq[cols]
        out += a_sq[:, None]
        out += b_sq[None, :]  # self entries stay inf
        # coarse per-row bound first (a row minimum, no temporary block), then the exact per-pair bound;
        # every negative score is below both, so refinement also stands in for clamping at 0
        row_bound = self.tol * (a_sq + self.b_sq_max)
        hit = np.flatnonzero(out.min(axis=1) <= row_bound)
        if not hit.size:
            return
        i, j = np.nonzero(out[hit] <= row_bound[hit, None])
        i = hit[i]
        keep = out[i, j] <= self.tol * (a_sq[i] + b_sq[j])
        i, j = i[keep], j[keep]
        step = max(1, _REFINE_BYTES // (8 * self.a.shape[1]))
        for start in range(0, i.size, step):
            ii, jj = i[start:start + step], j[start:start + step]
            diff = (self.a[ii + rows.start].astype(self.dtype, copy=False)
                    - self.b[jj + cols.start].astype(self.dtype, copy=False))
            out[ii, jj] = np.einsum("ij,ij->i", diff, diff)


def scores_to_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    return np.sqrt(scores) if metric == "euclidean" else scores


def _smallest(x: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest entries of each row of ``x`` (any order; all of them when a row is shorter).
    Partitions ``x`` in place."""
    if k < x.shape[1]:
        x.partition(k - 1, axis=1)
        return x[:, :k]
    return x


def _merge(best: np.ndarray, cand: np.ndarray, k: int) -> None:
    """``best`` (rows x k) becomes the k smallest of each row of ``best`` and ``cand`` together."""
    both = np.concatenate([best, cand], axis=1)
    best[...] = _smallest(both, k)


def _knn_self_chunked(scorer: Scorer, k: int, block_bytes: int, out: np.ndarray) -> None:
    """k-NN of a set against itself in row chunks, each pair scored once.

    Chunk ``[i0, i1)`` is scored against points ``[i0, n)`` only: its rows take their k smallest from that
    block and from the columns of earlier chunks, collected in ``best``; its columns beyond ``i1`` (the rows
    of later chunks) give those rows their candidates from this chunk. Half the products of scoring every
    chunk against all points.
    """
    n = scorer.a.shape[0]
    itemsize = scorer.dtype.itemsize
    step = chunk_rows(n, n, itemsize, block_bytes)
    best = np.full((n, k), np.inf, dtype=scorer.dtype)  # k smallest over the columns of earlier chunks
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        rows = slice(i0, i1)
        block = scorer.block(rows, cols=slice(i0, n))  # finished: chunk rows x points i0..n
        # columns of later points: k smallest of each, a few columns at a time (transposed, in cache)
        width = max(1, TILE_BYTES // ((i1 - i0) * itemsize))
        for c0 in range(i1, n, width):
            c1 = min(n, c0 + width)
            cand = np.ascontiguousarray(block[:, c0 - i0:c1 - i0].T)
            _merge(best[c0:c1], _smallest(cand, k), k)
        # rows of the chunk: their block rows (self excluded) and what earlier chunks left in best
        tile = max(1, TILE_BYTES // ((n - i0) * itemsize))
        for t0 in range(i0, i1, tile):
            t1 = min(i1, t0 + tile)
            _merge(best[t0:t1], _smallest(block[t0 - i0:t1 - i0], k), k)
            out[t0:t1] = np.sort(best[t0:t1], axis=1)


def knn_scores(
    a: np.ndarray,
    b: np.ndarray | None,
    k: int,
    metric: str = "euclidean",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    *,
    dtype=None,
    work: Workspace | None = None,
) -> np.ndarray:
    """The ``k`` smallest scores from each row of ``a`` to the rows of ``b``, ascending (``n_a x k``).

    ``b=None`` means ``a`` against itself, each point's own entry excluded by position (so a duplicate of a
    point counts as a neighbour at distance 0, the point itself does not). ``dtype``: working precision
    (default ``a.dtype``); ``work``: a :class:`Workspace` to reuse buffers across calls.
    """
    same = b is None
    b = a if same else b
    n_other = b.shape[0] - (1 if same else 0)
    if k < 1 or k > n_other:
        raise ValueError(f"k={k} nearest neighbours need 1 <= k <= {n_other} (the number of other points).")
    scorer = Scorer(a, b, metric, exclude_self=same, dtype=dtype, work=work)
    out = np.empty((a.shape[0], k), dtype=scorer.dtype)
    itemsize = scorer.dtype.itemsize
    if same and not self_in_one_block(a.shape[0], itemsize, block_bytes):
        _knn_self_chunked(scorer, k, block_bytes, out)
        return out
    rows_list = [slice(0, a.shape[0])] if same else row_chunks(a.shape[0], b.shape[0], itemsize, block_bytes)
    for rows in rows_list:
        for t, tile in scorer.tiles(rows, symmetric=same):
            out[t] = np.sort(_smallest(tile, k), axis=1)  # partitioned in place: the block is ours
    return out
