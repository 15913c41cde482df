"""Reference rows of the evaluation table: real training rows standing in for synthetic data (the ceiling) and
``gg.GaussianBaseline`` fitted on the model's training rows (the floor)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._settings import logger

REFERENCES = ("real_rows", "gaussian")
Rows = list[tuple[str, str, str, float]]


@dataclass
class RunSets:
    """The four matrices of one evaluation run, the labels per key ``(y_train, y_test, y_synth)`` and extra rows."""

    real_train: np.ndarray
    real_test: np.ndarray
    synth_train: np.ndarray
    synth_test: np.ndarray
    labels: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    extra: Rows = field(default_factory=list)


def check_references(references: Sequence[str] | None, allowed: tuple[str, ...] = REFERENCES) -> list[str]:
    refs = [] if references is None else ([references] if isinstance(references, str) else list(references))
    bad = [r for r in refs if r not in allowed]
    if bad:
        raise ValueError(f"references must be a list of {allowed}, got {bad!r}.")
    return list(dict.fromkeys(refs))


# ------------------------------------------------------------------------------------------- ceiling
def real_rows_partition(n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint positions among ``n_train`` training rows: ``(as_real, as_synth_train, as_synth_test)``.

    ``as_synth_test`` has ``n_test`` rows (as many as the held-out rows, so the k-NN sets have the sizes of the
    model's); the rest is cut into two halves of equal size, one playing the real training rows and one the
    synthetic profiles of the training conditions.
    """
    order = np.random.default_rng(seed).permutation(n_train)
    half = (n_train - n_test) // 2
    return order[n_test:n_test + half], order[n_test + half:n_test + 2 * half], order[:n_test]


def real_rows_problem(n_train: int, n_test: int, k: int, fidelity_split: str) -> str | None:
    """Why the training split is too small for the ceiling rows, or ``None`` when it is large enough."""
    half = (n_train - n_test) // 2
    if half < 2:
        return (f"the training split ({n_train} rows) needs at least {n_test + 4} rows (the held-out size "
                f"{n_test} + 4) to stand in for synthetic data")
    smallest = {"test": n_test, "train": half, "all": half + n_test}[fidelity_split]
    if k > smallest - 1:
        return f"k={k} needs more than k rows in each stand-in set ({smallest}); use a smaller k"
    return None


def real_rows_run(real_train: np.ndarray, real_test: np.ndarray, labels: dict, seed: int) -> RunSets:
    """The ceiling's sets for one run: training rows as synthetic profiles, held-out rows as the real test set."""
    p, q, q_test = real_rows_partition(len(real_train), len(real_test), seed)
    lab = {}
    for key, (y_train, y_test, *_) in labels.items():
        if np.unique(y_train[p]).size >= 2 and np.unique(y_train[q]).size >= 2:  # a classifier needs two classes
            lab[key] = (y_train[p], y_test, y_train[q])
    return RunSets(real_train[p], real_test, real_train[q], real_train[q_test], lab)


# --------------------------------------------------------------------------------------------- floor
def _gaussian_class():
    from .. import models

    cls = getattr(models, "GaussianBaseline", None)
    if cls is None:
        raise ValueError("references=['gaussian'] needs gg.GaussianBaseline, which this version of gemmgan-sc "
                         "lacks; leave 'gaussian' out of references.")
    return cls


def _split_anndata(x: np.ndarray, var_names: pd.Index, obs: pd.DataFrame, rows: np.ndarray):
    import anndata as ad

    part = obs.iloc[rows].copy()
    part.index = part.index.astype(str)
    return ad.AnnData(np.asarray(x[rows], dtype=np.float32), obs=part, var=pd.DataFrame(index=var_names.copy()))


def fit_gaussian(model: Any, adata: Any, x: np.ndarray, var_names: pd.Index, split: tuple[np.ndarray, np.ndarray],
                 label_keys: list[str], seed: int) -> tuple[Any, Any, Any]:
    """``gg.GaussianBaseline`` fitted on the model's training rows; returns ``(baseline, train_rows, test_rows)``.

    ``x`` holds the model's genes on the user's scale for every row of ``adata``. The baseline is set up on
    private AnnData objects (the user's AnnData and its setup are not touched), class-conditional on
    ``label_keys`` when given, with the model's expression scale, every gene kept (the model has filtered them
    already) and ``train_size=1.0`` on the training rows, so that it learns from exactly the model's split.
    """
    cls = _gaussian_class()
    train_idx, test_idx = split
    obs = adata.obs[list(label_keys)] if label_keys else pd.DataFrame(index=adata.obs_names)
    train, test = _split_anndata(x, var_names, obs, train_idx), _split_anndata(x, var_names, obs, test_idx)
    cls.setup_anndata(train, layer=None, labels_keys=list(label_keys) or None,
                      expression_scale=getattr(model.registry, "expression_scale", "any"))
    known = getattr(cls, "_default_hparams", {})
    hparams: dict[str, Any] = {"filter_genes": None} if "filter_genes" in known else {}
    if "n_components" in known:
        hparams["n_components"] = int(min(known["n_components"], len(train_idx) - 1, len(var_names)))
    baseline = cls(train, **hparams)
    accepted = inspect.signature(baseline.train).parameters
    baseline.train(**{k: v for k, v in {"train_size": 1.0, "seed": seed}.items() if k in accepted})
    fitted = getattr(baseline, "split", None)
    if fitted is not None and len(fitted.get("train", ())) != len(train_idx):
        logger.warning("evaluate: GaussianBaseline fitted on %d of the model's %d training rows.",
                       len(fitted["train"]), len(train_idx))
    return baseline, train, test
