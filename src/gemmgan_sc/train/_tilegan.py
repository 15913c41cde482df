"""The tile WGAN-GP of TileGAN: its networks, the device-resident tile bank and the Lightning training plan.

One training step draws one random tile of each row's slide (a gather in the uint8 tile bank, on the device),
runs ``n_critic`` critic updates with the gradient penalty on interpolated tiles, then one generator update whose
loss also carries the expression beta-VAE's loss (the VAE and the generator share that optimiser step; the GAN
condition is the VAE's posterior mean, detached, so the VAE is trained by its own loss only, as RNA-GAN's
pre-trained encoder). ``val_frechet`` is the Frechet distance between generated and real tiles of the validation
rows in the feature space of an image encoder (:func:`gemmgan_sc.metrics.image_frechet`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..nn import gradient_penalty
from ..nn._conv import ConvCritic, ConvGenerator
from ..nn._vae import VAE, vae_loss
from ._wgan import WGANGPPlan


class TileBank(nn.Module):
    """The uint8 tiles of a cohort's slides on one device, and the tiles of each row.

    Parameters
    ----------
    tiles
        T x 3 x S x S uint8 tiles (every slide's tiles, one after another).
    offsets, counts
        Per row: the first tile of its slide and the number of tiles (>= 1).

    Examples
    --------
    >>> import torch
    >>> bank = TileBank(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 2]), torch.tensor([2, 1]))
    >>> bank.draw(torch.tensor([0, 1])).shape
    torch.Size([2, 3, 8, 8])
    """

    def __init__(self, tiles: torch.Tensor, offsets, counts) -> None:
        super().__init__()
        tiles = torch.as_tensor(tiles)
        if tiles.dtype != torch.uint8 or tiles.ndim != 4 or tiles.shape[1] != 3:
            raise ValueError(f"tiles must be a T x 3 x S x S uint8 tensor, got {tuple(tiles.shape)} {tiles.dtype}.")
        offsets, counts = torch.as_tensor(offsets, dtype=torch.long), torch.as_tensor(counts, dtype=torch.long)
        if offsets.shape != counts.shape or offsets.ndim != 1:
            raise ValueError("offsets and counts must be 1-d, one entry per row.")
        if len(counts) and (int(counts.min()) < 1 or int((offsets + counts).max()) > tiles.shape[0]):
            raise ValueError("Every row needs at least one tile inside the bank (counts >= 1).")
        self.register_buffer("tiles", tiles.contiguous(), persistent=False)
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("counts", counts, persistent=False)

    @property
    def size(self) -> int:
        return int(self.tiles.shape[-1])

    def pick(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Bank positions of one uniformly drawn tile of each row ``idx``."""
        u = torch.rand(idx.shape[0], device=self.counts.device, generator=generator)
        counts = self.counts[idx]
        return self.offsets[idx] + (u * counts).long().clamp_max(counts - 1)

    def draw(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One random tile per row, as float in [-1, 1] (B x 3 x S x S)."""
        return to_unit(self.tiles[self.pick(idx, generator)])


def to_unit(tiles: torch.Tensor) -> torch.Tensor:
    """uint8 tiles -> float in [-1, 1] (the generator's tanh range)."""
    return tiles.float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] (B x 3 x S x S) -> uint8 tiles B x S x S x 3."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class TileGANNetworks(nn.Module):
    """Expression beta-VAE (or None), convolutional generator and projection critic.

    The condition of a row is ``[VAE posterior mean of its z-scored expression | text CLS]`` (the parts the model
    uses; None when unconditional); generator and critic each embed it with their own linear map.

    Examples
    --------
    >>> import torch
    >>> net = TileGANNetworks(n_genes=20, image_size=16, vae_latent=4, vae_hidden=(8,), channels=4, n_latent=8)
    >>> cond = net.condition(torch.randn(3, 20))
    >>> net.generate(cond, torch.randn(3, 8)).shape
    torch.Size([3, 3, 16, 16])
    """

    def __init__(self, n_genes: int, image_size: int = 64, use_expression: bool = True, text_dim: int = 0,
                 vae_latent: int = 200, vae_hidden=(1024, 512), n_latent: int = 128, channels: int = 32,
                 max_channels: int = 512, upsample: str = "transposed", embed_dim: int = 128) -> None:
        super().__init__()
        self.vae = VAE(n_genes, vae_latent, tuple(vae_hidden), None, batch_norm=True) if use_expression else None
        self.text_dim = int(text_dim)
        cond_dim = (int(vae_latent) if use_expression else 0) + self.text_dim
        self.cond_dim = cond_dim
        self.generator = ConvGenerator(n_latent, cond_dim, image_size, channels, max_channels, upsample, embed_dim)
        self.critic = ConvCritic(image_size, cond_dim, channels, max_channels)

    @property
    def n_latent(self) -> int:
        return self.generator.n_latent

    @property
    def image_size(self) -> int:
        return self.generator.image_size

    def _mu(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.to_mu(self.vae.encoder(x))

    def condition(self, x: torch.Tensor | None, text_cls: torch.Tensor | None = None,
                  mu: torch.Tensor | None = None) -> torch.Tensor | None:
        """The raw condition of rows with z-scored expression ``x`` (or the VAE mean ``mu`` already computed)."""
        parts = []
        if self.vae is not None:
            parts.append((self._mu(x) if mu is None else mu).detach())
        if self.text_dim:
            if text_cls is None:
                raise ValueError("This TileGAN is conditioned on text: the rows need their text CLS embedding.")
            parts.append(text_cls.to(parts[0].dtype if parts else torch.float32))
        return torch.cat(parts, dim=1) if parts else None

    def generate(self, cond: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """Tiles in [-1, 1] (B x 3 x S x S) for conditions ``cond`` and noise ``z``."""
        return self.generator(z, cond)

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.generator.parameters())

    def vae_parameters(self) -> list[nn.Parameter]:
        return [] if self.vae is None else list(self.vae.parameters())

    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())


def text_cls(cond: dict) -> torch.Tensor | None:
    """The CLS (first) token of the rows' text embeddings, or None without text."""
    text = cond.get("text")
    return None if text is None else text[:, 0].float()


class TileGANPlan(WGANGPPlan):
    """WGAN-GP on tiles (the updates and clipping of :class:`~gemmgan_sc.train.WGANGPPlan`): ``n_critic`` critic updates, then one generator (+ VAE) update per batch of rows.

    Parameters
    ----------
    networks
        :class:`TileGANNetworks`.
    bank
        :class:`~gemmgan_sc.train.ConditionBank` with the z-scored expression (and text) of every row.
    train_idx, val_idx
        Rows of the training and validation splits.
    tile_bank
        :class:`TileBank` with the tiles of every row's slide.
    n_critic, lambda_gp
        Critic updates per generator update and gradient-penalty weight.
    critic_lr
        The critic's learning rate (default: ``lr``; a larger one is the two time-scale update rule).
    vae_lr, beta, vae_weight
        The VAE's learning rate, KL weight (RNA-GAN: 0.005) and the weight of its loss in the generator step.
    vae_pretrain_steps
        VAE updates (batches of 64 training rows, Adam) before the first GAN step, so the GAN starts from a trained
        expression encoder (RNA-GAN trains it first); 0 trains it jointly only.
    mismatch_weight
        Share of the critic's "fake" side given to real tiles paired with another row's condition (the
        matching-aware critic of GAN-CLS, Reed et al. 2016): the critic must then score how well a tile fits its
        condition, not only how real it looks, and the generator is pushed to follow the condition. 0 disables;
        no effect without a condition.
    clip_critic, clip_generator
        Gradient-norm clipping (None disables).
    score_encoder
        Image encoder of ``val_frechet`` (:func:`gemmgan_sc.encoders.get_image_encoder` names).
    **kwargs
        :class:`~gemmgan_sc.train.TrainingPlan` arguments (optimiser, lr, betas, lr_halving_every).
    """

    def __init__(self, networks: TileGANNetworks, bank, train_idx, val_idx, tile_bank: TileBank,
                 n_critic: int = 5, lambda_gp: float = 10.0, critic_lr: float | None = None, vae_lr: float = 1e-3,
                 beta: float = 0.005, vae_weight: float = 1.0, vae_pretrain_steps: int = 500,
                 mismatch_weight: float = 0.0, clip_critic: float | None = None, clip_generator: float | None = None,
                 score_encoder: str = "hed-texture", **kwargs) -> None:
        super().__init__(networks, bank, train_idx, val_idx, n_critic=n_critic, lambda_gp=lambda_gp,
                         clip_critic=clip_critic, clip_generator=clip_generator, **kwargs)
        self._train_rows = torch.as_tensor(train_idx, dtype=torch.long)
        self.vae_pretrain_steps = int(vae_pretrain_steps)
        self.tile_bank = tile_bank
        self.critic_lr = float(self.lr if critic_lr is None else critic_lr)
        self.vae_lr, self.beta, self.vae_weight = float(vae_lr), float(beta), float(vae_weight)
        self.mismatch_weight = float(mismatch_weight)
        self.score_encoder = score_encoder
        self._encoder = None
        self._val_real_features: np.ndarray | None = None
        self._val_tiles: list[torch.Tensor] = []
        self._val_rows: list[torch.Tensor] = []

    def configure_optimizers(self):
        from ._plan import make_optimizer

        net = self.networks
        critic = make_optimizer(self.optimizer_name, net.critic_parameters(), self.critic_lr, self.betas)
        groups = [{"params": net.generator_parameters()}]
        if net.vae is not None:
            groups.append({"params": net.vae_parameters(), "lr": self.vae_lr})
        return self._with_schedule([critic, make_optimizer(self.optimizer_name, groups, self.lr, self.betas)])

    def on_train_start(self) -> None:
        super().on_train_start()
        net = self.networks
        if net.vae is None or self.vae_pretrain_steps < 1 or self.resume_state or len(self._train_rows) < 2:
            return
        rows = self._train_rows.to(self.device)
        opt = torch.optim.Adam(net.vae_parameters(), lr=self.vae_lr)
        for _ in range(self.vae_pretrain_steps):
            x = self.bank.x[rows[torch.randint(len(rows), (min(64, len(rows)),), device=self.device)]]
            recon, mu, logvar = net.vae(x, {})
            loss = vae_loss(x, recon, mu, logvar, self.beta)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # one VAE on every process
            for t in list(net.vae.parameters()) + list(net.vae.buffers()):
                torch.distributed.broadcast(t.data, src=0)
        self.vae_pretrain_loss = float(loss.detach())

    def critic_loss(self, real: torch.Tensor, cond: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``E[D(fake)] - E[D(real)] + lambda_gp * GP`` (GP on tiles interpolated with one weight per tile).

        With ``mismatch_weight`` w and a condition, the fake side is ``(1 - w) E[D(fake, c)] + w E[D(real, c')]``,
        ``c'`` the batch's conditions shifted by one row (each real tile scored against another row's condition).
        """
        net = self.networks
        n = real.shape[0]
        with torch.no_grad():
            fake = net.generate(cond, torch.randn(n, net.n_latent, device=real.device))
        w = self.mismatch_weight if cond is not None and n > 1 else 0.0
        tiles = [real, fake] + ([real] if w else [])
        conds = None if cond is None else torch.cat([cond, cond] + ([cond.roll(1, dims=0)] if w else []))
        scores = net.critic(torch.cat(tiles), conds)
        fake_side = scores[n: 2 * n].mean()
        if w:
            fake_side = (1.0 - w) * fake_side + w * scores[2 * n:].mean()
        wasserstein = scores[:n].mean() - fake_side
        alpha = torch.rand(n, 1, 1, 1, device=real.device)
        gp = gradient_penalty(lambda h: net.critic(h, cond), real, fake, alpha)
        return {"loss": -wasserstein + self.lambda_gp * gp, "gp": gp, "wasserstein": wasserstein}

    def training_step(self, batch, batch_idx) -> None:
        (idx,) = batch
        opt_c, opt_g = self.optimizers()
        net = self.networks
        x = self.bank.x[idx]
        real = self.tile_bank.draw(idx)
        extra: dict[str, torch.Tensor] = {}
        if net.vae is not None:
            recon, mu, logvar = net.vae(x, {})
            vae_total, rec, kl = vae_loss(x, recon, mu, logvar, self.beta)
            extra = {"vae_loss": vae_total, "reconstruction": rec, "kl": kl}
        else:
            mu = None
        cond = net.condition(x, text_cls(self.bank.conditions(idx)), mu=mu)
        for _ in range(self.n_critic):
            out = self.critic_loss(real, cond)
            self._update(opt_c, out["loss"], self.clip_critic)
        self.toggle_optimizer(opt_g)
        fake = net.generate(cond, torch.randn(real.shape[0], net.n_latent, device=real.device))
        adversarial = -net.critic(fake, cond).mean()
        g_loss = adversarial + self.vae_weight * extra["vae_loss"] if extra else adversarial
        self._update(opt_g, g_loss, self.clip_generator)
        self.untoggle_optimizer(opt_g)
        for sched in self._schedulers():
            sched.step()
        self.log_dict({"critic_loss": out["loss"].detach(), "gradient_penalty": out["gp"].detach(),
                       "wasserstein_train": out["wasserstein"].detach(), "generator_loss": adversarial.detach(),
                       **{k: v.detach() for k, v in extra.items()}},
                      on_step=False, on_epoch=True, batch_size=len(idx))
        self.log_learning_rate(len(idx))

    # ------------------------------------------------------------- validation
    def _features(self, tiles: np.ndarray) -> np.ndarray:
        from ..metrics._image import image_features

        if self._encoder is None:
            from ..encoders import get_image_encoder

            self._encoder = get_image_encoder(self.score_encoder, device="cpu")
        return image_features(tiles, self._encoder)

    def validation_step(self, batch, batch_idx) -> None:
        (idx,) = batch
        net = self.networks
        cond = net.condition(self.bank.x[idx], text_cls(self.bank.conditions(idx)))
        fake = net.generate(cond, torch.randn(len(idx), net.n_latent, device=self.device))
        self._val_tiles.append(to_uint8(fake).cpu())
        self._val_rows.append(idx.cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_tiles:
            return
        from ..metrics._image import standardized_frechet

        fake = torch.cat(self._val_tiles).numpy()
        rows = torch.cat(self._val_rows)
        self._val_tiles, self._val_rows = [], []
        if self._val_real_features is None:  # one fixed real tile per validation row, drawn once
            gen = torch.Generator(device="cpu").manual_seed(0 if self.seed is None else int(self.seed))
            picks = self.tile_bank.pick(rows.to(self.tile_bank.counts.device), generator=None if
                                        self.tile_bank.counts.device.type != "cpu" else gen)
            real = self.tile_bank.tiles[picks].permute(0, 2, 3, 1).cpu().numpy()
            self._val_real_features = self._features(real)
        score = standardized_frechet(self._val_real_features, self._features(fake))
        self.log("val_frechet", float(score), on_epoch=True)
