"""The paper's Table 1 for one model: fidelity, detectability, utility and privacy over repeated generations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._settings import logger, settings
from ._classifiers import CLASSIFIERS, check_classifier, check_seed
from ._correlation import correlation_metrics
from ._detectability import detectability_arrays
from ._distances import check_metric
from ._fidelity import _check_k, fidelity_arrays
from ._input import _is_anndata, as_matrices, labels_of
from ._privacy import privacy_arrays
from ._utility import utility_arrays

KEY_ADDED = "gemmgan_metrics"
COLUMNS = ["metric", "classifier", "label", "mean", "std"]
FIDELITY_SPLITS = ("test", "train", "all")


# ----------------------------------------------------------------------------- helpers
def zscore_with(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Z-score ``reference`` and ``others`` with the mean and (population) std of ``reference``; zero-variance genes -> 0."""
    mean = reference.mean(axis=0)
    std = reference.std(axis=0)
    zero = std <= 1e-12 * np.maximum(np.abs(mean), 1.0)
    std = np.where(zero, 1.0, std)
    out = []
    for x in (reference, *others):
        z = (x - mean) / std
        z[:, zero] = 0.0
        out.append(z)
    return out


def _check_runs(value: Any, name: str) -> list[Any]:
    runs = list(value) if isinstance(value, (list, tuple)) else [value]
    if not runs:
        raise ValueError(f"{name} is an empty list; give one synthetic data set per run.")
    return runs


def _check_classifiers(classifiers: Sequence[str]) -> list[str]:
    if isinstance(classifiers, str):
        classifiers = [classifiers]
    classifiers = list(classifiers)
    if not classifiers:
        raise ValueError(f"classifiers is empty; give some of {CLASSIFIERS}.")
    for c in classifiers:
        check_classifier(c)
    return classifiers


def _progress(iterable, total: int, desc: str):
    if not settings.progress_bar:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc)


def _one_run(
    real_train, real_test, synth_train, synth_test, labels: dict, classifiers, k, metric, seed, fidelity_split
) -> list[tuple[str, str, str, float]]:
    rows: list[tuple[str, str, str, float]] = []
    if fidelity_split == "test":
        fr, fs = real_test, synth_test
    elif fidelity_split == "train":
        fr, fs = real_train, synth_train
    else:
        fr, fs = np.vstack([real_train, real_test]), np.vstack([synth_train, synth_test])
    fid = fidelity_arrays(fr, fs, k, metric)
    for name in ("precision", "recall"):
        rows.append((name, "", "", fid[f"{name}_kynkaanniemi"]))
    for name in ("density", "coverage"):
        rows.append((name, "", "", fid[name]))
    rows.extend((name, "", "", v) for name, v in correlation_metrics(fr, fs).items())
    for clf in classifiers:
        det = detectability_arrays(real_train, synth_train, real_test, synth_test, clf, seed)
        rows.extend((f"detectability_{m}", clf, "", v) for m, v in det.items())
    for key, (y_train, y_test, y_synth) in labels.items():
        for clf in classifiers:
            ut = utility_arrays(synth_train, y_synth, real_test, y_test, clf, seed, real_train, y_train)
            rows.extend((f"utility_{m}", clf, key, v) for m, v in ut.items())
    priv = privacy_arrays(synth_train, real_train, real_test, metric=metric)
    for m in ("closer_to_train", "closer_to_train_expected", "nndr_mean", "dcr_synth_median", "dcr_test_median"):
        rows.append((f"privacy_{m}", "", "", priv[m]))
    return rows


def _aggregate(all_rows: list[list[tuple[str, str, str, float]]]) -> pd.DataFrame:
    long = pd.DataFrame(
        [(*r, i) for i, rows in enumerate(all_rows) for r in rows], columns=["metric", "classifier", "label", "value", "run"]
    )
    order = long.drop_duplicates(["metric", "classifier", "label"])[["metric", "classifier", "label"]]
    stats = long.groupby(["metric", "classifier", "label"], sort=False)["value"].agg(
        mean="mean", std=lambda v: float(np.std(v, ddof=0))
    )
    table = order.merge(stats.reset_index(), on=["metric", "classifier", "label"], how="left")
    return table[COLUMNS].reset_index(drop=True)


def _store(adata, key_added: str, table: pd.DataFrame, params: dict[str, Any]) -> None:
    adata.uns[key_added] = {
        "table": {
            "metric": table["metric"].to_numpy(dtype=str),
            "classifier": table["classifier"].to_numpy(dtype=str),
            "label": table["label"].to_numpy(dtype=str),
            "mean": table["mean"].to_numpy(dtype=float),
            "std": table["std"].to_numpy(dtype=float),
        },
        "params": {k: ("" if v is None else v) for k, v in params.items()},
    }


def metrics_table(adata, key: str = KEY_ADDED) -> pd.DataFrame:
    """Read the table written by :func:`evaluate` / :func:`evaluate_samples` from ``adata.uns[key]``.

    Examples
    --------
    >>> import gemmgan_sc as gg  # doctest: +SKIP
    >>> gg.metrics.metrics_table(adata)  # doctest: +SKIP
    """
    if not _is_anndata(adata):
        raise TypeError(f"adata must be an AnnData, got {type(adata).__name__}.")
    if key not in adata.uns or "table" not in adata.uns[key]:
        raise KeyError(f"adata.uns[{key!r}] holds no metrics table; run gg.metrics.evaluate(model, adata) first.")
    cols = adata.uns[key]["table"]
    return pd.DataFrame({c: np.asarray(cols[c]) for c in COLUMNS}).astype(
        {"metric": str, "classifier": str, "label": str, "mean": float, "std": float}
    )


def _check_common(n_runs, k, metric, seed, classifiers, fidelity_split, key_added):
    if isinstance(n_runs, bool) or not isinstance(n_runs, (int, np.integer)) or n_runs < 1:
        raise ValueError(f"n_runs must be a positive int, got {n_runs!r}.")
    check_metric(metric)
    seed = check_seed(seed)
    classifiers = _check_classifiers(classifiers)
    if fidelity_split not in FIDELITY_SPLITS:
        raise ValueError(f"fidelity_split must be one of {FIDELITY_SPLITS}, got {fidelity_split!r}.")
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty string, got {key_added!r}.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}.")
    return seed, classifiers


def _run_all(real_train, real_test, n_runs, get_run, n_synth, labels_per_run, classifiers, k, metric, seed,
             fidelity_split, desc):
    """Run ``_one_run`` for ``get_run(i) -> (synth_train, synth_test)``, one run in memory at a time."""
    n_fid = {"test": (len(real_test), n_synth[1]), "train": (len(real_train), n_synth[0]),
             "all": (len(real_train) + len(real_test), n_synth[0] + n_synth[1])}[fidelity_split]
    _check_k(k, *n_fid)
    all_rows = []
    for i in _progress(range(n_runs), n_runs, desc):
        s_tr, s_te = get_run(i)
        all_rows.append(
            _one_run(real_train, real_test, s_tr, s_te, labels_per_run(i), classifiers, k, metric, seed + i,
                     fidelity_split)
        )
    return _aggregate(all_rows)


# ----------------------------------------------------------------------------- public
def evaluate_samples(
    real_train: Any,
    real_test: Any,
    synth_train: Any,
    synth_test: Any,
    label_key: str | Sequence[str] | None = None,
    classifiers: Sequence[str] = CLASSIFIERS,
    seed: int = 0,
    *,
    k: int = 10,
    metric: str = "euclidean",
    normalize: bool = True,
    fidelity_split: str = "test",
    layer: str | None = None,
    synth_layer: str | None = None,
    adata: Any = None,
    key_added: str = KEY_ADDED,
) -> pd.DataFrame:
    """The evaluation table for synthetic data made elsewhere.

    Parameters
    ----------
    real_train, real_test
        Real training and held-out profiles: AnnData (labels in ``obs``) or arrays.
    synth_train, synth_test
        Synthetic profiles generated from the training and held-out conditions, row ``i`` from condition ``i``
        (labels in ``obs``), or lists of such, one per generation run (mean and std over runs).
    label_key
        ``obs`` column(s) of labels for the utility metric; ``None`` skips utility.
    classifiers
        Classifiers for detectability and utility (``"logreg"``, ``"mlp"``, ``"rf"``).
    seed
        Seed of the classifiers in run 0 (run ``i`` uses ``seed + i``).
    k, metric
        Neighbours and distance for precision, recall, density, coverage and privacy.
    normalize
        Z-score everything with the mean and std of ``real_train`` first (zero-variance genes -> 0), as the
        paper does; ``False`` uses the values as given.
    fidelity_split
        Which real and synthetic sets the fidelity and correlation metrics compare: ``"test"`` (held-out
        conditions, default), ``"train"`` or ``"all"``.
    layer
        Layer of the real AnnData inputs (default ``X``).
    synth_layer
        Layer of the synthetic AnnData inputs (default ``X``, where ``model.sample`` writes).
    adata
        AnnData to write the table into (``adata.uns[key_added]``, with ``params``); ``None`` writes nothing.
    key_added
        Key in ``uns``.

    Returns
    -------
    DataFrame with columns ``metric, classifier, label, mean, std`` (std over runs, ``ddof=0``; ``""`` where
    a column does not apply). Metrics: ``precision``, ``recall`` (Kynkaanniemi), ``density``, ``coverage``,
    ``correlation_mse``, ``correlation_gamma``, ``detectability_{accuracy,f1,auc}`` per classifier,
    ``utility_{,real_,augmented_}{accuracy,f1_macro,f1_weighted}`` per classifier and label,
    ``privacy_{closer_to_train,closer_to_train_expected,nndr_mean,dcr_synth_median,dcr_test_median}``.

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> rng = np.random.default_rng(0)
    >>> tr, te, s_tr, s_te = (rng.normal(size=(60, 8)) for _ in range(4))
    >>> table = gg.metrics.evaluate_samples(tr, te, s_tr, s_te, classifiers=["logreg"], k=5)
    >>> list(table.columns)
    ['metric', 'classifier', 'label', 'mean', 'std']
    """
    seed, classifiers = _check_common(1, k, metric, seed, classifiers, fidelity_split, key_added)
    if adata is not None and not _is_anndata(adata):
        raise TypeError(f"adata must be an AnnData or None, got {type(adata).__name__}.")
    s_trains, s_tests = _check_runs(synth_train, "synth_train"), _check_runs(synth_test, "synth_test")
    if len(s_trains) != len(s_tests):
        raise ValueError(
            f"synth_train has {len(s_trains)} runs but synth_test has {len(s_tests)}; give one of each per run."
        )
    names = ["real_train", "real_test"] + [f"synth_train[{i}]" for i in range(len(s_trains))] + [
        f"synth_test[{i}]" for i in range(len(s_tests))
    ]
    mats = as_matrices(real_train, real_test, *s_trains, *s_tests, names=names,
                       layer=[layer, layer] + [synth_layer] * (2 * len(s_trains)))
    r_tr, r_te = mats[0], mats[1]
    n = len(s_trains)
    runs = list(zip(mats[2:2 + n], mats[2 + n:]))
    if normalize:
        z = zscore_with(r_tr, r_te, *[m for run in runs for m in run])
        r_tr, r_te = z[0], z[1]
        runs = [(z[2 + 2 * i], z[3 + 2 * i]) for i in range(n)]
    keys = [label_key] if isinstance(label_key, str) else list(label_key or [])
    labels = {
        key: (
            labels_of(real_train, key, None, "real_train"),
            labels_of(real_test, key, None, "real_test"),
            [labels_of(s, key, None, f"synth_train[{i}]") for i, s in enumerate(s_trains)],
        )
        for key in keys
    }
    table = _run_all(
        r_tr, r_te, n, lambda i: runs[i], (len(runs[0][0]), len(runs[0][1])),
        lambda i: {key: (a, b, c[i]) for key, (a, b, c) in labels.items()},
        classifiers, k, metric, seed, fidelity_split, "evaluate_samples",
    )
    if adata is not None:
        _store(adata, key_added, table, {
            "n_runs": n, "label_keys": keys, "classifiers": classifiers, "seed": seed, "k": int(k), "metric": metric,
            "normalize": bool(normalize), "fidelity_split": fidelity_split, "layer": layer,
            "synth_layer": synth_layer,
        })
    return table


def evaluate(
    model: Any,
    adata: Any = None,
    n_runs: int = 10,
    label_keys: Sequence[str] | None = None,
    classifiers: Sequence[str] = CLASSIFIERS,
    seed: int = 0,
    *,
    k: int = 10,
    metric: str = "euclidean",
    fidelity_split: str = "test",
    key_added: str = KEY_ADDED,
) -> pd.DataFrame:
    """The paper's Table 1 for a trained model, on the model's own train/test split.

    For each of ``n_runs`` runs, the model generates one synthetic profile per training condition and per
    held-out condition (``model.sample(adata, indices=..., seed=...)``); real and synthetic profiles are
    z-scored with the model's training statistics (``model.normalize``), and the metrics of
    :func:`evaluate_samples` are computed. The table (mean and std over runs) is returned and written to
    ``adata.uns[key_added]`` with the parameters.

    Parameters
    ----------
    model
        A trained model (``gg.GeMMGAN`` or a baseline) with ``split``, ``sample``, ``normalize``,
        ``var_names`` and ``registry``.
    adata
        The AnnData the model was trained on (default ``model.adata``); rows must be the same, in order.
    n_runs
        Number of generation runs (the paper uses 10).
    label_keys
        ``obs`` columns for the utility metric (default: the model's ``labels_keys``; ``[]`` skips utility).
    classifiers
        Classifiers for detectability and utility.
    seed
        Base seed: run ``i`` samples with seeds ``seed + 2 i`` (training conditions) and ``seed + 2 i + 1``
        (held-out conditions) and seeds its classifiers with ``seed + i``.
    k, metric, fidelity_split, key_added
        As in :func:`evaluate_samples`.

    Returns
    -------
    DataFrame ``metric, classifier, label, mean, std``.

    Examples
    --------
    >>> import gemmgan_sc as gg  # doctest: +SKIP
    >>> report = gg.metrics.evaluate(model, adata, n_runs=10)  # doctest: +SKIP
    >>> gg.pl.metrics(report)  # doctest: +SKIP
    """
    seed, classifiers = _check_common(n_runs, k, metric, seed, classifiers, fidelity_split, key_added)
    for attr in ("split", "sample", "normalize", "var_names", "registry"):
        if not hasattr(model, attr):
            raise TypeError(f"model has no {attr!r}; pass a gemmgan-sc model (e.g. gg.GeMMGAN) that was trained.")
    if adata is None:
        adata = getattr(model, "adata", None)
        if adata is None:
            raise ValueError("model.adata is not set; pass adata=... (the AnnData the model was trained on).")
    if not _is_anndata(adata):
        raise TypeError(f"adata must be an AnnData, got {type(adata).__name__}.")
    own = getattr(model, "adata", None)
    if own is not None and own is not adata and not adata.obs_names.equals(own.obs_names):
        raise ValueError(
            "adata has other rows than the AnnData the model was trained on; the model's train/test split are "
            "row positions, so pass that AnnData (same obs_names, same order)."
        )
    split = model.split
    if split is None or "train" not in split or "validation" not in split:
        raise ValueError("model.split has no 'train' and 'validation' rows; train the model first.")
    train_idx = np.asarray(split["train"], dtype=int)
    test_idx = np.asarray(split["validation"], dtype=int)
    if len(test_idx) == 0:
        raise ValueError("the model has no held-out rows (validation split is empty); train with train_size < 1.")
    if max(train_idx.max(initial=-1), test_idx.max(initial=-1)) >= adata.n_obs:
        raise ValueError(f"model.split names rows beyond adata.n_obs={adata.n_obs}; pass the training AnnData.")
    registry = model.registry
    keys = list(registry.labels_keys) if label_keys is None else (
        [label_keys] if isinstance(label_keys, str) else list(label_keys)
    )
    var_names = pd.Index(model.var_names).astype(str)
    (x,) = as_matrices(adata, names=["adata"], layer=registry.layer, var_names=var_names)
    r_tr, r_te = model.normalize(x[train_idx]), model.normalize(x[test_idx])
    y = {key: labels_of(adata, key, None, "adata") for key in keys}
    labels = {key: (v[train_idx], v[test_idx], v[train_idx]) for key, v in y.items()}
    if not keys:
        logger.info("evaluate: no label keys, utility skipped.")

    def generate(indices: np.ndarray, s: int) -> np.ndarray:
        synth = model.sample(adata=adata, indices=indices, n_samples=1, seed=s)
        if synth.n_obs != len(indices):
            raise ValueError(f"model.sample returned {synth.n_obs} rows for {len(indices)} conditions.")
        (m,) = as_matrices(synth, names=["synthetic"], var_names=var_names)
        return model.normalize(m)

    table = _run_all(
        r_tr, r_te, n_runs, lambda i: (generate(train_idx, seed + 2 * i), generate(test_idx, seed + 2 * i + 1)),
        (len(train_idx), len(test_idx)), lambda i: labels, classifiers, k, metric, seed, fidelity_split, "evaluate",
    )
    _store(adata, key_added, table, {
        "n_runs": int(n_runs), "label_keys": keys, "classifiers": classifiers, "seed": seed, "k": int(k),
        "metric": metric, "normalize": True, "fidelity_split": fidelity_split, "layer": registry.layer,
        "model": type(model).__name__,
    })
    return table
