"""gg.TileGAN (tiles from expression), the image metrics and gg.pl.generated_tiles on a generated section."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import gemmgan_sc as gg
from gemmgan_sc.data import PatchStore
from gemmgan_sc.models._tilegan import TILE_SETUP_KEY

TILE, NBH, SIDE = 16, 32, 320
TINY = dict(image_size=16, channels=4, max_channels=16, n_latent=8, embed_dim=8, vae_latent=4, vae_hidden=(16,))
FAST = dict(batch_size=16, preset="cpu", accelerator="cpu", seed=0)


def _section(rng) -> np.ndarray:
    """Left half purple (nuclei-rich), right half pink, with noise: the tissue type follows the expression."""
    img = np.empty((SIDE, SIDE, 3), np.int64)
    img[:, : SIDE // 2] = (110, 50, 150)
    img[:, SIDE // 2 :] = (230, 140, 190)
    return np.clip(img + rng.integers(-30, 30, size=img.shape), 0, 255).astype(np.uint8)


def _cohort(rng, extra_off_image: bool = False) -> ad.AnnData:
    grid = np.arange(24, SIDE - 24, 34)
    xy = np.array([(x, y) for x in grid for y in grid], float)
    if extra_off_image:
        xy = np.vstack([xy, [[-500.0, -500.0]]])
    left = xy[:, 0] < SIDE // 2
    x = rng.gamma(2.0, 1.0, size=(len(xy), 20)).astype(np.float32)
    x[left, :5] += 4.0
    names = [f"spot{i}" for i in range(len(xy))]
    adata = ad.AnnData(x, obs=pd.DataFrame({"side": np.where(left, "left", "right")}, index=names))
    adata.obsm["spatial"] = xy
    return adata


@pytest.fixture(scope="module")
def section():
    return _section(np.random.default_rng(0))


@pytest.fixture(scope="module")
def tiled(section, tmp_path_factory):
    adata = _cohort(np.random.default_rng(1))
    store = tmp_path_factory.mktemp("tilegan") / "spots.zarr"
    gg.pp.tile_spots(adata, image=section, tile_size=TILE, neighbourhood_px=NBH, store=store, min_tissue=0.0)
    assert (adata.obs["n_tiles"] == 4).all()
    return adata


@pytest.fixture(scope="module")
def trained(tiled):
    adata = tiled.copy()
    gg.TileGAN.setup_anndata(adata)
    model = gg.TileGAN(adata, **TINY)
    model.train(max_steps=6, **FAST)
    return model


def test_conv_networks_shapes_and_sizes():
    from gemmgan_sc.nn import ConvCritic, ConvGenerator

    for size in (16, 32, 64):
        for mode in ("transposed", "nearest"):
            g = ConvGenerator(n_latent=8, cond_dim=3, image_size=size, channels=4, upsample=mode)
            out = g(torch.randn(2, 8), torch.randn(2, 3))
            assert out.shape == (2, 3, size, size) and out.abs().max() <= 1.0
        assert ConvCritic(size, cond_dim=3, channels=4)(out, torch.randn(2, 3)).shape == (2,)
    with pytest.raises(ValueError, match="image_size=48 .*16, 32, 64, 128, 256"):
        ConvGenerator(8, 0, image_size=48)


def test_projection_term_uses_the_condition():
    from gemmgan_sc.nn import ConvCritic

    torch.manual_seed(0)
    critic = ConvCritic(16, cond_dim=3, channels=4)
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(critic(x, torch.zeros(2, 3)), critic(x, torch.ones(2, 3)))
    with pytest.raises(ValueError, match="conditional"):
        critic(x)


def test_matching_aware_critic_scores_real_tiles_with_another_rows_condition():
    from types import SimpleNamespace

    from gemmgan_sc.train._tilegan import TileGANPlan

    class Net:  # D(x, c) = mean(x) * sum(c); the generator draws black tiles, so D(fake, c) = 0
        n_latent = 2

        @staticmethod
        def generate(cond, z):
            return torch.zeros(len(z), 3, 4, 4)

        @staticmethod
        def critic(x, cond):
            return x.mean(dim=(1, 2, 3)) * cond.sum(dim=1)

    real = torch.stack([torch.full((3, 4, 4), v) for v in (1.0, 2.0, 3.0)])
    cond = torch.tensor([[1.0], [10.0], [100.0]])
    d_real = (1 * 1 + 2 * 10 + 3 * 100) / 3
    d_mismatch = (1 * 100 + 2 * 1 + 3 * 10) / 3  # each tile against the previous row's condition (roll by 1)
    for w, expected in ((0.0, d_real), (0.5, d_real - 0.5 * d_mismatch)):
        plan = SimpleNamespace(networks=Net(), mismatch_weight=w, lambda_gp=10.0)
        out = TileGANPlan.critic_loss(plan, real, cond)
        assert float(out["wasserstein"]) == pytest.approx(expected)
    plan = SimpleNamespace(networks=Net(), mismatch_weight=0.5, lambda_gp=10.0)
    assert float(TileGANPlan.critic_loss(plan, real[:1], cond[:1])["wasserstein"]) == pytest.approx(1.0)


def test_train_sample_shapes_and_history(trained, tiled):
    out = trained.sample(indices=[0, 1, 2], n_per_row=2, seed=0)
    assert out.tiles.shape == (6, 16, 16, 3) and out.tiles.dtype == np.uint8
    assert np.asarray(out).shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(out.rows, [0, 0, 1, 1, 2, 2])
    assert list(out.obs_names[:2]) == ["spot0", "spot0"]
    hist = trained.history
    assert hist["step"].iloc[-1] == 6 and {"critic_loss", "gradient_penalty", "vae_loss", "val_frechet"} <= set(hist)
    scores = hist["val_frechet"].dropna()  # a last, partial epoch has no validation
    assert len(scores) and np.isfinite(scores).all() and (scores >= 0).all()
    assert trained.calibration is None


def test_sample_is_deterministic_with_a_seed(trained):
    a = trained.sample(indices=[0, 5], n_per_row=3, seed=7).tiles
    b = trained.sample(indices=[0, 5], n_per_row=3, seed=7, batch_size=1).tiles  # chunking does not change it
    c = trained.sample(indices=[0, 5], n_per_row=3, seed=8).tiles
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_condition_changes_the_tiles(trained, tiled):
    """Same noise, different expression: different tiles (the generator reads its condition)."""
    new = tiled.copy()
    new.X = np.roll(np.asarray(new.X), 1, axis=0)
    a = trained.sample(tiled, indices=[3], seed=0).tiles
    b = trained.sample(new, indices=[3], seed=0).tiles
    assert not np.array_equal(a, b)


def test_save_load_gives_identical_tiles(trained, tiled, tmp_path):
    path = trained.save(tmp_path / "tg")
    assert {p.name for p in path.iterdir()} == {"model.safetensors", "model.json"}
    fresh = tiled.copy()
    fresh.uns.pop(TILE_SETUP_KEY, None)
    fresh.uns.pop("_gemmgan_setup", None)
    loaded = gg.TileGAN.load(path, adata=fresh)
    np.testing.assert_array_equal(loaded.sample(indices=[0, 1], n_per_row=2, seed=3).tiles,
                                  trained.sample(indices=[0, 1], n_per_row=2, seed=3).tiles)
    assert loaded.tile_source == trained.tile_source and loaded.hparams["image_size"] == 16


def test_real_tiles_come_from_the_store(trained, tiled, section):
    real = trained.real_tiles(tiled, indices=[0], n_per_row=4)
    assert real.tiles.shape == (4, 16, 16, 3)
    # spot0 lies in the purple half: its tiles have the purple mean colour
    assert abs(real.tiles[..., 0].mean() - 110) < 15 and abs(real.tiles[..., 1].mean() - 50) < 15


def test_unconditional_baseline(tiled):
    adata = tiled.copy()
    gg.TileGAN.setup_anndata(adata)
    model = gg.TileGAN(adata, conditioning="none", **TINY).train(max_steps=2, **FAST)
    assert model.networks.vae is None and model.networks.cond_dim == 0
    assert model.sample(indices=[0, 1], seed=0).tiles.shape == (2, 16, 16, 3)


def test_text_condition(tiled):
    adata = tiled.copy()
    rng = np.random.default_rng(0)
    adata.obsm["X_text_tokens"] = rng.normal(size=(adata.n_obs, 3, 6)).astype(np.float16)
    adata.obsm["text_mask"] = np.ones((adata.n_obs, 3), bool)
    gg.TileGAN.setup_anndata(adata, text_key="X_text_tokens")
    model = gg.TileGAN(adata, conditioning="expression+text", **TINY).train(max_steps=2, **FAST)
    assert model.networks.cond_dim == 4 + 6
    assert model.sample(indices=[0], seed=0).tiles.shape == (1, 16, 16, 3)
    plain = tiled.copy()
    gg.TileGAN.setup_anndata(plain)
    with pytest.raises(ValueError, match="expression\\+text.*text_key"):
        gg.TileGAN(plain, conditioning="expression+text", **TINY)


def test_bad_inputs(tiled, section, tmp_path):
    adata = tiled.copy()
    gg.TileGAN.setup_anndata(adata)
    with pytest.raises(ValueError, match="image_size=48 is not a tile size"):
        gg.TileGAN(adata, image_size=48)
    with pytest.raises(ValueError, match="Unknown conditioning 'image'"):
        gg.TileGAN(adata, conditioning="image")
    with pytest.raises(ValueError, match=r"mismatch_weight must be in \[0, 1\), got 1.0"):
        gg.TileGAN(adata, **TINY).train(max_steps=1, mismatch_weight=1.0, **FAST)
    with pytest.raises(ValueError, match="n_per_row must be a positive int"):
        gg.TileGAN(adata, **TINY).train(max_steps=1, **FAST).sample(n_per_row=0)
    # a row whose spot has no tiles: training names it and says what to do
    bad = _cohort(np.random.default_rng(1), extra_off_image=True)
    gg.pp.tile_spots(bad, image=section, tile_size=TILE, neighbourhood_px=NBH, store=tmp_path / "b.zarr",
                     min_tissue=0.0)
    PatchStore(tmp_path / "b.zarr", mode="a").add("spot64", coords=np.zeros((0, 2), np.int64))  # no tissue
    gg.TileGAN.setup_anndata(bad)
    model = gg.TileGAN(bad, **TINY)
    with pytest.raises(ValueError, match="1 training rows have no tiles .*spot64.*n_tiles"):
        model.train(max_steps=1, **FAST)
    with pytest.raises(KeyError, match="not in the patch store"):
        other = tiled.copy()
        other.obs["slide_id"] = other.obs["slide_id"].astype(str).str.replace("spot1", "nowhere")
        gg.TileGAN.setup_anndata(other)
    with pytest.raises(ValueError, match="setup_anndata"):
        gg.TileGAN(ad.AnnData(np.ones((3, 2), np.float32)))


def test_image_metrics(section):
    rng = np.random.default_rng(0)
    purple = np.clip(np.array([110, 50, 150]) + rng.integers(-30, 30, (60, 16, 16, 3)), 0, 255).astype(np.uint8)
    purple2 = np.clip(np.array([110, 50, 150]) + rng.integers(-30, 30, (60, 16, 16, 3)), 0, 255).astype(np.uint8)
    pink = np.clip(np.array([230, 140, 190]) + rng.integers(-30, 30, (60, 16, 16, 3)), 0, 255).astype(np.uint8)
    near, far = gg.metrics.image_frechet(purple, purple2), gg.metrics.image_frechet(purple, pink)
    assert near.encoder == "hed-texture" and near.n_real == 60
    assert 0 <= float(near) < float(far)
    kid_near, kid_far = gg.metrics.image_kid(purple, purple2), gg.metrics.image_kid(purple, pink)
    assert kid_near.value < kid_far.value and kid_far.std is not None and kid_near.to_dict()["metric"] == "kid"
    # retrieval: 2 rows (purple, pink); a purple tile is nearest to the purple row
    real = np.concatenate([purple[:30], pink[:30]])
    rows = np.repeat(["p", "k"], 30)
    out = gg.metrics.tile_retrieval(np.concatenate([purple2[:5], pink[30:35]]), np.repeat(["p", "k"], 5), real, rows,
                                    k=(1,))
    assert out["top1"] == 1.0 and out["chance_top1"] == 0.5 and out["encoder"] == "hed-texture"
    # a shift of the whole generated set: per-set standardisation still finds every row, pooled may not
    refs = np.random.default_rng(3).normal(size=(20, 6))
    shifted = refs + np.array([8.0, 0, 0, 0, 0, 0])
    sep = gg.metrics.tile_retrieval(shifted, np.arange(20), refs, np.arange(20), encoder="features", k=(1,))
    pooled = gg.metrics.tile_retrieval(shifted, np.arange(20), refs, np.arange(20), encoder="features", k=(1,),
                                       standardize="pooled")
    assert sep["top1"] == 1.0 and sep["standardize"] == "separate" and pooled["top1"] < 1.0
    with pytest.raises(ValueError, match="standardize must be one of"):
        gg.metrics.tile_retrieval(shifted, np.arange(20), refs, np.arange(20), encoder="features", standardize=True)
    with pytest.raises(ValueError, match="no real tiles"):
        gg.metrics.tile_retrieval(purple[:2], ["x", "x"], real, rows)
    with pytest.raises(ValueError, match="uint8"):
        gg.metrics.image_features(purple.astype(np.float32))


def test_generated_tiles_plot(trained, tiled, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ax = gg.pl.generated_tiles(trained, tiled, rows=range(4), n_per_row=2, show=False, save=tmp_path / "g.png")
    assert len(ax.get_xticklabels()) == 4 and [t.get_text() for t in ax.get_yticklabels()][0] == "real"
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_lists_tilegan_apart():
    from gemmgan_sc.cli import model_classes

    assert "tilegan" not in model_classes() and "gemmgan" in model_classes()


def test_paper_configuration_shape_256():
    """The paper's 256 px configuration builds and generates 256 x 256 tiles (shape smoke test on the CPU)."""
    from gemmgan_sc.train._tilegan import TileGANNetworks, to_uint8

    net = TileGANNetworks(n_genes=50, image_size=256, vae_latent=200, vae_hidden=(1024, 512), n_latent=128,
                          channels=64).eval()
    with torch.no_grad():
        cond = net.condition(torch.randn(2, 50))
        tiles = to_uint8(net.generate(cond, torch.randn(2, 128)))
        score = net.critic(net.generate(cond, torch.randn(2, 128)), cond)
    assert tiles.shape == (2, 256, 256, 3) and tiles.dtype == torch.uint8 and score.shape == (2,)
