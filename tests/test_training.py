"""The training loop of every generator: budgets, presets, history, early stopping, calibration, references."""

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

import gemmgan_sc as gg
from gemmgan_sc.models._calibration import OutputCalibration
from gemmgan_sc.train._wgan import conditional_mean_error


def _cohort(n=60, genes=30, seed=0):
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    group = np.repeat(["a", "b"], n // 2)
    x = rng.normal(size=(n, genes)).astype(np.float32)
    x[group == "b", :5] += 3.0
    return ad.AnnData(x, obs=pd.DataFrame({"group": pd.Categorical(group)}, index=[f"r{i}" for i in range(n)]))


TINY = dict(n_latent=8, hidden=(32, 32))


def test_conditional_mean_error_is_unbiased_and_ignores_spread():
    x = torch.zeros(2, 3)
    fake = torch.tensor([[[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]], [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]])
    # per gene: (mean - x)^2 - var / k. Row 1: mean 0, unbiased var 2, 8, 18 over k = 2 -> -1, -4, -9 (the
    # estimate may be negative, its expectation is not); row 2: mean 2, no spread -> 4, 4, 4.
    assert float(conditional_mean_error(fake, x)) == pytest.approx((-14 / 3 + 4) / 2)
    torch.manual_seed(0)
    draws = torch.randn(4000, 4, 3) * 2.0 + 0.5  # E[mean] - x = 0.5 per gene: expected error 0.25
    assert float(conditional_mean_error(draws, torch.zeros(4000, 3))) == pytest.approx(0.25, abs=0.05)


def test_output_calibration_matches_moments_and_needs_noise():
    rng = np.random.default_rng(1)
    real = rng.normal(1.0, [1.0, 2.0, 0.5], size=(3000, 3))
    generated = rng.normal(0.0, [2.0, 0.5, 0.5], size=(3000, 3))
    cal = OutputCalibration.fit(generated, real)
    np.testing.assert_allclose(cal.scale, [real.std(0)[0] / generated.std(0)[0], 1.0, 1.0], rtol=1e-5)
    assert cal.noise_sd[0] == 0 and cal.noise_sd[1] > 1.5
    out = cal.apply(generated, rng.normal(size=generated.shape))
    np.testing.assert_allclose(out.mean(0), real.mean(0), atol=0.08)
    np.testing.assert_allclose(out.std(0), real.std(0), rtol=0.05)
    with pytest.raises(ValueError, match="noise"):
        cal.apply(generated)
    again = OutputCalibration.from_state(cal.state())
    np.testing.assert_array_equal(again.noise_sd, cal.noise_sd)
    assert OutputCalibration.from_state({}) is None


def test_output_calibration_per_group_keeps_each_group_moments():
    rng = np.random.default_rng(2)
    real_codes = np.repeat([[0], [1], [2]], [400, 400, 5], axis=0)  # group 2: too few rows -> pooled
    real = rng.normal(0.0, 1.0, (805, 2)) + np.where(real_codes == 1, 4.0, 0.0)
    gen_codes = rng.integers(0, 3, (6000, 1))
    generated = rng.normal(1.0, 0.5, (6000, 2))  # the generator ignores its group
    cal = OutputCalibration.fit(generated, real, gen_codes, real_codes)
    assert cal.group_codes.tolist() == [[0], [1]]
    noise = rng.normal(size=generated.shape)
    out = cal.apply(generated, noise, gen_codes)
    for code in (0, 1):
        np.testing.assert_allclose(out[gen_codes[:, 0] == code].mean(0), real[real_codes[:, 0] == code].mean(0), atol=0.1)
        np.testing.assert_allclose(out[gen_codes[:, 0] == code].std(0), real[real_codes[:, 0] == code].std(0), rtol=0.06)
    pooled = OutputCalibration.fit(generated, real)
    rest = gen_codes[:, 0] == 2
    np.testing.assert_allclose(out[rest], pooled.apply(generated, noise)[rest], rtol=1e-6)
    unseen = cal.apply(generated[:3], np.zeros((3, 2)), np.full((3, 1), 7))
    np.testing.assert_allclose(unseen, pooled.apply(generated[:3], np.zeros((3, 2))), rtol=1e-6)
    with pytest.raises(ValueError, match="group codes"):
        cal.apply(generated, rng.normal(size=generated.shape))
    with pytest.raises(ValueError, match="both"):
        OutputCalibration.fit(generated, real, gen_codes)
    again = OutputCalibration.from_state(cal.state())
    np.testing.assert_array_equal(again.apply(generated[:9], np.ones((9, 2)), gen_codes[:9]),
                                  cal.apply(generated[:9], np.ones((9, 2)), gen_codes[:9]))


def test_quantile_calibration_gives_each_group_its_point_mass():
    rng = np.random.default_rng(3)
    # a detection floor: 60 % of each group at one value, a different value per group (per-cohort z-scores)
    real_codes = np.repeat([[0], [1]], 400, axis=0)
    real = np.where(rng.random((800, 2)) < 0.6, -0.5, rng.exponential(1.0, (800, 2))) - 0.3 * real_codes
    gen_codes = rng.integers(0, 2, (6000, 1))
    generated = rng.normal(0.0, 1.0, (6000, 2))
    moments = OutputCalibration.fit(generated, real, gen_codes, real_codes)
    cal = OutputCalibration.fit(generated, real, gen_codes, real_codes, method="quantiles")
    assert (moments.method, cal.method) == ("moments", "quantiles")
    noise = rng.normal(size=generated.shape)
    out, smeared = cal.apply(generated, noise, gen_codes), moments.apply(generated, noise, gen_codes)
    for code, floor in ((0, -0.5), (1, -0.8)):
        rows = gen_codes[:, 0] == code
        at_floor = np.isclose(out[rows], floor, atol=1e-4).mean(0)
        np.testing.assert_allclose(at_floor, 0.6, atol=0.04)
        assert np.isclose(smeared[rows], floor, atol=1e-4).mean() < 0.01  # a mean and sd cannot carry it
        np.testing.assert_allclose(out[rows].mean(0), real[real_codes[:, 0] == code].mean(0), atol=0.06)
    again = OutputCalibration.from_state(cal.state())
    np.testing.assert_array_equal(again.apply(generated[:9], noise[:9], gen_codes[:9]), out[:9])
    with pytest.raises(ValueError, match="method"):
        OutputCalibration.fit(generated, real, method="ranks")


def test_gaussian_transport_hand_computed():
    from gemmgan_sc.models._calibration import gaussian_transport

    # diagonal covariances: the map scales each axis by the ratio of the sds
    np.testing.assert_allclose(gaussian_transport(np.diag([4.0, 1.0]), np.diag([1.0, 9.0])), np.diag([0.5, 3.0]))
    rng = np.random.default_rng(0)
    a, b = (m @ m.T + np.eye(4) for m in rng.normal(size=(2, 4, 4)))
    t = gaussian_transport(a, b)
    np.testing.assert_allclose(t, t.T, atol=1e-10)
    np.testing.assert_allclose(t @ a @ t, b, atol=1e-8)
    assert np.linalg.eigvalsh(t).min() > 0  # a monotone map, not a reflection


def test_covariance_calibration_gives_each_group_the_real_correlations():
    rng = np.random.default_rng(5)
    mixing = rng.normal(size=(6, 6))
    real_codes = np.repeat([[0], [1]], 300, axis=0)
    real = rng.normal(size=(600, 6)) @ mixing + 2.0 * real_codes  # correlated genes, a group offset
    gen_codes = rng.integers(0, 2, (6000, 1))
    generated = rng.normal(size=(6000, 6)) + gen_codes  # independent genes, a wrong offset
    moments = OutputCalibration.fit(generated, real, gen_codes, real_codes)
    cal = OutputCalibration.fit(generated, real, gen_codes, real_codes, method="covariance", n_components=6)
    assert cal.method == "covariance" and cal.covariance[0].shape == (6, 6)
    noise = rng.normal(size=generated.shape)
    out, per_gene = cal.apply(generated, noise, gen_codes), moments.apply(generated, noise, gen_codes)
    within = real - np.where(real_codes == 1, real[real_codes[:, 0] == 1].mean(0), real[real_codes[:, 0] == 0].mean(0))
    target = np.corrcoef(within, rowvar=False)  # the map matches the covariance within groups, pooled
    for code in (0, 1):
        rows, real_rows = gen_codes[:, 0] == code, real_codes[:, 0] == code
        assert np.abs(np.corrcoef(out[rows], rowvar=False) - target).max() < 0.05
        assert np.abs(np.corrcoef(per_gene[rows], rowvar=False) - target).max() > 0.3  # per gene cannot
        np.testing.assert_allclose(out[rows].mean(0), real[real_rows].mean(0), atol=0.1)
        np.testing.assert_allclose(out[rows].std(0), real[real_rows].std(0), rtol=0.06)
    again = OutputCalibration.from_state(cal.state())
    np.testing.assert_array_equal(again.apply(generated[:9], noise[:9], gen_codes[:9]), out[:9])
    with pytest.raises(ValueError, match="n_components"):
        OutputCalibration.fit(generated, real, method="covariance", n_components=0)
    one_axis = OutputCalibration.fit(generated, real, method="covariance", n_components=1)
    assert one_axis.covariance[1].shape == (1, 1)
    # two training rows hold no covariance: the per-gene moments alone
    assert OutputCalibration.fit(generated, real[:2], method="covariance").method == "moments"
    with pytest.raises(ValueError, match="covariance_basis"):
        OutputCalibration(np.zeros(6), np.ones(6), covariance_basis=np.zeros((6, 2)))


def _spurious_pair(rng, n):
    """Genes 0-1 share a strong factor (the top axis); generated profiles also tie genes 4-5, real ones do not."""
    factor = rng.normal(size=(n, 1))
    x = rng.normal(size=(n, 6)) + 3.0 * factor * np.array([1.0, 1.0, 0, 0, 0, 0])
    return x, x + 2.0 * rng.normal(size=(n, 1)) * np.array([0, 0, 0, 0, 1.0, 1.0])


def test_covariance_residual_weight_shrinks_correlations_outside_the_axes():
    rng = np.random.default_rng(3)
    real, _ = _spurious_pair(rng, 800)
    _, generated = _spurious_pair(rng, 8000)
    noise = rng.normal(size=generated.shape)
    kept, shrunk = (OutputCalibration.fit(generated, real, method="covariance", n_components=1, residual_weight=w)
                    for w in (1.0, 0.0))
    assert (kept.residual_weight, shrunk.residual_weight) == (1.0, 0.0)
    out_kept, out_shrunk = kept.apply(generated, noise), shrunk.apply(generated, noise)
    # the spurious tie (corr 0.8 in the generated profiles) is kept with w = 1, replaced by independent noise with 0
    assert np.corrcoef(out_kept[:, 4], out_kept[:, 5])[0, 1] > 0.7
    assert abs(np.corrcoef(out_shrunk[:, 4], out_shrunk[:, 5])[0, 1]) < 0.05
    basis = shrunk.covariance[0].astype(np.float64)  # the top axis: genes 0 and 1 together
    for out in (out_kept, out_shrunk):  # the variance along it and every gene's sd stay the real ones
        assert np.var(out @ basis) == pytest.approx(np.var(real @ basis), rel=0.05)
        np.testing.assert_allclose(out.std(0), real.std(0), rtol=0.05)
    # w = 0.5: the component outside the axis is halved, the one inside moved by the transport T = map + w I
    from gemmgan_sc.models._calibration import _apply_covariance

    half = OutputCalibration.fit(generated, real, method="covariance", n_components=1, residual_weight=0.5)
    moved = _apply_covariance(generated, *half.covariance, half.residual_weight)
    outside = lambda z: z - (z @ basis) @ basis.T  # noqa: E731
    np.testing.assert_allclose(outside(moved), 0.5 * outside(generated), atol=1e-4)
    np.testing.assert_allclose(moved @ basis, (generated @ basis) @ (half.covariance[1] + 0.5), rtol=1e-4)
    again = OutputCalibration.from_state(shrunk.state())
    assert again.residual_weight == 0.0
    np.testing.assert_array_equal(again.apply(generated, noise), out_shrunk)
    with pytest.raises(ValueError, match=r"residual_weight must be a number in \[0, 1\], got 1.5"):
        OutputCalibration.fit(generated, real, method="covariance", residual_weight=1.5)


def test_select_covariance_picks_the_candidate_closest_on_validation_rows():
    from gemmgan_sc.models._calibration import select_covariance

    rng = np.random.default_rng(4)
    real, val_real = _spurious_pair(rng, 600)[0], _spurious_pair(rng, 300)[0]
    generated, val_generated = _spurious_pair(rng, 6000)[1], _spurious_pair(rng, 600)[1]
    noise = rng.normal(size=val_generated.shape)
    cal, scores = select_covariance(generated, real, None, None, val_generated, val_real, noise=noise,
                                    candidates=((1, 1.0), (1, 0.0), (3, 0.5)))
    assert [(s["n_components"], s["residual_weight"]) for s in scores] == [(1, 1.0), (1, 0.0), (3, 0.5)]
    best = min(scores, key=lambda s: s["corr_mse"])
    assert (cal.covariance[0].shape[1], cal.residual_weight) == (best["n_components"], best["residual_weight"])
    assert scores[1]["corr_mse"] < scores[0]["corr_mse"]  # dropping the spurious tie brings the correlations closer
    assert scores[0]["corr_mse"] == pytest.approx(gg.metrics.correlation_mse(
        val_real, OutputCalibration.fit(generated, real, method="covariance", n_components=1,
                                        residual_weight=1.0).apply(val_generated, noise)))
    with pytest.raises(ValueError, match="noise must be standard-normal draws"):
        select_covariance(generated, real, None, None, val_generated, val_real, noise=None)


def test_covariance_calibration_is_chosen_on_the_validation_rows(tmp_path):
    adata = _cohort(n=120)
    gg.CondWGANGP.setup_anndata(adata, labels_keys=["group"], expression_scale="any")
    model = gg.CondWGANGP(adata, **TINY).train(max_steps=4, batch_size=16, seed=0)
    scores = model.calibration_scores
    assert list(scores.columns) == ["n_components", "residual_weight", "corr_mse"] and len(scores) == 9
    assert set(scores["n_components"]) == {10, 20, 30}  # 50 and 100 axes capped by the 30 genes
    best = scores.loc[scores["corr_mse"].idxmin()]
    assert model.calibration.covariance[0].shape[1] == best["n_components"]
    assert model.calibration.residual_weight == best["residual_weight"]
    assert model.train_params["calibration_axes"] == best["n_components"]
    assert model.train_params["calibration_residual_weight"] == best["residual_weight"]
    loaded = gg.CondWGANGP.load(model.save(tmp_path / "m"), adata=adata)
    assert loaded.calibration.residual_weight == model.calibration.residual_weight
    np.testing.assert_array_equal(loaded.sample(seed=3).X, model.sample(seed=3).X)
    # no validation rows: the fixed defaults (10 axes, half the rest kept)
    model = gg.CondWGANGP(adata, **TINY).train(max_steps=4, batch_size=16, seed=0, train_size=1.0)
    assert model.calibration_scores.empty
    assert (model.calibration.covariance[0].shape[1], model.calibration.residual_weight) == (10, 0.5)


def test_train_takes_the_calibration_method(tmp_path):
    adata = _cohort(n=80)
    gg.CondWGANGP.setup_anndata(adata, labels_keys=["group"], expression_scale="any")
    model = gg.CondWGANGP(adata, **TINY).train(max_steps=4, batch_size=16, seed=0, calibrate="quantiles")
    assert model.calibration.method == "quantiles" and model.train_params["calibrate"] == "quantiles"
    loaded = gg.CondWGANGP.load(model.save(tmp_path / "m"), adata=adata)
    assert loaded.calibration.method == "quantiles"
    np.testing.assert_array_equal(loaded.sample(seed=3).X, model.sample(seed=3).X)
    model = gg.CondWGANGP(adata, **TINY).train(max_steps=4, batch_size=16, seed=0, calibrate="covariance")
    assert model.calibration.method == "covariance"
    loaded = gg.CondWGANGP.load(model.save(tmp_path / "c"), adata=adata)
    assert loaded.calibration.method == "covariance"
    np.testing.assert_array_equal(loaded.sample(seed=3).X, model.sample(seed=3).X)
    with pytest.raises(ValueError, match="calibrate must be"):
        gg.CondWGANGP(adata, **TINY).train(max_steps=2, calibrate="ranks")


def test_label_conditioned_model_is_calibrated_per_label(tmp_path):
    adata = _cohort(n=80)
    gg.CondWGANGP.setup_anndata(adata, labels_keys=["group"], expression_scale="any")
    model = gg.CondWGANGP(adata, **TINY).train(max_steps=4, batch_size=16, seed=0)
    assert model.calibration.group_codes.tolist() == [[0], [1]]
    synth = model.sample(n_samples=20, seed=1)
    x = np.asarray(synth.X)
    is_b = synth.obs["group"].astype(str).to_numpy() == "b"
    # 4 steps cannot learn the groups; the per-group calibration still gives each group its own means
    gap = x[is_b, :5].mean() - x[~is_b, :5].mean()
    assert 2.5 < gap < 3.5
    model.save(tmp_path / "m")
    again = gg.CondWGANGP.load(tmp_path / "m", adata=adata)
    np.testing.assert_array_equal(np.asarray(again.sample(n_samples=2, seed=3).X), np.asarray(model.sample(n_samples=2, seed=3).X))


def test_tile_features_are_standardised_with_the_training_slides(tmp_path):
    from gemmgan_sc.data import PatchStore

    rng = np.random.default_rng(0)
    adata = _cohort(n=24)
    store = PatchStore(tmp_path / "p.zarr", mode="w")
    scales = np.array([1000.0, 1.0, 0.001, 5.0], np.float32)
    for i in range(24):
        store.add(f"s{i}", features=(rng.normal(size=(6, 4)) * scales + [10.0, 1.0, 0.0, 0.0]).astype(np.float16),
                  coords=np.zeros((6, 2), np.int64))
    adata.obs["slide_id"] = [f"s{i}" for i in range(24)]
    gg.GeMMGAN.setup_anndata(adata, patch_store=str(tmp_path / "p.zarr"), text_key=None, expression_scale="any")
    model = gg.GeMMGAN(adata, d_model=8, n_latent=8, n_patches=4, hidden=(16,), n_heads=2, n_layers=1, d_ff=16)
    model.train(max_steps=2, batch_size=8, seed=0)
    train_slides = adata.obs["slide_id"].to_numpy()[model.split["train"]]
    mean, sd = store.feature_moments(train_slides)
    for fusion in (model.networks.gen_condition, model.networks.critic_condition):
        np.testing.assert_allclose(fusion.patch_center.numpy(), mean, rtol=1e-5)
        np.testing.assert_allclose(fusion.patch_scale.numpy(), sd, rtol=1e-5)
    feats = np.concatenate([store.features(s).astype(np.float64) for s in train_slides])
    np.testing.assert_allclose(sd, feats.std(0), rtol=1e-6)
    assert 500 < sd[0] < 2000 and sd[2] < 0.01
    model.save(tmp_path / "m")
    again = gg.GeMMGAN.load(tmp_path / "m", adata=adata)
    np.testing.assert_array_equal(again.networks.gen_condition.patch_scale.numpy(), sd.astype(np.float32))


def test_step_budget_history_and_every_gene_kept():
    adata = _cohort()
    adata.X[:, -1] = 0.0  # an all-zero gene: the model must still generate it (no hidden gene filter)
    gg.WGANGP.setup_anndata(adata, expression_scale="any")
    model = gg.WGANGP(adata, **TINY).train(max_steps=12, batch_size=16, seed=0)
    h = model.history
    assert {"epoch", "step", "time", "val_frechet", "critic_loss", "generator_loss", "lr"} <= set(h.columns)
    assert h["step"].iloc[-1] == 12 and h["step"].is_monotonic_increasing
    assert model.train_params["max_steps"] == 12 and model.train_params["preset"] == "default"
    synth = model.sample(seed=0)
    assert list(synth.var_names) == list(adata.var_names)
    by_epochs = gg.WGANGP(adata, **TINY).train(max_epochs=2, batch_size=16, seed=0)
    assert len(by_epochs.history) == 2 and by_epochs.history["step"].iloc[-1] == 6  # 48 rows / 16


def test_presets_and_bad_training_arguments():
    adata = _cohort()
    gg.WGANGP.setup_anndata(adata, expression_scale="any")
    model = gg.WGANGP(adata, **TINY)
    with pytest.raises(ValueError, match="preset"):
        model.train(preset="fastest")
    with pytest.raises(ValueError, match="max_steps"):
        model.train(max_steps=0)
    with pytest.raises(ValueError, match="patience"):
        model.train(patience=0)
    model.train(preset="authors_code", max_epochs=1, seed=0)
    params = model.train_params
    assert params["batch_size"] == 8 and params["optimizer"] == "rmsprop" and params["lr"] == 5e-4
    assert params["lr_halving_every"] == 100 * 6  # 100 epochs of 48 rows / 8


def test_early_stopping_stops_and_restores_the_best_weights():
    adata = _cohort(n=80)
    gg.WGANGP.setup_anndata(adata, expression_scale="any")
    model = gg.WGANGP(adata, **TINY).train(max_epochs=60, batch_size=32, lr=5e-3, patience=2, seed=0,
                                           calibrate=False)
    h = model.history
    assert len(h) < 60  # stopped early
    best = int(h["val_frechet"].idxmin())
    assert len(h) - 1 - best == 2  # two epochs without improvement, then stop
    # the restored weights are the best epoch's: re-scoring the validation rows gives about its val_frechet
    plan_score = h["val_frechet"].iloc[best]
    assert np.isfinite(plan_score)


class _RecordGenerator(pl.Callback):
    """The live and the averaged weights of the modules under ``prefix`` after every training batch."""

    def __init__(self, prefix="generator."):
        self.prefix, self.live, self.averaged = prefix, [], []

    def on_train_batch_end(self, trainer, plan, *args):
        net = plan.networks.state_dict()
        self.live.append({k: v.clone() for k, v in net.items() if k.startswith(self.prefix)})
        sampled = plan.sampling_state_dict()
        self.averaged.append({k: sampled[k].clone() for k in self.live[-1]})


_AVERAGED = {  # model, its tiny size, the prefix of the averaged weights
    "CondWGANGP": (gg.CondWGANGP, TINY, "generator."),
    "ExpressionDiffusion": (gg.ExpressionDiffusion, dict(hidden=32, n_blocks=1, emb_dim=16, n_steps=5), "denoiser."),
}


@pytest.mark.parametrize("name", list(_AVERAGED))
def test_weight_averaging_is_the_ema_of_the_live_weights(name):
    cls, size, prefix = _AVERAGED[name]
    adata = _cohort()
    cls.setup_anndata(adata, labels_keys=["group"], expression_scale="any")
    rec = _RecordGenerator(prefix)
    model = cls(adata, **size).train(max_steps=6, batch_size=16, seed=0, ema_decay=0.5,
                                     early_stopping=False, restore_best=False, calibrate=False, callbacks=[rec])
    assert model.train_params["ema_decay"] == 0.5 and len(rec.live) == 6
    key = next(k for k in rec.live[0] if k.endswith("weight"))
    ema = rec.live[0][key]
    for step, live in enumerate(rec.live):  # first update copies, then a decay min(0.5, (1 + n) / (10 + n))
        decay = min(0.5, (1 + step) / (10 + step))
        ema = live[key] if step == 0 else decay * ema + (1 - decay) * live[key]
        torch.testing.assert_close(rec.averaged[step][key], ema)
    assert not torch.equal(rec.averaged[-1][key], rec.live[-1][key])
    # the trained model generates with the averaged weights
    torch.testing.assert_close(model.networks.state_dict()[key], rec.averaged[-1][key])
    # without averaging, the sampled weights are the live ones
    rec = _RecordGenerator(prefix)
    cls(adata, **size).train(max_steps=3, batch_size=16, seed=0, ema_decay=None, callbacks=[rec],
                             early_stopping=False, restore_best=False, calibrate=False)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(rec.live, rec.averaged, strict=True) for k in a)
    with pytest.raises(ValueError, match="ema_decay"):
        cls(adata, **size).train(max_steps=2, ema_decay=1.0)


def test_calibration_is_saved_and_reloaded(tmp_path):
    adata = _cohort()
    gg.CondWGANGP.setup_anndata(adata, labels_keys=["group"], expression_scale="any")
    model = gg.CondWGANGP(adata, **TINY).train(max_steps=6, batch_size=16, seed=0)
    assert model.calibration is not None and model.calibration.adds_noise
    z = model.normalize(model.sample(seed=0).X)
    assert abs(z.std(0).mean() - 1.0) < 0.3
    loaded = gg.CondWGANGP.load(model.save(tmp_path / "m"), adata=adata)
    np.testing.assert_array_equal(loaded.sample(seed=3).X, model.sample(seed=3).X)
    assert model.train_params["calibrate"] == "covariance" and model.calibration.method == "covariance"
    raw = gg.CondWGANGP(adata, **TINY).train(max_steps=6, batch_size=16, seed=0, calibrate=False)
    assert raw.calibration is None and raw.train_params["calibrate"] is False


def test_gaussian_baseline_follows_labels_and_round_trips(tmp_path):
    adata = _cohort(n=120)
    gg.GaussianBaseline.setup_anndata(adata, labels_keys=["group"], expression_scale="any")
    model = gg.GaussianBaseline(adata, n_components=5).train(seed=0)
    synth = model.sample(adata=adata, seed=0)
    b = (synth.obs["group"] == "b").to_numpy()
    assert synth.X[b, :5].mean() > 2.5 and abs(synth.X[~b, :5].mean()) < 0.5
    free = model.sample(n_samples=50, seed=1)
    assert free.n_obs == 50 and free.obs_names.is_unique
    loaded = gg.GaussianBaseline.load(model.save(tmp_path / "g"), adata=adata)
    np.testing.assert_array_equal(loaded.sample(adata=adata, seed=2).X, model.sample(adata=adata, seed=2).X)
    with pytest.raises(ValueError, match="n_components"):
        gg.GaussianBaseline(adata, n_components=0)
    plain = _cohort(n=40)
    gg.GaussianBaseline.setup_anndata(plain, expression_scale="any")
    x = gg.GaussianBaseline(plain, n_components=3).train(seed=0).sample(n_samples=2000, seed=0).X
    np.testing.assert_allclose(x.std(0), plain.X[:32].std(0), rtol=0.25)  # training rows' spread, every gene


def test_model_classes_say_what_setup_reads():
    assert gg.GeMMGAN.setup_inputs == {"text", "image", "labels"}
    assert gg.CondWGANGP.labels_required and not gg.WGANGP.labels_required
    assert gg.GaussianBaseline.setup_inputs == {"labels"} and not gg.GaussianBaseline.labels_required


def test_calibration_draws_never_share_the_training_seed(monkeypatch):
    """sample(seed=s) after train(seed=s) must not reuse the calibration's own noise (in-sample calibration)."""
    from gemmgan_sc.models._base import BaseGenerativeModel, calibration_seed

    adata = _cohort(n=120)
    gg.CondWGANGP.setup_anndata(adata, labels_keys=["group"], expression_scale="any")
    seeds, generate = [], BaseGenerativeModel._generate
    monkeypatch.setattr(BaseGenerativeModel, "_generate",
                        lambda self, bank, rows, seed, *a: seeds.append(seed) or generate(self, bank, rows, seed, *a))
    gg.CondWGANGP(adata, **TINY).train(max_steps=4, batch_size=16, seed=0)
    calibration_draws = seeds[-2:]  # training rows, then validation rows
    assert 0 not in calibration_draws and 1 not in calibration_draws
    assert calibration_draws == [calibration_seed(0), calibration_seed(0) + 1]
