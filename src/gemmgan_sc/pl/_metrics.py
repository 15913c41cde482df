"""Plot of the evaluation table (``gg.metrics.evaluate``): mean and std per metric."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._utils import finish


def _table(table: Any, key: str) -> pd.DataFrame:
    try:
        from anndata import AnnData
    except ImportError:  # pragma: no cover
        AnnData = ()
    if isinstance(table, AnnData):
        from ..metrics import metrics_table

        return metrics_table(table, key)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"table must be the DataFrame returned by gg.metrics.evaluate or an AnnData holding it, got {type(table).__name__}."
        )
    missing = [c for c in ("metric", "mean") if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the column(s) {missing}; pass the DataFrame returned by gg.metrics.evaluate.")
    return table


def metrics(
    table: Any,
    ax: Any = None,
    show: bool | None = None,
    *,
    save: bool | str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    key: str = "gemmgan_metrics",
    color: str = "tab:blue",
):
    """Horizontal bars of each metric's mean, with the std over runs as error bars.

    Parameters
    ----------
    table
        The DataFrame returned by :func:`gemmgan_sc.metrics.evaluate` (columns ``metric``, ``classifier``,
        ``label``, ``mean``, ``std``), or an AnnData holding it in ``uns[key]``.
    ax
        Axes to draw on; a new figure when ``None``.
    show
        Call ``plt.show()`` after drawing; ``None`` (default) follows ``gg.settings.autoshow``.
    save
        Write the figure (atomically): a file path (``.png`` unless it names another format), or ``True``
        for ``gg.settings.figdir / "metrics.png"``.
    metrics
        Metric names (or prefixes, e.g. ``"detectability"``) to plot; default all.
    key
        ``uns`` key when ``table`` is an AnnData.
    color
        Bar colour.

    Returns
    -------
    The matplotlib axes.

    Examples
    --------
    >>> import gemmgan_sc as gg  # doctest: +SKIP
    >>> table = gg.metrics.evaluate(model, adata, n_runs=10)  # doctest: +SKIP
    >>> ax = gg.pl.metrics(table, metrics=["precision", "recall", "detectability"])  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    df = _table(table, key)
    if metrics is not None:
        wanted = [metrics] if isinstance(metrics, str) else list(metrics)
        mask = np.zeros(len(df), dtype=bool)
        for name in wanted:
            mask |= (df["metric"] == name).to_numpy() | df["metric"].str.startswith(str(name)).to_numpy()
        if not mask.any():
            raise ValueError(f"none of metrics={wanted} is in the table; it has {sorted(df['metric'].unique())}.")
        df = df[mask]
    if len(df) == 0:
        raise ValueError("the metrics table is empty; nothing to plot.")
    names = []
    for _, row in df.iterrows():
        extra = [str(row[c]) for c in ("classifier", "label") if c in df.columns and str(row[c]) not in ("", "nan")]
        names.append(f"{row['metric']} ({', '.join(extra)})" if extra else str(row["metric"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.28 * len(df) + 1.0))
    pos = np.arange(len(df))[::-1]
    err = df["std"].to_numpy(dtype=float) if "std" in df.columns else None
    ax.barh(pos, df["mean"].to_numpy(dtype=float), xerr=err, color=color, alpha=0.85, capsize=2)
    ax.set_yticks(pos)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("mean over runs (error bar: std)")
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_title("synthetic data evaluation")
    return finish(ax, show, save, "metrics")
