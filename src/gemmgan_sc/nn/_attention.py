"""Multi-head self-attention with dropout on the attention weights, fast on the CPU.

PyTorch's fused CPU attention (``scaled_dot_product_attention``, flash kernel) cannot drop attention weights, so in
training it falls back to the textbook path: B x H x L x L scores, softmax, dropout and their backward, each a
pass over a tensor of tens of megabytes (64 x 4 x 257 x 257 floats = 68 MB at the paper size), which made attention
half of a CPU training step. :func:`self_attention` runs the same maths one block of batch rows at a time, so
that the H x L x L weights stay in the CPU cache, with the fast dropout mask of :func:`gemmgan_sc.nn._dropout.dropout_mask`. Off the CPU, or with no
dropout due, it calls ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ._dropout import dropout_mask

_BLOCK_BYTES = 1 << 20  # H x L x L weights of about 1 MB per block of batch rows


class _BlockedSelfAttention(torch.autograd.Function):
    """Multi-head self-attention with dropout on the weights, from the packed projection ``qkv`` (B x L x 3d,
    the layout ``F.linear`` gives) to the heads' outputs concatenated (B x L x d), one block of batch rows at a
    time so that each block's H x L x L weights stay in the CPU cache. The gradient is written straight into the
    packed layout (no unbind/stack or head-transposing copies of whole tensors).

    ``key_pad``: B x L bool (True = padded key) or None; ``keep``: B x H x L x L bool dropout mask (True = kept)
    and ``scale`` the factor of kept weights. The mask is kept as bool (a quarter of a float multiplier's
    memory traffic) and turned into 0/1 floats one cache-sized block at a time; ``scale`` is applied to the
    L x d_head products rather than to the L x L weights."""

    @staticmethod
    def forward(ctx, qkv, key_pad, keep, scale, n_heads, block):
        b, length, three_d = qkv.shape
        d = three_d // 3
        d_head = d // n_heads
        sm_scale = d_head**-0.5
        weights = qkv.new_empty(b, n_heads, length, length)  # softmax output, kept for the backward
        out = qkv.new_empty(b, length, d)
        heads = qkv.view(b, length, 3, n_heads, d_head)
        dropped = qkv.new_empty(min(block, b), n_heads, length, length)  # one block of dropped weights
        for s in range(0, b, block):
            e = slice(s, s + block)
            rows = min(b, s + block) - s
            q, k, v = (heads[e, :, i].transpose(1, 2) for i in range(3))  # block x H x L x d_head views
            scores = torch.matmul(q * sm_scale, k.transpose(-1, -2))
            if key_pad is not None:
                scores.masked_fill_(key_pad[e, None, None, :], float("-inf"))
            torch.ops.aten._softmax.out(scores, -1, False, out=weights[e])
            w_kept = dropped[:rows].copy_(keep[e]).mul_(weights[e])
            head_out = torch.matmul(w_kept, v).mul_(scale)  # block x H x L x d_head
            out[e].view(-1, length, n_heads, d_head).copy_(head_out.transpose(1, 2))
        ctx.save_for_backward(qkv, weights, keep)
        ctx.n_heads, ctx.block, ctx.scale = n_heads, block, scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        qkv, weights, keep = ctx.saved_tensors
        n_heads, block, scale = ctx.n_heads, ctx.block, ctx.scale
        b, length, three_d = qkv.shape
        d_head = three_d // 3 // n_heads
        sm_scale = d_head**-0.5
        heads = qkv.view(b, length, 3, n_heads, d_head)
        grad_heads = grad.contiguous().view(b, length, n_heads, d_head)
        d_qkv = torch.empty_like(qkv)
        d_heads = d_qkv.view(b, length, 3, n_heads, d_head)
        mask = qkv.new_empty(min(block, b), n_heads, length, length)
        for s in range(0, b, block):
            e = slice(s, s + block)
            rows = min(b, s + block) - s
            q, k, v = (heads[e, :, i].transpose(1, 2) for i in range(3))
            g = grad_heads[e].transpose(1, 2)  # block x H x L x d_head
            w = weights[e]
            m = mask[:rows].copy_(keep[e])  # 0/1
            d_w = torch.matmul(g, v.transpose(-1, -2)).mul_(m).mul_(scale)
            d_v = torch.matmul(m.mul_(w).transpose(-1, -2), g).mul_(scale)  # m is now the kept weights
            d_scores = torch._softmax_backward_data(d_w, w, -1, w.dtype).mul_(sm_scale)
            d_q = torch.matmul(d_scores, k)
            d_k = torch.matmul(d_scores.transpose(-1, -2), q)
            for i, part in enumerate((d_q, d_k, d_v)):
                d_heads[e, :, i].copy_(part.transpose(1, 2))
        return d_qkv, None, None, None, None, None


def self_attention(
    qkv: torch.Tensor,
    n_heads: int,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    block_bytes: int = _BLOCK_BYTES,
) -> torch.Tensor:
    """Multi-head scaled dot-product self-attention from packed projections.

    ``qkv`` is B x L x 3d (queries, keys, values side by side, as ``nn.MultiheadAttention``'s ``in_proj`` gives
    them); the result is the heads' outputs concatenated, B x L x d (before the output projection).
    ``key_padding_mask`` is B x L with ``True`` for padded keys (every query must keep at least one key);
    ``dropout_p`` drops attention weights (pass 0 in evaluation). Equal to ``scaled_dot_product_attention`` on the
    split heads up to the random dropout mask.

    Examples
    --------
    >>> import torch
    >>> qkv = torch.randn(2, 5, 3 * 8)
    >>> self_attention(qkv, n_heads=2, dropout_p=0.1).shape
    torch.Size([2, 5, 8])
    """
    b, length, three_d = qkv.shape
    if three_d % 3 or (three_d // 3) % n_heads:
        raise ValueError(f"qkv width {three_d} is not 3 x a multiple of n_heads={n_heads}.")
    d = three_d // 3
    if dropout_p == 0.0 or qkv.device.type != "cpu" or qkv.dtype not in (torch.float32, torch.float64):
        q, k, v = qkv.view(b, length, 3, n_heads, d // n_heads).permute(2, 0, 3, 1, 4)
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return out.transpose(1, 2).reshape(b, length, d)
    keep, scale = dropout_mask((b, n_heads, length, length), dropout_p)
    block = max(1, block_bytes // (n_heads * length * length * qkv.element_size()))
    return _BlockedSelfAttention.apply(qkv.contiguous(), key_padding_mask, keep, scale, n_heads, block)


def cross_attention(
    mha: torch.nn.MultiheadAttention,
    query: torch.Tensor,
    kv: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mha(query, kv, kv, key_padding_mask=..., need_weights=False)[0]`` for a batch-first module, run leaner.

    The few queries of GeMM-GAN's cross attention (one CLS token) attend over hundreds of keys; torch's module
    transposes, packs and copies the projected keys and values (a B x L x 2 x d copy forward, a zero fill and
    copy backward). Here the key and value projections are two matmuls whose outputs are read in place by
    ``scaled_dot_product_attention``. Uses ``mha``'s own weights (no dropout on attention weights).

    Examples
    --------
    >>> import torch
    >>> mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    >>> q, kv = torch.randn(3, 1, 8), torch.randn(3, 6, 8)
    >>> torch.allclose(cross_attention(mha, q, kv), mha(q, kv, kv, need_weights=False)[0], atol=1e-6)
    True
    """
    if not mha.batch_first or not mha._qkv_same_embed_dim or mha.in_proj_bias is None:
        raise ValueError("cross_attention needs a batch_first nn.MultiheadAttention with packed, biased projections.")
    b, n_query, d = query.shape
    h = mha.num_heads
    w, bias = mha.in_proj_weight, mha.in_proj_bias
    # separate key and value matmuls: their outputs are contiguous, so no unbind (whose backward stacks copies)
    q, k, v = (
        F.linear(t, w[i * d : (i + 1) * d], bias[i * d : (i + 1) * d]).view(b, -1, h, d // h).transpose(1, 2)
        for i, t in enumerate((query, kv, kv))
    )
    mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
    p = mha.dropout if mha.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
    return mha.out_proj(out.transpose(1, 2).reshape(b, n_query, d))
