"""Real and synthetic profiles on one embedding (UMAP, PCA): do the synthetic ones land among the real ones?"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from ._utils import finish


def _scatter_real_synthetic(ax, coords: np.ndarray, flag: np.ndarray, s: float) -> None:
    for label, mask, col in (("real", ~flag, "tab:grey"), ("synthetic", flag, "tab:orange")):
        ax.scatter(coords[mask, 0], coords[mask, 1], s=s, c=col, marker="x" if label == "synthetic" else "o",
                   alpha=0.7, linewidths=0.8, label=f"{label} ({int(mask.sum())})")


def _scatter_numeric(ax, coords: np.ndarray, flag: np.ndarray, v: np.ndarray, s: float, color: str) -> None:
    lo, hi = np.nanmin(v), np.nanmax(v)
    for mask, marker in ((~flag, "o"), (flag, "x")):
        points = ax.scatter(coords[mask, 0], coords[mask, 1], s=s, c=v[mask], vmin=lo, vmax=hi, cmap="viridis",
                            marker=marker, alpha=0.8, linewidths=0.8)
    ax.figure.colorbar(points, ax=ax, label=color)


def _scatter_categories(ax, coords: np.ndarray, flag: np.ndarray, values: pd.Series, s: float, legend: bool) -> None:
    import matplotlib.pyplot as plt

    cats = list(values.cat.categories) if isinstance(values.dtype, pd.CategoricalDtype) else sorted(
        values.dropna().astype(str).unique())
    palette = plt.get_cmap("tab10" if len(cats) <= 10 else "tab20")
    vals = values.astype(str).to_numpy()
    for i, cat in enumerate(cats):
        col = palette(i % palette.N)
        for mask, marker in ((~flag, "o"), (flag, "x")):
            m = mask & (vals == str(cat))
            ax.scatter(coords[m, 0], coords[m, 1], s=s, color=col, marker=marker, alpha=0.7, linewidths=0.8,
                       label=str(cat) if marker == "o" else None)
    if legend:
        ax.scatter([], [], s=s, color="k", marker="o", label="real (dots)")
        ax.scatter([], [], s=s, color="k", marker="x", label="synthetic (crosses)")


def real_vs_synthetic(
    adata: Any,
    color: str | None = None,
    basis: str = "umap",
    ax: Any = None,
    show: bool | None = None,
    *,
    save: bool | str | os.PathLike | None = None,
    synthetic_key: str = "synthetic",
    size: float | None = None,
    title: str | None = None,
    legend: bool = True,
):
    """Scatter of real (filled dots) and synthetic (crosses) rows on an embedding.

    Expects the AnnData of :func:`gemmgan_sc.tl.concat_real_synthetic` after an embedding, e.g.
    ``sc.pp.pca(both); sc.pp.neighbors(both); sc.tl.umap(both)``.

    Parameters
    ----------
    adata
        AnnData with ``obsm[f"X_{basis}"]`` and ``obs[synthetic_key]``.
    color
        ``obs`` column (categorical or numeric) to colour by; default: colour real vs synthetic.
    basis
        Embedding name: ``"umap"`` reads ``obsm["X_umap"]`` (``"X_umap"`` works too).
    ax
        Axes to draw on; a new figure when ``None``.
    show
        Call ``plt.show()`` after drawing; ``None`` (default) follows ``gg.settings.autoshow``.
    save
        Write the figure (atomically): a file path (``.png`` unless it names another format), or ``True``
        for ``gg.settings.figdir / "real_vs_synthetic.png"``.
    synthetic_key
        ``obs`` column marking synthetic rows (bool, or ``"real"`` / ``"synthetic"`` strings).
    size
        Marker size (default from the number of rows).
    title
        Axes title (default: ``color`` or ``"real vs synthetic"``).
    legend
        Draw a legend for categorical colours.

    Returns
    -------
    The matplotlib axes.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd, gemmgan_sc as gg
    >>> both = ad.AnnData(np.zeros((4, 2), np.float32),
    ...     obs=pd.DataFrame({"synthetic": ["real", "real", "synthetic", "synthetic"], "type": list("abab")}))
    >>> both.obsm["X_umap"] = np.arange(8.0).reshape(4, 2)
    >>> ax = gg.pl.real_vs_synthetic(both, color="type", show=False)
    >>> len(ax.collections)  # 2 types x (real, synthetic) + 2 legend markers
    6
    """
    import matplotlib.pyplot as plt
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"adata must be an AnnData, got {type(adata).__name__}.")
    key = basis if basis.startswith("X_") else f"X_{basis}"
    if key not in adata.obsm:
        raise KeyError(
            f"adata.obsm[{key!r}] is missing; compute the embedding first (e.g. sc.pp.pca(adata); "
            f"sc.pp.neighbors(adata); sc.tl.umap(adata)). obsm has {list(adata.obsm)}."
        )
    if synthetic_key not in adata.obs:
        raise KeyError(
            f"adata.obs[{synthetic_key!r}] is missing; build adata with gg.tl.concat_real_synthetic(real, synth)."
        )
    coords = np.asarray(adata.obsm[key])[:, :2]
    flag = adata.obs[synthetic_key].astype(str).str.lower().isin(["true", "synthetic", "1"]).to_numpy()
    if color is not None and color not in adata.obs:
        raise KeyError(f"color={color!r} is not an obs column; obs has {list(adata.obs.columns)}.")
    s = size if size is not None else float(np.clip(3000.0 / max(adata.n_obs, 1), 4.0, 60.0))
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5))

    if color is None:
        _scatter_real_synthetic(ax, coords, flag, s)
        numeric = False
    else:
        values = adata.obs[color]
        numeric = pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype)
        if numeric:
            _scatter_numeric(ax, coords, flag, values.to_numpy(dtype=float), s, color)
        else:
            _scatter_categories(ax, coords, flag, values, s, legend)
    if legend and not numeric:
        ax.legend(fontsize="x-small", frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    name = key[2:].upper() if key[2:] in ("umap", "pca", "tsne") else key[2:]
    ax.set_xlabel(f"{name}1")
    ax.set_ylabel(f"{name}2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else (color or "real vs synthetic"))
    return finish(ax, show, save, "real_vs_synthetic")
