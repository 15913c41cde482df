"""What every WGAN-GP model shares: its training presets and its Lightning plan."""

from __future__ import annotations

from typing import Any

from ._base import BaseGenerativeModel

#: the authors' public code: RMSprop 5e-4 for both networks, halved every 100 epochs, gradient-norm clipping
_AUTHORS = {"optimizer": "rmsprop", "lr": 5e-4, "lr_halving_every_epochs": 100, "clip_critic": 10.0,
            "clip_generator": 2.0, "max_epochs": 500, "max_steps": None, "mean_matching": 0.0,
            "ema_decay": None}


class WGANGPModel(BaseGenerativeModel):
    """Base of the WGAN-GP models (GeMM-GAN and its baselines): critic/generator loop with gradient penalty.

    Presets (``train(preset=...)``): ``"default"`` (chosen by the convergence study, docs/performance.md),
    ``"paper"`` (batch 64, 500 epochs, 5 critic steps, the authors' optimiser) and ``"authors_code"`` (the
    authors' public code: batch 8, RMSprop 5e-4 halved every 100 epochs, clipping 10 / 2, 500 epochs).
    """

    _presets: dict[str, dict[str, Any]] = {
        "default": {"batch_size": 64, "max_steps": 3000, "max_epochs": None, "patience": 30, "n_critic": 5,
                    "lambda_gp": 10.0, "optimizer": "rmsprop", "lr": 5e-4, "betas": (0.5, 0.9),
                    "lr_halving_every": 1000, "clip_critic": 10.0, "clip_generator": 2.0,
                    "mean_matching": 1.0, "mean_draws": 4, "ema_decay": None},
        "paper": {"batch_size": 64, **_AUTHORS},
        "authors_code": {"batch_size": 8, **_AUTHORS},
    }

    def _make_plan(self, bank, train_idx, val_idx, **kwargs):
        from ..train._wgan import WGANGPPlan

        return WGANGPPlan(self.networks, bank, train_idx, val_idx, **kwargs)

    def _validate_plan_kwargs(self, kwargs: dict[str, Any]) -> None:
        _check_optimizer(kwargs)
        if isinstance(kwargs["n_critic"], bool) or not isinstance(kwargs["n_critic"], int) or kwargs["n_critic"] < 1:
            raise ValueError(f"n_critic must be a positive int, got {kwargs['n_critic']!r}.")
        if not float(kwargs["lambda_gp"]) > 0:
            raise ValueError(f"lambda_gp must be > 0, got {kwargs['lambda_gp']!r}.")

    def train(self, max_steps: int | None = None, max_epochs: int | None = None, batch_size: int | None = None,
              preset: str = "default", **kwargs: Any):
        """Train the WGAN-GP.

        Parameters
        ----------
        max_steps
            Generator updates (each after ``n_critic`` critic updates on the same batch); the default preset's
            budget is 3,000, with early stopping on the validation Frechet distance.
        max_epochs
            Instead of ``max_steps``: passes over the training rows (the ``"paper"`` preset: 500).
        batch_size
            Rows per step (64; ``"authors_code"``: 8).
        preset
            ``"default"``, ``"paper"`` or ``"authors_code"`` (see the class docstring).
        n_critic, lambda_gp
            Critic updates per generator update (5) and gradient-penalty weight (10).
        optimizer, lr, betas
            ``"rmsprop"`` (default, lr 5e-4, as the authors' code), ``"adam"`` or ``"adamw"`` (with ``betas``).
        lr_halving_every
            Halve the learning rates every this many steps (1,000; None keeps them).
        clip_critic, clip_generator
            Gradient-norm clipping (10 and 2, as the authors' code; None disables).
        mean_matching, mean_draws
            Conditional models: weight (1; 0 disables, as the paper) of the conditional-mean term added to the
            generator loss, an unbiased estimate of the squared error between the mean of ``mean_draws`` (4)
            draws for a condition and the row's real profile (:func:`gemmgan_sc.train.conditional_mean_error`).
        ema_decay
            Generate with an exponential moving average of the generator's weights, updated every step with
            this decay (None, the default, disables; e.g. 0.99): it smooths the step-to-step jitter of GAN
            training out of the generator's conditional map (docs/performance.md has the study).
        train_size, early_stopping, patience, restore_best, seed, checkpoint_dir, resume, compile
            As in :meth:`BaseGenerativeModel.train`.
        accelerator, devices, precision, **kwargs
            Passed to the Lightning ``Trainer`` (CPU, one GPU, many GPUs); ``precision="bf16-mixed"`` on GPUs.

        Examples
        --------
        >>> model.train(max_steps=3000)  # doctest: +SKIP
        >>> model.history.plot(x="step", y="val_frechet")  # doctest: +SKIP
        >>> model.train(preset="authors_code")  # doctest: +SKIP
        """
        return super().train(max_steps=max_steps, max_epochs=max_epochs, batch_size=batch_size, preset=preset,
                             **kwargs)


def _check_optimizer(kwargs: dict[str, Any]) -> None:
    from ..train._plan import OPTIMIZERS

    if str(kwargs["optimizer"]).lower() not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {kwargs['optimizer']!r}; choose one of {OPTIMIZERS}.")
    if not float(kwargs["lr"]) > 0:
        raise ValueError(f"lr must be > 0, got {kwargs['lr']!r}.")
    decay = kwargs.get("ema_decay")
    if decay is not None and (isinstance(decay, bool) or not isinstance(decay, (int, float))
                              or not 0.0 <= float(decay) < 1.0):
        raise ValueError(f"ema_decay must be None or in [0, 1) (0 and None: no averaging), got {decay!r}.")
