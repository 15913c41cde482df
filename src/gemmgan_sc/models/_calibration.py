"""Per-gene affine calibration of a generator's output (z-scored scale), fitted on the training split."""

from __future__ import annotations

import numpy as np


class OutputCalibration:
    """``z -> z * scale + shift`` per gene, so generated profiles get the training rows' per-gene mean and sd.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> cal = OutputCalibration.fit(rng.normal(0.3, 0.5, (4000, 3)), rng.normal(0.0, 1.0, (500, 3)))
    >>> out = cal.apply(rng.normal(0.3, 0.5, (4000, 3)))
    >>> bool(np.abs(out.mean(0)).max() < 0.1), bool(np.abs(out.std(0) - 1).max() < 0.1)
    (True, True)
    """

    def __init__(self, shift: np.ndarray, scale: np.ndarray) -> None:
        self.shift = np.asarray(shift, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        if self.shift.shape != self.scale.shape or self.shift.ndim != 1:
            raise ValueError(f"shift and scale must be 1-D of one length, got {self.shift.shape} and {self.scale.shape}.")

    @classmethod
    def fit(cls, generated: np.ndarray, real: np.ndarray, max_scale: float = 4.0) -> "OutputCalibration":
        """Match the per-gene mean and sd of ``generated`` to ``real`` (both rows x genes, z-scored scale)."""
        generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
        if generated.shape[1] != real.shape[1]:
            raise ValueError(f"generated has {generated.shape[1]} genes, real {real.shape[1]}.")
        sd_gen, sd_real = generated.std(0), real.std(0)
        scale = np.where(sd_gen > 0, sd_real / np.maximum(sd_gen, 1e-12), 1.0)
        scale = np.clip(scale, 1.0 / max_scale, max_scale)
        return cls(real.mean(0) - generated.mean(0) * scale, scale)

    def apply(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, np.float32) * self.scale + self.shift).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"shift": self.shift, "scale": self.scale}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "OutputCalibration | None":
        """The saved calibration, or None for models saved without one (earlier versions, ``calibrate=False``)."""
        if not state:
            return None
        return cls(state["shift"], state["scale"])
