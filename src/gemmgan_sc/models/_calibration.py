"""Calibration of a generator's output (z-scored scale: per gene, and optionally its covariance), fitted on the
training split."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

#: groups with fewer training rows than this use the pooled calibration
MIN_GROUP_ROWS = 10
#: quantile levels of the ``method="quantiles"`` step (129: 1/128 of the rows between two knots)
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 129)
METHODS = ("moments", "quantiles", "covariance")
#: principal components of the training rows in which ``method="covariance"`` matches the covariance, and the
#: share of each profile's component outside them that it keeps, where no validation rows choose them
COVARIANCE_COMPONENTS = 10
RESIDUAL_WEIGHT = 0.5
#: the (axes, residual weight) pairs :func:`select_covariance` tries on a model's validation rows
COVARIANCE_CANDIDATES = tuple((k, w) for k in (10, 20, 50, 100) for w in (0.0, 0.5, 1.0))


def _moments(generated: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shift, scale, noise_sd) that give ``generated`` the per-gene mean and sd of ``real``."""
    sd_gen, sd_real = generated.std(0), real.std(0)
    scale = np.where(sd_gen > sd_real, sd_real / np.maximum(sd_gen, 1e-12), 1.0)
    noise_sd = np.sqrt(np.clip(sd_real**2 - (sd_gen * scale) ** 2, 0.0, None))
    return real.mean(0) - generated.mean(0) * scale, scale, noise_sd


def _quantiles(calibrated: np.ndarray, real: np.ndarray) -> np.ndarray:
    """2 x levels x genes: the quantiles of the moment-calibrated profiles (made strictly increasing, so that
    ``np.interp`` is defined) and of the real ones."""
    gen_q = np.quantile(calibrated, QUANTILE_LEVELS, axis=0)
    gen_q = np.maximum.accumulate(gen_q + QUANTILE_LEVELS[:, None] * 1e-6, axis=0)
    return np.stack([gen_q, np.quantile(real, QUANTILE_LEVELS, axis=0)])


def _group_centred(x: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
    """``x`` minus its group's mean (rows x K integer ``codes``), or minus the mean of all rows without codes."""
    if codes is None:
        return x - x.mean(0)
    _, which = np.unique(codes, axis=0, return_inverse=True)
    which = np.asarray(which).reshape(-1)
    means = np.stack([x[which == g].mean(0) for g in range(which.max() + 1)])
    return x - means[which]


def gaussian_transport(source_cov: np.ndarray, target_cov: np.ndarray) -> np.ndarray:
    """The symmetric matrix ``T`` of the optimal-transport (Monge) map between centred Gaussians with covariances
    ``source_cov`` and ``target_cov``: ``T @ source_cov @ T == target_cov``, and among the linear maps that do
    this it moves points the least (the 2-Wasserstein map of the Frechet distance).

    Examples
    --------
    >>> a, b = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([[1.0, -0.3], [-0.3, 0.5]])
    >>> t = gaussian_transport(a, b)
    >>> bool(np.allclose(t @ a @ t, b))
    True
    """
    from ..metrics._frechet import _sqrt_psd

    half = _sqrt_psd(source_cov)
    # directions the source does not fill (sd below 1e-6 of the largest) are mapped to 0, not amplified
    inv_half = np.linalg.pinv(half, rcond=1e-6, hermitian=True)
    middle = half @ target_cov @ half
    return inv_half @ _sqrt_psd((middle + middle.T) / 2.0) @ inv_half


def _principal_axes(real: np.ndarray, real_codes: np.ndarray | None, n_components: int) -> np.ndarray:
    """genes x k: the top principal axes of the training rows (within label groups, if given)."""
    from sklearn.utils.extmath import randomized_svd

    k = int(min(n_components, real.shape[1], len(real) - 1))
    return randomized_svd(_group_centred(real, real_codes), k, random_state=0)[2].T


def _covariance_map(generated: np.ndarray, real: np.ndarray, gen_codes: np.ndarray | None,
                    real_codes: np.ndarray | None, basis: np.ndarray, residual_weight: float) -> np.ndarray:
    """``T - w I`` (k x k), ``T`` the Gaussian transport of the generated profiles' covariance in the axes
    ``basis`` (genes x k) onto the real rows' (within label groups, if given), ``w`` the residual weight."""
    gen_cov, real_cov = (np.atleast_2d(np.cov(_group_centred(x, c) @ basis, rowvar=False))  # k may be 1
                         for x, c in ((generated, gen_codes), (real, real_codes)))
    return gaussian_transport(gen_cov, real_cov) - residual_weight * np.eye(len(gen_cov))


def _apply_covariance(z: np.ndarray, basis: np.ndarray, mapping: np.ndarray, residual_weight: float = 1.0) -> np.ndarray:
    """``T`` on the component of ``z`` in the axes, ``w`` times the rest (``mapping = T - w I``)."""
    return residual_weight * z + ((z @ basis) @ mapping) @ basis.T


def _map_quantiles(z: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Each gene of ``z`` through its piecewise-linear quantile map (``table``: 2 x levels x genes)."""
    return np.stack([np.interp(z[:, g], table[0, :, g], table[1, :, g]) for g in range(z.shape[1])], axis=1)


def _covariance_inputs(generated, real, generated_groups, real_groups) -> tuple[np.ndarray, np.ndarray, list]:
    """float64 ``generated`` and ``real``, and their group codes as rows x K integer arrays (or Nones)."""
    generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
    codes = [None if g is None else np.asarray(g, np.int64).reshape(len(x), -1)
             for g, x in ((generated_groups, generated), (real_groups, real))]
    return generated, real, codes


def _check_residual_weight(weight) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating, np.integer)) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"residual_weight must be a number in [0, 1], got {weight!r}.")
    return float(weight)


class OutputCalibration:
    """``z -> z * scale + shift + noise_sd * eps`` per gene (``eps`` standard normal, drawn with the sampling seed).

    Fitted so that profiles generated from the training rows' conditions get the training rows' per-gene mean
    and sd: a gene whose generated sd is too large is scaled down; one whose sd is too small gets independent
    Gaussian noise for the missing variance, as the residual noise of :class:`gemmgan_sc.GaussianBaseline`.
    A generator's output has the low-dimensional structure of its latent space; without that residual noise
    its profiles sit closer to each other than real ones do, and the k-NN recall of held-out rows is ~0.

    With ``groups`` (the label codes of each row of a label-conditioned model) the calibration is fitted per
    group, so each class keeps its own per-gene mean and sd: a pooled shift would move every class by the
    pooled error and blur the classes a classifier trained on synthetic data must tell apart. Groups with fewer
    than :data:`MIN_GROUP_ROWS` training rows, and groups never seen in training, use the pooled calibration.

    ``method="quantiles"`` then maps each gene of the moment-calibrated profiles through a monotone
    piecewise-linear map onto the training rows' quantiles (per group where fitted per group), so each gene gets
    the training rows' whole marginal, point masses included: z-scores of genes with zero counts in many samples
    sit at one value per cohort, a signal a random forest trained on synthetic data needs (on TCGA LUAD/BLCA, its
    train-on-synthetic accuracy goes from 0.64 to 1.00) but that a mean and sd cannot carry. Its independent
    per-gene tails cost k-NN precision and recall (benchmarks/results/calibration_study).

    ``method="covariance"`` first moves the profiles by the optimal-transport map between Gaussians
    (:func:`gaussian_transport`) that gives them the training rows' covariance in the training rows' top
    ``n_components`` principal axes (within label groups, where fitted per group), the directions that hold the
    gene-gene correlation structure, and keeps the share ``residual_weight`` of each profile's component outside
    them; then the moments as above, whose per-gene noise refills the variance taken away. The map is fixed: each
    profile is moved on its own, as with the other methods. A generator's correlations outside the top axes are
    learnt from few rows and are mostly noise; on TCGA, shrinking them towards the independent noise of
    :class:`gemmgan_sc.GaussianBaseline` lowers the held-out correlation error and the detectability of every
    model (benchmarks/results/calibration_study). :func:`select_covariance` picks both numbers on validation rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> real = rng.normal(0.0, 1.0, (500, 3))
    >>> cal = OutputCalibration.fit(rng.normal(0.3, 0.5, (4000, 3)), real)
    >>> out = cal.apply(rng.normal(0.3, 0.5, (4000, 3)), rng.normal(size=(4000, 3)))
    >>> bool(np.abs(out.mean(0) - real.mean(0)).max() < 0.05), bool(np.abs(out.std(0) / real.std(0) - 1).max() < 0.05)
    (True, True)
    """

    def __init__(self, shift: np.ndarray, scale: np.ndarray, noise_sd: np.ndarray | None = None,
                 group_codes: np.ndarray | None = None, group_shift: np.ndarray | None = None,
                 group_scale: np.ndarray | None = None, group_noise_sd: np.ndarray | None = None,
                 quantiles: np.ndarray | None = None, group_quantiles: np.ndarray | None = None,
                 covariance_basis: np.ndarray | None = None, covariance_map: np.ndarray | None = None,
                 residual_weight: float = 1.0) -> None:
        self.shift = np.asarray(shift, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.noise_sd = np.zeros_like(self.shift) if noise_sd is None else np.asarray(noise_sd, dtype=np.float32)
        if not (self.shift.shape == self.scale.shape == self.noise_sd.shape) or self.shift.ndim != 1:
            raise ValueError(f"shift, scale and noise_sd must be 1-D of one length, got {self.shift.shape}, "
                             f"{self.scale.shape} and {self.noise_sd.shape}.")
        self.group_codes = None if group_codes is None else np.asarray(group_codes, dtype=np.int64).reshape(len(group_codes), -1)
        self.groups = None
        if self.group_codes is not None:
            self.groups = tuple(np.asarray(a, dtype=np.float32) for a in (group_shift, group_scale, group_noise_sd))
            if any(a.shape != (len(self.group_codes), len(self.shift)) for a in self.groups):
                raise ValueError(f"group parameters must be {len(self.group_codes)} x {len(self.shift)} "
                                 f"(groups x genes), got {[a.shape for a in self.groups]}.")
        self.quantiles = None if quantiles is None else np.asarray(quantiles, dtype=np.float32)
        self.group_quantiles = None if group_quantiles is None else np.asarray(group_quantiles, dtype=np.float32)
        if self.quantiles is not None and (self.quantiles.ndim != 3 or self.quantiles.shape[0] != 2
                                           or self.quantiles.shape[2] != len(self.shift)):
            raise ValueError(f"quantiles must be 2 x levels x {len(self.shift)}, got {self.quantiles.shape}.")
        if (self.group_quantiles is not None) != (self.quantiles is not None and self.group_codes is not None):
            raise ValueError("group_quantiles go with quantiles and group codes, and only with both.")
        self.covariance = None
        if (covariance_basis is None) != (covariance_map is None):
            raise ValueError("covariance_basis and covariance_map go together: give both or neither.")
        if covariance_basis is not None:
            self.covariance = tuple(np.ascontiguousarray(a, np.float32) for a in (covariance_basis, covariance_map))
            k = self.covariance[1].shape[0]
            if self.covariance[0].shape != (len(self.shift), k) or self.covariance[1].shape != (k, k):
                raise ValueError(f"covariance_basis must be {len(self.shift)} x k and covariance_map k x k, got "
                                 f"{self.covariance[0].shape} and {self.covariance[1].shape}.")
        if self.covariance is not None and self.quantiles is not None:
            raise ValueError("A calibration has either the covariance map or the quantile map, not both.")
        self.residual_weight = _check_residual_weight(residual_weight)

    @classmethod
    def fit(cls, generated: np.ndarray, real: np.ndarray, generated_groups: np.ndarray | None = None,
            real_groups: np.ndarray | None = None, method: str = "moments", seed: int = 0,
            n_components: int | None = None, residual_weight: float | None = None) -> "OutputCalibration":
        """Match the per-gene mean and sd of ``generated`` to ``real`` (both rows x genes, z-scored scale).

        ``generated_groups`` / ``real_groups`` (rows x K integer codes, e.g. the label codes of the condition of
        each row) fit one calibration per group as well; give both or neither. ``method="quantiles"`` adds the
        quantile map (its noise for fitting drawn with ``seed``); ``method="covariance"`` puts the covariance map
        in ``n_components`` principal axes (default :data:`COVARIANCE_COMPONENTS`), keeping the share
        ``residual_weight`` in [0, 1] (default :data:`RESIDUAL_WEIGHT`) of the component outside them, before the
        moments.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        if method == "covariance":
            n_components = COVARIANCE_COMPONENTS if n_components is None else n_components
            if int(n_components) < 1:
                raise ValueError(f"n_components must be a positive integer, got {n_components!r}.")
            residual_weight = _check_residual_weight(RESIDUAL_WEIGHT if residual_weight is None else residual_weight)
            if min(np.shape(real)[1], len(real) - 1) < 2:
                logger.warning("%d training rows x %d genes: too few for a covariance; the calibration matches "
                               "the per-gene moments only.", len(real), np.shape(real)[1])
                return cls._fit_moments(generated, real, generated_groups, real_groups)
            generated, real, codes = _covariance_inputs(generated, real, generated_groups, real_groups)
            basis = _principal_axes(real, codes[1], n_components)
            return cls._fit_covariance(generated, real, codes, basis, residual_weight)
        moments = cls._fit_moments(generated, real, generated_groups, real_groups)
        if method == "moments":
            return moments
        groups = None if generated_groups is None else np.asarray(generated_groups, np.int64).reshape(len(generated), -1)
        noise = np.random.default_rng(seed).standard_normal(np.shape(generated)).astype(np.float32)
        calibrated = moments.apply(generated, noise, groups)
        state = moments.state()
        state["quantiles"] = _quantiles(calibrated, real)
        if moments.group_codes is not None:
            real_codes = np.asarray(real_groups, np.int64).reshape(len(real), -1)
            state["group_quantiles"] = np.stack([
                _quantiles(calibrated[(groups == code).all(1)], np.asarray(real)[(real_codes == code).all(1)])
                for code in moments.group_codes])
        return cls.from_state(state)

    @classmethod
    def _fit_covariance(cls, generated: np.ndarray, real: np.ndarray, codes: list, basis: np.ndarray,
                        residual_weight: float) -> "OutputCalibration":
        mapping = _covariance_map(generated, real, *codes, basis, residual_weight)
        moved = _apply_covariance(generated, basis, mapping, residual_weight)
        moments = cls._fit_moments(moved, real, *codes)
        return cls.from_state({**moments.state(), "covariance_basis": basis, "covariance_map": mapping,
                               "covariance_residual": np.array([residual_weight])})

    @classmethod
    def _fit_moments(cls, generated, real, generated_groups, real_groups) -> "OutputCalibration":
        generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
        if generated.shape[1] != real.shape[1]:
            raise ValueError(f"generated has {generated.shape[1]} genes, real {real.shape[1]}.")
        pooled = _moments(generated, real)
        if (generated_groups is None) != (real_groups is None):
            raise ValueError("Give both generated_groups and real_groups, or neither.")
        if generated_groups is None:
            return cls(*pooled)
        gen_codes, real_codes = (np.asarray(c, np.int64).reshape(len(c), -1) for c in (generated_groups, real_groups))
        if len(gen_codes) != len(generated) or len(real_codes) != len(real):
            raise ValueError(f"{len(gen_codes)} / {len(real_codes)} group codes for {len(generated)} generated and "
                             f"{len(real)} real rows.")
        codes, params = [], []
        for code in np.unique(real_codes, axis=0):
            in_real, in_gen = (real_codes == code).all(1), (gen_codes == code).all(1)
            if in_real.sum() >= MIN_GROUP_ROWS and in_gen.sum() >= MIN_GROUP_ROWS:
                codes.append(code)
                params.append(_moments(generated[in_gen], real[in_real]))
        if not codes:
            return cls(*pooled)
        return cls(*pooled, np.stack(codes), *(np.stack(p) for p in zip(*params)))

    @property
    def adds_noise(self) -> bool:
        return bool((self.noise_sd > 0).any() or (self.groups is not None and (self.groups[2] > 0).any()))

    def _per_row(self, n: int, groups: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """(shift, scale, noise_sd) per row: the group's where it has one, else the pooled."""
        pooled = (self.shift, self.scale, self.noise_sd)
        if self.group_codes is None:
            return pooled
        if groups is None:
            raise ValueError("This calibration is fitted per label group: pass the group codes of the rows.")
        groups = np.asarray(groups, np.int64).reshape(n, -1)
        match = (groups[:, None, :] == self.group_codes[None, :, :]).all(-1)  # rows x groups
        which = np.where(match.any(1), match.argmax(1), -1)
        return tuple(np.where((which >= 0)[:, None], g[np.maximum(which, 0)], p) for g, p in zip(self.groups, pooled))

    def apply(self, z: np.ndarray, noise: np.ndarray | None = None, groups: np.ndarray | None = None) -> np.ndarray:
        """Calibrated ``z``; ``noise`` (standard normal, same shape) is required when the calibration adds noise,
        ``groups`` (rows x K codes) when it was fitted per group."""
        z = np.asarray(z, np.float32)
        if self.covariance is not None:
            z = _apply_covariance(z, *self.covariance, self.residual_weight)
        shift, scale, noise_sd = self._per_row(len(z), groups)
        out = z * scale + shift
        if self.adds_noise:
            if noise is None or np.shape(noise) != out.shape:
                raise ValueError("This calibration adds per-gene noise: pass standard-normal noise of z's shape.")
            out = out + np.asarray(noise, np.float32) * noise_sd
        if self.quantiles is not None:
            out = self._apply_quantiles(out, groups)
        return out.astype(np.float32)

    def _apply_quantiles(self, z: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        if self.group_codes is None:
            return _map_quantiles(z, self.quantiles)
        groups = np.asarray(groups, np.int64).reshape(len(z), -1)
        match = (groups[:, None, :] == self.group_codes[None, :, :]).all(-1)
        which = np.where(match.any(1), match.argmax(1), -1)
        out = np.empty_like(z)
        for index in np.unique(which):
            rows = which == index
            out[rows] = _map_quantiles(z[rows], self.quantiles if index < 0 else self.group_quantiles[index])
        return out

    def state(self) -> dict[str, np.ndarray]:
        out = {"shift": self.shift, "scale": self.scale, "noise_sd": self.noise_sd}
        if self.group_codes is not None:
            out.update({"group_codes": self.group_codes, "group_shift": self.groups[0], "group_scale": self.groups[1],
                        "group_noise_sd": self.groups[2]})
        if self.quantiles is not None:
            out["quantiles"] = self.quantiles
        if self.group_quantiles is not None:
            out["group_quantiles"] = self.group_quantiles
        if self.covariance is not None:
            out["covariance_basis"], out["covariance_map"] = self.covariance
            out["covariance_residual"] = np.array([self.residual_weight], np.float32)
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "OutputCalibration | None":
        """The saved calibration, or None for models saved without one (earlier versions, ``calibrate=False``)."""
        if not state:
            return None
        return cls(state["shift"], state["scale"], state.get("noise_sd"), state.get("group_codes"),
                   state.get("group_shift"), state.get("group_scale"), state.get("group_noise_sd"),
                   state.get("quantiles"), state.get("group_quantiles"), state.get("covariance_basis"),
                   state.get("covariance_map"), float(np.asarray(state.get("covariance_residual", 1.0)).reshape(-1)[0]))

    @property
    def method(self) -> str:
        if self.covariance is not None:
            return "covariance"
        return "moments" if self.quantiles is None else "quantiles"


def select_covariance(generated: np.ndarray, real: np.ndarray, generated_groups: np.ndarray | None,
                      real_groups: np.ndarray | None, validation_generated: np.ndarray, validation_real: np.ndarray,
                      validation_groups: np.ndarray | None = None, noise: np.ndarray | None = None,
                      candidates=COVARIANCE_CANDIDATES) -> tuple[OutputCalibration, list[dict]]:
    """The ``method="covariance"`` calibration, its (axes, residual weight) chosen among ``candidates`` on
    held-out rows.

    Each candidate is fitted as :meth:`OutputCalibration.fit` does (``generated`` / ``real``: profiles from the
    training rows' conditions and the training rows, z-scored; the groups as there), then applied to
    ``validation_generated`` (profiles from the validation rows' conditions, with ``validation_groups`` and the
    standard-normal ``noise``, drawn with a seed, of its shape); the one whose gene-gene correlations are closest to
    ``validation_real``'s (:func:`gemmgan_sc.metrics.correlation_mse`) is returned with every candidate's score.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> real, val = rng.normal(size=(300, 8)), rng.normal(size=(100, 8))
    >>> cal, scores = select_covariance(rng.normal(size=(2000, 8)), real, None, None,
    ...                                 rng.normal(size=(300, 8)), val, noise=rng.normal(size=(300, 8)))
    >>> cal.method, len(scores)
    ('covariance', 3)
    """
    from ..metrics import correlation_mse

    if noise is None or np.shape(noise) != np.shape(validation_generated):
        raise ValueError(f"noise must be standard-normal draws of validation_generated's shape "
                         f"{np.shape(validation_generated)}, got {None if noise is None else np.shape(noise)}.")
    if min(np.shape(real)[1], len(real) - 1) < 2:
        cal = OutputCalibration.fit(generated, real, generated_groups, real_groups, method="covariance")
        return cal, []
    generated, real, codes = _covariance_inputs(generated, real, generated_groups, real_groups)
    basis = _principal_axes(real, codes[1], max(k for k, _ in candidates))
    best, scores = None, []
    # more axes than the rows or genes allow are capped: each capped pair is tried once
    for k, weight in dict.fromkeys((min(k, basis.shape[1]), float(w)) for k, w in candidates):
        cal = OutputCalibration._fit_covariance(generated, real, codes, basis[:, :k], weight)
        out = cal.apply(validation_generated, noise, validation_groups)
        scores.append({"n_components": k, "residual_weight": weight, "corr_mse": correlation_mse(validation_real, out)})
        if best is None or scores[-1]["corr_mse"] < best[0]:
            best = (scores[-1]["corr_mse"], cal)
    return best[1], scores
