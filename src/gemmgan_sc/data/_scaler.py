"""Expression normalisation kept by every model: gene filter and z-score with training statistics."""

from __future__ import annotations

import numpy as np


class ExpressionScaler:
    """z-score with training statistics (optionally after dropping genes that are zero in too many samples).

    Genes with zero variance in the training split get scale 1 and z-score 0; :meth:`inverse_transform` maps
    z-scores back to the user's scale (those genes come back as their training mean).

    Parameters
    ----------
    max_zero_fraction
        Drop genes that are exactly zero in more than this fraction of training samples (``None``, the default,
        keeps all: models generate every gene they are given; models saved before 0.2 may carry such a filter).
    """

    def __init__(self, max_zero_fraction: float | None = None) -> None:
        if max_zero_fraction is not None and not 0.0 <= max_zero_fraction <= 1.0:
            raise ValueError(f"max_zero_fraction must be in [0, 1] or None, got {max_zero_fraction!r}.")
        self.max_zero_fraction = max_zero_fraction
        self.keep: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, x_train: np.ndarray) -> "ExpressionScaler":
        x_train = np.asarray(x_train, dtype=np.float64)
        if self.max_zero_fraction is None:
            keep = np.ones(x_train.shape[1], dtype=bool)
        else:
            keep = (x_train == 0).mean(axis=0) <= self.max_zero_fraction
        if not keep.any():
            raise ValueError(
                f"Every gene is zero in more than {self.max_zero_fraction:.0%} of the training samples; "
                "check the expression matrix."
            )
        self.keep = keep
        self.mean = x_train[:, keep].mean(axis=0).astype(np.float32)
        std = x_train[:, keep].std(axis=0)
        self.std = np.where(std > 0, std, 1.0).astype(np.float32)
        return self

    @property
    def fitted(self) -> bool:
        return self.keep is not None

    def transform(self, x: np.ndarray, filtered: bool = False) -> np.ndarray:
        """z-score ``x`` (all genes, or only the kept ones with ``filtered=True``)."""
        self._check()
        x = np.asarray(x, dtype=np.float32)
        if not filtered:
            x = x[:, self.keep]
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"Expected {self.mean.shape[0]} genes, got {x.shape[1]}.")
        return (x - self.mean) / self.std

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        self._check()
        return np.asarray(z, dtype=np.float32) * self.std + self.mean

    def state(self) -> dict[str, np.ndarray]:
        self._check()
        return {"keep": self.keep.astype(np.uint8), "mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], max_zero_fraction: float | None = None) -> "ExpressionScaler":
        out = cls(max_zero_fraction)
        out.keep = np.asarray(state["keep"]).astype(bool)
        out.mean = np.asarray(state["mean"], dtype=np.float32)
        out.std = np.asarray(state["std"], dtype=np.float32)
        if out.mean.shape != out.std.shape or out.mean.shape[0] != int(out.keep.sum()):
            raise ValueError("Inconsistent normalisation statistics (keep/mean/std shapes disagree).")
        return out

    def _check(self) -> None:
        if not self.fitted:
            raise RuntimeError("The expression scaler is not fitted: train the model first.")
