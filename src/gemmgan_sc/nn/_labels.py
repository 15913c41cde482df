"""Learned embeddings of categorical labels (the label-conditioned baselines)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LabelEmbedding(nn.Module):
    """One learned embedding table per label, concatenated: B x K codes -> B x (K * dim)."""

    def __init__(self, cardinalities: Sequence[int], dim: int = 32) -> None:
        super().__init__()
        if not cardinalities:
            raise ValueError("LabelEmbedding needs at least one label.")
        self.tables = nn.ModuleList(nn.Embedding(int(c), dim) for c in cardinalities)
        self.out_dim = dim * len(cardinalities)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([table(labels[:, i]) for i, table in enumerate(self.tables)], dim=-1)

    def from_conditions(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(cond["labels"])
