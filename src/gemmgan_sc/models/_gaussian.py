"""The floor every generator must beat: a Gaussian in the principal components plus per-gene residual noise."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ._base import BaseGenerativeModel
from ._baselines import ExpressionSetup, UnconditionalSampler


class GaussianNetworks(nn.Module):
    """Buffers of a fitted Gaussian: PCA axes, class means and the pooled within-class covariance (Cholesky) in
    PC space, and the sd of what the PCs leave out, per gene. ``generate`` maps N(0, 1) noise to z-scored profiles.
    """

    def __init__(self, n_genes: int, n_components: int, cardinalities: list[int]) -> None:
        super().__init__()
        self.cardinalities = [int(c) for c in cardinalities]
        n_classes = int(np.prod(self.cardinalities)) if self.cardinalities else 1
        self.n_components = int(n_components)
        self.register_buffer("center", torch.zeros(n_genes))
        self.register_buffer("axes", torch.zeros(self.n_components, n_genes))
        self.register_buffer("class_means", torch.zeros(n_classes + 1, self.n_components))  # last row: all rows
        self.register_buffer("chol", torch.zeros(self.n_components, self.n_components))
        self.register_buffer("residual_sd", torch.zeros(n_genes))

    @property
    def n_latent(self) -> int:
        return self.n_components + self.center.shape[0]

    def class_index(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        """Joint class of each row's label codes (unseen or no labels: the last row, the mean of all rows)."""
        if labels is None or not self.cardinalities:
            return torch.full((n,), self.class_means.shape[0] - 1, dtype=torch.long, device=self.center.device)
        index = torch.zeros(n, dtype=torch.long, device=labels.device)
        for k, card in enumerate(self.cardinalities):
            index = index * card + labels[:, k].long()
        return index

    @torch.no_grad()
    def fit(self, x: np.ndarray, labels: np.ndarray | None) -> None:
        """Fit on the z-scored training rows ``x`` (n x genes) and their label codes (n x K, or None)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        center = x.mean(0)
        axes = _principal_axes(x - center, self.n_components)
        pcs = (x - center) @ axes.T
        classes = self.class_index(None if labels is None else torch.as_tensor(labels), len(x))
        means = self.class_means.double().clone()
        means[-1] = pcs.mean(0)
        for c in classes.unique().tolist():
            means[c] = pcs[classes == c].mean(0)
        within = pcs - means[classes]
        cov = within.T @ within / max(1, len(x) - len(classes.unique()))
        jitter = 1e-6 * float(cov.diagonal().mean()) * torch.eye(len(cov), dtype=cov.dtype)
        self.center.copy_(center)
        self.axes.copy_(axes)
        self.class_means.copy_(means)
        self.chol.copy_(torch.linalg.cholesky(cov + jitter))
        self.residual_sd.copy_((x - center - pcs @ axes).std(0))

    def generate(self, cond: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        k = self.n_components
        mean = self.class_means[self.class_index(cond.get("labels"), z.shape[0])]
        pcs = mean + z[:, :k] @ self.chol.T
        return self.center + pcs @ self.axes + z[:, k:] * self.residual_sd


def _principal_axes(centred: torch.Tensor, k: int) -> torch.Tensor:
    """Top ``k`` right singular vectors (k x genes), from the smaller of the two Gram matrices."""
    if centred.shape[0] >= centred.shape[1]:
        return torch.linalg.svd(centred, full_matrices=False)[2][:k]
    values, vectors = torch.linalg.eigh(centred @ centred.T)  # rows x rows: cheap when rows << genes
    order = torch.argsort(values, descending=True)[:k]
    axes = (centred.T @ vectors[:, order]) / values[order].clamp_min(1e-12).sqrt()
    return axes.T


class GaussianBaseline(UnconditionalSampler, ExpressionSetup, BaseGenerativeModel):
    """Multivariate Gaussian in the top principal components of the training rows, plus per-gene residual noise.

    The reference row of every quality table: a generator that does not beat it has learned nothing a
    one-second fit does not. PCA and covariance are fitted on the training split of the z-scored expression;
    with ``labels_keys`` at setup, each label combination gets its own mean in PC space (covariance pooled
    within classes), so ``sample(adata, indices)`` follows the rows' labels.

    Parameters
    ----------
    adata
        AnnData set up with :meth:`setup_anndata`.
    n_components
        Principal components of the Gaussian part (at most training rows - 1).

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> adata = gg.datasets.demo(n_samples=60)  # doctest: +SKIP
    >>> gg.GaussianBaseline.setup_anndata(adata, layer="log1p", labels_keys=["disease_type"])  # doctest: +SKIP
    >>> synth = gg.GaussianBaseline(adata).train().sample(seed=0)  # doctest: +SKIP
    """

    _default_hparams: dict[str, Any] = {"n_components": 50}
    labels_required = False

    def _validate_hparams(self) -> None:
        n = self.hparams["n_components"]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_components must be a positive int, got {n!r}.")

    def _uses(self, modality: str) -> bool:
        return modality == "labels" and bool(self.registry.labels_keys)

    def _build_networks(self, n_genes: int) -> GaussianNetworks:
        n_train = len(self.split["train"]) if self.split is not None else self.hparams["n_components"] + 1
        k = min(int(self.hparams["n_components"]), n_genes, max(1, n_train - 1))
        cards = [len(self.registry.categories[key]) for key in self.registry.labels_keys]
        return GaussianNetworks(n_genes, k, cards)

    def train(self, train_size: float = 0.8, seed: int | None = None) -> "GaussianBaseline":
        """Fit on the training split (``train_size`` of the rows, drawn with ``seed``); returns the model.

        Examples
        --------
        >>> model = gg.GaussianBaseline(adata).train(seed=0)  # doctest: +SKIP
        """
        from .._settings import settings

        start = time.perf_counter()
        seed = settings.seed if seed is None else seed
        self.registry.validate(self.adata, check_categories=False)
        self._prepare_split(train_size, seed)
        rows = self.split["train"]
        labels = self._label_codes(self.adata)
        self.networks.fit(self.scaler.transform(self._expression(self.adata)[rows]),
                          None if labels is None else labels[rows])
        self.networks.eval()
        self._history = [{"epoch": 0, "step": 0, "time": time.perf_counter() - start}]
        self.train_params = {"train_size": float(train_size), "seed": seed}
        self.is_trained = True
        return self

    def sample(self, n_samples: int | None = None, seed: int | None = None, batch_size: int | None = None,
               device: str | None = None, adata=None, indices=None):
        """Draw profiles; as :meth:`WGANGP.sample`, except that with labels at setup the draws follow the labels
        of the given rows (without rows: of training rows drawn at random).

        Examples
        --------
        >>> synth = model.sample(n_samples=500, seed=0)  # doctest: +SKIP
        """
        if not self.registry.labels_keys:
            return super().sample(n_samples, seed, batch_size, device, adata, indices)
        self._check_trained()
        if adata is not None or indices is not None:
            return BaseGenerativeModel.sample(self, adata, indices, n_samples=1 if n_samples is None else n_samples,
                                              seed=seed, batch_size=batch_size, device=device)
        n = len(self.split["train"]) if n_samples is None else n_samples
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
        rows = np.random.default_rng(seed).choice(self.split["train"], size=int(n))
        out = BaseGenerativeModel.sample(self, None, rows, seed=seed, batch_size=batch_size, device=device)
        out.obs_names = [f"synth{i}" for i in range(out.n_obs)]
        return out
