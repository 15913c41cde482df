"""Post-norm Transformer encoder with the fast CPU dropout of :mod:`gemmgan_sc.nn._dropout`.

Same maths and the same parameter names as ``torch.nn.TransformerEncoder`` over
``torch.nn.TransformerEncoderLayer(batch_first=True, norm_first=False, activation="relu")``, so their state dicts
are interchangeable. Differences are in how it runs: dropout masks come from :func:`fast_dropout`, and attention
runs :func:`gemmgan_sc.nn.self_attention` (cache-blocked on the CPU when attention weights are dropped,
``scaled_dot_product_attention`` otherwise).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ._attention import self_attention
from ._dropout import fast_dropout


class TransformerEncoderLayer(nn.Module):
    """Self-attention + ReLU feed-forward block, post-norm, batch first.

    Examples
    --------
    >>> import torch
    >>> layer = TransformerEncoderLayer(d_model=8, n_heads=2, d_ff=16, dropout=0.1)
    >>> layer(torch.randn(3, 5, 8)).shape
    torch.Size([3, 5, 8])
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}).")
        # holds in_proj_weight/in_proj_bias/out_proj like torch's layer; its forward is not used
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.n_heads = n_heads
        self.dropout = float(dropout)

    def _attention(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        qkv = F.linear(x, self.self_attn.in_proj_weight, self.self_attn.in_proj_bias)
        out = self_attention(qkv, self.n_heads, key_padding_mask, self.dropout if self.training else 0.0)
        return self.self_attn.out_proj(out)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: B x L x d_model; ``key_padding_mask``: B x L, ``True`` for padding (keys not attended)."""
        p, training = self.dropout, self.training
        x = self.norm1(x + fast_dropout(self._attention(x, key_padding_mask), p, training))
        hidden = fast_dropout(F.relu(self.linear1(x)), p, training)
        return self.norm2(x + fast_dropout(self.linear2(hidden), p, training))


class TransformerEncoder(nn.Module):
    """``n_layers`` copies of a :class:`TransformerEncoderLayer` (initialised identically, as torch's encoder does).

    Examples
    --------
    >>> import torch
    >>> encoder = TransformerEncoder(TransformerEncoderLayer(8, 2, 16), n_layers=2)
    >>> encoder(torch.randn(3, 5, 8), src_key_padding_mask=torch.zeros(3, 5, dtype=torch.bool)).shape
    torch.Size([3, 5, 8])
    """

    def __init__(self, layer: TransformerEncoderLayer, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(n_layers)])

    def forward(self, x: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, src_key_padding_mask)
        return x
