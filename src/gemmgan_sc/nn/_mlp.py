"""MLP generator and critic of the WGAN-GP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear -> activation blocks through ``hidden``, then a linear output layer."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, int(h)), activation()]
        width = int(h)
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """``[z | condition] -> hidden -> n_genes`` (ReLU, linear output); ``cond_dim=0`` is unconditional."""

    def __init__(self, n_latent: int, cond_dim: int, n_genes: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.n_latent, self.cond_dim = n_latent, cond_dim
        self.net = mlp(n_latent + cond_dim, hidden, n_genes)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z if cond is None else torch.cat([z, cond], dim=-1))


class Critic(nn.Module):
    """``[x | condition] -> hidden -> 1`` (ReLU, no normalisation layers: they would break the gradient penalty)."""

    def __init__(self, n_genes: int, cond_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.net = mlp(n_genes + cond_dim, hidden, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x if cond is None else torch.cat([x, cond], dim=-1)).squeeze(-1)


def gradient_penalty(critic_fn, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``mean((||grad_x critic(x_hat)||_2 - 1)^2)`` on ``x_hat = alpha real + (1 - alpha) fake``.

    ``critic_fn`` maps a batch of expression profiles to critic scores (the condition already bound).
    The graph is kept (``create_graph=True``) so the penalty can be back-propagated.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic_fn(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
