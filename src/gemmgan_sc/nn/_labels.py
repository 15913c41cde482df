"""Learned embeddings of categorical labels (the label-conditioned baselines)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LabelEmbedding(nn.Module):
    """One learned embedding table per label, concatenated: B x K codes -> B x (K * dim).

    Examples
    --------
    >>> import torch
    >>> emb = LabelEmbedding([3, 5], dim=4)
    >>> emb(torch.tensor([[0, 4], [2, 1]])).shape
    torch.Size([2, 8])
    """

    def __init__(self, cardinalities: Sequence[int], dim: int = 32) -> None:
        super().__init__()
        if not cardinalities:
            raise ValueError("LabelEmbedding needs at least one label.")
        if any(int(c) < 1 for c in cardinalities) or dim < 1:
            raise ValueError(f"Label cardinalities and dim must be positive, got {list(cardinalities)} and {dim}.")
        self.tables = nn.ModuleList(nn.Embedding(int(c), dim) for c in cardinalities)
        self.out_dim = dim * len(cardinalities)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([table(labels[:, i]) for i, table in enumerate(self.tables)], dim=-1)

    def from_conditions(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(cond["labels"])
