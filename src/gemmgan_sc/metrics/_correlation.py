"""Gene-gene correlation structure: mean squared difference of Pearson matrices, and Vinas' gamma.

Both are computed from the standardised matrices ``Z`` (columns centred and divided by their norm, so the
Pearson matrix is ``C = Z^T Z``) without forming ``genes x genes`` matrices when that is cheaper:
``sum (C_r - C_s)^2 = |Z_r Z_r^T|^2 - 2 |Z_r Z_s^T|^2 + |Z_s Z_s^T|^2`` (Frobenius norms of sample x sample
Gram matrices), which costs ``O((n_r + n_s)^2 genes)`` instead of ``O((n_r + n_s) genes^2)``. With
``method="direct"`` the gene x gene matrices are built block by block instead. Both run in float64; the
Gram route loses a few digits to cancellation when the two matrices are almost equal (absolute error on
the MSE about ``1e-13`` times the mean squared correlation).

Constant genes (standard deviation <= ``1e-12`` times their mean absolute value, or exactly 0) have no
Pearson correlation. ``constant_genes="drop"`` (default) removes genes constant in *either* set from both
before comparing; ``"zero"`` keeps them with all their correlations set to 0, the diagonal included (as if
the gene were z-scored to 0, which is what the model's normalisation does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._settings import logger
from ._input import as_matrices

CONSTANT_GENES = ("drop", "zero")
CORR_METHODS = ("auto", "gram", "direct")
_BLOCK_GENES = 1024


def _constant_mask(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    scale = np.abs(x).mean(axis=0)
    return (std == 0) | (std <= 1e-12 * scale)


def _standardise(x: np.ndarray, constant: np.ndarray) -> np.ndarray:
    z = x - x.mean(axis=0)
    norm = np.sqrt(np.einsum("ij,ij->j", z, z))
    norm[constant] = 1.0
    z /= norm
    z[:, constant] = 0.0
    return z


def _prepare(real, synth, layer, constant_genes, method):
    if constant_genes not in CONSTANT_GENES:
        raise ValueError(f"constant_genes must be one of {CONSTANT_GENES}, got {constant_genes!r}.")
    if method not in CORR_METHODS:
        raise ValueError(f"method must be one of {CORR_METHODS}, got {method!r}.")
    r, s = as_matrices(real, synth, names=["real", "synth"], layer=layer, dtype="float64")
    for name, x in (("real", r), ("synth", s)):
        if x.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 samples to compute correlations, got {x.shape[0]}.")
    constant = _constant_mask(r) | _constant_mask(s)
    if constant.any():
        logger.info("correlation: %d of %d genes are constant in real or synthetic data (%s).",
                    int(constant.sum()), constant.size, constant_genes)
    if constant_genes == "drop":
        keep = ~constant
        if keep.sum() < 2:
            raise ValueError(
                "fewer than 2 genes vary in both real and synthetic data; correlations are undefined. "
                "Check the inputs, or use constant_genes='zero'."
            )
        r, s = r[:, keep], s[:, keep]
        constant = np.zeros(int(keep.sum()), dtype=bool)
    zr, zs = _standardise(r, constant), _standardise(s, constant)
    if method == "auto":
        n = zr.shape[0] + zs.shape[0]
        method = "gram" if n < zr.shape[1] else "direct"
    return zr, zs, constant, method


def _sums(zr: np.ndarray, zs: np.ndarray, method: str) -> dict[str, float]:
    """Sums over all gene pairs (diagonal included) of ``C_r``, ``C_s``, ``C_r^2``, ``C_s^2``, ``C_r C_s``."""
    if method == "gram":
        sr, ss = zr.sum(axis=1), zs.sum(axis=1)  # C 1 summed: 1^T Z^T Z 1 = |Z 1|^2
        grr, gss, grs = zr @ zr.T, zs @ zs.T, zr @ zs.T
        return {
            "r": float(sr @ sr),
            "s": float(ss @ ss),
            "rr": float(np.einsum("ij,ij->", grr, grr)),
            "ss": float(np.einsum("ij,ij->", gss, gss)),
            "rs": float(np.einsum("ij,ij->", grs, grs)),
        }
    out = dict.fromkeys(("r", "s", "rr", "ss", "rs"), 0.0)
    g = zr.shape[1]
    for start in range(0, g, _BLOCK_GENES):
        cols = slice(start, min(g, start + _BLOCK_GENES))
        cr, cs = zr[:, cols].T @ zr, zs[:, cols].T @ zs
        out["r"] += float(cr.sum())
        out["s"] += float(cs.sum())
        out["rr"] += float(np.einsum("ij,ij->", cr, cr))
        out["ss"] += float(np.einsum("ij,ij->", cs, cs))
        out["rs"] += float(np.einsum("ij,ij->", cr, cs))
    return out


def _mse(s: dict[str, float], g: int) -> float:
    total = s["rr"] - 2.0 * s["rs"] + s["ss"]
    return float(max(total, 0.0) / g**2)


def _gamma(s: dict[str, float], constant: np.ndarray) -> float:
    n_diag = float((~constant).sum())  # the diagonal of C: 1, or 0 for zeroed constant genes
    g = constant.size
    m = g * (g - 1) / 2.0
    # strict upper triangle = (all - diagonal) / 2, by symmetry
    up = {key: (s[key] - n_diag) / 2.0 for key in ("r", "s", "rr", "ss", "rs")}
    cov = up["rs"] / m - (up["r"] / m) * (up["s"] / m)
    var_r = up["rr"] / m - (up["r"] / m) ** 2
    var_s = up["ss"] / m - (up["s"] / m) ** 2
    if var_r <= 0 or var_s <= 0:
        return float("nan")
    return float(np.clip(cov / np.sqrt(var_r * var_s), -1.0, 1.0))


def correlation_metrics(real: Any, synth: Any, *, layer: str | None = None, constant_genes: str = "drop",
                        method: str = "auto") -> dict[str, float]:
    """``{"correlation_mse", "correlation_gamma"}`` from one computation of the shared sums."""
    zr, zs, constant, method = _prepare(real, synth, layer, constant_genes, method)
    sums = _sums(zr, zs, method)
    return {"correlation_mse": _mse(sums, zr.shape[1]), "correlation_gamma": _gamma(sums, constant)}


def correlation_mse(
    real: Any,
    synth: Any,
    *,
    layer: str | None = None,
    constant_genes: str = "drop",
    method: str = "auto",
) -> float:
    """Mean squared difference of the gene-gene Pearson correlation matrices of real and synthetic data.

    ``mean_{i,j} (C_real[i, j] - C_synth[i, j])^2`` over all ``genes x genes`` entries, diagonal included
    (as ``np.mean((np.corrcoef(real.T) - np.corrcoef(synth.T))**2)`` when no gene is constant).

    Parameters
    ----------
    real, synth
        AnnData (genes aligned by ``var_names``) or arrays (samples x genes), at least 2 samples each.
    layer
        Layer of AnnData inputs (default ``X``).
    constant_genes
        ``"drop"`` (default): genes constant in either set are left out of both; ``"zero"``: their
        correlations (diagonal included) count as 0.
    method
        ``"gram"`` (sample x sample Gram matrices, cheap when samples < genes), ``"direct"`` (gene x gene
        blocks) or ``"auto"`` (the cheaper one).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> x = np.random.default_rng(0).normal(size=(100, 30))
    >>> gg.metrics.correlation_mse(x, x) < 1e-12
    True
    """
    zr, zs, _, method = _prepare(real, synth, layer, constant_genes, method)
    return _mse(_sums(zr, zs, method), zr.shape[1])


def correlation_gamma(
    real: Any,
    synth: Any,
    *,
    layer: str | None = None,
    constant_genes: str = "drop",
    method: str = "auto",
) -> float:
    """Vinas et al. (2022) gamma: Pearson correlation of the upper triangles of ``1 - C_real`` and ``1 - C_synth``.

    The strict upper triangles (``i < j``) of the gene-gene correlation distances are compared; 1 means the
    synthetic data reproduce the real gene-gene structure up to an affine map. Equivalent to the Pearson
    correlation of the upper triangles of the correlation matrices themselves.

    Parameters
    ----------
    real, synth, layer, constant_genes, method
        As in :func:`correlation_mse`.

    Returns
    -------
    float (NaN when one triangle is constant, e.g. with 2 genes)

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> x = np.random.default_rng(0).normal(size=(100, 30))
    >>> round(gg.metrics.correlation_gamma(x, x), 6)
    1.0
    """
    zr, zs, constant, method = _prepare(real, synth, layer, constant_genes, method)
    return _gamma(_sums(zr, zs, method), constant)
