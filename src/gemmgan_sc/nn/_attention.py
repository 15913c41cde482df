"""Multi-head self-attention with dropout on the attention weights, fast on the CPU.

PyTorch's fused CPU attention (``scaled_dot_product_attention``, flash kernel) cannot drop attention weights, so in
training it falls back to the textbook path: B x H x L x L scores, softmax, dropout and their backward, each a
pass over a tensor of tens of megabytes (64 x 4 x 257 x 257 floats = 68 MB at the paper size), which made attention
half of a CPU training step. :func:`attention` runs the same maths in blocks of heads whose L x L matrices stay in
the CPU cache, with the fast dropout multiplier of :func:`gemmgan_sc.nn._dropout.dropout_multiplier`. Off the CPU, or with no
dropout due, it calls ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ._dropout import dropout_multiplier

_BLOCK_BYTES = 1 << 20  # L x L score blocks of about 1 MB per head block


class _BlockedDropoutAttention(torch.autograd.Function):
    """(softmax(q k^T / sqrt(d) + padding) * keep) v; q, k, v are G x L x d_head (G = batch x heads), ``keep`` the
    G x L x L dropout multiplier."""

    @staticmethod
    def forward(ctx, q, k, v, key_pad, keep, block):
        g, length, d_head = q.shape
        sm_scale = d_head**-0.5
        weights = q.new_empty(g, length, length)  # softmax output, kept for the backward
        out = q.new_empty(g, length, d_head)
        for s in range(0, g, block):
            e = slice(s, s + block)
            scores = torch.bmm(q[e], k[e].transpose(1, 2)).mul_(sm_scale)
            if key_pad is not None:
                scores.masked_fill_(key_pad[e, None, :], float("-inf"))
            torch.ops.aten._softmax.out(scores, -1, False, out=weights[e])
            torch.bmm(weights[e] * keep[e], v[e], out=out[e])
        ctx.save_for_backward(q, k, v, weights, keep)
        ctx.block = block
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        q, k, v, weights, keep = ctx.saved_tensors
        block = ctx.block
        sm_scale = q.shape[-1] ** -0.5
        grad = grad.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        for s in range(0, q.shape[0], block):
            e = slice(s, s + block)
            w, kept = weights[e], keep[e]
            torch.bmm((w * kept).transpose(1, 2), grad[e], out=dv[e])
            d_w = torch.bmm(grad[e], v[e].transpose(1, 2)).mul_(kept)
            d_scores = torch._softmax_backward_data(d_w, w, -1, w.dtype).mul_(sm_scale)
            torch.bmm(d_scores, k[e], out=dq[e])
            torch.bmm(d_scores.transpose(1, 2), q[e], out=dk[e])
        return dq, dk, dv, None, None, None


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    block_bytes: int = _BLOCK_BYTES,
) -> torch.Tensor:
    """Scaled dot-product self-attention, B x H x L x d_head inputs and output.

    ``key_padding_mask`` is B x L with ``True`` for padded keys (every query must keep at least one key);
    ``dropout_p`` drops attention weights (pass 0 in evaluation). Same result as
    ``F.scaled_dot_product_attention(q, k, v, attn_mask=~key_padding_mask[:, None, None], dropout_p=dropout_p)``
    up to the random dropout mask.

    Examples
    --------
    >>> import torch
    >>> q = k = v = torch.randn(2, 4, 5, 8)
    >>> attention(q, k, v, dropout_p=0.1).shape
    torch.Size([2, 4, 5, 8])
    """
    if dropout_p == 0.0 or q.device.type != "cpu" or q.dtype not in (torch.float32, torch.float64):
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    b, h, length, d_head = q.shape
    keep = dropout_multiplier((b * h, length, length), dropout_p, q.dtype)
    key_pad = None
    if key_padding_mask is not None:
        key_pad = key_padding_mask[:, None, :].expand(b, h, length).reshape(b * h, length)
    block = max(1, block_bytes // (length * length * q.element_size()))
    out = _BlockedDropoutAttention.apply(
        *(t.reshape(b * h, length, d_head) for t in (q, k, v)), key_pad, keep, block
    )
    return out.view(b, h, length, d_head)


def cross_attention(
    mha: torch.nn.MultiheadAttention,
    query: torch.Tensor,
    kv: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mha(query, kv, kv, key_padding_mask=..., need_weights=False)[0]`` for a batch-first module, run leaner.

    The few queries of GeMM-GAN's cross attention (one CLS token) attend over hundreds of keys; torch's module
    transposes, packs and copies the projected keys and values (a B x L x 2 x d copy forward, a zero fill and
    copy backward). Here the key and value projections are one matmul whose output is read in place by
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
    length, h = kv.shape[1], mha.num_heads
    w, bias = mha.in_proj_weight, mha.in_proj_bias
    q = F.linear(query, w[:d], bias[:d]).view(b, n_query, h, d // h).transpose(1, 2)
    k, v = F.linear(kv, w[d:], bias[d:]).view(b, length, 2, h, d // h).unbind(2)
    mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
    p = mha.dropout if mha.training else 0.0
    out = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, dropout_p=p)
    return mha.out_proj(out.transpose(1, 2).reshape(b, n_query, d))
