"""Detectability: can a classifier tell synthetic from real profiles?"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._classifiers import check_classifier, check_seed, fit_quietly, make_classifier
from ._input import as_matrices


def detectability_arrays(
    real_train: np.ndarray, synth_train: np.ndarray, real_test: np.ndarray, synth_test: np.ndarray,
    classifier: str, seed: int,
) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    x_train = np.vstack([real_train, synth_train])
    y_train = np.r_[np.zeros(len(real_train), int), np.ones(len(synth_train), int)]
    x_test = np.vstack([real_test, synth_test])
    y_test = np.r_[np.zeros(len(real_test), int), np.ones(len(synth_test), int)]
    clf = fit_quietly(make_classifier(classifier, seed), x_train, y_train)
    pred = clf.predict(x_test)
    proba = clf.predict_proba(x_test)[:, list(clf.classes_).index(1)]
    return {
        "accuracy": float(accuracy_score(y_test, pred)),
        "f1": float(f1_score(y_test, pred, pos_label=1, zero_division=0)),
        "auc": float(roc_auc_score(y_test, proba)),
    }


def detectability(
    real_train: Any,
    synth_train: Any,
    real_test: Any,
    synth_test: Any,
    classifier: str = "logreg",
    seed: int = 0,
    *,
    layer: str | None = None,
) -> dict[str, float]:
    """How well a classifier separates synthetic from real profiles (0.5 accuracy / AUC = undetectable).

    The classifier is trained on real training profiles (class 0) against synthetic profiles generated from
    the training conditions (class 1), and tested on held-out real profiles against synthetic profiles
    generated from the held-out conditions. Features are used as given (``evaluate`` z-scores them with the
    real training statistics first).

    Parameters
    ----------
    real_train, synth_train, real_test, synth_test
        AnnData (genes aligned by ``var_names``) or arrays (samples x genes).
    classifier
        ``"logreg"``, ``"mlp"`` or ``"rf"`` (see :func:`gemmgan_sc.metrics.make_classifier`).
    seed
        Seed of the classifier.
    layer
        Layer of AnnData inputs (default ``X``).

    Returns
    -------
    ``{"accuracy", "f1", "auc"}``; F1 of the synthetic class, AUC of its predicted probability.

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> rng = np.random.default_rng(0)
    >>> a, b, c, d = (rng.normal(size=(100, 10)) for _ in range(4))
    >>> abs(gg.metrics.detectability(a, b, c, d)["accuracy"] - 0.5) < 0.15
    True
    """
    check_classifier(classifier)
    seed = check_seed(seed)
    mats = as_matrices(
        real_train, synth_train, real_test, synth_test,
        names=["real_train", "synth_train", "real_test", "synth_test"], layer=layer,
    )
    for name, m in zip(["real_train", "synth_train", "real_test", "synth_test"], mats):
        if m.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 samples, got {m.shape[0]}.")
    return detectability_arrays(*mats, classifier=classifier, seed=seed)
