"""A report folder for trained models: metrics (long CSV + headline Markdown), UMAP, training curves, synthetic data."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import atomic_write, atomic_write_text
from ._compare import REFERENCE_NAMES, compare_models, headline_table
from ._concat import concat_real_synthetic

__all__ = ["report"]

REPORT_FILES = ("metrics.csv", "metrics.md", "training_curves.png", "umap.png", "synthetic.h5ad")


def _report_folder(out: str | os.PathLike, overwrite: bool) -> Path:
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out={str(out)!r} is a file; give a folder for the report.")
    there = [f for f in REPORT_FILES if (out / f).exists()]
    if there and not overwrite:
        raise FileExistsError(f"{str(out)!r} already holds {there}; pass overwrite=True or choose another folder.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _as_models(models: Any) -> dict[str, Any]:
    if not isinstance(models, Mapping):
        models = {type(models).__name__: models}
    if not models:
        raise TypeError("models must be a trained model or a non-empty dict {name: trained model}.")
    for name, model in models.items():
        if not hasattr(model, "sample") or not hasattr(model, "registry"):
            raise TypeError(f"models[{name!r}] is a {type(model).__name__}, not a gemmgan-sc model.")
    return dict(models)


def _markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of a DataFrame of strings (index as the first column)."""
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for idx, row in df.iterrows():
        cells = [str(idx)] + ["" if v is None else str(v) for v in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _metrics_md(title: str, description: str, table: pd.DataFrame, floor: str | None) -> str:
    head = headline_table(table, floor=floor if floor in set(table["model"]) else None)
    parts = [f"# {title}\n", description.strip() + "\n" if description.strip() else "", _markdown(head),
             "\nMeans over generation runs on the held-out split; detectability AUC 0.5 means indistinguishable. "
             f"`{REFERENCE_NAMES['real_rows']}` is the ceiling (real training rows scored as if generated, "
             "`gg.metrics.evaluate`). Every metric, classifier and label, with the std over runs, is in "
             "`metrics.csv`.\n"]
    return "\n".join(p for p in parts if p)


def _training_curves(models: Mapping[str, Any], path: Path) -> Path | None:
    import matplotlib.pyplot as plt

    from ..pl import history
    from ..pl._utils import save_figure

    trained = {n: m for n, m in models.items() if len(getattr(m, "history", ())) > 0}
    if not trained:
        return None
    ncols = min(len(trained), 3)
    fig, axes = plt.subplots(math.ceil(len(trained) / ncols), ncols, figsize=(4.5 * ncols, 3.6 * math.ceil(
        len(trained) / ncols)), squeeze=False)
    for ax, (name, model) in zip(axes.flat, trained.items()):
        history(model, ax=ax, show=False, title=name)
    for ax in axes.flat[len(trained):]:
        ax.set_visible(False)
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def _umap(adata: Any, synth: Any, layer: str | None, label_key: str | None, seed: int, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import scanpy as sc

    from ..pl import real_vs_synthetic
    from ..pl._utils import save_figure

    both = concat_real_synthetic(adata, synth, layer=layer)
    sc.pp.scale(both, max_value=10)
    sc.pp.pca(both, n_comps=int(max(2, min(30, both.n_obs - 1, both.n_vars - 1))), random_state=seed)
    sc.pp.neighbors(both, n_neighbors=int(min(15, both.n_obs - 1)), random_state=seed)
    sc.tl.umap(both, random_state=seed)
    colors = [None] + ([label_key] if label_key and label_key in both.obs else [])
    fig, axes = plt.subplots(1, len(colors), figsize=(6.2 * len(colors), 4.6), squeeze=False)
    for ax, color in zip(axes[0], colors):
        real_vs_synthetic(both, color=color, ax=ax, show=False)
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def report(
    out: str | os.PathLike,
    models: Any,
    adata: Any = None,
    *,
    table: pd.DataFrame | None = None,
    synth: Any = None,
    synthetic_from: str | None = None,
    label_key: str | None = None,
    floor: str | None = None,
    references: Sequence[str] = ("real_rows",),
    conditional_draws: int | None = None,
    title: str = "gemmgan-sc report",
    description: str = "",
    n_runs: int = 3,
    classifiers: Sequence[str] = ("logreg",),
    k: int = 10,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write a report folder for trained models; every file is written atomically.

    ``metrics.csv`` (the long table: every metric, classifier and label, mean and std), ``metrics.md`` (a
    headline table, one row per metric family and one column per model, from :func:`headline_table`),
    ``training_curves.png`` (models with a training history), ``umap.png`` (real and synthetic rows on one UMAP)
    and ``synthetic.h5ad``.

    Parameters
    ----------
    out
        Report folder (created). Other files in it are left alone.
    models
        A trained model or ``{name: trained model}``; trained with the same seed and ``train_size`` so that
        they share one split.
    adata
        The AnnData the models were trained on (default: the first model's ``adata``).
    table
        A long table of :func:`compare_models` to write; ``None`` evaluates the models here.
    synth
        The synthetic AnnData for ``umap.png`` and ``synthetic.h5ad``; ``None`` samples ``synthetic_from``, one
        profile per row of ``adata``.
    synthetic_from
        Name of the model to sample (default: the first).
    label_key
        ``obs`` column to colour the second UMAP panel by.
    floor
        Model name to hold the others against in ``metrics.md`` (e.g. the Gaussian baseline), see
        :func:`headline_table`.
    references
        Reference rows of :func:`gemmgan_sc.metrics.evaluate` added to the evaluated table (see
        :func:`compare_models`): ``"real_rows"`` (the ceiling), ``"gaussian"`` (a Gaussian floor); unused with
        ``table``.
    conditional_draws
        Draws per held-out row for conditional fidelity (see :func:`compare_models`); unused with ``table``.
    title, description
        Heading and text at the top of ``metrics.md``.
    n_runs, classifiers, k, seed
        Evaluation settings (as in :func:`compare_models`); ``seed`` also seeds sampling and the UMAP.
    overwrite
        Replace report files that exist in ``out``.

    Returns
    -------
    ``{file name: path}`` of the files written.

    Examples
    --------
    >>> import gemmgan_sc as gg  # doctest: +SKIP
    >>> files = gg.tl.report("my_report", {"GeMM-GAN": model, "Gaussian": gauss}, adata, floor="Gaussian")  # doctest: +SKIP
    >>> print(files["metrics.md"].read_text())  # doctest: +SKIP
    """
    out = _report_folder(out, overwrite)
    models = _as_models(models)
    name = next(iter(models)) if synthetic_from is None else synthetic_from
    if name not in models:
        raise KeyError(f"synthetic_from={synthetic_from!r} is not one of the models {list(models)}.")
    first = next(iter(models.values()))
    adata = first.adata if adata is None else adata
    if table is None:
        table = compare_models(models, adata, n_runs=n_runs, classifiers=classifiers, seed=seed, k=k,
                               references=references, conditional_draws=conditional_draws, key_added=None)
    files = {"metrics.csv": atomic_write(out / "metrics.csv", lambda p: table.to_csv(p, index=False))}
    files["metrics.md"] = atomic_write_text(out / "metrics.md", _metrics_md(title, description, table, floor))
    curves = _training_curves(models, out / "training_curves.png")
    if curves is not None:
        files["training_curves.png"] = curves
    synth = models[name].sample(adata=adata, seed=seed) if synth is None else synth  # one profile per row
    layer = getattr(models[name].registry, "layer", None)
    files["umap.png"] = _umap(adata, synth, layer, label_key, seed, out / "umap.png")
    files["synthetic.h5ad"] = atomic_write(out / "synthetic.h5ad", synth.write_h5ad)
    return files
