"""Training curves of a model (``model.history``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ._utils import finish

_SKIP = ("epoch", "lr", "step")


def _history_frame(model_or_df: Any) -> pd.DataFrame:
    if isinstance(model_or_df, pd.DataFrame):
        df = model_or_df
    elif hasattr(model_or_df, "history") and isinstance(getattr(model_or_df, "history"), pd.DataFrame):
        df = model_or_df.history
    else:
        raise TypeError(
            "pass a gemmgan-sc model (with .history) or its history DataFrame, got "
            f"{type(model_or_df).__name__}."
        )
    if len(df) == 0:
        raise ValueError("the training history is empty: train the model first (model.train(...)).")
    return df


def history(
    model_or_df: Any,
    columns: Sequence[str] | str | None = None,
    ax: Any = None,
    show: bool | None = None,
    *,
    save: bool | str | os.PathLike | None = None,
    title: str | None = None,
    logy: bool = False,
):
    """Per-epoch training curves (critic and generator losses, Wasserstein estimates, VAE losses...).

    Parameters
    ----------
    model_or_df
        A trained model (its ``history``) or a history DataFrame (one row per epoch).
    columns
        History columns to draw (default: every numeric column but ``epoch`` and ``lr``).
    ax
        Axes to draw on; a new figure when ``None``.
    show
        Call ``plt.show()`` after drawing; ``None`` (default) follows ``gg.settings.autoshow``.
    save
        Write the figure (atomically): a file path (``.png`` unless it names another format), or ``True``
        for ``gg.settings.figdir / "history.png"``.
    title
        Axes title (default: the model's class name, if a model was given).
    logy
        Logarithmic y axis (only sensible for positive curves).

    Returns
    -------
    The matplotlib axes.

    Examples
    --------
    >>> import pandas as pd, gemmgan_sc as gg
    >>> df = pd.DataFrame({"epoch": [0, 1, 2], "critic_loss": [-1.0, -2.0, -1.5], "generator_loss": [0.5, 0.2, 0.1]})
    >>> ax = gg.pl.history(df, show=False)
    >>> [line.get_label() for line in ax.get_lines()]
    ['critic_loss', 'generator_loss']
    """
    import matplotlib.pyplot as plt

    df = _history_frame(model_or_df)
    if columns is None:
        cols = [c for c in df.columns if c not in _SKIP and pd.api.types.is_numeric_dtype(df[c])]
        cols = [c for c in cols if df[c].notna().any()]
        if not cols:
            raise ValueError(f"the history has no numeric columns to plot; it has {list(df.columns)}.")
    else:
        cols = [columns] if isinstance(columns, str) else list(columns)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise KeyError(f"history has no column(s) {missing}; it has {list(df.columns)}.")
        if not cols:
            raise ValueError("columns is empty; name at least one history column.")
    x = df["epoch"].to_numpy() if "epoch" in df.columns else range(len(df))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for c in cols:
        ax.plot(x, pd.to_numeric(df[c], errors="coerce").to_numpy(), label=c, marker="." if len(df) < 30 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("value")
    if logy:
        ax.set_yscale("log")
    if title is None and not isinstance(model_or_df, pd.DataFrame):
        title = type(model_or_df).__name__
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    ax.grid(alpha=0.3)
    return finish(ax, show, save, "history")
