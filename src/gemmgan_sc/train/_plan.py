"""The training plan shared by every generator: optimisers, held-out quality score, resumable state.

A plan is a Lightning module built from its arguments (the hyperparameters of one training run). Its
``validation_step`` generates profiles from the conditions of the validation rows; at the end of the
validation epoch the Frechet distance between those profiles and the real validation rows, in the PCA
space of the training rows, is logged as ``val_frechet``: the score that early stopping and the
best-weights callback watch.
"""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

OPTIMIZERS = ("rmsprop", "adam", "adamw")


def make_optimizer(name: str, params, lr: float, betas: tuple[float, float] = (0.5, 0.9)) -> torch.optim.Optimizer:
    """RMSprop (the authors' code), Adam or AdamW with ``betas`` (WGAN-GP's (0.5, 0.9) by default)."""
    name = str(name).lower()
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=0.01)
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {OPTIMIZERS}.")


def ema_with_warmup(decay: float):
    """``multi_avg_fn`` of :class:`torch.optim.swa_utils.AveragedModel`: an exponential moving average whose
    decay after ``n`` updates is ``min(decay, (1 + n) / (10 + n))`` (the warm-up of TensorFlow's
    ``ExponentialMovingAverage``), so a short run is not averaged with its untrained first weights.

    Examples
    --------
    >>> import torch
    >>> avg, new = [torch.zeros(2)], [torch.ones(2)]
    >>> ema_with_warmup(0.99)(avg, new, torch.tensor(1))  # decay 2 / 11 after one update
    >>> round(float(avg[0][0]), 4)
    0.8182
    """
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = n_averaged.to(torch.float64)
        weight = 1.0 - torch.clamp((1.0 + n) / (10.0 + n), max=float(decay))
        for avg, cur in zip(averaged, current, strict=True):
            avg.lerp_(cur, weight.to(avg.dtype))

    return update


class TrainingPlan(pl.LightningModule):
    """Base of the WGAN-GP, VAE and diffusion plans.

    Parameters
    ----------
    networks
        The model's torch module; it must implement ``generate(conditions, z)`` and ``n_latent``.
    bank
        :class:`~gemmgan_sc.train.ConditionBank` of every row (training and validation).
    train_idx, val_idx
        Rows of the bank in the training and validation splits.
    optimizer, lr, betas
        Optimiser name (:data:`OPTIMIZERS`), learning rate and Adam betas.
    lr_halving_every
        Halve the learning rate(s) every this many generator steps (None keeps it).
    score_components
        PCA components of the validation Frechet distance.
    ema_decay
        Keep an exponential moving average of the weights of ``networks.sampling_parts()`` (the modules that
        generate), updated by :meth:`update_averages` after every step with this decay (None or 0 disables;
        warmed up as :func:`ema_with_warmup`), as ProGAN / StyleGAN and DDPM do: the averaged weights generate the
        validation profiles, are what the best-weights callback keeps and replace the live ones when training
        ends. Networks without ``sampling_parts`` cannot be averaged.
    """

    #: optimiser steps Lightning counts per training batch (the WGAN-GP plan steps the critic too)
    optimizer_steps_per_batch = 1

    def __init__(self, networks, bank, train_idx: torch.Tensor, val_idx: torch.Tensor, optimizer: str = "adam",
                 lr: float = 1e-3, betas: tuple[float, float] = (0.5, 0.9), lr_halving_every: int | None = None,
                 score_components: int = 50, ema_decay: float | None = None) -> None:
        super().__init__()
        self.networks = networks
        self.bank = bank
        self.optimizer_name, self.lr, self.betas = optimizer, float(lr), tuple(betas)
        self.lr_halving_every = lr_halving_every
        from ..metrics._frechet import pca_basis

        x = bank.x[train_idx].double().cpu().numpy()
        basis = pca_basis(x, max(1, min(int(score_components), x.shape[0] - 1, x.shape[1])))
        dtype = bank.x.dtype
        self.register_buffer("score_mean", torch.as_tensor(basis.mean, dtype=dtype), persistent=False)
        self.register_buffer("score_axes", torch.as_tensor(basis.components.T.copy(), dtype=dtype), persistent=False)
        self.resume_state: dict | None = None
        self.seed: int | None = None
        self._val_real: list[torch.Tensor] = []
        self._val_fake: list[torch.Tensor] = []
        self.ema_decay = float(ema_decay) if ema_decay else None
        self.weights_ema = None  # an nn.ModuleDict of averaged copies of networks.sampling_parts()
        if self.ema_decay is not None:
            if not hasattr(networks, "sampling_parts"):
                raise ValueError(f"ema_decay: {type(networks).__name__} has no sampling_parts() to average.")
            self.weights_ema = AveragedModel(nn.ModuleDict(networks.sampling_parts()), use_buffers=True,
                                             multi_avg_fn=ema_with_warmup(self.ema_decay))

    # ------------------------------------------------------------- optimisers
    def _optimizer(self, params) -> torch.optim.Optimizer:
        return make_optimizer(self.optimizer_name, params, self.lr, self.betas)

    def _with_schedule(self, optimizers: list):
        if not self.lr_halving_every:
            return optimizers
        steps = int(self.lr_halving_every)  # stepped once per training batch
        scheds = [{"scheduler": torch.optim.lr_scheduler.StepLR(o, step_size=steps, gamma=0.5), "interval": "step"}
                  for o in optimizers]
        return optimizers, scheds

    def log_learning_rate(self, batch_size: int) -> None:
        """The first optimiser's learning rate, as an epoch mean (a host float: no device sync)."""
        self.log("lr", float(self._raw_optimizers()[0].param_groups[0]["lr"]), on_step=False, on_epoch=True,
                 batch_size=batch_size)

    # ------------------------------------------------------- weight averaging
    def update_averages(self) -> None:
        """Fold the live weights into the moving average (call after each optimiser step; no-op without one)."""
        if self.weights_ema is not None:
            self.weights_ema.update_parameters(nn.ModuleDict(self.networks.sampling_parts()))

    def _averaged_parts(self) -> dict[str, nn.Module]:
        return dict(self.weights_ema.module.items()) if self.weights_ema is not None else {}

    def on_train_end(self) -> None:
        if self.weights_ema is not None:
            self.networks.load_state_dict(self.sampling_state_dict())

    # ------------------------------------------------------------- validation
    def generate(self, cond: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """The validation profiles of ``cond`` and noise ``z``, from the averaged weights when there are some."""
        parts = self._averaged_parts()
        return self.networks.generate(cond, z, parts=parts) if parts else self.networks.generate(cond, z)

    def sampling_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights the model generates with after training (what the best-weights callback keeps): the
        networks' state with the averaged weights in place of the live ones."""
        state = self.networks.state_dict()
        for name, module in self._averaged_parts().items():
            state.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
        return state

    def validation_step(self, batch, batch_idx) -> None:
        (idx,) = batch
        cond = self.bank.conditions(idx)
        z = torch.randn(len(idx), self.networks.n_latent, device=self.device)
        fake = self.generate(cond, z)
        self._val_real.append(self.bank.x[idx] - self.score_mean)
        self._val_fake.append(fake.to(self.score_mean.dtype) - self.score_mean)

    def on_validation_epoch_end(self) -> None:
        if not self._val_real:
            return
        real = self.all_gather(torch.cat(self._val_real)).reshape(-1, self.score_axes.shape[0])
        fake = self.all_gather(torch.cat(self._val_fake)).reshape(-1, self.score_axes.shape[0])
        self._val_real, self._val_fake = [], []
        from ..metrics._frechet import frechet_gaussians

        a = (real @ self.score_axes).double().cpu().numpy()
        b = (fake @ self.score_axes).double().cpu().numpy()
        score = frechet_gaussians(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
        self.log("val_frechet", float(score), on_epoch=True)  # gathered above: the same on every process

    # ----------------------------------------------------------------- resume
    def _raw_optimizers(self) -> list:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        return [getattr(o, "optimizer", o) for o in opts]

    def _schedulers(self) -> list:
        scheds = self.lr_schedulers()
        if scheds is None:
            return []
        return scheds if isinstance(scheds, list) else [scheds]

    def training_state(self) -> dict:
        """Optimiser, scheduler and RNG states (for checkpoints)."""
        from ._checkpoint import rng_states

        state = {"optimizers": [o.state_dict() for o in self._raw_optimizers()],
                 "schedulers": [s.state_dict() for s in self._schedulers()], "rng": rng_states()}
        if self.weights_ema is not None:
            state["ema"] = self.weights_ema.state_dict()
        return state

    def on_train_start(self) -> None:
        world = self.trainer.world_size
        if world > 1:  # every process draws its own noise and tiles (the samplers already split the rows)
            torch.manual_seed((0 if self.seed is None else self.seed) * world + self.trainer.global_rank)
        if not self.resume_state:
            return
        if self.weights_ema is not None and "ema" in self.resume_state:
            self.weights_ema.load_state_dict(self.resume_state["ema"])
        for opt, saved in zip(self._raw_optimizers(), self.resume_state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        for sched, saved in zip(self._schedulers(), self.resume_state["schedulers"], strict=True):
            sched.load_state_dict(saved)

    # ---------------------------------------------------------------- compile
    def compile_networks(self) -> bool:
        """``torch.compile`` the fusion networks in place (state-dict keys unchanged), after a smoke forward and
        backward of a compiled copy on two rows; on any failure they stay eager, with a warning."""
        from .._settings import logger
        from ..nn import ConditionFusion

        targets = [m for m in self.networks.modules() if isinstance(m, ConditionFusion)]
        if not targets:
            logger.warning("compile=True: this model has no fusion network to compile; training runs eagerly.")
            return False
        try:
            idx = torch.arange(min(2, self.bank.n_obs))
            cond = {k: v.float() if v is not None and v.is_floating_point() else v
                    for k, v in self.bank.conditions(idx).items()}
            for module in targets:
                trial = copy.deepcopy(module)
                trial.compile()
                trial.from_conditions(cond).sum().backward()
            for module in targets:
                module.compile()
        except Exception as err:  # noqa: BLE001  (any backend failure: stay eager)
            logger.warning("torch.compile of the fusion networks failed (%s: %s); training runs eagerly.",
                           type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            return False
        return True
