"""What every WGAN-GP model shares: the training arguments and the Lightning plan."""

from __future__ import annotations

from typing import Any

from ._base import BaseGenerativeModel


class WGANGPModelMixin(BaseGenerativeModel):
    """WGAN-GP training on the shared base: critic/generator loop with gradient penalty (authors' defaults)."""

    _train_defaults: dict[str, Any] = {
        "n_critic": 5,
        "lambda_gp": 10.0,
        "optimizer": "rmsprop",
        "lr": 5e-4,
        "lr_halving_every": 100,
        "clip_critic": 10.0,
        "clip_generator": 2.0,
    }

    def _make_plan(self, bank, val_idx, **kwargs):
        from ..train._wgan import WGANGPPlan

        return WGANGPPlan(self.networks, bank, val_idx, **kwargs)

    def _validate_train_kwargs(self, kwargs: dict[str, Any]) -> None:
        from ..train._wgan import OPTIMIZERS

        if str(kwargs["optimizer"]).lower() not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {kwargs['optimizer']!r}; choose one of {OPTIMIZERS}.")
        for key in ("n_critic",):
            if not isinstance(kwargs[key], int) or kwargs[key] < 1:
                raise ValueError(f"{key} must be a positive int, got {kwargs[key]!r}.")
        for key in ("lambda_gp", "lr"):
            if not float(kwargs[key]) > 0:
                raise ValueError(f"{key} must be > 0, got {kwargs[key]!r}.")

    def train(self, max_epochs: int | None = None, batch_size: int = 64, **kwargs: Any):
        """Train the WGAN-GP.

        Parameters
        ----------
        max_epochs
            Passes over the training rows (default 500, the paper's).
        batch_size
            Rows per step (64).
        n_critic
            Critic updates per generator update, on the same batch (5).
        lambda_gp
            Gradient-penalty weight (10).
        optimizer
            ``"rmsprop"`` (authors' code), ``"adam"`` or ``"adamw"``.
        lr
            Learning rate of both networks (5e-4).
        lr_halving_every
            Halve the learning rates every this many epochs (100; None keeps them).
        clip_critic, clip_generator
            Gradient-norm clipping (10 and 2; None disables).
        train_size
            Fraction of rows in the training split (0.8); the rest is the validation split, kept in ``model.split``.
        accelerator, devices, precision
            Passed to the Lightning ``Trainer`` (CPU, one GPU, many GPUs); ``precision="bf16-mixed"`` on GPUs.
        seed
            Seed of the split and training (default ``gg.settings.seed``).
        **kwargs
            Other ``lightning.Trainer`` arguments.

        Examples
        --------
        >>> model.train(max_epochs=500, batch_size=64)  # doctest: +SKIP
        >>> model.history.plot(x="epoch", y=["critic_loss", "generator_loss"])  # doctest: +SKIP
        """
        return super().train(max_epochs=max_epochs, batch_size=batch_size, **kwargs)
