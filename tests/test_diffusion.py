"""gg.ExpressionDiffusion and its parts: schedule, samplers, conditioning, guidance, save/load, bad input."""

import math

import numpy as np
import pytest
import torch

import gemmgan_sc as gg
from cohorts import make_cohort
from gemmgan_sc.nn import CosineSchedule, Denoiser, diffusion_sample, noise_generator
from gemmgan_sc.train._diffusion import DiffusionNetworks

TINY = dict(hidden=64, n_blocks=2, emb_dim=32, n_steps=20)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    adata, _ = make_cohort(tmp_path_factory.mktemp("d"), n=100, with_image=False, with_text=False)
    return adata


@pytest.fixture(scope="module")
def label_model(cohort):
    gg.ExpressionDiffusion.setup_anndata(cohort, labels_keys=["group"])
    old, gg.settings.progress_bar = gg.settings.progress_bar, False
    try:
        return gg.ExpressionDiffusion(cohort, **TINY).train(max_steps=250, batch_size=32, seed=0, validate_every=50)
    finally:
        gg.settings.progress_bar = old


def _nearest_group_accuracy(adata, synth):
    groups = adata.obs["group"].astype(str).to_numpy()
    names = sorted(set(groups))
    means = np.stack([adata.X[groups == g, :20].mean(0) for g in names])
    d = np.linalg.norm(np.asarray(synth.X)[:, None, :20] - means[None], axis=2)
    return float((np.array(names)[d.argmin(1)] == synth.obs["group"].astype(str).to_numpy()).mean())


# ----------------------------------------------------------------------------- schedule
def test_cosine_schedule_is_the_closed_form_of_the_markov_chain():
    sched = CosineSchedule(50)
    t = np.arange(51) / 50
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
    ab, betas = sched.alpha_bar.double().numpy(), sched.betas.double().numpy()
    np.testing.assert_allclose(ab[:-1], (f / f[0])[:-1], rtol=1e-5)  # the last step is the clipped one
    assert betas.max() == pytest.approx(0.999, rel=1e-6) and 0 < ab[-1] < 1e-6
    # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) n_t, step by step, against q_sample's closed form
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((40000, 1), 1.5, dtype=torch.float64)
    x, mean, var = x0.clone(), 1.5, 0.0
    for step in range(1, 51):
        beta = float(sched.betas[step - 1])
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * torch.randn(x.shape, generator=gen, dtype=x.dtype)
        mean, var = math.sqrt(1 - beta) * mean, (1 - beta) * var + beta
        assert mean == pytest.approx(math.sqrt(ab[step]) * 1.5, rel=1e-5)
        assert var == pytest.approx(1 - ab[step], rel=1e-4, abs=1e-6)  # float32 table
        if step in (1, 10, 25, 50):
            closed = sched.q_sample(x0, torch.full((40000,), step), torch.randn(x.shape, generator=gen,
                                                                                 dtype=x.dtype))
            for sample in (x, closed):
                assert float(sample.mean()) == pytest.approx(mean, abs=0.02)
                assert float(sample.var()) == pytest.approx(var, abs=0.02)
    noise = torch.randn(3, 4, dtype=torch.float64)
    t3 = torch.tensor([0, 7, 50])
    want = torch.from_numpy(np.sqrt(ab[[0, 7, 50]]))[:, None] * x0[:3].expand(3, 4) + torch.from_numpy(
        np.sqrt(1 - ab[[0, 7, 50]]))[:, None] * noise
    torch.testing.assert_close(sched.q_sample(x0[:3].expand(3, 4), t3, noise), want)


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("n_steps", [1, 7, 50, 200])
def test_a_perfect_denoiser_gives_the_data_back(prediction, eta, n_steps):
    sched = CosineSchedule(200)
    gen = torch.Generator().manual_seed(1)
    x0 = 2 * torch.randn(6, 5, generator=gen, dtype=torch.float64) + 1

    def perfect(x_t, t):
        a = sched.alpha_bar[t].double().unsqueeze(-1)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return eps if prediction == "eps" else a.sqrt() * eps - (1 - a).sqrt() * x0

    z = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    out = diffusion_sample(perfect, z, sched, n_steps, prediction, eta=eta, generator=gen)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-9)


def test_the_target_and_split_invert_each_other():
    sched = CosineSchedule(100)
    x0, noise = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    t = torch.arange(1, 9) * 11
    x_t = sched.q_sample(x0, t, noise)
    for prediction in ("eps", "v"):
        x0_hat, eps_hat = sched.split(sched.target(x0, noise, t, prediction), x_t, t, prediction)
        torch.testing.assert_close(x0_hat, x0)
        torch.testing.assert_close(eps_hat, noise)


def test_ancestral_noise_follows_the_initial_noise_and_guidance_mixes_predictions():
    torch.manual_seed(0)
    net = DiffusionNetworks(Denoiser(5, 4, hidden=8, n_blocks=1, emb_dim=8), CosineSchedule(30),
                            torch.nn.Identity(), n_steps=30, sampler="ancestral")
    net.condition.from_conditions = lambda cond: cond["c"]
    with torch.no_grad():
        net.denoiser.out.weight.normal_()
        net.null_condition.normal_()
    cond, z = {"c": torch.randn(3, 4)}, torch.randn(3, 5)
    torch.testing.assert_close(net.generate(cond, z), net.generate(cond, z.clone()))
    assert not torch.equal(net.generate(cond, z), net.generate(cond, z + 1e-3))
    with net.sampling(sampler="ddim"):
        assert not torch.allclose(net.generate(cond, z), net.generate({"c": cond["c"] + 1}, z))
    x, t = torch.randn(3, 5), torch.tensor([4, 9, 30])
    c, null = cond["c"], net.null_condition.expand(3, 4)
    with net.sampling(guidance=2.0):
        guided = net._guided(c)(x, t)
    torch.testing.assert_close(guided, 3 * net.denoiser(x, t, c) - 2 * net.denoiser(x, t, null))
    a, b = torch.randn(2, 2), torch.randn(2, 2)
    assert noise_generator(a).initial_seed() == noise_generator(a.clone()).initial_seed()
    assert noise_generator(a).initial_seed() != noise_generator(b).initial_seed()


# ------------------------------------------------------------------------------- model
def test_label_model_puts_samples_near_their_group_mean(cohort, label_model):
    assert label_model.conditioning == "labels" and label_model.networks.n_latent == cohort.n_vars
    assert label_model.history["val_frechet"].notna().sum() >= 3
    synth = label_model.sample(seed=1)
    assert synth.n_obs == len(label_model.split["train"])
    assert _nearest_group_accuracy(cohort, synth) > 0.9
    counts = label_model.sample(labels={"group": {"g0": 30, "g1": 30}}, seed=0)
    assert _nearest_group_accuracy(cohort, counts) > 0.9
    sd = np.asarray(counts.X)[:, 20:].std(0).mean() / cohort.X[:, 20:].std(0).mean()
    assert 0.5 < sd < 1.5  # noise genes keep their spread: no collapse to the mean
    guided = label_model.sample(labels={"group": {"g0": 30, "g1": 30}}, seed=0, guidance=1.0)
    assert _nearest_group_accuracy(cohort, guided) > 0.9
    assert not np.allclose(guided.X, counts.X)


def test_save_load_give_identical_samples_for_a_seed(cohort, label_model, tmp_path):
    loaded = gg.models.BaseGenerativeModel.load(label_model.save(tmp_path / "m"), adata=cohort)
    assert type(loaded) is gg.ExpressionDiffusion and loaded.conditioning == "labels"
    for kwargs in ({}, {"sampler": "ancestral", "n_steps": 40}):
        a, b = label_model.sample(seed=3, **kwargs), loaded.sample(seed=3, **kwargs)
        np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(label_model.sample(seed=3).X, label_model.sample(seed=4).X)
    assert not np.array_equal(label_model.sample(seed=3).X, label_model.sample(seed=3, sampler="ancestral").X)


def test_bad_input_fails_clearly(cohort, label_model):
    with pytest.raises(ValueError, match="n_steps must be an int in"):
        gg.ExpressionDiffusion(cohort, n_steps=0)
    with pytest.raises(ValueError, match="n_steps must be an int in"):
        gg.ExpressionDiffusion(cohort, n_steps=2000)
    with pytest.raises(ValueError, match="guidance .* must be a number >= 0"):
        gg.ExpressionDiffusion(cohort, guidance=-1.0)
    with pytest.raises(ValueError, match="Unknown sampler"):
        gg.ExpressionDiffusion(cohort, sampler="euler")
    with pytest.raises(ValueError, match="Unknown prediction"):
        gg.ExpressionDiffusion(cohort, prediction="x0")
    with pytest.raises(ValueError, match="Unknown conditioning"):
        gg.ExpressionDiffusion(cohort, conditioning="wsi")
    with pytest.raises(ValueError, match="n_steps must be an int in"):
        label_model.sample(n_steps=0)
    with pytest.raises(ValueError, match="guidance"):
        label_model.sample(guidance=-0.5)
    assert label_model.networks.n_steps == TINY["n_steps"] and label_model.networks.guidance == 0.0
    with pytest.raises(ValueError, match="p_uncond"):
        gg.ExpressionDiffusion(cohort, **TINY).train(max_steps=1, p_uncond=1.0)
    with pytest.raises(ValueError, match="validate_every"):
        gg.ExpressionDiffusion(cohort, **TINY).train(max_steps=1, validate_every=0)
    with pytest.raises(RuntimeError, match="not trained"):
        gg.ExpressionDiffusion(cohort).sample()


def test_unconditional_and_fusion_models_run_through_the_api(tmp_path):
    adata, _ = make_cohort(tmp_path, n=40, with_image=False, decided_by="text")
    gg.ExpressionDiffusion.setup_anndata(adata)
    model = gg.ExpressionDiffusion(adata, **TINY)
    assert model.conditioning == "text_cls" and model._uses("text") and not model._uses("labels")
    model.train(max_steps=3, batch_size=16, seed=0)
    assert model.sample(indices=[0, 1, 2], n_samples=2, seed=0).n_obs == 6
    with pytest.raises(ValueError, match="labels=... needs a label-conditioned model"):
        model.sample(labels={"group": {"g0": 1}})
    with pytest.raises(ValueError, match="needs labels"):
        gg.ExpressionDiffusion(adata, conditioning="labels")
    none = gg.ExpressionDiffusion(adata, conditioning="none", **TINY).train(max_steps=3, batch_size=16, seed=0)
    assert none.sample(n_samples=5, seed=0).n_obs == 5 and not none._uses("text")
    table = gg.metrics.evaluate(model, adata, n_runs=1, classifiers=("logreg",), references=(), k=3)
    assert len(table) > 3
