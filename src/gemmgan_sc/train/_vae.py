"""VAE training plan (Lightning, automatic optimisation)."""

from __future__ import annotations

from ..nn._vae import vae_loss
from ._plan import TrainingPlan


class VAEPlan(TrainingPlan):
    """Minimise reconstruction error + ``beta`` KL; losses logged per epoch, ``val_frechet`` as every plan."""

    def __init__(self, networks, bank, train_idx, val_idx, beta: float = 1.0, **kwargs) -> None:
        super().__init__(networks, bank, train_idx, val_idx, **kwargs)
        self.beta = float(beta)

    def configure_optimizers(self):
        return self._with_schedule([self._optimizer(self.networks.parameters())])

    def training_step(self, batch, batch_idx):
        (idx,) = batch
        x = self.bank.x[idx]
        recon, mu, logvar = self.networks(x, self.bank.conditions(idx))
        loss, rec, kl = vae_loss(x, recon, mu, logvar, self.beta)
        self.log_dict({"loss": loss.detach(), "reconstruction": rec.detach(), "kl": kl.detach()},
                      on_step=False, on_epoch=True, batch_size=len(idx))
        self.log_learning_rate(len(idx))
        return loss
