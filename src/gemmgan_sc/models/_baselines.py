"""The paper's competitors on the same base class: unconditional and label-conditioned WGAN-GP, CVAE, beta-VAE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._io import synthetic_uns
from .._settings import settings
from ..nn import VAE, Critic, Generator, LabelEmbedding
from ._base import BaseGenerativeModel
from ._wgan_base import WGANGPModel, _check_optimizer


class ExpressionSetup:
    """``setup_anndata(adata, layer=None, labels_keys=None)`` for models that read expression and labels only."""

    setup_inputs = frozenset({"labels"})

    @classmethod
    def setup_anndata(
        cls, adata, layer: str | None = None, labels_keys: Sequence[str] | None = None, expression_scale: str = "log"
    ) -> None:
        """Register the expression (``X`` or ``layer``) and the categorical ``obs`` labels.

        Examples
        --------
        >>> gg.CondWGANGP.setup_anndata(adata, labels_keys=["disease_type"])  # doctest: +SKIP
        """
        if cls.labels_required and not labels_keys:
            raise ValueError(f"{cls.__name__} is conditioned on labels: pass labels_keys=[...] (obs columns).")
        cls._setup(adata, layer=layer, text_key=None, patch_store=None, labels_keys=labels_keys,
                   expression_scale=expression_scale, use_text=False)


class UnconditionalSampler:
    """``sample(n_samples=N, seed=...)``: N profiles (default: the number of training rows)."""

    _requires_condition = False

    def _uses(self, modality: str) -> bool:
        return False

    def sample(self, n_samples: int | None = None, seed: int | None = None, batch_size: int | None = None,
               device: str | None = None, adata=None, indices=None):
        """Draw synthetic profiles.

        Parameters
        ----------
        n_samples
            Number of profiles (default: as many as training rows). With ``adata``/``indices``: profiles per row.
        seed, batch_size, device
            As in :meth:`GeMMGAN.sample`.
        adata, indices
            Optional reference rows: one profile (or ``n_samples``) per row, with the rows' ``obs`` copied, so the
            output lines up with a real set (as :func:`gemmgan_sc.metrics.evaluate` needs). The model ignores the
            rows' content: an unconditional model cannot follow their labels.

        Returns
        -------
        AnnData with the model's ``var_names``, ``X`` on the user's scale and ``obs["synthetic"] = True``.

        Examples
        --------
        >>> synth = model.sample(n_samples=500, seed=0)  # doctest: +SKIP
        """
        import anndata as ad

        from ..train import ConditionBank

        self._check_trained()
        seed = settings.seed if seed is None else seed
        if adata is not None or indices is not None:
            per_row = 1 if n_samples is None else n_samples
            if not isinstance(per_row, (int, np.integer)) or per_row < 1:
                raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
            adata, indices = self._conditioning_rows(adata, indices)
            rows = np.repeat(indices, per_row)
            z = self._generate(ConditionBank(), np.arange(len(rows)), seed, int(batch_size or 256),
                               self._sampling_device(device))
            return self._synthetic_anndata(adata, rows, z, per_row)
        n = len(self.split["train"]) if n_samples is None else n_samples
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
        z = self._generate(ConditionBank(), np.arange(n), seed, int(batch_size or 256), self._sampling_device(device))
        obs = pd.DataFrame({"synthetic": True}, index=[f"synth{i}" for i in range(n)])
        out = ad.AnnData(self.scaler.inverse_transform(z).astype(np.float32), obs=obs,
                         var=pd.DataFrame(index=self.var_names.copy()))
        out.uns["gemmgan_synthetic"] = synthetic_uns(type(self).__name__, int(n))
        return out


class LabelSampler:
    """Sampling from the labels of given rows (default: the training rows) or from label counts."""

    labels_required = True
    _requires_condition = False

    def _uses(self, modality: str) -> bool:
        return modality == "labels"

    def sample(self, adata=None, indices=None, n_samples: int = 1, seed: int | None = None,
               labels: Mapping[str, Mapping[str, int]] | None = None, batch_size: int | None = None,
               device: str | None = None):
        """Generate profiles from labels.

        Parameters
        ----------
        adata, indices
            Rows whose labels to generate from (default: the model's training rows).
        n_samples
            Profiles per row.
        labels
            Instead of rows, counts per category, e.g. ``{"disease_type": {"LUAD": 100, "BLCA": 50}}``. Other label
            columns of the model are taken from training rows of that category (drawn at random), so combinations
            stay realistic.
        seed, batch_size, device
            As in :meth:`GeMMGAN.sample`.

        Returns
        -------
        AnnData with the labels it was generated from in ``obs`` and ``obs["synthetic"] = True``.

        Examples
        --------
        >>> synth = model.sample(labels={"disease_type": {"LUAD": 100, "BLCA": 100}}, seed=0)  # doctest: +SKIP
        """
        import anndata as ad

        self._check_trained()
        seed = settings.seed if seed is None else seed
        if labels is not None:
            if adata is not None or indices is not None:
                raise ValueError("Give either labels=... or adata/indices, not both.")
            obs = self._obs_from_counts(labels, seed)
            adata, indices = ad.AnnData(obs=obs), np.arange(len(obs))
        elif adata is None and indices is None:
            adata, indices = self.adata, self.split["train"]
        else:
            adata, indices = self._conditioning_rows(adata, indices)
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
        bank = self._make_bank(adata, with_expression=False)
        rows = np.repeat(np.asarray(indices), n_samples)
        z = self._generate(bank, rows, seed, int(batch_size or 256), self._sampling_device(device))
        return self._synthetic_anndata(adata, rows, z, n_samples)

    def _obs_from_counts(self, labels, seed) -> pd.DataFrame:
        keys = self.registry.labels_keys
        if not isinstance(labels, Mapping) or len(labels) != 1:
            raise ValueError("labels must be a dict with one label key, e.g. {'disease_type': {'LUAD': 100}}.")
        (key, counts), = labels.items()
        if key not in keys:
            raise KeyError(f"{key!r} is not a label of this model (labels: {keys}).")
        train_obs = self.adata.obs.iloc[self.split["train"]][keys].astype(str)
        rng = np.random.default_rng(seed)
        parts = []
        for cat, count in counts.items():
            if str(cat) not in self.registry.categories[key]:
                raise ValueError(f"Unknown category {cat!r} of {key!r}; known: {self.registry.categories[key]}.")
            if not isinstance(count, (int, np.integer)) or count < 0:
                raise ValueError(f"Count of {key}={cat!r} must be an int >= 0, got {count!r}.")
            pool = train_obs[train_obs[key] == str(cat)]
            if len(pool) == 0:
                pool = pd.DataFrame({k: [str(cat) if k == key else train_obs[k].iloc[0]] for k in keys})
            parts.append(pool.iloc[rng.integers(0, len(pool), size=int(count))])
        obs = pd.concat(parts) if parts else train_obs.iloc[:0]
        obs.index = [f"label{i}" for i in range(len(obs))]
        for k in keys:
            obs[k] = pd.Categorical(obs[k], categories=self.registry.categories[k])
        return obs


def _check_hidden(hp: dict) -> None:
    hp["hidden"] = tuple(int(h) for h in hp["hidden"])
    if not hp["hidden"] or min(hp["hidden"]) < 1:
        raise ValueError(f"hidden must be a non-empty sequence of positive ints, got {hp['hidden']!r}.")
    if not isinstance(hp["n_latent"], int) or hp["n_latent"] < 1:
        raise ValueError(f"n_latent must be a positive int, got {hp['n_latent']!r}.")


class WGANGP(UnconditionalSampler, ExpressionSetup, WGANGPModel):
    """Unconditional WGAN-GP (the paper's Table 1 baseline), trained exactly like :class:`GeMMGAN`.

    Examples
    --------
    >>> gg.WGANGP.setup_anndata(adata)  # doctest: +SKIP
    >>> synth = gg.WGANGP(adata).train(max_epochs=500).sample(n_samples=1000)  # doctest: +SKIP
    """

    _default_hparams: dict[str, Any] = {"n_latent": 256, "hidden": (256, 256)}

    def _validate_hparams(self) -> None:
        _check_hidden(self.hparams)

    def _build_networks(self, n_genes: int):
        from ..train._wgan import WGANGPNetworks

        hp = self.hparams
        return WGANGPNetworks(Generator(hp["n_latent"], 0, n_genes, hp["hidden"]), Critic(n_genes, 0, hp["hidden"]))


class CondWGANGP(LabelSampler, ExpressionSetup, WGANGPModel):
    """WGAN-GP conditioned on categorical labels through learned embeddings (the paper's competitor).

    Examples
    --------
    >>> gg.CondWGANGP.setup_anndata(adata, labels_keys=["disease_type", "primary_site"])  # doctest: +SKIP
    >>> model = gg.CondWGANGP(adata).train(max_epochs=500)  # doctest: +SKIP
    """

    _default_hparams: dict[str, Any] = {"n_latent": 256, "hidden": (256, 256), "embedding_dim": 32}

    def _validate_hparams(self) -> None:
        _check_hidden(self.hparams)

    def _cardinalities(self) -> list[int]:
        return [len(self.registry.categories[k]) for k in self.registry.labels_keys]

    def _build_networks(self, n_genes: int):
        from ..train._wgan import WGANGPNetworks

        hp = self.hparams
        gen_emb = LabelEmbedding(self._cardinalities(), hp["embedding_dim"])
        crit_emb = LabelEmbedding(self._cardinalities(), hp["embedding_dim"])
        return WGANGPNetworks(
            Generator(hp["n_latent"], gen_emb.out_dim, n_genes, hp["hidden"]),
            Critic(n_genes, crit_emb.out_dim, hp["hidden"]), gen_emb, crit_emb,
        )


class VAEModel(BaseGenerativeModel):
    """Base of the VAE models: reconstruction + beta KL, Adam; presets ``"default"`` (the convergence study's)
    and ``"paper"`` (300 epochs, lr 1e-3)."""

    _presets: dict[str, dict[str, Any]] = {
        "default": {"batch_size": 64, "max_steps": 3000, "max_epochs": None, "patience": 30, "optimizer": "adam",
                    "lr": 1e-3, "betas": (0.9, 0.999), "lr_halving_every": None},
        "paper": {"max_epochs": 300, "max_steps": None},
    }

    def _validate_plan_kwargs(self, kwargs: dict[str, Any]) -> None:
        _check_optimizer(kwargs)

    def _make_plan(self, bank, train_idx, val_idx, **kwargs):
        from ..train._vae import VAEPlan

        return VAEPlan(self.networks, bank, train_idx, val_idx, beta=self.hparams["beta"], **kwargs)

    def _validate_hparams(self) -> None:
        _check_hidden(self.hparams)
        if not float(self.hparams["beta"]) >= 0:
            raise ValueError(f"beta must be >= 0, got {self.hparams['beta']!r}.")

    def train(self, max_steps: int | None = None, max_epochs: int | None = None, batch_size: int | None = None,
              preset: str = "default", **kwargs: Any):
        """Train the VAE: ``max_steps`` optimiser steps (default 3,000, early stopping on the validation Frechet
        distance) or ``max_epochs``; ``optimizer``, ``lr`` (1e-3), ``betas``, ``lr_halving_every`` and the shared
        arguments of :meth:`BaseGenerativeModel.train`.

        Examples
        --------
        >>> model.train(max_steps=2000, seed=0)  # doctest: +SKIP
        """
        return super().train(max_steps=max_steps, max_epochs=max_epochs, batch_size=batch_size, preset=preset,
                             **kwargs)


class CVAE(LabelSampler, ExpressionSetup, VAEModel):
    """Conditional VAE on categorical labels (learned embeddings concatenated to encoder and decoder inputs).

    Examples
    --------
    >>> gg.CVAE.setup_anndata(adata, labels_keys=["disease_type"])  # doctest: +SKIP
    >>> synth = gg.CVAE(adata).train(max_epochs=300).sample(seed=0)  # doctest: +SKIP
    """

    _default_hparams: dict[str, Any] = {"n_latent": 64, "hidden": (256, 256), "embedding_dim": 32, "beta": 1.0}

    def _build_networks(self, n_genes: int):
        cards = [len(self.registry.categories[k]) for k in self.registry.labels_keys]
        hp = self.hparams
        return VAE(n_genes, hp["n_latent"], hp["hidden"], LabelEmbedding(cards, hp["embedding_dim"]))


class BetaVAE(UnconditionalSampler, ExpressionSetup, VAEModel):
    """The expression beta-VAE of RNA-GAN (Carrillo-Perez et al. 2023): MLP with batch norm and LeakyReLU, beta 0.005.

    Examples
    --------
    >>> gg.BetaVAE.setup_anndata(adata)  # doctest: +SKIP
    >>> synth = gg.BetaVAE(adata, n_latent=200).train(max_epochs=300).sample(n_samples=500)  # doctest: +SKIP
    """

    _default_hparams: dict[str, Any] = {"n_latent": 200, "hidden": (1024, 512), "beta": 0.005}

    def _build_networks(self, n_genes: int):
        hp = self.hparams
        return VAE(n_genes, hp["n_latent"], hp["hidden"], None, batch_norm=True)
