"""k-NN manifold fidelity: precision and recall (Kynkaanniemi et al. 2019, Naeem et al. 2020), density, coverage."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._distances import DEFAULT_BLOCK_BYTES, Pairwise, Points, check_block_bytes, check_device, check_metric
from ._input import as_matrices

METHODS = ("kynkaanniemi", "prdc")


def _check_k(k: int, n_real: int, n_synth: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}.")
    smallest = min(n_real, n_synth)
    if k > smallest - 1:
        raise ValueError(
            f"k={k} needs more than k samples in each set (real: {n_real}, synthetic: {n_synth}); "
            f"use k <= {smallest - 1}."
        )
    return int(k)


def fidelity_arrays(
    real: np.ndarray, synth: np.ndarray, k: int, metric: str, block_bytes: int = DEFAULT_BLOCK_BYTES,
    *, dtype=None, device: str | torch.device = "cpu",
) -> dict[str, float]:
    """All k-NN fidelity metrics of two dense matrices in one pass over the real x synthetic distances.

    A point's radius is the score (squared Euclidean or L1) to its k-th nearest *other* point of its own set:
    Kynkaanniemi's radius, and Naeem's ``(k+1)``-th smallest counting the point itself (the same number).
    ``dtype`` is the working precision (default: that of ``real``); the matrices may be stored in a narrower
    float dtype (float32 data, float64 work: converted gene slab by gene slab).
    """
    dt = real.dtype if dtype is None else np.dtype(dtype)
    p_real, p_synth = Points(real, dt, device), Points(synth, dt, device)  # each set's norms computed once
    r_real, r_synth = (Pairwise(p, None, metric).knn(k, block_bytes)[:, k - 1] for p in (p_real, p_synth))
    prec_le = torch.zeros(len(synth), dtype=torch.bool, device=device)  # synth point inside some real ball (<=)
    prec_lt = torch.zeros_like(prec_le)  # strict (<), Naeem
    rec_le = torch.zeros(len(real), dtype=torch.bool, device=device)  # real point inside some synthetic ball
    rec_lt = torch.zeros_like(rec_le)
    density_count = 0
    min_to_synth = torch.full_like(r_real, torch.inf)
    for rows, d in Pairwise(p_synth, p_real, metric).row_blocks(block_bytes):  # synth rows x real
        inside_lt = d < r_real
        prec_lt[rows] = inside_lt.any(1)
        density_count += int(inside_lt.sum())
        prec_le[rows] = (d <= r_real).any(1)
        rec_le |= (d <= r_synth[rows, None]).any(0)
        rec_lt |= (d < r_synth[rows, None]).any(0)
        torch.minimum(min_to_synth, d.amin(0), out=min_to_synth)
        del d, inside_lt  # freed before the next block is computed
    return {
        "precision_kynkaanniemi": float(prec_le.double().mean()),
        "recall_kynkaanniemi": float(rec_le.double().mean()),
        "precision_prdc": float(prec_lt.double().mean()),
        "recall_prdc": float(rec_lt.double().mean()),
        "density": float(density_count / (k * len(synth))),
        "coverage": float((min_to_synth < r_real).double().mean()),
    }


def _prepare(real: Any, synth: Any, k: int, metric: str, layer, dtype: str, block_bytes: int, device):
    check_metric(metric)
    check_block_bytes(block_bytes)
    check_device(device)
    # float32 data stay float32 here when the work is float64: the distances convert them slab by slab
    r, s = as_matrices(real, synth, names=["real", "synth"], layer=layer, dtype=dtype, keep_float32=True)
    k = _check_k(k, r.shape[0], s.shape[0])
    return r, s, k


def fidelity(
    real: Any,
    synth: Any,
    k: int = 10,
    metric: str = "euclidean",
    *,
    layer: str | None = None,
    dtype: str = "float64",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Precision and recall (both definitions), density and coverage, from one pass over the distances.

    Parameters
    ----------
    real, synth
        AnnData (genes aligned by ``var_names``; ``layer`` selects a layer) or arrays (samples x genes).
    k
        Number of nearest neighbours defining each point's radius.
    metric
        ``"euclidean"`` or ``"l1"``.
    layer
        Layer of AnnData inputs (default ``X``).
    dtype
        ``"float64"`` (default; see the accuracy note of :func:`precision_recall`) or ``"float32"`` (faster,
        scores with relative error around 1e-7 of the squared norms).
    block_bytes
        Memory of one distance block; the work is chunked so no block is larger.
    device
        Torch device of the distance computation (``"cpu"``, ``"cuda"``, ...); the data are moved there whole.

    Returns
    -------
    dict with ``precision_kynkaanniemi``, ``recall_kynkaanniemi``, ``precision_prdc``, ``recall_prdc``,
    ``density`` and ``coverage``.

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> x = np.random.default_rng(0).normal(size=(50, 5))
    >>> gg.metrics.fidelity(x, x, k=3)["coverage"]
    1.0
    """
    r, s, k = _prepare(real, synth, k, metric, layer, dtype, block_bytes, device)
    return fidelity_arrays(r, s, k, metric, block_bytes, dtype=dtype, device=device)


def precision_recall(
    real: Any,
    synth: Any,
    k: int = 10,
    method: str = "kynkaanniemi",
    metric: str = "euclidean",
    *,
    layer: str | None = None,
    dtype: str = "float64",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Improved precision and recall of synthetic data against real data.

    The radius of a point is the distance to its ``k``-th nearest *other* point of its own set.

    * ``method="kynkaanniemi"`` (Kynkaanniemi et al. 2019): a point is covered by the other set when its
      distance to some point of the other set is ``<=`` that point's radius.
    * ``method="prdc"`` (Naeem et al. 2020, the ``prdc`` package): radius = ``(k+1)``-th smallest distance
      counting the point itself (the same number), covered when the distance is strictly ``<`` the radius.

    Precision is the share of synthetic points inside the union of the real balls, recall the share of real
    points inside the union of the synthetic balls. The two methods differ only for points exactly on a
    radius. Values are computed on the data as given (no scaling).

    Parameters
    ----------
    real, synth
        AnnData (genes aligned by ``var_names``; ``layer`` selects a layer) or arrays (samples x genes).
    k
        Number of nearest neighbours (the paper uses 10). Each set needs more than ``k`` samples.
    method
        ``"kynkaanniemi"`` or ``"prdc"``.
    metric
        ``"euclidean"`` (chunked matrix products) or ``"l1"`` (chunked ``torch.cdist`` city-block distances).
    layer
        Layer of AnnData inputs (default ``X``).
    dtype
        Working precision, ``"float64"`` (default) or ``"float32"``. Euclidean scores are
        ``|a|^2 + |b|^2 - 2 a.b``, with absolute error of a few ``eps * (|a|^2 + |b|^2)`` (scores that small are
        recomputed directly, so copies are at distance 0); only points that close to a radius can be
        classified differently from an exact computation.
    block_bytes
        Memory of one distance block (default 256 MiB); memory use is ``O(n_real + n_synth)`` beyond it.
    device
        Torch device of the distance computation (``"cpu"``, ``"cuda"``, ...); the data are moved there whole.

    Returns
    -------
    ``{"precision": float, "recall": float}``

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> rng = np.random.default_rng(0)
    >>> real = rng.normal(size=(200, 20))
    >>> gg.metrics.precision_recall(real, real)
    {'precision': 1.0, 'recall': 1.0}
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    r, s, k = _prepare(real, synth, k, metric, layer, dtype, block_bytes, device)
    out = fidelity_arrays(r, s, k, metric, block_bytes, dtype=dtype, device=device)
    return {"precision": out[f"precision_{method}"], "recall": out[f"recall_{method}"]}


def density_coverage(
    real: Any,
    synth: Any,
    k: int = 10,
    metric: str = "euclidean",
    *,
    layer: str | None = None,
    dtype: str = "float64",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Density and coverage of synthetic data (Naeem et al. 2020).

    With ``r_i`` the radius of real point ``i`` (distance to its ``k``-th nearest other real point, which is
    the ``(k+1)``-th counting itself):

    * density = ``1 / (k M) * sum_j sum_i [d(y_j, x_i) < r_i]`` over the ``M`` synthetic points ``y_j``
      (1 on average when synthetic and real data share a distribution; can exceed 1);
    * coverage = share of real points whose nearest synthetic point is strictly closer than ``r_i``.

    Parameters
    ----------
    real, synth, k, metric, layer, dtype, block_bytes, device
        As in :func:`precision_recall`.

    Returns
    -------
    ``{"density": float, "coverage": float}``

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> rng = np.random.default_rng(0)
    >>> out = gg.metrics.density_coverage(rng.normal(size=(300, 10)), rng.normal(size=(300, 10)))
    >>> 0.5 < out["density"] < 1.5
    True
    """
    r, s, k = _prepare(real, synth, k, metric, layer, dtype, block_bytes, device)
    out = fidelity_arrays(r, s, k, metric, block_bytes, dtype=dtype, device=device)
    return {"density": out["density"], "coverage": out["coverage"]}
