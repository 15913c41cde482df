"""Moment fidelity: the Frechet distance of Gaussian fits in a PCA space (as FID), and the gene sd ratio.

The Frechet (2-Wasserstein) distance between ``N(mu_1, S_1)`` and ``N(mu_2, S_2)`` is
``|mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2})``. The trace of the matrix square
root is computed from two symmetric eigen-decompositions (``S_1^{1/2}`` from ``eigh(S_1)``, then the
eigenvalues of the symmetric positive semi-definite ``S_1^{1/2} S_2 S_1^{1/2}``, negative round-off clipped to
0), which stays real and stable for singular covariances, where ``scipy.linalg.sqrtm(S_1 S_2)`` can return
complex values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._input import as_matrices


@dataclass(frozen=True)
class PCABasis:
    """Rows of ``components`` (``n_components x genes``, orthonormal) span the space; ``mean`` centres the data."""

    mean: np.ndarray
    components: np.ndarray

    def project(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.components.T


def check_n_components(n_components: Any, n_rows: int, n_genes: int, name: str = "reference") -> int:
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive int, got {n_components!r}.")
    most = min(n_rows, n_genes)
    if n_components > most:
        raise ValueError(
            f"n_components={n_components} exceeds min(rows, genes) of {name} ({n_rows} x {n_genes}); "
            f"use n_components <= {most}."
        )
    return int(n_components)


def pca_basis(reference: np.ndarray, n_components: int, seed: int = 0) -> PCABasis:
    """The top ``n_components`` principal axes of ``reference`` (scikit-learn's PCA, seeded)."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=int(n_components), random_state=seed).fit(reference)
    return PCABasis(mean=pca.mean_, components=pca.components_)


def _gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False, ddof=1))


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_gaussians(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Frechet distance between ``N(mu1, s1)`` and ``N(mu2, s2)`` (symmetric PSD covariances)."""
    root = _sqrt_psd(s1)
    middle = root @ s2 @ root
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross, 0.0))


def frechet_arrays(real: np.ndarray, synth: np.ndarray, basis: PCABasis) -> float:
    """Frechet distance of dense matrices projected on ``basis``."""
    return frechet_gaussians(*_gaussian(basis.project(real)), *_gaussian(basis.project(synth)))


def frechet_distance(
    real: Any,
    synthetic: Any,
    reference: Any = None,
    n_components: int = 50,
    *,
    layer: str | None = None,
    seed: int = 0,
) -> float:
    """Frechet distance between Gaussian fits of real and synthetic profiles in a PCA space (like FID).

    The top ``n_components`` principal axes are fitted on ``reference`` (default ``real``); both sets are
    projected on them, a Gaussian (mean, covariance with ``ddof=1``) is fitted to each projection, and the
    Frechet distance ``|mu_r - mu_s|^2 + tr(S_r + S_s - 2 (S_r^{1/2} S_s S_r^{1/2})^{1/2})`` is returned.
    0 for identical sets; a shift of every synthetic profile by a vector ``v`` adds the squared norm of
    ``v``'s projection. Values are on the scale of the data as given (``evaluate`` z-scores with the real
    training statistics first), in squared units. As FID, the estimate is biased upwards when the sets have
    few rows for ``n_components`` dimensions (two samples of one distribution then score above 0): compare
    only values computed with the same set sizes, reference and ``n_components``.

    Parameters
    ----------
    real, synthetic
        AnnData (genes aligned by ``var_names``; ``layer`` selects a layer) or arrays (samples x genes), at
        least 2 samples each.
    reference
        Data whose PCA defines the space (e.g. the real training rows, to compare several synthetic sets in
        one space); default ``real``.
    n_components
        Principal axes kept; at most ``min(rows, genes)`` of ``reference``.
    layer
        Layer of AnnData inputs (default ``X``).
    seed
        Seed of scikit-learn's randomized PCA solver (used for large inputs).

    Returns
    -------
    float (>= 0)

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> x = np.random.default_rng(0).normal(size=(100, 20))
    >>> round(gg.metrics.frechet_distance(x, x, n_components=5), 8)
    0.0
    >>> round(gg.metrics.frechet_distance(x, x + 1.0, n_components=20), 6)  # |shift|^2 = 20 genes x 1
    20.0
    """
    datas = [real, synthetic] + ([] if reference is None else [reference])
    names = ["real", "synthetic"] + ([] if reference is None else ["reference"])
    mats = as_matrices(*datas, names=names, layer=layer, dtype="float64")
    for name, m in zip(names[:2], mats):
        if m.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 samples to fit a covariance, got {m.shape[0]}.")
    ref = mats[2] if reference is not None else mats[0]
    n = check_n_components(n_components, ref.shape[0], ref.shape[1], names[-1] if reference is not None else "real")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    return frechet_arrays(mats[0], mats[1], pca_basis(ref, n, int(seed)))


def sd_ratio_arrays(real: np.ndarray, synth: np.ndarray) -> float:
    real_sd = float(real.std(axis=0).mean())
    return float(synth.std(axis=0).mean() / real_sd) if real_sd > 0 else float("nan")


def sd_ratio(real: Any, synthetic: Any, *, layer: str | None = None) -> float:
    """Mean per-gene standard deviation of ``synthetic`` over that of ``real`` (1 = same spread).

    Under-dispersed generators (mode collapse, VAE blur) give values well below 1. Standard deviations are
    population ones (``ddof=0``) on the data as given.

    Parameters
    ----------
    real, synthetic
        AnnData (genes aligned by ``var_names``) or arrays (samples x genes), at least 2 samples each.
    layer
        Layer of AnnData inputs (default ``X``).

    Returns
    -------
    float (NaN when every real gene is constant)

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> x = np.random.default_rng(0).normal(size=(100, 20))
    >>> round(gg.metrics.sd_ratio(x, 0.5 * x), 6)
    0.5
    """
    r, s = as_matrices(real, synthetic, names=["real", "synthetic"], layer=layer, dtype="float64")
    for name, m in (("real", r), ("synthetic", s)):
        if m.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 samples for a standard deviation, got {m.shape[0]}.")
    return sd_ratio_arrays(r, s)
