"""Conditional fidelity: does the mean of a row's generated profiles follow that row's real profile, gene by gene?

The WSI-to-expression figure of SEQUOIA and PathGen: for each gene, the Pearson and Spearman correlation across
held-out rows between the real value and the mean of ``n_draws`` profiles generated from the row's condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._classifiers import check_seed
from ._input import _is_anndata, as_matrices

MODALITIES = ("text", "image", "labels")


@dataclass
class ConditionalFidelity:
    """Result of :func:`conditional_fidelity`.

    Attributes
    ----------
    per_gene
        DataFrame indexed by gene with columns ``pearson`` and ``spearman`` (NaN where the gene is constant in
        the real or the mean generated profiles of the rows).
    summary
        ``pearson_mean``, ``pearson_median``, ``pearson_n_above`` (genes with r > ``threshold``) and the same for
        ``spearman``, over genes with a defined correlation; ``n_genes`` (those genes), ``n_rows``, ``n_draws``,
        ``threshold``.
    """

    per_gene: pd.DataFrame
    summary: dict[str, float] = field(default_factory=dict)


def is_conditional(model: Any) -> bool:
    """Whether the model's networks read any condition (text, image or labels) of the rows it generates from."""
    uses = getattr(model, "_uses", None)
    if not callable(uses):
        return True  # a model outside this library that takes adata/indices: assume it follows them
    return any(bool(uses(m)) for m in MODALITIES)


def column_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``a`` with the same column of ``b`` (NaN for constant columns)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    norm = np.sqrt(np.einsum("ij,ij->j", a, a) * np.einsum("ij,ij->j", b, b))
    num = np.einsum("ij,ij->j", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(norm > 0, num / np.where(norm > 0, norm, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return column_correlations(rankdata(a, axis=0), rankdata(b, axis=0))


def _summary(per_gene: pd.DataFrame, threshold: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("pearson", "spearman"):
        r = per_gene[name].to_numpy(dtype=float)
        r = r[np.isfinite(r)]
        out[f"{name}_mean"] = float(r.mean()) if r.size else float("nan")
        out[f"{name}_median"] = float(np.median(r)) if r.size else float("nan")
        out[f"{name}_n_above"] = int((r > threshold).sum())
    out["n_genes"] = int(np.isfinite(per_gene["pearson"].to_numpy(dtype=float)).sum())
    return out


def _row_positions(adata, indices) -> np.ndarray:
    if indices is None:
        raise ValueError("indices is None and the model has no split['validation']; pass the held-out rows.")
    idx = np.asarray(indices)
    if idx.dtype == bool:
        if idx.shape != (adata.n_obs,):
            raise ValueError(f"boolean indices must have length n_obs={adata.n_obs}, got shape {idx.shape}.")
        idx = np.flatnonzero(idx)
    elif idx.size and not np.issubdtype(idx.dtype, np.integer):
        pos = pd.Index(adata.obs_names).get_indexer(idx.astype(str))
        if (pos < 0).any():
            raise KeyError(f"indices {idx[pos < 0][:5].tolist()} are not obs_names of adata.")
        idx = pos
    idx = idx.astype(int).ravel()
    if idx.size < 3:
        raise ValueError(f"conditional fidelity correlates across rows: give at least 3 rows, got {idx.size}.")
    if idx.min() < 0 or idx.max() >= adata.n_obs:
        raise IndexError(f"indices out of range for an AnnData with {adata.n_obs} rows.")
    return idx


def _draw_means(synth, source_names: pd.Index, n_draws: int, var_names: pd.Index) -> np.ndarray:
    """Mean generated profile per source row, rows in the order of ``source_names``."""
    n = len(source_names)
    if synth.n_obs != n * n_draws:
        raise ValueError(f"model.sample returned {synth.n_obs} rows, expected {n} rows x {n_draws} draws.")
    (x,) = as_matrices(synth, names=["synthetic"], var_names=var_names)
    expected = np.repeat(np.asarray(source_names, dtype=str), n_draws)
    source = synth.obs["source_obs"].astype(str).to_numpy() if "source_obs" in synth.obs else expected
    if np.array_equal(source, expected):  # the documented order: n_draws consecutive rows per source row
        return x.reshape(n, n_draws, -1).mean(axis=1)
    if source_names.has_duplicates:
        raise ValueError("the draws of model.sample are not in row order and the rows' obs_names repeat; "
                         "pass distinct rows.")
    codes = source_names.get_indexer(source)
    if (codes < 0).any() or np.bincount(codes, minlength=n).min() != n_draws:
        raise ValueError(f"model.sample's obs['source_obs'] does not give {n_draws} draws for each requested row.")
    sums = np.zeros((n, x.shape[1]))
    np.add.at(sums, codes, x)
    return sums / n_draws


def _check_args(model, n_draws, seed, threshold) -> int:
    for attr in ("sample", "var_names"):
        if not hasattr(model, attr):
            raise TypeError(f"model has no {attr!r}; pass a trained gemmgan-sc model (e.g. gg.GeMMGAN).")
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive int, got {n_draws!r}.")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [-1, 1], got {threshold!r}.")
    return check_seed(seed)


def conditional_fidelity(
    model: Any,
    adata: Any = None,
    indices: Any = None,
    n_draws: int = 10,
    seed: int = 0,
    *,
    layer: str | None = None,
    threshold: float = 0.4,
) -> ConditionalFidelity:
    """Per-gene correlation between held-out rows' real profiles and the mean profile generated from their conditions.

    ``model.sample(adata, indices=indices, n_samples=n_draws, seed=seed)`` draws ``n_draws`` profiles per row;
    their mean is the model's prediction for the row. For each gene, the Pearson and Spearman correlations
    across the rows between real values and predictions are computed (the figure of SEQUOIA and PathGen).
    Correlations are computed on the user's scale; they are the same on the model's z-scored scale
    (``model.normalize``), since a per-gene z-score is an affine map per gene: it commutes with the mean of the
    draws and leaves each gene's correlation unchanged.
    An unconditional model (which ignores the rows) scores around 0.

    Parameters
    ----------
    model
        A trained model with ``sample`` and ``var_names`` (any model of this library).
    adata
        AnnData holding the rows' conditions and real expression (default ``model.adata``).
    indices
        Row positions, obs names or a boolean mask (default: the model's held-out rows,
        ``model.split["validation"]``); at least 3 rows.
    n_draws
        Profiles generated per row and averaged.
    seed
        Seed of the sampling.
    layer
        Layer of ``adata`` with the real expression (default: the model's registered layer, else ``X``).
    threshold
        Genes with correlation above it are counted (``*_n_above``; the papers use 0.4).

    Returns
    -------
    :class:`ConditionalFidelity` with ``per_gene`` (DataFrame ``pearson``, ``spearman`` per gene) and
    ``summary`` (dict).

    Examples
    --------
    >>> import gemmgan_sc as gg  # doctest: +SKIP
    >>> res = gg.metrics.conditional_fidelity(model, adata, model.split["validation"], n_draws=10)  # doctest: +SKIP
    >>> res.summary["pearson_mean"], res.summary["pearson_n_above"]  # doctest: +SKIP
    """
    seed = _check_args(model, n_draws, seed, threshold)
    adata = getattr(model, "adata", None) if adata is None else adata
    if not _is_anndata(adata):
        raise TypeError(f"adata must be an AnnData (the model has none set), got {type(adata).__name__}.")
    if indices is None:
        indices = (getattr(model, "split", None) or {}).get("validation")
    idx = _row_positions(adata, indices)
    if layer is None and getattr(model, "registry", None) is not None:
        layer = model.registry.layer
    var_names = pd.Index(model.var_names).astype(str)
    (real,) = as_matrices(adata[idx], names=["adata"], layer=layer, var_names=var_names)
    synth = model.sample(adata=adata, indices=idx, n_samples=int(n_draws), seed=seed)
    if not _is_anndata(synth):
        raise TypeError(f"model.sample must return an AnnData, got {type(synth).__name__}.")
    pred = _draw_means(synth, pd.Index(adata.obs_names[idx]).astype(str), int(n_draws), var_names)
    per_gene = pd.DataFrame({"pearson": column_correlations(real, pred), "spearman": _spearman(real, pred)},
                            index=var_names)
    summary = _summary(per_gene, float(threshold))
    summary.update(n_rows=int(idx.size), n_draws=int(n_draws), threshold=float(threshold))
    return ConditionalFidelity(per_gene=per_gene, summary=summary)
