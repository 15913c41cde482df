"""Diffusion networks (denoiser + condition network + learned null condition) and their training plan."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from ..nn._diffusion import CosineSchedule, Denoiser, check_sampling, diffusion_sample, noise_generator
from ._plan import TrainingPlan


class DiffusionNetworks(nn.Module):
    """A denoiser, the network turning a row's conditions into a vector (fusion, label embedding or None) and
    the learned null condition of classifier-free guidance.

    ``generate(cond, z)`` runs the reverse process from the initial noise ``z`` (B x genes, so ``n_latent`` is
    the number of genes) with the sampler settings held here: ``sampler`` (``"ddim"``: deterministic given ``z``;
    ``"ancestral"``: its per-step noise from a generator seeded from a hash of ``z``,
    :func:`gemmgan_sc.nn.noise_generator`), ``n_steps`` and the guidance weight ``guidance`` (w): the output is
    ``(1 + w) f(x, t, c) - w f(x, t, null)`` (Ho & Salimans 2022), so ``w = 0`` is the conditional model.
    """

    def __init__(self, denoiser: Denoiser, schedule: CosineSchedule, condition: nn.Module | None = None,
                 prediction: str = "v", sampler: str = "ddim", n_steps: int = 50, guidance: float = 0.0) -> None:
        super().__init__()
        check_sampling(n_steps, guidance, sampler, schedule.n_timesteps, prediction)
        if (condition is None) != (denoiser.cond_dim == 0):
            raise ValueError("A condition network needs a denoiser with cond_dim > 0, and no network cond_dim 0.")
        self.denoiser, self.schedule, self.condition = denoiser, schedule, condition
        self.null_condition = nn.Parameter(torch.zeros(denoiser.cond_dim)) if denoiser.cond_dim else None
        self.prediction, self.sampler, self.n_steps, self.guidance = prediction, sampler, int(n_steps), float(guidance)

    @property
    def n_latent(self) -> int:
        return self.denoiser.n_genes

    def sampling_parts(self) -> dict[str, nn.Module]:
        """The modules that generate (denoiser and condition network), by attribute name. The null condition
        of guidance is a parameter of these networks, not averaged with them."""
        return {k: m for k, m in (("denoiser", self.denoiser), ("condition", self.condition)) if m is not None}

    def condition_vector(self, cond: dict[str, torch.Tensor], condition: nn.Module | None = None
                         ) -> torch.Tensor | None:
        condition = self.condition if condition is None else condition
        return None if condition is None else condition.from_conditions(cond)

    def drop_condition(self, c: torch.Tensor | None, p_uncond: float) -> torch.Tensor | None:
        """Replace each row's condition by the null condition with probability ``p_uncond`` (training)."""
        if c is None or p_uncond <= 0:
            return c
        drop = torch.rand(c.shape[0], 1, device=c.device) < p_uncond
        return torch.where(drop, self.null_condition.to(c.dtype).expand_as(c), c)

    def _guided(self, c: torch.Tensor | None, denoiser: nn.Module | None = None):
        denoiser = self.denoiser if denoiser is None else denoiser
        if c is None or self.guidance == 0:
            return lambda x, t: denoiser(x, t, c)
        null = self.null_condition.to(c.dtype).expand_as(c)
        both, w = torch.cat([c, null]), self.guidance

        def denoise(x, t):
            out_c, out_u = denoiser(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
            return (1 + w) * out_c - w * out_u

        return denoise

    def generate(self, cond: dict[str, torch.Tensor], z: torch.Tensor,
                 parts: dict[str, nn.Module] | None = None) -> torch.Tensor:
        """The reverse process from ``z``; ``parts`` replaces modules of :meth:`sampling_parts` by name (the
        averaged copies of a plan with ``ema_decay``)."""
        use = {**self.sampling_parts(), **(parts or {})}
        c = self.condition_vector(cond, use.get("condition"))
        ancestral = self.sampler == "ancestral"
        denoise = self._guided(None if c is None else c.to(z.dtype), use["denoiser"])
        return diffusion_sample(denoise, z, self.schedule, self.n_steps,
                                self.prediction, eta=1.0 if ancestral else 0.0,
                                generator=noise_generator(z) if ancestral else None)

    @contextmanager
    def sampling(self, n_steps: int | None = None, guidance: float | None = None, sampler: str | None = None):
        """Temporarily other sampler settings (``None`` keeps the current one)."""
        old = (self.n_steps, self.guidance, self.sampler)
        new = (old[0] if n_steps is None else n_steps, old[1] if guidance is None else guidance,
               old[2] if sampler is None else sampler)
        check_sampling(new[0], new[1], new[2], self.schedule.n_timesteps, self.prediction)
        self.n_steps, self.guidance, self.sampler = int(new[0]), float(new[1]), new[2]
        try:
            yield self
        finally:
            self.n_steps, self.guidance, self.sampler = old

    def loss(self, x0: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Mean squared error of the denoiser's output against its target at uniform random steps."""
        t = torch.randint(1, self.schedule.n_timesteps + 1, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.q_sample(x0, t, noise)
        return F.mse_loss(self.denoiser(x_t, t, c), self.schedule.target(x0, noise, t, self.prediction))


class DiffusionPlan(TrainingPlan):
    """One step = one denoising loss on a batch, conditions dropped with probability ``p_uncond``.

    Parameters
    ----------
    p_uncond
        Probability of training a row on the null condition (classifier-free guidance; 0 disables).
    **kwargs
        :class:`~gemmgan_sc.train.TrainingPlan` arguments (optimiser, learning rate, schedule, ``ema_decay``: the
        denoiser and the condition network are averaged after every step, as DDPM does).
    """

    def __init__(self, networks: DiffusionNetworks, bank, train_idx, val_idx, p_uncond: float = 0.1,
                 **kwargs) -> None:
        super().__init__(networks, bank, train_idx, val_idx, **kwargs)
        self.p_uncond = float(p_uncond)

    def configure_optimizers(self):
        return self._with_schedule([self._optimizer(self.networks.parameters())])

    def training_step(self, batch, batch_idx):
        (idx,) = batch
        x = self.bank.x[idx]
        cond = {k: v.to(x.dtype) if v is not None and v.is_floating_point() else v
                for k, v in self.bank.conditions(idx).items()}
        net = self.networks
        loss = net.loss(x, net.drop_condition(net.condition_vector(cond), self.p_uncond))
        self.log("loss", loss.detach(), on_step=False, on_epoch=True, batch_size=len(idx))
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        self.update_averages()  # right after the step, before any callback's on_train_batch_end
