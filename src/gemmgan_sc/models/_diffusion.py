"""ExpressionDiffusion: a denoising diffusion model of z-scored expression on the conditions of the other models."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..nn import CONDITIONING_MODES, LabelEmbedding, resolve_conditioning
from ..nn._diffusion import Denoiser, check_sampling
from ._base import BaseGenerativeModel
from ._baselines import LabelSampler, UnconditionalSampler
from ._fusion_model import FusionConditioned
from ._wgan_base import _check_optimizer

#: ``conditioning`` values besides the fusion modes of GeMM-GAN
_OTHER_CONDITIONING = ("auto", "labels", "none")


class ExpressionDiffusion(LabelSampler, FusionConditioned, BaseGenerativeModel):
    """Denoising diffusion model (DDPM / DDIM) of the z-scored expression, conditioned like the other models.

    A residual-MLP denoiser with a timestep embedding (:class:`gemmgan_sc.nn.Denoiser`) learns to predict the
    velocity ``v`` (or the noise ``eps``) of noised profiles under a cosine schedule; sampling runs DDIM with
    ``n_steps`` steps (deterministic given the initial noise) or the ancestral sampler. The condition is the
    GeMM-GAN fusion of slide patch and text embeddings (the same :class:`gemmgan_sc.nn.ConditionFusion`, every
    ablation), learned label embeddings, or nothing; with classifier-free guidance: the condition is replaced by
    a learned null condition with probability ``p_uncond`` in training, and ``guidance`` (w) mixes the two
    predictions at sampling, ``(1 + w) f(c) - w f(null)``.

    Parameters
    ----------
    adata
        AnnData set up with :meth:`setup_anndata`.
    conditioning
        ``"auto"`` (default: the fusion ``"full"`` when text or slides are set up, else ``"labels"`` when labels
        are, else ``"none"``), ``"labels"``, ``"none"``, or a fusion mode of :class:`GeMMGAN` (``"full"``,
        ``"mean_image"``, ``"text_cls"``, ``"patch_transformer"``, ``"film"``, ``"cross_attention"``).
        ``model.conditioning`` says which ran.
    prediction
        ``"v"`` (default) or ``"eps"``: what the denoiser predicts.
    n_timesteps
        Steps of the training noise schedule (T).
    sampler, n_steps
        ``"ddim"`` (default) or ``"ancestral"``, on ``n_steps`` (default 50) of the T steps; ``sampler="ancestral"``
        with ``n_steps=n_timesteps`` is the full DDPM sampler. Its per-step noise is drawn from a generator seeded
        from a hash of the initial noise, so a seed still gives the same profiles (for the same ``batch_size``).
    guidance
        Classifier-free guidance weight w >= 0 (0: the conditional model alone).
    hidden, n_blocks, emb_dim, residual, denoiser_dropout
        Denoiser width, blocks, timestep/condition embedding width, skip connections and dropout.
    embedding_dim
        Width of each label's embedding (``conditioning="labels"``).
    d_model, n_patches, n_heads, n_layers, d_ff, dropout, fusion_variant
        The fusion network's sizes, as in :class:`GeMMGAN`.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> gg.ExpressionDiffusion.setup_anndata(adata, labels_keys=["cohort"], expression_scale="any")  # doctest: +SKIP
    >>> model = gg.ExpressionDiffusion(adata).train(max_steps=4000)  # doctest: +SKIP
    >>> synth = model.sample(labels={"cohort": {"LUAD": 100, "BLCA": 100}}, seed=0)  # doctest: +SKIP
    """

    _default_hparams: dict[str, Any] = {
        "conditioning": "auto", "prediction": "v", "n_timesteps": 1000, "sampler": "ddim", "n_steps": 50,
        "guidance": 0.0, "hidden": 512, "n_blocks": 3, "emb_dim": 128, "residual": True, "denoiser_dropout": 0.0,
        "embedding_dim": 32, "d_model": 256, "n_patches": 256, "n_heads": 4, "n_layers": 2, "d_ff": 512,
        "dropout": 0.1, "fusion_variant": "paper",
    }
    _presets: dict[str, dict[str, Any]] = {
        "default": {"batch_size": 64, "max_steps": 6000, "max_epochs": None, "patience": 10, "optimizer": "adam",
                    "lr": 1e-3, "betas": (0.9, 0.999), "lr_halving_every": None, "p_uncond": 0.1,
                    "ema_decay": 0.999},
    }
    _requires_condition = False
    labels_required = False
    setup_inputs = frozenset({"text", "image", "labels"})
    _text_optional = True

    # ------------------------------------------------------------ hyperparameters
    def _validate_hparams(self) -> None:
        hp = self.hparams
        for key in ("n_timesteps", "hidden", "n_blocks", "emb_dim", "embedding_dim"):
            if isinstance(hp[key], bool) or not isinstance(hp[key], (int, np.integer)) or hp[key] < 1:
                raise ValueError(f"{key} must be a positive int, got {hp[key]!r}.")
        check_sampling(hp["n_steps"], hp["guidance"], hp["sampler"], hp["n_timesteps"], hp["prediction"])
        if not 0.0 <= float(hp["denoiser_dropout"]) < 1.0:
            raise ValueError(f"denoiser_dropout must be in [0, 1), got {hp['denoiser_dropout']!r}.")
        self._check_fusion_hparams()
        self.conditioning = self._resolve_conditioning(hp["conditioning"])

    def _resolve_conditioning(self, conditioning: str) -> str:
        reg = self.registry
        if conditioning not in CONDITIONING_MODES + _OTHER_CONDITIONING:
            raise ValueError(f"Unknown conditioning {conditioning!r}; choose one of "
                             f"{_OTHER_CONDITIONING + CONDITIONING_MODES}.")
        if conditioning == "auto":
            if reg.has_image or reg.has_text:
                conditioning = "full"
            else:
                return "labels" if reg.labels_keys else "none"
        if conditioning == "labels" and not reg.labels_keys:
            raise ValueError("conditioning='labels' needs labels: call setup_anndata(adata, labels_keys=[...]).")
        if conditioning in _OTHER_CONDITIONING:
            return conditioning
        return resolve_conditioning(conditioning, reg.has_image, reg.has_text)

    @property
    def _fused(self) -> bool:
        return self.conditioning not in _OTHER_CONDITIONING

    def _uses(self, modality: str) -> bool:
        if self._fused:
            return self._fusion_uses(modality)
        return modality == "labels" and self.conditioning == "labels"

    # ---------------------------------------------------------------- networks
    def _condition_network(self):
        if self._fused:
            return self._fusion(), self.hparams["d_model"]
        if self.conditioning == "labels":
            cards = [len(self.registry.categories[k]) for k in self.registry.labels_keys]
            emb = LabelEmbedding(cards, self.hparams["embedding_dim"])
            return emb, emb.out_dim
        return None, 0

    def _build_networks(self, n_genes: int):
        from ..nn._diffusion import CosineSchedule
        from ..train._diffusion import DiffusionNetworks

        hp = self.hparams
        condition, cond_dim = self._condition_network()
        denoiser = Denoiser(n_genes, cond_dim, hp["hidden"], hp["n_blocks"], hp["emb_dim"],
                            hp["denoiser_dropout"], bool(hp["residual"]))
        return DiffusionNetworks(denoiser, CosineSchedule(hp["n_timesteps"]), condition, hp["prediction"],
                                 hp["sampler"], hp["n_steps"], hp["guidance"])

    # ------------------------------------------------------------------- train
    def _make_plan(self, bank, train_idx, val_idx, **kwargs):
        from ..train._diffusion import DiffusionPlan

        return DiffusionPlan(self.networks, bank, train_idx, val_idx, **kwargs)

    def _validate_plan_kwargs(self, kwargs: dict[str, Any]) -> None:
        _check_optimizer(kwargs)
        p = kwargs["p_uncond"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
            raise ValueError(f"p_uncond must be in [0, 1), got {p!r}.")

    def train(self, max_steps: int | None = None, max_epochs: int | None = None, batch_size: int | None = None,
              preset: str = "default", validate_every: int = 250, **kwargs: Any) -> "ExpressionDiffusion":
        """Train the denoiser.

        Parameters
        ----------
        max_steps
            Optimiser steps (default 6,000, with early stopping on the validation Frechet distance).
        max_epochs
            Instead of ``max_steps``: passes over the training rows.
        batch_size
            Rows per step (64).
        preset
            ``"default"`` (the only one: the GAN presets of the paper do not apply).
        validate_every
            Steps between two validation scores (``val_frechet``, from ``n_steps`` sampling steps per profile:
            the costly part); ``patience`` (10) counts these scores.
        p_uncond
            Probability (0.1) of training a row on the null condition (classifier-free guidance).
        optimizer, lr, betas, lr_halving_every
            Adam (lr 1e-3, betas (0.9, 0.999)) by default.
        ema_decay
            Generate with an exponential moving average of the denoiser's (and condition network's) weights,
            updated every step with this decay (0.999, as DDPM; None disables). Chosen on the validation Frechet
            distance of TCGA (benchmarks/README.md, "Diffusion": 231 with 0.999, 248 with 0.99, 278 without).
        train_size, early_stopping, patience, restore_best, calibrate, seed, checkpoint_dir, resume, compile
            As in :meth:`BaseGenerativeModel.train`.
        accelerator, devices, precision, **kwargs
            Passed to the Lightning ``Trainer``.

        Examples
        --------
        >>> model.train(max_steps=4000, seed=0)  # doctest: +SKIP
        >>> model.history.plot(x="step", y="val_frechet")  # doctest: +SKIP
        """
        if isinstance(validate_every, bool) or not isinstance(validate_every, (int, np.integer)) or validate_every < 1:
            raise ValueError(f"validate_every must be a positive int (steps), got {validate_every!r}.")
        if "check_val_every_n_epoch" not in kwargs:
            kwargs["check_val_every_n_epoch"] = self._epochs_between_checks(int(validate_every), batch_size, preset,
                                                                            kwargs.get("train_size", 0.8))
        return super().train(max_steps=max_steps, max_epochs=max_epochs, batch_size=batch_size, preset=preset,
                             **kwargs)

    def _epochs_between_checks(self, every: int, batch_size: int | None, preset: str, train_size: float) -> int:
        if batch_size is None:
            batch_size = self._presets.get(preset, self._presets["default"]).get(
                "batch_size", self._presets["default"]["batch_size"])
        n_train = len(self.split["train"]) if self.split is not None else round(self.adata.n_obs * float(train_size))
        steps_per_epoch = max(1, math.ceil(max(1, n_train) / max(1, int(batch_size))))
        return max(1, round(every / steps_per_epoch))

    def _calibrate(self, n_draws: int | None = None, seed: int | None = 0, method: str | None = None,
                   candidates=None) -> None:
        """The base calibration on twice the training rows (at least 1,024 draws): each draw runs the sampler."""
        if n_draws is None:
            n_draws = max(1024, 2 * len(self.split["train"]))
        super()._calibrate(n_draws=n_draws, seed=seed, method=method, candidates=candidates)

    # ------------------------------------------------------------------ sample
    def sample(self, adata=None, indices=None, n_samples: int | None = None, seed: int | None = None,
               labels: Mapping[str, Mapping[str, int]] | None = None, batch_size: int | None = None,
               device: str | None = None, n_steps: int | None = None, guidance: float | None = None,
               sampler: str | None = None):
        """Generate profiles.

        Parameters
        ----------
        adata, indices
            Rows whose conditions to generate from (fusion and label models; default: the training AnnData's
            rows, for label models its training rows). An unconditional model only copies their ``obs``.
        n_samples
            Profiles per row (default 1); an unconditional model without rows draws ``n_samples`` profiles
            (default: as many as training rows).
        seed
            Seed of the initial noise (and tile draws); the same seed gives the same profiles.
        labels
            Label models: counts per category instead of rows, as :meth:`CondWGANGP.sample`.
        batch_size, device
            Rows per pass (256) and torch device.
        n_steps, guidance, sampler
            This call's sampler settings instead of the model's (the output calibration was fitted with the
            model's; n_steps >= 1, guidance >= 0).

        Returns
        -------
        AnnData with the model's ``var_names``, ``X`` on the user's scale and ``obs["synthetic"] = True``.

        Examples
        --------
        >>> synth = model.sample(seed=0)  # doctest: +SKIP
        >>> guided = model.sample(seed=0, guidance=1.0, n_steps=100)  # doctest: +SKIP
        """
        self._check_trained()
        if labels is not None and self.conditioning != "labels":
            raise ValueError(f"labels=... needs a label-conditioned model; this one is conditioned on "
                             f"{self.conditioning!r}: give adata/indices instead.")
        with self.networks.sampling(n_steps, guidance, sampler):
            if self.conditioning == "none":
                return UnconditionalSampler.sample(self, n_samples, seed, batch_size, device, adata, indices)
            per_row = 1 if n_samples is None else n_samples
            if self.conditioning == "labels":
                return LabelSampler.sample(self, adata, indices, per_row, seed, labels, batch_size, device)
            return BaseGenerativeModel.sample(self, adata, indices, per_row, seed, batch_size, device)
