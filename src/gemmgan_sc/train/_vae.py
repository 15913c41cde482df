"""VAE training plan (Lightning, automatic optimisation)."""

from __future__ import annotations

import math

import torch

from ..nn._vae import vae_loss
from ._wgan import ResumablePlan, make_optimizer


class VAEPlan(ResumablePlan):
    """Minimise reconstruction error + beta KL; the per-epoch history matches the WGAN plan's layout."""

    def __init__(self, networks, bank, val_idx=None, beta: float = 1.0, optimizer: str = "adam", lr: float = 1e-3,
                 lr_halving_every: int | None = None, history: list | None = None) -> None:
        super().__init__()
        self.networks = networks
        self.bank = bank
        self.register_buffer("val_idx", val_idx, persistent=False)
        self.beta = float(beta)
        self.optimizer_name = optimizer
        self.lr = float(lr)
        self.lr_halving_every = lr_halving_every
        self.history = history if history is not None else []
        self._sums: dict[str, tuple[float, int]] = {}

    def configure_optimizers(self):
        opt = make_optimizer(self.optimizer_name, self.networks.parameters(), self.lr)
        if not self.lr_halving_every:
            return opt
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=int(self.lr_halving_every), gamma=0.5)]

    def training_step(self, batch, batch_idx):
        (idx,) = batch
        x = self.bank.x[idx]
        recon, mu, logvar = self.networks(x, self.bank.conditions(idx))
        loss, rec, kl = vae_loss(x, recon, mu, logvar, self.beta)
        for key, value in (("loss", loss), ("reconstruction", rec), ("kl", kl)):
            total, count = self._sums.get(key, (0.0, 0))
            self._sums[key] = (total + float(value.detach()), count + 1)
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, logger=False)
        return loss

    @torch.no_grad()
    def validation_loss(self) -> float:
        if self.val_idx is None or self.val_idx.numel() == 0:
            return math.nan
        was = self.networks.training
        self.networks.eval()
        total, n = 0.0, 0
        for chunk in self.val_idx.split(256):
            x = self.bank.x[chunk]
            recon, mu, logvar = self.networks(x, self.bank.conditions(chunk))
            total += float(vae_loss(x, recon, mu, logvar, self.beta)[0]) * len(chunk)
            n += len(chunk)
        self.networks.train(was)
        return total / n

    def on_train_epoch_end(self) -> None:
        row = {"epoch": int(self.current_epoch)}
        row.update({k: t / c for k, (t, c) in self._sums.items()})
        row["loss_val"] = self.validation_loss()
        row["lr"] = float(self.optimizers().param_groups[0]["lr"])
        self._sums = {}
        self.history.append(row)
        self._end_of_epoch()  # Lightning steps the scheduler itself (automatic optimisation)
