"""Feature-wise linear modulation."""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn


class FiLM(nn.Module):
    """FiLM: ``gamma(c) * x + beta(c)`` with ``gamma`` and ``beta`` linear maps of a condition ``c``.

    Parameters
    ----------
    cond_dim
        Width of the condition vector ``c`` (B x cond_dim).
    feature_dim
        Width of the modulated features ``x`` (B x N x feature_dim or B x feature_dim).
    bounded
        ``False`` (the paper): plain linear ``gamma``, ``beta``; ``gamma`` starts at 1 and ``beta`` at 0 so the layer
        starts as the identity. ``True`` (the authors' public code): ``gamma = tanh(W c)`` and
        ``beta = clamp(V c, -beta_clamp, beta_clamp)``.
    beta_clamp
        Bound of ``beta`` in the bounded form.

    Examples
    --------
    >>> import torch
    >>> film = FiLM(cond_dim=4, feature_dim=6)
    >>> x = torch.randn(2, 3, 6)
    >>> torch.equal(film(x, torch.randn(2, 4)), x)  # the identity at initialisation
    True
    """

    def __init__(self, cond_dim: int, feature_dim: int, bounded: bool = False, beta_clamp: float = 5.0) -> None:
        super().__init__()
        for name, value in (("cond_dim", cond_dim), ("feature_dim", feature_dim)):
            if not isinstance(value, Integral) or value < 1:
                raise ValueError(f"FiLM {name} must be a positive int, got {value!r}.")
        self.to_gamma_beta = nn.Linear(cond_dim, 2 * feature_dim)
        self.bounded = bounded
        self.beta_clamp = beta_clamp
        if not bounded:
            nn.init.zeros_(self.to_gamma_beta.weight)
            with torch.no_grad():
                self.to_gamma_beta.bias.zero_()
                self.to_gamma_beta.bias[:feature_dim] = 1.0

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.to_gamma_beta(cond).chunk(2, dim=-1)
        if self.bounded:
            gamma = torch.tanh(gamma)
            beta = beta.clamp(-self.beta_clamp, self.beta_clamp)
        if x.dim() == 3:
            gamma, beta = gamma.unsqueeze(1), beta.unsqueeze(1)
        return gamma * x + beta
