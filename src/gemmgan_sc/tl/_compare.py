"""One evaluation table for several trained models (GeMM-GAN, baselines, ablations)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["compare_models", "comparison_table", "headline_table"]

_TMP_KEY = "_gemmgan_compare_models_tmp"


def _is_unconditional(model: Any) -> bool:
    """Models that generate from noise alone (WGANGP, BetaVAE): no image, text or label conditions."""
    uses = getattr(model, "_uses", None)
    reads_labels = bool(uses("labels")) if callable(uses) else False
    return not getattr(model, "_requires_condition", True) and not reads_labels


REFERENCE_NAMES = {"real_rows": "real training rows", "gaussian": "Gaussian floor"}


def _check_model(name: Any, model: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"model names must be non-empty strings, got {name!r}.")
    for attr in ("split", "sample", "normalize", "registry"):
        if not hasattr(model, attr):
            raise TypeError(f"models[{name!r}] is a {type(model).__name__}, not a gemmgan-sc model.")
    if not getattr(model, "is_trained", True) or model.split is None:
        raise RuntimeError(f"models[{name!r}] is not trained yet: call its train() first.")


def _evaluate_one(name: str, model: Any, data: Any, references: Sequence[str], **kwargs: Any) -> pd.DataFrame:
    """``evaluate`` of one model; its reference rows become rows of models named as in ``REFERENCE_NAMES``."""
    from ..metrics import evaluate

    had_tmp = _TMP_KEY in data.uns
    table = evaluate(model, data, references=list(references), key_added=_TMP_KEY, **kwargs)
    if not had_tmp:
        data.uns.pop(_TMP_KEY, None)  # evaluate() writes uns; the stacked table is the record
    ref = table["reference"] if "reference" in table.columns else pd.Series("", index=table.index)
    return table.assign(model=[name if r == "" else REFERENCE_NAMES.get(r, r) for r in ref.astype(str)])


def compare_models(
    models: Mapping[str, Any],
    adata: Any = None,
    n_runs: int = 10,
    label_keys: Sequence[str] | None = None,
    classifiers: Sequence[str] = ("logreg", "mlp", "rf"),
    seed: int = 0,
    *,
    k: int = 10,
    metric: str = "euclidean",
    fidelity_split: str = "test",
    references: Sequence[str] = ("real_rows",),
    conditional_draws: int | None = None,
    key_added: str | None = "gemmgan_comparison",
) -> pd.DataFrame:
    """Evaluate several trained models on the same data and stack their tables.

    Every model goes through :func:`gemmgan_sc.metrics.evaluate` on its own split. Unconditional models
    (:class:`~gemmgan_sc.WGANGP`, :class:`~gemmgan_sc.BetaVAE`) get no utility rows: their profiles follow no
    label, so scoring a classifier trained on them against labels would be meaningless. Train every model
    with the same ``seed`` and ``train_size`` so that they share one split and the numbers compare; the
    reference rows are computed once, on the split of the first model.

    Parameters
    ----------
    models
        ``{name: trained model}``; the names become the ``model`` column (e.g. ``"GeMM-GAN"``, ``"WGAN-GP"``).
    adata
        The AnnData the models were trained on (default: each model's own ``adata``).
    n_runs
        Generation runs per model (the paper uses 10).
    label_keys
        ``obs`` columns for the utility metric (default: each model's ``labels_keys``).
    classifiers
        Classifiers for detectability and utility (``"logreg"``, ``"mlp"``, ``"rf"``).
    seed
        Base seed of sampling and classifiers (as in :func:`gemmgan_sc.metrics.evaluate`).
    k, metric, fidelity_split
        As in :func:`gemmgan_sc.metrics.evaluate`.
    references
        Reference rows of :func:`gemmgan_sc.metrics.evaluate` to add as extra "models": ``"real_rows"`` (the
        ceiling, ``model = "real training rows"``) and ``"gaussian"`` (the floor, ``"Gaussian floor"``); ``()``
        for none.
    conditional_draws
        As in :func:`gemmgan_sc.metrics.evaluate`: ``None`` scores conditional fidelity for conditional models
        only; a positive int scores every model, so unconditional ones show the chance level beside them.
    key_added
        Store the stacked table in ``adata.uns[key_added]`` (columns as lists, plus ``params``); ``None``
        stores nothing. Needs ``adata``.

    Returns
    -------
    Long DataFrame with columns ``model, metric, classifier, label, mean, std``; see
    :func:`comparison_table` and :func:`headline_table` for the metrics x models views.

    Examples
    --------
    >>> import gemmgan_sc as gg  # doctest: +SKIP
    >>> table = gg.tl.compare_models({"GeMM-GAN": gemmgan, "WGAN-GP": wgan, "CVAE": cvae}, adata, n_runs=3)  # doctest: +SKIP
    >>> gg.tl.headline_table(table)  # doctest: +SKIP
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty dict {name: trained model}.")
    if isinstance(n_runs, bool) or not isinstance(n_runs, (int, np.integer)) or n_runs < 1:
        raise ValueError(f"n_runs must be a positive int, got {n_runs!r}.")
    if key_added is not None and adata is None:
        raise ValueError("key_added needs adata=... to write into; pass adata or key_added=None.")
    classifiers = [classifiers] if isinstance(classifiers, str) else list(classifiers)
    references = [references] if isinstance(references, str) else list(references)
    clash = [n for n in models if n in {REFERENCE_NAMES.get(r, r) for r in references}]
    if clash:
        raise ValueError(f"model names {clash} are taken by the reference rows; rename the models.")
    tables = []
    for i, (name, model) in enumerate(models.items()):
        _check_model(name, model)
        tables.append(_evaluate_one(
            name, model, adata if adata is not None else model.adata, references if i == 0 else [],
            n_runs=int(n_runs), label_keys=[] if _is_unconditional(model) else label_keys,
            classifiers=classifiers, seed=seed, k=k, metric=metric, fidelity_split=fidelity_split,
            **({} if conditional_draws is None else {"conditional_draws": conditional_draws}),
        ))
    out = pd.concat(tables, ignore_index=True)[["model", "metric", "classifier", "label", "mean", "std"]]
    out = out.iloc[np.argsort(~out["model"].isin(list(models)).to_numpy(), kind="stable")].reset_index(drop=True)
    if key_added is not None:
        adata.uns[key_added] = {
            "table": {c: out[c].to_numpy(dtype=float if c in ("mean", "std") else str) for c in out.columns},
            "params": {"models": list(models), "n_runs": int(n_runs), "classifiers": classifiers,
                       "seed": int(seed), "k": int(k), "metric": metric, "fidelity_split": fidelity_split,
                       "label_keys": "" if label_keys is None else list(label_keys), "references": references},
        }
    return out


def _check_long_table(table: Any) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be the DataFrame of gg.tl.compare_models, got {type(table).__name__}.")
    missing = [c for c in ("model", "metric", "classifier", "label", "mean", "std") if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the columns {missing}; pass the output of gg.tl.compare_models.")


def comparison_table(table: pd.DataFrame, digits: int = 3, std: bool = True) -> pd.DataFrame:
    """Metrics x models view of :func:`compare_models` output, cells ``"mean ± std"`` (strings) or means.

    Parameters
    ----------
    table
        The long table of :func:`compare_models` (columns ``model, metric, classifier, label, mean, std``).
    digits
        Decimals shown.
    std
        Show ``mean ± std``; ``False`` gives the float means.

    Returns
    -------
    DataFrame indexed by metric (with ``classifier`` and ``label`` appended in brackets where they apply), one
    column per model in the order given to :func:`compare_models`.

    Examples
    --------
    >>> import pandas as pd, gemmgan_sc as gg
    >>> long = pd.DataFrame({"model": ["A", "B"], "metric": ["precision"] * 2, "classifier": ["", ""],
    ...                      "label": ["", ""], "mean": [0.5, 0.25], "std": [0.1, 0.0]})
    >>> gg.tl.comparison_table(long, digits=2)["A"].tolist()
    ['0.50 ± 0.10']
    """
    _check_long_table(table)
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 0:
        raise ValueError(f"digits must be an int >= 0, got {digits!r}.")

    def row_name(r) -> str:
        extra = [str(v) for v in (r["classifier"], r["label"]) if isinstance(v, str) and v]
        return f"{r['metric']} ({', '.join(extra)})" if extra else str(r["metric"])

    df = table.copy()
    df["row"] = df.apply(row_name, axis=1)
    if std:
        df["cell"] = [f"{m:.{digits}f} ± {s:.{digits}f}" for m, s in zip(df["mean"], df["std"])]
    else:
        df["cell"] = df["mean"].astype(float)
    models = list(dict.fromkeys(df["model"]))
    rows = list(dict.fromkeys(df["row"]))
    wide = df.pivot_table(index="row", columns="model", values="cell", aggfunc="first", sort=False)
    wide = wide.reindex(index=rows, columns=models)
    wide.index.name = "metric"
    wide.columns.name = None
    return wide.fillna("" if std else np.nan)


# One row per metric family: (row name, metric-name patterns in priority order, better: "higher" | "lower" |
# "half" (closest to 0.5) | "one" (closest to 1) | "" (not a quality axis)). Patterns are fnmatch globs, so metrics that another
# version of gg.metrics names slightly differently still find their row.
HEADLINE_FAMILIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("precision", ("precision",), "higher"),
    ("recall", ("recall",), "higher"),
    ("Frechet distance", ("frechet_distance*",), "lower"),
    ("SD ratio", ("sd_ratio",), "one"),
    ("correlation MSE", ("correlation_mse",), "lower"),
    ("detectability AUC", ("detectability_auc",), "half"),
    ("utility accuracy", ("utility_accuracy",), "higher"),
    ("conditional Pearson r", ("conditional_pearson_mean", "conditional*pearson*mean*"), "higher"),
    ("privacy: closer to train", ("privacy_closer_to_train",), ""),
)


def _family_rows(table: pd.DataFrame) -> list[tuple[str, pd.Series, str]]:
    """(family name, the table rows of its metric: first classifier and label in table order, direction)."""
    from fnmatch import fnmatchcase

    names = list(dict.fromkeys(table["metric"]))
    rows = []
    for family, patterns, better in HEADLINE_FAMILIES:
        metric = next((n for p in patterns for n in names if fnmatchcase(n, p)), None)
        if metric is None:
            continue
        sub = table[table["metric"] == metric]
        first = sub.iloc[0]
        sub = sub[(sub["classifier"] == first["classifier"]) & (sub["label"] == first["label"])]
        extra = [str(v) for v in (first["classifier"], first["label"]) if isinstance(v, str) and v]
        rows.append((f"{family} ({', '.join(extra)})" if extra else family, sub, better))
    return rows


def _behind(value: float, floor: float, better: str) -> bool:
    if better == "higher":
        return value < floor
    if better == "lower":
        return value > floor
    if better in ("half", "one"):
        target = 0.5 if better == "half" else 1.0
        return abs(value - target) > abs(floor - target)
    return False


def headline_table(table: pd.DataFrame, digits: int = 3, floor: str | None = None) -> pd.DataFrame:
    """A short view of :func:`compare_models` output: one row per metric family, one column per model.

    Each family shows one metric (precision, recall, Frechet distance, SD ratio, correlation MSE, detectability
    AUC, utility accuracy, conditional Pearson r, privacy) for the first classifier and label of the table; families the table
    lacks are left out. The long table keeps every metric, classifier, label and the std over runs.

    Parameters
    ----------
    table
        The long table of :func:`compare_models` (columns ``model, metric, classifier, label, mean, std``).
    digits
        Significant digits of the means.
    floor
        A model name of the table (e.g. the Gaussian baseline) to hold every other model against: a last row
        ``behind <floor> on`` lists, per model, the families where it does worse than that model (left blank for
        the floor and the reference rows).

    Returns
    -------
    DataFrame of strings indexed by family, one column per model in table order.

    Examples
    --------
    >>> import pandas as pd, gemmgan_sc as gg
    >>> long = pd.DataFrame({"model": ["A", "B"] * 2, "metric": ["precision"] * 2 + ["correlation_mse"] * 2,
    ...                      "classifier": [""] * 4, "label": [""] * 4, "mean": [0.5, 0.75, 0.02, 0.01],
    ...                      "std": [0.0] * 4})
    >>> gg.tl.headline_table(long, floor="B").loc["behind B on", "A"]
    'precision, correlation MSE'
    """
    _check_long_table(table)
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 1:
        raise ValueError(f"digits must be an int >= 1, got {digits!r}.")
    models = list(dict.fromkeys(table["model"]))
    if floor is not None and floor not in models:
        raise ValueError(f"floor={floor!r} is not a model of the table; it has {models}.")
    refs = {floor, *REFERENCE_NAMES.values()}  # the floor and the reference rows are not held against the floor
    cells: dict[str, dict[str, str]] = {}
    behind: dict[str, list[str]] = {m: [] for m in models}
    for family, sub, better in _family_rows(table):
        means = dict(zip(sub["model"], sub["mean"].astype(float)))
        cells[family] = {m: (f"{means[m]:.{digits}g}" if m in means and np.isfinite(means[m]) else "-") for m in models}
        if floor is not None and floor in means:
            for m, v in means.items():
                if m not in refs and np.isfinite(v) and _behind(v, means[floor], better):
                    behind[m].append(family)
    if floor is not None:
        cells[f"behind {floor} on"] = {m: ("" if m in refs else ", ".join(behind[m]) or "nothing") for m in models}
    out = pd.DataFrame.from_dict(cells, orient="index").reindex(columns=models)
    out.index.name = "metric"
    return out
