"""VAE parts: an MLP encoder/decoder pair, optionally conditioned on a label embedding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _block(in_dim: int, out_dim: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_dim))
    layers.append(nn.LeakyReLU(0.2) if batch_norm else nn.ReLU())
    return layers


class VAE(nn.Module):
    """Gaussian VAE with MLP encoder and decoder; ``condition`` (a label embedding or None) is concatenated to both.

    ``batch_norm=True`` with LeakyReLU is the expression beta-VAE of RNA-GAN (Carrillo-Perez et al. 2023).

    Examples
    --------
    >>> import torch
    >>> vae = VAE(n_genes=30, n_latent=4, hidden=(16,))
    >>> recon, mu, logvar = vae(torch.randn(5, 30), {})
    >>> recon.shape, mu.shape
    (torch.Size([5, 30]), torch.Size([5, 4]))
    """

    def __init__(
        self,
        n_genes: int,
        n_latent: int = 64,
        hidden: Sequence[int] = (256, 256),
        condition: nn.Module | None = None,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if int(n_genes) < 1 or int(n_latent) < 1 or any(int(h) < 1 for h in hidden):
            raise ValueError(f"VAE widths must be positive: n_genes={n_genes}, n_latent={n_latent}, hidden={hidden}.")
        self.n_latent = int(n_latent)
        self.condition = condition
        c = condition.out_dim if condition is not None else 0
        enc: list[nn.Module] = []
        width = n_genes + c
        for h in hidden:
            enc += _block(width, int(h), batch_norm)
            width = int(h)
        self.encoder = nn.Sequential(*enc)
        self.to_mu = nn.Linear(width, self.n_latent)
        self.to_logvar = nn.Linear(width, self.n_latent)
        dec: list[nn.Module] = []
        width = self.n_latent + c
        for h in reversed(tuple(hidden)):
            dec += _block(width, int(h), batch_norm)
            width = int(h)
        dec.append(nn.Linear(width, n_genes))
        self.decoder = nn.Sequential(*dec)

    def _cond(self, cond: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return None if self.condition is None else self.condition.from_conditions(cond)

    @staticmethod
    def _cat(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return x if c is None else torch.cat([x, c], dim=-1)

    def forward(self, x: torch.Tensor, cond: dict[str, torch.Tensor]):
        c = self._cond(cond)
        h = self.encoder(self._cat(x, c))
        mu, logvar = self.to_mu(h), self.to_logvar(h).clamp(-20, 20)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(self._cat(z, c)), mu, logvar

    def generate(self, cond: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self._cat(z, self._cond(cond)))


def vae_loss(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float):
    """Per-sample mean of squared error summed over genes, plus ``beta`` x KL(q(z|x) || N(0, I)).

    Returns ``(loss, reconstruction term, KL term)``.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(2, 3)
    >>> [round(t.item(), 3) for t in vae_loss(x, x, torch.zeros(2, 4), torch.zeros(2, 4), beta=1.0)]
    [0.0, 0.0, 0.0]
    """
    if x.shape != recon.shape:
        raise ValueError(f"x {tuple(x.shape)} and recon {tuple(recon.shape)} must have one shape.")
    rec = ((recon - x) ** 2).sum(dim=1).mean()
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)).mean()
    return rec + beta * kl, rec, kl
