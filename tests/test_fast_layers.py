"""Fast CPU dropout, blocked attention and the Transformer encoder that uses them."""

import pytest
import torch
import torch.nn.functional as F

from gemmgan_sc.nn import ConditionFusion
from gemmgan_sc.nn._attention import _BlockedSelfAttention, self_attention
from gemmgan_sc.nn._dropout import dropout_mask, dropout_multiplier, fast_dropout
from gemmgan_sc.nn._transformer import TransformerEncoder, TransformerEncoderLayer


# ------------------------------------------------------------------ dropout
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_multiplier_rate_and_scale(p):
    torch.manual_seed(0)
    keep = dropout_multiplier((400, 500), p)
    dropped = (keep == 0).float().mean().item()
    assert abs(dropped - p) < 0.005
    values = keep.unique()
    assert len(values) == 2 and values[0] == 0
    assert abs(values[1].item() - 1 / (1 - p)) < 1e-3
    assert abs(keep.mean().item() - 1.0) < 0.01  # expectation preserved


def test_dropout_multiplier_follows_torch_seed_and_shape():
    torch.manual_seed(3)
    a = dropout_multiplier((7, 11, 13), 0.2, torch.float64)
    torch.manual_seed(3)
    b = dropout_multiplier((7, 11, 13), 0.2, torch.float64)
    c = dropout_multiplier((7, 11, 13), 0.2, torch.float64)
    assert a.shape == (7, 11, 13) and a.dtype == torch.float64
    assert torch.equal(a, b)
    assert not torch.equal(b, c)


def test_dropout_mask_is_the_multipliers_draw():
    torch.manual_seed(3)
    mask, scale = dropout_mask((6, 50, 7), 0.25)
    torch.manual_seed(3)
    keep = dropout_multiplier((6, 50, 7), 0.25, torch.float64)
    assert mask.dtype == torch.bool and mask.shape == (6, 50, 7)
    assert torch.equal(keep > 0, mask) and scale == pytest.approx(65536 / (65536 - 16384))
    assert torch.equal(keep[mask], torch.full_like(keep[mask], scale))


def test_dropout_multiplier_is_not_correlated_across_positions():
    torch.manual_seed(0)
    keep = (dropout_multiplier((200_000,), 0.5) > 0).float()
    # neighbours share 64-bit words: their drops must still be independent
    assert abs((keep[:-1] * keep[1:]).mean().item() - 0.25) < 0.01
    assert abs((keep[::4] * keep[1::4]).mean().item() - 0.25) < 0.01


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_multiplier_rejects_bad_probability(p):
    with pytest.raises(ValueError, match="dropout probability"):
        dropout_multiplier((3,), p)


def test_fast_dropout_training_eval_and_gradient():
    x = torch.randn(50, 40, requires_grad=True)
    assert fast_dropout(x, 0.3, training=False) is x
    assert fast_dropout(x, 0.0) is x
    torch.manual_seed(1)
    y = fast_dropout(x, 0.3)
    kept = y != 0
    assert 0.6 < kept.float().mean().item() < 0.8
    assert torch.allclose(y[kept], x[kept] / (1 - 0.3), atol=1e-4)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(grad == 0, ~kept)


# ---------------------------------------------------------------- attention
def _reference(qkv, n_heads, key_pad, keep):
    b, length, three_d = qkv.shape
    d = three_d // 3
    q, k, v = qkv.view(b, length, 3, n_heads, d // n_heads).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / (d // n_heads) ** 0.5
    if key_pad is not None:
        scores = scores.masked_fill(key_pad[:, None, None, :], float("-inf"))
    out = (scores.softmax(-1) * keep) @ v
    return out.transpose(1, 2).reshape(b, length, d)


@pytest.mark.parametrize("block", [1, 2, 100])
@pytest.mark.parametrize("padded", [False, True])
def test_blocked_self_attention_matches_reference_forward_and_backward(block, padded):
    torch.manual_seed(0)
    b, length, h, d_head = 5, 9, 2, 4
    qkv = torch.randn(b, length, 3 * h * d_head, dtype=torch.float64, requires_grad=True)
    key_pad = None
    if padded:
        key_pad = torch.zeros(b, length, dtype=torch.bool)
        key_pad[0, 5:] = True
        key_pad[3, 1:] = True
    mask, scale = dropout_mask((b, h, length, length), 0.3)
    keep = mask.double() * scale
    mine = _BlockedSelfAttention.apply(qkv, key_pad, mask, scale, h, block)
    ref = _reference(qkv, h, key_pad, keep)
    assert torch.allclose(mine, ref, atol=1e-12)
    upstream = torch.randn_like(ref)
    (grad_mine,) = torch.autograd.grad(mine, qkv, upstream)
    (grad_ref,) = torch.autograd.grad(ref, qkv, upstream)
    assert torch.allclose(grad_mine, grad_ref, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: _BlockedSelfAttention.apply(t, key_pad, mask, scale, h, block), (qkv,))


def test_self_attention_without_dropout_is_sdpa():
    torch.manual_seed(0)
    qkv = torch.randn(2, 6, 3 * 8)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    q, k, v = qkv.view(2, 6, 3, 2, 4).permute(2, 0, 3, 1, 4)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=~pad[:, None, None, :])
    expected = expected.transpose(1, 2).reshape(2, 6, 8)
    assert torch.allclose(self_attention(qkv, 2, pad, 0.0), expected, atol=1e-6)


def test_self_attention_with_dropout_is_unbiased():
    torch.manual_seed(0)
    qkv = torch.randn(1, 5, 3 * 8, dtype=torch.float64)
    mean = torch.stack([self_attention(qkv, 2, None, 0.5) for _ in range(4000)]).mean(0)
    expected = self_attention(qkv, 2, None, 0.0)
    assert torch.allclose(mean, expected, atol=0.08)
    assert not torch.allclose(self_attention(qkv, 2, None, 0.5), expected, atol=1e-3)


def test_self_attention_rejects_bad_width():
    with pytest.raises(ValueError, match="n_heads"):
        self_attention(torch.randn(2, 3, 3 * 10), n_heads=4)


# -------------------------------------------------------------- transformer
def _pair(dropout=0.1, n_layers=2):
    torch.manual_seed(0)
    ref = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(16, 4, 32, dropout, activation="relu", batch_first=True),
        n_layers, enable_nested_tensor=False,
    )
    torch.manual_seed(0)
    mine = TransformerEncoder(TransformerEncoderLayer(16, 4, 32, dropout), n_layers)
    return ref, mine


def test_encoder_matches_torch_encoder_in_eval_and_shares_state_dict():
    ref, mine = _pair()
    assert ref.state_dict().keys() == mine.state_dict().keys()
    for key, value in ref.state_dict().items():
        assert torch.equal(value, mine.state_dict()[key]), key  # same initialisation under the same seed
    ref.eval(), mine.eval()
    x = torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 4:] = True
    with torch.no_grad():
        for mask in (None, pad):
            assert torch.allclose(ref(x, src_key_padding_mask=mask), mine(x, src_key_padding_mask=mask), atol=1e-5)


def test_encoder_training_without_dropout_matches_torch_gradients():
    ref, mine = _pair(dropout=0.0)
    x = torch.randn(3, 7, 16)
    ref(x).square().sum().backward()
    mine(x).square().sum().backward()
    for (name, a), (_, b) in zip(ref.named_parameters(), mine.named_parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-4), name


def test_encoder_training_drops_and_is_seeded():
    _, mine = _pair(dropout=0.3)
    x = torch.randn(3, 7, 16)
    torch.manual_seed(5)
    a = mine(x)
    torch.manual_seed(5)
    b = mine(x)
    mine.eval()
    assert torch.equal(a, b)
    assert not torch.allclose(a, mine(x), atol=1e-3)


def test_layer_rejects_heads_not_dividing_width():
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoderLayer(10, 4, 16)


@pytest.mark.parametrize("variant", ["paper", "authors_code"])
def test_fusion_torch_layers_flag_interchangeable_weights(variant):
    torch.manual_seed(0)
    ref = ConditionFusion(32, 16, d_model=16, n_heads=4, d_ff=32, torch_layers=True, variant=variant)
    torch.manual_seed(0)
    mine = ConditionFusion(32, 16, d_model=16, n_heads=4, d_ff=32, variant=variant)
    assert isinstance(mine.transformer, TransformerEncoder)
    mine.load_state_dict(ref.state_dict())  # strict: same keys
    ref.eval(), mine.eval()
    patches, text = torch.randn(3, 5, 32), torch.randn(3, 6, 16)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2, 3:] = False
    with torch.no_grad():
        assert torch.allclose(ref(patches, mask, text, None), mine(patches, mask, text, None), atol=1e-5)


@pytest.mark.parametrize("n_query", [1, 3])
@pytest.mark.parametrize("padded", [False, True])
def test_cross_attention_matches_torch_module(n_query, padded):
    from gemmgan_sc.nn import cross_attention

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    q, kv = torch.randn(3, n_query, 16, requires_grad=True), torch.randn(3, 9, 16, requires_grad=True)
    pad = None
    if padded:
        pad = torch.zeros(3, 9, dtype=torch.bool)
        pad[0, 4:] = True
    mine = cross_attention(mha, q, kv, pad)
    ref = mha(q, kv, kv, key_padding_mask=pad, need_weights=False)[0]
    assert torch.allclose(mine, ref, atol=1e-5)
    g_mine = torch.autograd.grad(mine.square().sum(), (q, kv, mha.in_proj_weight))
    g_ref = torch.autograd.grad(ref.square().sum(), (q, kv, mha.in_proj_weight))
    for a, b in zip(g_mine, g_ref):
        assert torch.allclose(a, b, atol=1e-4)


def test_cross_attention_rejects_sequence_first_module():
    from gemmgan_sc.nn import cross_attention

    with pytest.raises(ValueError, match="batch_first"):
        cross_attention(torch.nn.MultiheadAttention(8, 2), torch.randn(2, 1, 8), torch.randn(2, 3, 8))
