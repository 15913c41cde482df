import itertools

import numpy as np
import pytest
import torch

from gemmgan_sc.nn import CONDITIONING_MODES, FUSION_VARIANTS, ConditionFusion, Critic, FiLM, Generator, gradient_penalty
from gemmgan_sc.nn import mlp
from gemmgan_sc.train import ConditionBank


def _inputs(b=3, n=5, m=7, dp=12, dt=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    patches, text = torch.randn(b, n, dp, generator=g), torch.randn(b, m, dt, generator=g)
    pm = torch.ones(b, n, dtype=torch.bool)
    pm[0, 2:] = False
    tm = torch.ones(b, m, dtype=torch.bool)
    tm[1, 3:] = False
    return patches, pm, text, tm


@pytest.mark.parametrize("mode,variant", list(itertools.product(CONDITIONING_MODES, FUSION_VARIANTS)))
def test_fusion_shapes_and_padding_is_ignored(mode, variant):
    torch.manual_seed(0)
    fusion = ConditionFusion(12, 10, d_model=8, n_heads=2, d_ff=16, conditioning=mode, variant=variant).eval()
    patches, pm, text, tm = _inputs()
    out = fusion(patches, pm, text, tm)
    assert out.shape == (3, 8) and torch.isfinite(out).all()
    # changing padded tiles / padded tokens must not change the condition
    p2, t2 = patches.clone(), text.clone()
    p2[~pm] = 1e3
    t2[~tm] = -1e3
    torch.testing.assert_close(fusion(p2, pm, t2, tm), out, rtol=1e-5, atol=1e-5)
    # but a real tile or token does (for the modes that read that modality)
    p3, t3 = patches.clone(), text.clone()
    p3[0, 0] += 5
    t3[0, 0] += 5
    assert not torch.allclose(fusion(p3, pm, t3, tm), out)


def test_full_on_one_modality_resolves_and_explicit_missing_raises():
    assert ConditionFusion(None, 10, d_model=8, n_heads=2).conditioning == "text_cls"
    assert ConditionFusion(12, None, d_model=8, n_heads=2).conditioning == "patch_transformer"
    with pytest.raises(ValueError, match="needs"):
        ConditionFusion(None, 10, d_model=8, n_heads=2, conditioning="film")
    with pytest.raises(ValueError, match="Unknown conditioning"):
        ConditionFusion(12, 10, conditioning="bogus")
    with pytest.raises(ValueError, match="Unknown fusion_variant"):
        ConditionFusion(12, 10, variant="bogus")


def test_film_identity_at_init_and_bounded_variant():
    film = FiLM(4, 6)
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(film(x, torch.randn(2, 4)), x)
    bounded = FiLM(4, 6, bounded=True)
    with torch.no_grad():
        bounded.to_gamma_beta.bias.fill_(100.0)
    y = bounded(torch.zeros(2, 3, 6), torch.zeros(2, 4))
    assert torch.allclose(y, torch.full_like(y, 5.0))  # gamma*0 + clamp(beta, 5)


def test_generator_and_critic_shapes():
    g, c = Generator(8, 4, 30, (16, 16)), Critic(30, 4, (16, 16))
    x = g(torch.randn(5, 8), torch.randn(5, 4))
    assert x.shape == (5, 30) and c(x, torch.randn(5, 4)).shape == (5,)
    assert Generator(8, 0, 30)(torch.randn(5, 8)).shape == (5, 30)


def test_gradient_penalty_matches_finite_differences():
    torch.manual_seed(0)
    critic = Critic(6, 0, (8,)).double()
    real, fake = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    alpha = torch.rand(4, 1, dtype=torch.float64)
    gp = gradient_penalty(lambda v: critic(v), real, fake, alpha)
    x_hat = alpha * real + (1 - alpha) * fake
    eps, norms = 1e-6, []
    for i in range(4):
        grad = []
        for j in range(6):
            d = torch.zeros(6, dtype=torch.float64)
            d[j] = eps
            grad.append((critic(x_hat[i] + d) - critic(x_hat[i] - d)) / (2 * eps))
        norms.append(torch.stack(grad).norm())
    expected = ((torch.stack(norms) - 1) ** 2).mean()
    torch.testing.assert_close(gp, expected, rtol=1e-5, atol=1e-7)
    gp.backward()  # differentiable (create_graph)
    assert critic.net[0].weight.grad is not None and critic.net[0].weight.grad.abs().sum() > 0


def test_bank_draws_distinct_tiles_of_the_right_slide_and_masks_small_slides():
    counts = np.array([3, 10, 6])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    patches = np.repeat(np.arange(3), counts)[:, None] * 100 + np.concatenate([np.arange(c) for c in counts])[:, None]
    bank = ConditionBank(patches=patches.astype(np.float16), offsets=offsets, counts=counts, n_patches=5)
    feats, mask = bank.draw_patches(torch.tensor([0, 1, 2, 1]), torch.Generator().manual_seed(0))
    assert feats.shape == (4, 5, 1) and mask.shape == (4, 5)
    assert mask.sum(1).tolist() == [3, 5, 5, 5]
    for row, slide in enumerate([0, 1, 2, 1]):
        vals = feats[row, mask[row], 0].float().numpy()
        assert ((vals // 100) == slide).all()
        assert len(set(vals.tolist())) == len(vals)  # without replacement
    assert set(feats[0, mask[0], 0].float().tolist()) == {0.0, 1.0, 2.0}
    # every slide smaller than N: pads to N
    small = ConditionBank(patches=np.ones((4, 2), np.float16), offsets=[0, 2], counts=[2, 2], n_patches=6)
    feats, mask = small.draw_patches(torch.tensor([0, 1]))
    assert feats.shape == (2, 6, 2) and mask.sum().item() == 4


@pytest.mark.parametrize("mode,variant", list(itertools.product(CONDITIONING_MODES, FUSION_VARIANTS)))
def test_slide_without_tiles_gives_a_finite_condition(mode, variant):
    fusion = ConditionFusion(12, 10, d_model=8, n_heads=2, d_ff=16, conditioning=mode, variant=variant).eval()
    patches, pm, text, tm = _inputs()
    pm[1] = False  # slide 1 had no tissue: every patch is padding
    out = fusion(patches, pm, text, tm)
    assert torch.isfinite(out).all()
    p2 = patches.clone()
    p2[1] = 7.0
    torch.testing.assert_close(fusion(p2, pm, text, tm), out)


def test_bank_with_an_empty_slide_last():
    # a 0-tile slide at the end of the bank has offset == bank size: padded draws must not index past it
    bank = ConditionBank(patches=np.ones((15, 4), np.float16), offsets=[0, 5, 15], counts=[5, 10, 0], n_patches=6)
    feats, mask = bank.draw_patches(torch.arange(3))
    assert mask.sum(1).tolist() == [5, 6, 0] and feats.shape == (3, 6, 4)


@pytest.mark.parametrize("mode,variant", list(itertools.product(CONDITIONING_MODES, FUSION_VARIANTS)))
def test_no_mask_equals_all_true_mask(mode, variant):
    # the bank passes mask=None when no draw can be padded: same condition as an all-True mask, without mask work
    torch.manual_seed(0)
    fusion = ConditionFusion(12, 10, d_model=8, n_heads=2, d_ff=16, conditioning=mode, variant=variant).eval()
    patches, _, text, _ = _inputs()
    full_p, full_t = torch.ones(3, 5, dtype=torch.bool), torch.ones(3, 7, dtype=torch.bool)
    torch.testing.assert_close(fusion(patches, None, text, None), fusion(patches, full_p, text, full_t),
                               rtol=1e-5, atol=1e-6)


def test_bank_drops_masks_only_when_nothing_can_be_padded():
    full = ConditionBank(patches=np.ones((20, 2), np.float16), offsets=[0, 10], counts=[10, 10], n_patches=4,
                         text=np.ones((2, 3, 2)), text_mask=np.ones((2, 3), bool))
    cond = full.conditions(torch.tensor([0, 1]))
    assert cond["patch_mask"] is None and cond["text_mask"] is None
    short = ConditionBank(patches=np.ones((13, 2), np.float16), offsets=[0, 10], counts=[10, 3], n_patches=4,
                          text=np.ones((2, 3, 2)), text_mask=np.array([[1, 1, 0], [1, 1, 1]], bool))
    cond = short.conditions(torch.tensor([0, 1]))
    assert cond["patch_mask"] is not None and cond["patch_mask"].sum().item() == 7
    assert cond["text_mask"] is not None


ALL_MODES = list(itertools.product(CONDITIONING_MODES, FUSION_VARIANTS))


def test_fusion_is_built_from_torch_layers_post_norm_batch_first():
    fusion = ConditionFusion(12, 10, d_model=8, n_heads=2, n_layers=3, d_ff=16, dropout=0.2)
    assert isinstance(fusion.transformer, torch.nn.TransformerEncoder) and len(fusion.transformer.layers) == 3
    layer = fusion.transformer.layers[0]
    assert isinstance(layer, torch.nn.TransformerEncoderLayer)
    assert layer.self_attn.batch_first and not layer.norm_first and layer.linear1.out_features == 16
    assert layer.dropout.p == 0.2 and layer.self_attn.dropout == 0.2
    for mha in (fusion.text_to_patch, fusion.patch_to_text):
        assert isinstance(mha, torch.nn.MultiheadAttention) and mha.batch_first and mha.dropout == 0.0
    # the n_layers copies start identical (torch's encoder deep-copies one layer), as the saved format expects
    a, b = fusion.transformer.layers[0].state_dict(), fusion.transformer.layers[2].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("mode,variant", ALL_MODES)
def test_fusion_eval_is_deterministic_and_training_drops(mode, variant):
    torch.manual_seed(0)
    fusion = ConditionFusion(12, 10, d_model=8, n_heads=2, d_ff=16, dropout=0.5, conditioning=mode, variant=variant)
    patches, pm, text, tm = _inputs()
    fusion.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        a = fusion(patches, pm, text, tm)
        torch.manual_seed(2)
        assert torch.equal(fusion(patches, pm, text, tm), a)
    fusion.train()
    with torch.no_grad():
        torch.manual_seed(3)
        b = fusion(patches, pm, text, tm)
        torch.manual_seed(3)
        assert torch.equal(fusion(patches, pm, text, tm), b)  # dropout follows torch's seed
    if fusion.uses_transformer:  # the only dropout is in the Transformer
        assert not torch.allclose(a, b, atol=1e-4)
    else:
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode,variant", ALL_MODES)
def test_fusion_gradient_reaches_every_parameter(mode, variant):
    torch.manual_seed(0)
    fusion = ConditionFusion(12, 10, d_model=8, n_heads=2, d_ff=16, dropout=0.1, conditioning=mode, variant=variant)
    with torch.no_grad():  # FiLM starts as the identity with zero weights; move it so its weights get gradients
        for p in fusion.parameters():
            p.add_(0.1 * torch.randn_like(p))
    patches, pm, text, tm = _inputs()
    patches.requires_grad_(True)
    fusion.train()
    fusion(patches, pm, text, tm).square().sum().backward()
    for name, p in fusion.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    if fusion.uses_image:
        # no gradient flows into padded tiles: they do not take part
        assert patches.grad[~pm].abs().max() == 0 and patches.grad[pm].abs().sum() > 0


@pytest.mark.parametrize("variant", FUSION_VARIANTS)
def test_fusion_padding_to_more_slots_does_not_change_the_condition(variant):
    # the same slide drawn into N=5 slots or padded to N=9 (extra slots masked) gives the same condition
    torch.manual_seed(0)
    fusion = ConditionFusion(12, 10, d_model=8, n_heads=2, d_ff=16, variant=variant).eval()
    patches, _, text, _ = _inputs()
    wide_p = torch.cat([patches, torch.randn(3, 4, 12)], dim=1)
    wide_pm = torch.arange(9).expand(3, 9) < 5
    wide_t = torch.cat([text, torch.randn(3, 2, 10)], dim=1)
    wide_tm = torch.arange(9).expand(3, 9) < 7
    with torch.no_grad():
        torch.testing.assert_close(fusion(wide_p, wide_pm, wide_t, wide_tm), fusion(patches, None, text, None),
                                   rtol=1e-5, atol=1e-5)


def test_fusion_casts_inputs_to_its_dtype_and_rejects_missing_modalities():
    fusion = ConditionFusion(12, 10, d_model=8, n_heads=2, d_ff=16).double().eval()
    patches, pm, text, tm = _inputs()
    assert fusion(patches.half(), pm, text.half(), tm).dtype == torch.float64
    with pytest.raises(ValueError, match="needs patch embeddings"):
        fusion(None, None, text, tm)
    with pytest.raises(ValueError, match="needs text token embeddings"):
        fusion.from_conditions({"patches": patches, "patch_mask": pm})
    with pytest.raises(TypeError, match="dict"):
        fusion.from_conditions([patches, text])


@pytest.mark.parametrize("kwargs,match", [
    (dict(d_model=10, n_heads=4), "divisible"),
    (dict(n_layers=0), "n_layers must be a positive int"),
    (dict(d_ff=2.5), "d_ff must be a positive int"),
    (dict(dropout=1.0), "dropout must be in"),
])
def test_fusion_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConditionFusion(12, 10, **kwargs)
    with pytest.raises(ValueError, match="patch_dim"):
        ConditionFusion(0, 10)


def test_gradient_penalty_of_a_linear_critic_by_hand():
    # critic(x) = w . x + b has gradient w at every point: the penalty is (||w|| - 1)^2 whatever alpha is
    critic = torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.0, 2.0, 2.0, 0.0]], dtype=torch.float64))  # ||w|| = 3
        critic.bias.fill_(7.0)
    real, fake = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    gp = gradient_penalty(lambda v: critic(v).squeeze(-1), real, fake)
    assert gp.item() == pytest.approx(4.0, abs=1e-12)  # (3 - 1)^2
    gp.backward()  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    expected = 2 * (3 - 1) * torch.tensor([[1.0, 2.0, 2.0, 0.0]], dtype=torch.float64) / 3
    torch.testing.assert_close(critic.weight.grad, expected)
    assert critic.bias.grad is None or critic.bias.grad.abs().max() == 0


def test_gradient_penalty_rejects_mismatched_batches():
    critic = Critic(6, 0, (8,))
    with pytest.raises(ValueError, match="one shape"):
        gradient_penalty(critic, torch.randn(4, 6), torch.randn(3, 6))
    with pytest.raises(ValueError, match="alpha has 2 rows"):
        gradient_penalty(critic, torch.randn(4, 6), torch.randn(4, 6), torch.rand(2, 1))


def test_mlp_rejects_bad_widths():
    with pytest.raises(ValueError, match="hidden"):
        mlp(4, (8, 0), 2)
    with pytest.raises(ValueError, match="n_genes"):
        Generator(8, 0, -1)
