"""The scikit-learn classifiers of the evaluation, seeded, by name."""

from __future__ import annotations

from typing import Any

import numpy as np

CLASSIFIERS = ("logreg", "mlp", "rf")


def check_classifier(name: str, allowed: tuple[str, ...] = CLASSIFIERS) -> str:
    if name not in allowed:
        raise ValueError(f"classifier must be one of {allowed}, got {name!r}.")
    return name


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    return int(seed)


def make_classifier(name: str, seed: int) -> Any:
    """A fresh, seeded scikit-learn pipeline for ``name`` (features are used as given, no rescaling).

    * ``"logreg"``: L2 logistic regression (``C=1``, lbfgs, up to 2000 iterations);
    * ``"mlp"``: one hidden layer of 256 ReLU units, Adam, early stopping on 10 % of the training data;
    * ``"rf"``: random forest of 200 trees (all cores).
    """
    check_classifier(name)
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    if name == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(
            hidden_layer_sizes=(256,), alpha=1e-4, max_iter=300, early_stopping=True,
            validation_fraction=0.1, n_iter_no_change=10, random_state=seed,
        )
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=200, n_jobs=-1, random_state=seed)


def fit_quietly(clf: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """Fit, silencing scikit-learn's convergence warnings (the iteration caps are documented)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(x, y)
