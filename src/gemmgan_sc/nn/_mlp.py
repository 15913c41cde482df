"""MLP generator and critic of the WGAN-GP, and its gradient penalty."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral

import torch
from torch import nn


def _check_widths(**widths) -> None:
    for name, value in widths.items():
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}.")


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear -> activation blocks through ``hidden``, then a linear output layer.

    Examples
    --------
    >>> net = mlp(4, (8, 8), 2)
    >>> [type(m).__name__ for m in net]
    ['Linear', 'ReLU', 'Linear', 'ReLU', 'Linear']
    """
    _check_widths(in_dim=in_dim, out_dim=out_dim)
    hidden = tuple(hidden)
    if any(not isinstance(h, Integral) or isinstance(h, bool) or h < 1 for h in hidden):
        raise ValueError(f"hidden must hold positive ints, got {hidden!r}.")
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, int(h)), activation()]
        width = int(h)
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """``[z | condition] -> hidden -> n_genes`` (ReLU, linear output); ``cond_dim=0`` is unconditional.

    Examples
    --------
    >>> import torch
    >>> Generator(n_latent=8, cond_dim=4, n_genes=30, hidden=(16,))(torch.randn(5, 8), torch.randn(5, 4)).shape
    torch.Size([5, 30])
    """

    def __init__(self, n_latent: int, cond_dim: int, n_genes: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        _check_widths(n_latent=n_latent, cond_dim=cond_dim, n_genes=n_genes)
        self.n_latent, self.cond_dim = n_latent, cond_dim
        self.net = mlp(n_latent + cond_dim, hidden, n_genes)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z if cond is None else torch.cat([z, cond], dim=-1))


class Critic(nn.Module):
    """``[x | condition] -> hidden -> 1`` (ReLU, no normalisation layers: they would break the gradient penalty).

    Examples
    --------
    >>> import torch
    >>> Critic(n_genes=30, cond_dim=0, hidden=(16,))(torch.randn(5, 30)).shape
    torch.Size([5])
    """

    def __init__(self, n_genes: int, cond_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        _check_widths(n_genes=n_genes, cond_dim=cond_dim)
        self.cond_dim = cond_dim
        self.net = mlp(n_genes + cond_dim, hidden, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x if cond is None else torch.cat([x, cond], dim=-1)).squeeze(-1)


def gradient_penalty(
    critic_fn: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``mean((||grad_x critic(x_hat)||_2 - 1)^2)`` on ``x_hat = alpha real + (1 - alpha) fake``.

    Parameters
    ----------
    critic_fn
        Maps a batch of expression profiles (B x G) to critic scores (B), the condition already bound.
    real, fake
        B x G batches.
    alpha
        B x 1 interpolation weights (default: uniform draws).

    Returns
    -------
    A scalar; the graph is kept (``create_graph=True``) so the penalty can be back-propagated.

    Examples
    --------
    >>> import torch
    >>> critic = torch.nn.Linear(3, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = critic.weight.copy_(torch.tensor([[2.0, 0.0, 0.0]]))
    >>> gradient_penalty(lambda x: critic(x).squeeze(-1), torch.zeros(4, 3), torch.ones(4, 3)).item()  # (2 - 1)^2
    1.0
    """
    if real.shape != fake.shape or real.dim() < 2:
        raise ValueError(f"real and fake must be batches of one shape, got {tuple(real.shape)} and {tuple(fake.shape)}.")
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype)
    elif alpha.shape[0] != real.shape[0]:
        raise ValueError(f"alpha has {alpha.shape[0]} rows for a batch of {real.shape[0]}.")
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic_fn(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
