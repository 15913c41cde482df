"""WGAN-GP training plan (Lightning, manual optimisation)."""

from __future__ import annotations

import torch
from torch import nn

from ..nn import gradient_penalty
from ._plan import TrainingPlan


class WGANGPNetworks(nn.Module):
    """The trainable parts of a WGAN-GP: generator, critic and their own condition networks (or None)."""

    def __init__(self, generator: nn.Module, critic: nn.Module, gen_condition=None, critic_condition=None) -> None:
        super().__init__()
        self.generator = generator
        self.critic = critic
        self.gen_condition = gen_condition
        self.critic_condition = critic_condition

    @property
    def n_latent(self) -> int:
        return self.generator.n_latent

    def gen_cond(self, cond: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return None if self.gen_condition is None else self.gen_condition.from_conditions(cond)

    def critic_cond(self, cond: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return None if self.critic_condition is None else self.critic_condition.from_conditions(cond)

    def generate(self, cond: dict[str, torch.Tensor], z: torch.Tensor,
                 parts: dict[str, nn.Module] | None = None) -> torch.Tensor:
        """Profiles of ``cond`` from noise ``z``; ``parts`` replaces modules of :meth:`sampling_parts` by name
        (the averaged copies of a plan with ``ema_decay``)."""
        use = {**self.sampling_parts(), **(parts or {})}
        fusion = use.get("gen_condition")
        return use["generator"](z, None if fusion is None else fusion.from_conditions(cond))

    def sampling_parts(self) -> dict[str, nn.Module]:
        """The modules that generate (generator and its condition network), by attribute name."""
        return {k: m for k, m in (("generator", self.generator), ("gen_condition", self.gen_condition))
                if m is not None}

    def generator_parameters(self) -> list[nn.Parameter]:
        extra = [] if self.gen_condition is None else list(self.gen_condition.parameters())
        return list(self.generator.parameters()) + extra

    def critic_parameters(self) -> list[nn.Parameter]:
        extra = [] if self.critic_condition is None else list(self.critic_condition.parameters())
        return list(self.critic.parameters()) + extra


def conditional_mean_error(fake: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Unbiased estimate of ``mean_genes (E_z[G(z, c)] - x)^2`` from ``k`` draws per condition.

    ``fake`` is B x k x genes (k >= 2 draws for each of B conditions), ``x`` the B x genes real profiles. The
    squared error of the draws' mean is corrected by the draws' variance over k, so the estimate rewards a
    conditional mean that follows the real profile without penalising the spread of the draws around it.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(1, 3)
    >>> fake = torch.tensor([[[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]]])  # mean 0, spread corrected: 0 - 2 / 2
    >>> float(conditional_mean_error(fake, x))
    -1.0
    """
    k = fake.shape[1]
    mean = fake.mean(dim=1)
    spread = fake.var(dim=1, unbiased=True) / k
    return ((mean - x) ** 2 - spread).mean()


class WGANGPPlan(TrainingPlan):
    """One training step = ``n_critic`` critic updates on a batch, then one generator update (as the authors' code).

    The generator's condition is computed once per batch (its weights do not change during the critic updates;
    the generator update back-propagates through that same forward). Losses are logged per epoch with
    ``self.log``; nothing is copied to the host inside a step.

    Parameters
    ----------
    n_critic
        Critic updates per generator update.
    lambda_gp
        Gradient-penalty weight.
    clip_critic, clip_generator
        Gradient-norm clipping (None disables).
    mean_matching, mean_draws
        Weight of :func:`conditional_mean_error` in the generator loss of conditional models (0 disables), and
        the draws per condition it averages.
    **kwargs
        :class:`~gemmgan_sc.train.TrainingPlan` arguments (optimiser, learning rate, schedule, ``ema_decay``:
        the generator and its condition network are averaged after every generator step, the critic is not).
    """

    def __init__(self, networks: WGANGPNetworks, bank, train_idx, val_idx, n_critic: int = 5,
                 lambda_gp: float = 10.0, clip_critic: float | None = None, clip_generator: float | None = None,
                 mean_matching: float = 0.0, mean_draws: int = 4, **kwargs) -> None:
        super().__init__(networks, bank, train_idx, val_idx, **kwargs)
        self.automatic_optimization = False
        self.n_critic, self.lambda_gp = int(n_critic), float(lambda_gp)
        self.clip_critic, self.clip_generator = clip_critic, clip_generator
        self.mean_matching, self.mean_draws = float(mean_matching), max(2, int(mean_draws))
        self.optimizer_steps_per_batch = self.n_critic + 1

    def configure_optimizers(self):
        net = self.networks
        return self._with_schedule([self._optimizer(net.critic_parameters()), self._optimizer(net.generator_parameters())])

    def critic_loss(self, x: torch.Tensor, cond: dict, gen_cond: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``E[D(fake)] - E[D(real)] + lambda_gp * GP`` for one critic update."""
        net = self.networks
        with torch.no_grad():
            fake = net.generator(torch.randn(x.shape[0], net.n_latent, device=x.device, dtype=x.dtype), gen_cond)
        c = net.critic_cond(cond)
        scores = net.critic(torch.cat([x, fake]), None if c is None else torch.cat([c, c]))
        wasserstein = scores[: x.shape[0]].mean() - scores[x.shape[0]:].mean()
        gp = gradient_penalty(lambda h: net.critic(h, c), x, fake)
        return {"loss": -wasserstein + self.lambda_gp * gp, "gp": gp, "wasserstein": wasserstein}

    def generator_loss(self, x: torch.Tensor, cond: dict, gen_cond: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``-E[D(G(z, c))]`` (+ ``mean_matching`` times :func:`conditional_mean_error` with conditions);
        the critic's condition carries no gradient to anyone."""
        net = self.networks
        draws = self.mean_draws if self.mean_matching and gen_cond is not None else 1
        rep = None if gen_cond is None else gen_cond.repeat_interleave(draws, dim=0)
        z = torch.randn(x.shape[0] * draws, net.n_latent, device=x.device, dtype=x.dtype)
        fake = net.generator(z, rep)
        with torch.no_grad():
            c = net.critic_cond(cond)
        adversarial = -net.critic(fake, None if c is None else c.repeat_interleave(draws, dim=0)).mean()
        if draws == 1:
            return {"loss": adversarial, "adversarial": adversarial}
        mean_error = conditional_mean_error(fake.view(x.shape[0], draws, -1), x)
        return {"loss": adversarial + self.mean_matching * mean_error, "adversarial": adversarial,
                "mean_error": mean_error}

    def _update(self, optimizer, loss: torch.Tensor, clip: float | None) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if clip:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        optimizer.step()

    def training_step(self, batch, batch_idx) -> None:
        (idx,) = batch
        opt_c, opt_g = self.optimizers()
        x = self.bank.x[idx]
        # float16 patches and tokens converted once per step, not in each of the n_critic + 2 fusion passes
        cond = {k: v.to(x.dtype) if v is not None and v.is_floating_point() else v
                for k, v in self.bank.conditions(idx).items()}
        gen_cond = self.networks.gen_cond(cond)
        frozen = None if gen_cond is None else gen_cond.detach()
        for _ in range(self.n_critic):
            out = self.critic_loss(x, cond, frozen)
            self._update(opt_c, out["loss"], self.clip_critic)
        self.toggle_optimizer(opt_g)
        g_out = self.generator_loss(x, cond, gen_cond)
        g_loss = g_out["loss"]
        self._update(opt_g, g_loss, self.clip_generator)
        self.untoggle_optimizer(opt_g)
        self.update_averages()
        for sched in self._schedulers():
            sched.step()
        self.log_dict({"critic_loss": out["loss"].detach(), "gradient_penalty": out["gp"].detach(),
                       "wasserstein_train": out["wasserstein"].detach(), "generator_loss": g_loss.detach(),
                       **{k: v.detach() for k, v in g_out.items() if k == "mean_error"}},
                      on_step=False, on_epoch=True, batch_size=len(idx))
        self.log_learning_rate(len(idx))
