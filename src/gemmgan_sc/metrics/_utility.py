"""Utility: train on synthetic, test on real (TSTR), beside train on real and on real + synthetic."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._classifiers import check_classifier, check_seed, fit_quietly, make_classifier
from ._input import as_matrices, labels_of


def _scores(clf_name: str, seed: int, x, y, x_test, y_test, prefix: str) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    if np.unique(y).size < 2:
        raise ValueError(
            f"the {prefix or 'synthetic'} training data have a single label ({y[0]!r}); "
            "a classifier needs at least two classes."
        )
    clf = fit_quietly(make_classifier(clf_name, seed), x, y)
    pred = clf.predict(x_test)
    labels = np.union1d(y, y_test)
    return {
        f"{prefix}accuracy": float(accuracy_score(y_test, pred)),
        f"{prefix}f1_macro": float(f1_score(y_test, pred, labels=labels, average="macro", zero_division=0)),
        f"{prefix}f1_weighted": float(f1_score(y_test, pred, labels=labels, average="weighted", zero_division=0)),
    }


def utility_arrays(
    synth: np.ndarray, y_synth: np.ndarray, real_test: np.ndarray, y_test: np.ndarray,
    classifier: str, seed: int, real_train: np.ndarray | None = None, y_train: np.ndarray | None = None,
) -> dict[str, float]:
    out = _scores(classifier, seed, synth, y_synth, real_test, y_test, "")
    if real_train is not None:
        out |= _scores(classifier, seed, real_train, y_train, real_test, y_test, "real_")
        out |= _scores(
            classifier, seed, np.vstack([real_train, synth]), np.r_[y_train, y_synth], real_test, y_test, "augmented_"
        )
    return out


def utility(
    synth: Any,
    real_test: Any,
    label_key: str | None = None,
    classifier: str = "rf",
    real_train: Any = None,
    seed: int = 0,
    *,
    layer: str | None = None,
    synth_labels: Any = None,
    test_labels: Any = None,
    train_labels: Any = None,
) -> dict[str, float]:
    """Train-on-synthetic, test-on-real classification of a label (e.g. disease type).

    A classifier is trained on synthetic profiles, labelled with the labels of the conditions they were
    generated from, and tested on held-out real profiles. With ``real_train``, the same classifier trained
    on real training profiles (``real_*``) and on real + synthetic profiles (``augmented_*``) is scored
    beside it.

    Parameters
    ----------
    synth, real_test, real_train
        AnnData (labels read from ``obs[label_key]``, genes aligned by ``var_names``) or arrays (then give
        ``synth_labels``, ``test_labels``, ``train_labels``).
    label_key
        Column of ``obs`` holding the labels.
    classifier
        ``"rf"``, ``"mlp"`` or ``"logreg"``.
    seed
        Seed of the classifier.
    layer
        Layer of AnnData inputs (default ``X``).
    synth_labels, test_labels, train_labels
        Labels given directly (override ``label_key``).

    Returns
    -------
    dict with ``accuracy``, ``f1_macro``, ``f1_weighted`` and, with ``real_train``, the same with prefixes
    ``real_`` and ``augmented_``.

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 50)
    >>> x = rng.normal(size=(100, 5)) + 4 * (y == "b")[:, None]
    >>> gg.metrics.utility(x, x, synth_labels=y, test_labels=y)["accuracy"]
    1.0
    """
    check_classifier(classifier)
    seed = check_seed(seed)
    datas, names = [synth, real_test], ["synth", "real_test"]
    if real_train is not None:
        datas.append(real_train)
        names.append("real_train")
    mats = as_matrices(*datas, names=names, layer=layer)
    y_synth = labels_of(synth, label_key, synth_labels, "synth")
    y_test = labels_of(real_test, label_key, test_labels, "real_test")
    y_train = labels_of(real_train, label_key, train_labels, "real_train") if real_train is not None else None
    return utility_arrays(
        mats[0], y_synth, mats[1], y_test, classifier, seed,
        mats[2] if real_train is not None else None, y_train,
    )
