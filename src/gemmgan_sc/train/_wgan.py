"""WGAN-GP training plan (Lightning, manual optimisation)."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch import nn

from .._settings import logger

OPTIMIZERS = ("rmsprop", "adam", "adamw")


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """RMSprop (the authors' default), Adam or AdamW (betas 0.9, 0.99 as in the authors' code)."""
    name = name.lower()
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {OPTIMIZERS}.")


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

    def generate(self, cond: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        return self.generator(z, self.gen_cond(cond))


class ResumablePlan(pl.LightningModule):
    """Hooks shared by the plans: ``resume_state`` is applied when training starts, ``epoch_end_hook`` runs last
    in every epoch end (checkpoints)."""

    resume_state: dict | None = None
    epoch_end_hook = None

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
        from ._checkpoint import rng_states

        return {
            "optimizers": [o.state_dict() for o in self._raw_optimizers()],
            "schedulers": [s.state_dict() for s in self._schedulers()],
            "rng": rng_states(),
        }

    seed: int | None = None

    compile_networks: bool = False

    def compile_condition_networks(self) -> bool:
        """``torch.compile`` the fusion networks (the FLOP-heavy part), in place so state-dict keys do not change.

        A smoke forward + backward on two rows of the bank checks the compiled networks on the training device;
        if compiling or that check fails, the networks are left eager with a warning. Returns whether they run
        compiled.
        """
        from ..nn import ConditionFusion

        targets = [m for m in self.networks.modules() if isinstance(m, ConditionFusion)]
        if not targets:
            logger.warning("compile=True: this model has no fusion network to compile; training runs eagerly.")
            return False
        bank = getattr(self, "bank", None)
        try:
            for module in targets:
                module.compile()
            if bank is not None:
                idx = torch.arange(min(2, bank.n_obs), device=self.device)
                cond = {k: v.float() if v is not None and v.is_floating_point() else v
                        for k, v in bank.conditions(idx).items()}
                for module in targets:
                    module.from_conditions(cond).sum().backward()
                    module.zero_grad(set_to_none=True)
        except Exception as err:  # noqa: BLE001  (any backend failure: fall back to eager)
            for module in targets:
                module._compiled_call_impl = None
            logger.warning("torch.compile of the fusion networks failed (%s: %s); training runs eagerly.",
                           type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            return False
        return True

    def on_train_start(self) -> None:
        world = self.trainer.world_size
        if world > 1:  # every process draws its own noise and tiles (the samplers already split the rows)
            torch.manual_seed((0 if self.seed is None else self.seed) * world + self.trainer.global_rank)
        if self.compile_networks:
            self.compile_condition_networks()
        if not self.resume_state:
            return
        state = self.resume_state
        for opt, saved in zip(self._raw_optimizers(), state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        for sched, saved in zip(self._schedulers(), state["schedulers"], strict=True):
            sched.load_state_dict(saved)

    def _end_of_epoch(self) -> None:
        if self.epoch_end_hook is not None:
            self.epoch_end_hook(self)


class WGANGPPlan(ResumablePlan):
    """One training step = ``n_critic`` critic updates on a batch, then one generator update (as the authors' code).

    Within a step the generator's condition is computed once (its weights are frozen during the critic updates; the
    generator update back-propagates through that same forward), and each critic update scores real, fake and
    interpolated profiles in one batched pass with one condition.
    """

    def __init__(
        self,
        networks: WGANGPNetworks,
        bank,
        val_idx: torch.Tensor | None = None,
        n_critic: int = 5,
        lambda_gp: float = 10.0,
        optimizer: str = "rmsprop",
        lr: float = 5e-4,
        lr_halving_every: int | None = 100,
        clip_critic: float | None = 10.0,
        clip_generator: float | None = 2.0,
        history: list | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.networks = networks
        self.bank = bank
        self.register_buffer("val_idx", val_idx, persistent=False)
        self.n_critic = int(n_critic)
        self.lambda_gp = float(lambda_gp)
        self.optimizer_name = optimizer
        self.lr = float(lr)
        self.lr_halving_every = lr_halving_every
        self.clip_critic = clip_critic
        self.clip_generator = clip_generator
        self.history = history if history is not None else []
        self._epoch_sums: dict[str, float] = {}

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self):
        net = self.networks
        critic_params = list(net.critic.parameters()) + (
            list(net.critic_condition.parameters()) if net.critic_condition is not None else []
        )
        gen_params = list(net.generator.parameters()) + (
            list(net.gen_condition.parameters()) if net.gen_condition is not None else []
        )
        opt_c = make_optimizer(self.optimizer_name, critic_params, self.lr)
        opt_g = make_optimizer(self.optimizer_name, gen_params, self.lr)
        if not self.lr_halving_every:
            return [opt_c, opt_g]
        scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=int(self.lr_halving_every), gamma=0.5) for o in (opt_c, opt_g)]
        return [opt_c, opt_g], scheds

    # ------------------------------------------------------------------- step
    def _accumulate(self, **values: float) -> None:
        for key, value in values.items():
            total, count = self._epoch_sums.get(key, (0.0, 0))
            self._epoch_sums[key] = (total + float(value), count + 1)

    def critic_step(self, x: torch.Tensor, cond: dict, gen_cond: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Critic loss of one update: ``E[D(fake)] - E[D(real)] + lambda_gp * GP``."""
        net = self.networks
        b = x.shape[0]
        with torch.no_grad():
            z = torch.randn(b, net.n_latent, device=x.device, dtype=x.dtype)
            fake = net.generator(z, gen_cond)
        c = net.critic_cond(cond)
        alpha = torch.rand(b, 1, device=x.device, dtype=x.dtype)
        x_hat = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
        cc = None if c is None else torch.cat([c, c, c], dim=0)
        scores = net.critic(torch.cat([x, fake, x_hat], dim=0), cc)
        s_real, s_fake, s_hat = scores[:b], scores[b : 2 * b], scores[2 * b :]
        (grad,) = torch.autograd.grad(s_hat.sum(), x_hat, create_graph=True)
        gp = ((grad.norm(2, dim=1) - 1) ** 2).mean()
        wasserstein = s_real.mean() - s_fake.mean()
        return {"loss": -wasserstein + self.lambda_gp * gp, "gp": gp, "wasserstein": wasserstein}

    def generator_step(self, x: torch.Tensor, cond: dict, gen_cond: torch.Tensor | None) -> torch.Tensor:
        """Generator loss ``-E[D(G(z, c))]``; the critic's condition carries no gradient to anyone."""
        net = self.networks
        z = torch.randn(x.shape[0], net.n_latent, device=x.device, dtype=x.dtype)
        fake = net.generator(z, gen_cond)
        with torch.no_grad():
            c = net.critic_cond(cond)
        return -net.critic(fake, c).mean()

    def training_step(self, batch, batch_idx):
        (idx,) = batch
        opt_c, opt_g = self.optimizers()
        net = self.networks
        x = self.bank.x[idx]
        # float16 patches and tokens converted once per step, not in each of the n_critic + 2 fusion passes
        cond = {k: v.to(x.dtype) if v is not None and v.is_floating_point() else v
                for k, v in self.bank.conditions(idx).items()}
        # The generator's weights do not change during the critic updates, so its condition is computed once per
        # batch, with its graph kept for the generator update; the critic updates use a detached copy.
        gen_cond_graph = net.gen_cond(cond)
        gen_cond = None if gen_cond_graph is None else gen_cond_graph.detach()
        for _ in range(self.n_critic):
            out = self.critic_step(x, cond, gen_cond)
            opt_c.zero_grad(set_to_none=True)
            self.manual_backward(out["loss"])
            if self.clip_critic:
                self.clip_gradients(opt_c, gradient_clip_val=self.clip_critic, gradient_clip_algorithm="norm")
            opt_c.step()
        self._accumulate(critic_loss=out["loss"].item(), gradient_penalty=out["gp"].item(),
                         wasserstein_train=out["wasserstein"].item())

        self.toggle_optimizer(opt_g)
        g_loss = self.generator_step(x, cond, gen_cond_graph)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        if self.clip_generator:
            self.clip_gradients(opt_g, gradient_clip_val=self.clip_generator, gradient_clip_algorithm="norm")
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self._accumulate(generator_loss=g_loss.item())
        self.log_dict({"critic": out["loss"].item(), "gen": g_loss.item()}, prog_bar=True, on_step=True,
                      on_epoch=False, logger=False)

    # ------------------------------------------------------------ epoch end
    @torch.no_grad()
    def validation_wasserstein(self) -> float:
        """``E[D(real)] - E[D(fake)]`` on the validation rows (networks in eval mode)."""
        if self.val_idx is None or self.val_idx.numel() == 0:
            return math.nan
        net = self.networks
        was_training = net.training
        net.eval()
        total, n = 0.0, 0
        for chunk in self.val_idx.split(256):
            x = self.bank.x[chunk]
            cond = self.bank.conditions(chunk)
            z = torch.randn(x.shape[0], net.n_latent, device=x.device, dtype=x.dtype)
            fake = net.generate(cond, z)
            c = net.critic_cond(cond)
            total += float((net.critic(x, c) - net.critic(fake, c)).sum())
            n += x.shape[0]
        net.train(was_training)
        return total / n

    def on_train_epoch_end(self) -> None:
        row = {"epoch": int(self.current_epoch)}
        row.update({k: t / c for k, (t, c) in self._epoch_sums.items()})
        row["wasserstein_val"] = self.validation_wasserstein()
        row["lr"] = float(self.optimizers()[0].param_groups[0]["lr"])
        self._epoch_sums = {}
        self.history.append(row)
        schedulers = self.lr_schedulers()
        if schedulers:
            for s in schedulers if isinstance(schedulers, list) else [schedulers]:
                s.step()
        self._end_of_epoch()
