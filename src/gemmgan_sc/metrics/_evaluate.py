"""The paper's Table 1 for one model: fidelity, detectability, utility and privacy over repeated generations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._settings import logger
from .._settings import progress as _progress
from ._classifiers import CLASSIFIERS, check_classifier, check_seed
from ._conditional import conditional_fidelity, is_conditional
from ._correlation import correlation_metrics
from ._detectability import detectability_arrays
from ._distances import check_metric
from ._fidelity import _check_k, fidelity_arrays
from ._frechet import PCABasis, frechet_arrays, pca_basis, sd_ratio_arrays
from ._input import _is_anndata, as_matrices, labels_of
from ._privacy import privacy_arrays
from ._references import RunSets, check_references, fit_gaussian, real_rows_problem, real_rows_run
from ._utility import utility_arrays

KEY_ADDED = "gemmgan_metrics"
COLUMNS = ["metric", "classifier", "label", "mean", "std", "reference"]
FIDELITY_SPLITS = ("test", "train", "all")
CONDITIONAL_SUMMARY = ("pearson_mean", "pearson_median", "pearson_n_above",
                       "spearman_mean", "spearman_median", "spearman_n_above")


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


Rows = list[tuple[str, str, str, float]]
Source = Callable[[int], RunSets]


def _fidelity_rows(fr: np.ndarray, fs: np.ndarray, k: int, metric: str, basis: PCABasis) -> Rows:
    fid = fidelity_arrays(fr, fs, k, metric)
    rows = [(name, "", "", fid[f"{name}_kynkaanniemi"]) for name in ("precision", "recall")]
    rows += [(name, "", "", fid[name]) for name in ("density", "coverage")]
    rows += [(name, "", "", v) for name, v in correlation_metrics(fr, fs).items()]
    rows.append(("frechet_distance", "", "", frechet_arrays(fr, fs, basis)))
    rows.append(("sd_ratio", "", "", sd_ratio_arrays(fr, fs)))
    return rows


def _one_run(sets: RunSets, classifiers, k, metric, seed, fidelity_split, basis: PCABasis) -> Rows:
    if fidelity_split == "test":
        fr, fs = sets.real_test, sets.synth_test
    elif fidelity_split == "train":
        fr, fs = sets.real_train, sets.synth_train
    else:
        fr, fs = np.vstack([sets.real_train, sets.real_test]), np.vstack([sets.synth_train, sets.synth_test])
    rows = _fidelity_rows(fr, fs, k, metric, basis) + list(sets.extra)
    for clf in classifiers:
        det = detectability_arrays(sets.real_train, sets.synth_train, sets.real_test, sets.synth_test, clf, seed)
        rows.extend((f"detectability_{m}", clf, "", v) for m, v in det.items())
    for key, (y_train, y_test, y_synth) in sets.labels.items():
        for clf in classifiers:
            ut = utility_arrays(sets.synth_train, y_synth, sets.real_test, y_test, clf, seed, sets.real_train, y_train)
            rows.extend((f"utility_{m}", clf, key, v) for m, v in ut.items())
    priv = privacy_arrays(sets.synth_train, sets.real_train, sets.real_test, metric=metric)
    for m in ("closer_to_train", "closer_to_train_expected", "nndr_mean", "dcr_synth_median", "dcr_test_median"):
        rows.append((f"privacy_{m}", "", "", priv[m]))
    return rows


def _aggregate(all_rows: list[Rows]) -> pd.DataFrame:
    long = pd.DataFrame(
        [(*r, i) for i, rows in enumerate(all_rows) for r in rows], columns=["metric", "classifier", "label", "value", "run"]
    )
    order = long.drop_duplicates(["metric", "classifier", "label"])[["metric", "classifier", "label"]]
    stats = long.groupby(["metric", "classifier", "label"], sort=False)["value"].agg(
        mean="mean", std=lambda v: float(np.std(v, ddof=0))
    )
    table = order.merge(stats.reset_index(), on=["metric", "classifier", "label"], how="left")
    return table[COLUMNS[:5]].reset_index(drop=True)


def _store(adata, key_added: str, table: pd.DataFrame, params: dict[str, Any]) -> None:
    adata.uns[key_added] = {
        "table": {c: table[c].to_numpy(dtype=float if c in ("mean", "std") else str) for c in COLUMNS},
        "params": {k: ("" if v is None else v) for k, v in params.items()},
    }


def metrics_table(adata, key: str = KEY_ADDED) -> pd.DataFrame:
    """Read the table written by :func:`evaluate` / :func:`evaluate_samples` from ``adata.uns[key]``.

    Tables stored by versions without reference rows get ``reference = ""`` (the model's rows).

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
    data = {c: np.asarray(cols[c]) for c in COLUMNS if c in cols}
    data.setdefault("reference", np.full(len(data["metric"]), "", dtype=object))
    return pd.DataFrame(data)[COLUMNS].astype(
        {"metric": str, "classifier": str, "label": str, "mean": float, "std": float, "reference": str}
    )


def _check_common(n_runs, k, metric, seed, classifiers, fidelity_split, key_added, frechet_components):
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
    fc = frechet_components
    if isinstance(fc, bool) or not isinstance(fc, (int, np.integer)) or fc < 1:
        raise ValueError(f"frechet_components must be a positive int, got {fc!r}.")
    return seed, classifiers


def _fidelity_sizes(fidelity_split: str, n_real: tuple[int, int], n_synth: tuple[int, int]) -> tuple[int, int]:
    return {"test": (n_real[1], n_synth[1]), "train": (n_real[0], n_synth[0]),
            "all": (n_real[0] + n_real[1], n_synth[0] + n_synth[1])}[fidelity_split]


def _basis(real_train: np.ndarray, frechet_components: int, n_compared: int, seed: int) -> PCABasis:
    """The PCA space of the real training rows, shared by every row source of the table.

    At most half as many axes as the smaller compared set has rows: with fewer rows per dimension the
    covariance estimates are so poor that two samples of the real data score worse than a collapsed generator.
    """
    n = min(frechet_components, *real_train.shape, max(1, n_compared // 2))
    return pca_basis(real_train, int(n), seed)


def _real_rows_source(real_train, real_test, labels: dict, k, fidelity_split, seed) -> Source | None:
    problem = real_rows_problem(len(real_train), len(real_test), k, fidelity_split)
    if problem is not None:
        logger.warning("evaluate: no real-rows ceiling: %s.", problem)
        return None
    return lambda i: real_rows_run(real_train, real_test, labels, seed + i)


def _run_all(sources: dict[str, Source], n_runs: int, classifiers, k, metric, seed, fidelity_split,
             basis: PCABasis, desc: str) -> pd.DataFrame:
    """Run ``_one_run`` for every source (``""``: the model; else a reference) and run, one run in memory at a time."""
    per: dict[str, list[Rows]] = {name: [] for name in sources}
    for i in _progress(range(n_runs), n_runs, desc):
        for name, get in sources.items():
            per[name].append(_one_run(get(i), classifiers, k, metric, seed + i, fidelity_split, basis))
    tables = [_aggregate(rows).assign(reference=name) for name, rows in per.items()]
    return pd.concat(tables, ignore_index=True)[COLUMNS]


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
    references: Sequence[str] = ("real_rows",),
    frechet_components: int = 50,
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
    references
        ``("real_rows",)`` (default) adds the ceiling rows of :func:`evaluate`; ``()`` leaves them out.
    frechet_components
        Principal axes of the real training rows in which the Frechet distance is computed: at most their
        number of rows and genes, and at most half the rows of the smaller compared set (with fewer rows per
        axis two samples of the real data would score worse than a collapsed generator). The number used is
        in ``params``.

    Returns
    -------
    DataFrame with columns ``metric, classifier, label, mean, std, reference`` (std over runs, ``ddof=0``;
    ``""`` where a column does not apply; ``reference`` is ``""`` for the synthetic data's rows and names the
    reference otherwise). Metrics: ``precision``, ``recall`` (Kynkaanniemi), ``density``, ``coverage``,
    ``correlation_mse``, ``correlation_gamma``, ``frechet_distance``, ``sd_ratio``,
    ``detectability_{accuracy,f1,auc}`` per classifier,
    ``utility_{,real_,augmented_}{accuracy,f1_macro,f1_weighted}`` per classifier and label,
    ``privacy_{closer_to_train,closer_to_train_expected,nndr_mean,dcr_synth_median,dcr_test_median}``.

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> rng = np.random.default_rng(0)
    >>> tr, s_tr = rng.normal(size=(100, 8)), rng.normal(size=(100, 8))
    >>> te, s_te = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    >>> table = gg.metrics.evaluate_samples(tr, te, s_tr, s_te, classifiers=["logreg"], k=5)
    >>> list(table.columns)
    ['metric', 'classifier', 'label', 'mean', 'std', 'reference']
    >>> sorted(set(table.reference))
    ['', 'real_rows']
    """
    seed, classifiers = _check_common(1, k, metric, seed, classifiers, fidelity_split, key_added, frechet_components)
    refs = check_references(references, allowed=("real_rows",))
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
    y_real = {key: (labels_of(real_train, key, None, "real_train"), labels_of(real_test, key, None, "real_test"))
              for key in keys}
    y_synth = {key: [labels_of(s, key, None, f"synth_train[{i}]") for i, s in enumerate(s_trains)] for key in keys}
    n_fid = _fidelity_sizes(fidelity_split, (len(r_tr), len(r_te)), (len(runs[0][0]), len(runs[0][1])))
    _check_k(k, *n_fid)
    basis = _basis(r_tr, frechet_components, min(n_fid), seed)
    sources: dict[str, Source] = {"": lambda i: RunSets(
        r_tr, r_te, *runs[i], {key: (*y_real[key], y_synth[key][i]) for key in keys})}
    if "real_rows" in refs and (src := _real_rows_source(r_tr, r_te, y_real, k, fidelity_split, seed)):
        sources["real_rows"] = src
    table = _run_all(sources, n, classifiers, k, metric, seed, fidelity_split, basis, "evaluate_samples")
    if adata is not None:
        _store(adata, key_added, table, {
            "n_runs": n, "label_keys": keys, "classifiers": classifiers, "seed": seed, "k": int(k), "metric": metric,
            "normalize": bool(normalize), "fidelity_split": fidelity_split, "layer": layer,
            "synth_layer": synth_layer, "references": list(sources)[1:],
            "frechet_components": int(basis.components.shape[0]),
        })
    return table


def _model_rows(model: Any, adata: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """The AnnData the model was trained on and its train / held-out row positions, checked."""
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
    return adata, train_idx, test_idx


def _check_draws(conditional_draws: Any, model: Any, n_test: int) -> int:
    """Draws per held-out row for conditional fidelity (0: not computed)."""
    if conditional_draws is None:
        if not is_conditional(model):
            return 0
        if n_test < 3:
            logger.warning("evaluate: conditional fidelity skipped (%d held-out rows; it needs 3).", n_test)
            return 0
        return 10
    d = conditional_draws
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
        raise ValueError(f"conditional_draws must be None or an int >= 0, got {d!r}.")
    if d and n_test < 3:
        raise ValueError(f"conditional fidelity correlates across held-out rows: it needs 3, the model has {n_test}.")
    return int(d)


def _conditional_rows(generator: Any, data: Any, indices: np.ndarray, n_draws: int, seed: int,
                      layer: str | None) -> Rows:
    if not n_draws:
        return []
    res = conditional_fidelity(generator, data, indices, n_draws=n_draws, seed=seed, layer=layer)
    return [(f"conditional_{name}", "", "", float(res.summary[name])) for name in CONDITIONAL_SUMMARY]


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
    references: Sequence[str] = ("real_rows",),
    conditional_draws: int | None = None,
    frechet_components: int = 50,
) -> pd.DataFrame:
    """The paper's Table 1 for a trained model, on the model's own train/test split, with reference rows.

    For each of ``n_runs`` runs, the model generates one synthetic profile per training condition and per
    held-out condition (``model.sample(adata, indices=..., seed=...)``); real and synthetic profiles are
    z-scored with the model's training statistics (``model.normalize``), and the metrics of
    :func:`evaluate_samples` are computed, plus conditional fidelity for conditional models. The table (mean
    and std over runs) is returned and written to ``adata.uns[key_added]`` with the parameters.

    Reference rows (column ``reference``) are computed the same way in every run:

    * ``"real_rows"`` (the ceiling): real training rows stand in for synthetic data. Each run draws, without
      replacement, as many training rows as there are held-out rows (the stand-in for the held-out
      conditions, so the k-NN sets have the model's sizes) and cuts the remaining training rows into two
      halves of equal size, one playing the real training rows and one the synthetic training profiles
      (detectability, utility and privacy then see unseen real rows). Needs a training split at least 4 rows
      larger than the held-out split; otherwise it is left out with a warning. No conditional fidelity.
    * ``"gaussian"`` (the floor): :class:`gemmgan_sc.GaussianBaseline` fitted on the model's training rows
      (class-conditional on the label keys when there are any), sampled like the model. A generator that does
      not beat it has learnt less than a full-covariance Gaussian in a few principal components.

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
        (held-out conditions), draws for conditional fidelity with ``seed + 2 n_runs + i``, and seeds its
        classifiers and the ceiling's row draw with ``seed + i``.
    k, metric, fidelity_split, key_added
        As in :func:`evaluate_samples`.
    references
        Reference rows to add: any of ``"real_rows"`` (default) and ``"gaussian"``; ``()`` for none.
    conditional_draws
        Profiles drawn per held-out row for :func:`conditional_fidelity` (rows ``conditional_{pearson,spearman}
        _{mean,median,n_above}``). ``None``: 10 for models that read a condition (text, image or labels), none
        for unconditional ones; ``0``: not computed; a positive int computes it for any model (an
        unconditional one then shows the chance level).
    frechet_components
        Principal axes of the real training rows (z-scored) in which ``frechet_distance`` is computed, for the
        model and the references alike (capped as in :func:`evaluate_samples`; the number used is in
        ``params``).

    Returns
    -------
    DataFrame ``metric, classifier, label, mean, std, reference`` (``reference``: ``""`` for the model's
    rows, else ``"real_rows"`` or ``"gaussian"``); metrics as in :func:`evaluate_samples`, plus the
    conditional ones.

    Examples
    --------
    >>> import gemmgan_sc as gg  # doctest: +SKIP
    >>> report = gg.metrics.evaluate(model, adata, n_runs=10, references=["real_rows", "gaussian"])  # doctest: +SKIP
    >>> report.pivot_table(index="metric", columns="reference", values="mean", aggfunc="first")  # doctest: +SKIP
    >>> gg.pl.metrics(report[report.reference == ""])  # doctest: +SKIP
    """
    seed, classifiers = _check_common(n_runs, k, metric, seed, classifiers, fidelity_split, key_added,
                                      frechet_components)
    refs = check_references(references)
    adata, train_idx, test_idx = _model_rows(model, adata)
    draws = _check_draws(conditional_draws, model, len(test_idx))
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
    sizes = (len(train_idx), len(test_idx))
    n_fid = _fidelity_sizes(fidelity_split, sizes, sizes)
    _check_k(k, *n_fid)

    def generate(generator: Any, data: Any, indices: np.ndarray, s: int) -> np.ndarray:
        synth = generator.sample(adata=data, indices=indices, n_samples=1, seed=s)
        if synth.n_obs != len(indices):
            raise ValueError(f"{type(generator).__name__}.sample returned {synth.n_obs} rows for "
                             f"{len(indices)} conditions.")
        (m,) = as_matrices(synth, names=["synthetic"], var_names=var_names)
        return model.normalize(m)

    def source(generator: Any, train_cond: tuple, test_cond: tuple, labs: dict) -> Source:
        def run(i: int) -> RunSets:
            s_tr = generate(generator, *train_cond, seed + 2 * i)
            s_te = generate(generator, *test_cond, seed + 2 * i + 1)
            extra = _conditional_rows(generator, *test_cond, draws, seed + 2 * n_runs + i, None)
            return RunSets(r_tr, r_te, s_tr, s_te, labs, extra)
        return run

    sources = {"": source(model, (adata, train_idx), (adata, test_idx), labels)}
    if "real_rows" in refs and (src := _real_rows_source(r_tr, r_te, labels, k, fidelity_split, seed)):
        sources["real_rows"] = src
    if "gaussian" in refs:
        gauss, g_train, g_test = fit_gaussian(model, adata, x, var_names, (train_idx, test_idx), keys, seed)
        sources["gaussian"] = source(gauss, (g_train, np.arange(sizes[0])), (g_test, np.arange(sizes[1])), labels)
    basis = _basis(r_tr, frechet_components, min(n_fid), seed)
    table = _run_all(sources, n_runs, classifiers, k, metric, seed, fidelity_split, basis, "evaluate")
    _store(adata, key_added, table, {
        "n_runs": int(n_runs), "label_keys": keys, "classifiers": classifiers, "seed": seed, "k": int(k),
        "metric": metric, "normalize": True, "fidelity_split": fidelity_split, "layer": registry.layer,
        "model": type(model).__name__, "references": list(sources)[1:], "conditional_draws": draws,
        "frechet_components": int(basis.components.shape[0]),
    })
    return table
