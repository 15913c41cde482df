import json

import numpy as np
import pytest

import gemmgan_sc as gg
from cohorts import SMALL, make_cohort

FAST = dict(max_epochs=25, batch_size=32, lr=1e-3, seed=0)


def _group_error(adata, synth):
    """Mean |synthetic group mean - real group mean| over the 20 marker genes, worst group."""
    groups = adata.obs["group"].astype(str).to_numpy()
    src = synth.obs["group"].astype(str).to_numpy()
    return max(
        np.abs(synth.X[src == g, :20].mean(0) - adata.X[groups == g, :20].mean(0)).mean() for g in np.unique(groups)
    )


@pytest.fixture(scope="module")
def image_cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("img"), decided_by="image")


@pytest.fixture(scope="module")
def trained(image_cohort):
    adata, store = image_cohort
    gg.GeMMGAN.setup_anndata(adata, patch_store=store, labels_keys=["group"])
    model = gg.GeMMGAN(adata, **SMALL)
    model.train(**FAST)
    return model


def test_image_decides_group_means(trained, image_cohort):
    adata, _ = image_cohort
    synth = trained.sample(seed=1)
    # group means are 2 and 5 (3 apart): conditional samples must land near their own group
    assert _group_error(adata, synth) < 0.5
    assert synth.n_obs == adata.n_obs and list(synth.var_names) == list(adata.var_names)
    assert synth.obs["synthetic"].all() and (synth.obs["source_obs"] == adata.obs_names).all()
    assert synth.X.min() > -2 and synth.X.dtype == np.float32


def test_noise_condition_fails_the_same_check(image_cohort):
    # the control: a model that only sees text (noise here) cannot tell the groups apart -> it fails the test above
    adata, _ = image_cohort
    adata = adata.copy()
    gg.GeMMGAN.setup_anndata(adata, labels_keys=["group"])
    model = gg.GeMMGAN(adata, **SMALL)
    model.train(**FAST)
    assert model.conditioning == "text_cls"
    assert _group_error(adata, model.sample(seed=1)) > 1.0


def test_text_decides_group_means(tmp_path):
    adata, _ = make_cohort(tmp_path, decided_by="text", with_image=False)
    gg.GeMMGAN.setup_anndata(adata)
    model = gg.GeMMGAN(adata, **SMALL).train(**FAST)
    assert _group_error(adata, model.sample(seed=1)) < 0.5
    # embedding conditions keep the per-gene calibration by default (a pooled covariance map would rescale the
    # spread between conditions)
    assert model.default_calibration == "moments" and model.calibration.method == "moments"


def test_history_split_and_embedding(trained, image_cohort):
    adata, _ = image_cohort
    h = trained.history
    assert len(h) == FAST["max_epochs"]
    assert {"epoch", "critic_loss", "generator_loss", "gradient_penalty", "val_frechet", "step", "time"} <= set(h.columns)
    assert np.isfinite(h[["critic_loss", "generator_loss", "val_frechet"]].to_numpy()).all()
    tr, va = trained.split["train"], trained.split["validation"]
    assert len(tr) == 96 and len(va) == 24 and not set(tr) & set(va)
    emb = trained.get_condition_embedding(adata)
    assert emb.shape == (adata.n_obs, SMALL["d_model"])
    z = trained.normalize(adata.X[tr])
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)


def test_sample_new_patients_and_n_samples(trained, image_cohort):
    adata, _ = image_cohort
    new = adata[:5].copy()
    new.X = np.zeros_like(new.X)  # expression is not used for sampling
    synth = trained.sample(new, n_samples=3, seed=0)
    assert synth.n_obs == 15 and synth.obs_names.is_unique
    assert list(synth.obs["source_obs"][:3]) == [new.obs_names[0]] * 3
    one = trained.sample(indices=["cell3", "cell7"], seed=0)
    assert list(one.obs["source_obs"]) == ["cell3", "cell7"]


def test_save_load_round_trip_same_samples(trained, image_cohort, tmp_path):
    adata, _ = image_cohort
    path = trained.save(tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "model.safetensors"]
    loaded = gg.GeMMGAN.load(path, adata=adata)
    np.testing.assert_array_equal(loaded.sample(seed=3).X, trained.sample(seed=3).X)
    assert loaded.history.equals(trained.history)
    np.testing.assert_array_equal(loaded.split["train"], trained.split["train"])
    with pytest.raises(FileExistsError):
        trained.save(path)
    trained.save(path, overwrite=True)


def test_load_rejects_tampered_folders(trained, image_cohort, tmp_path):
    adata, _ = image_cohort
    path = trained.save(tmp_path / "m")
    (path / "evil.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="evil.pkl"):
        gg.GeMMGAN.load(path, adata=adata)
    (path / "evil.pkl").unlink()
    other = adata[:, ::-1].copy()
    other.var_names = [f"x{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match="var_names"):
        gg.GeMMGAN.load(path, adata=other)
    meta = json.loads((path / "model.json").read_text())
    meta["hparams"]["d_model"] = 32
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not fit"):
        gg.GeMMGAN.load(path, adata=adata)
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="safetensors"):
        gg.GeMMGAN.load(path, adata=adata)


def test_reordered_var_names_are_aligned(trained, image_cohort):
    adata, _ = image_cohort
    shuffled = adata[:, ::-1].copy()
    a = trained.sample(adata, seed=5)
    b = trained.sample(shuffled, seed=5)
    np.testing.assert_array_equal(a.X, b.X)


def test_same_seed_same_history_and_samples(tmp_path):
    adata, store = make_cohort(tmp_path, n=40, decided_by="image")
    runs = []
    for _ in range(2):
        gg.GeMMGAN.setup_anndata(adata, patch_store=store)
        model = gg.GeMMGAN(adata, **SMALL).train(max_epochs=2, batch_size=16, seed=7)
        runs.append((model.history, model.sample(seed=1).X))
    assert runs[0][0].drop(columns="time").equals(runs[1][0].drop(columns="time"))  # wall time differs
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("variant", ["paper", "authors_code"])
@pytest.mark.parametrize("mode", ["mean_image", "patch_transformer", "film", "cross_attention"])
def test_every_mode_trains_one_epoch(tmp_path, mode, variant):
    adata, store = make_cohort(tmp_path, n=24, decided_by="image")
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    model = gg.GeMMGAN(adata, conditioning=mode, fusion_variant=variant, **SMALL)
    model.train(max_epochs=1, batch_size=12, n_critic=2)
    assert model.sample(seed=0).X.shape == (24, 40)


def test_slide_without_tissue_is_masked(tmp_path):
    from gemmgan_sc.data import PatchStore

    adata, store = make_cohort(tmp_path, n=30, decided_by="image")
    PatchStore(store, mode="a").add(adata.obs["slide_id"].iloc[4], coords=np.zeros((0, 2)))  # no tissue: 0 tiles
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    model = gg.GeMMGAN(adata, **SMALL).train(max_epochs=2, batch_size=10, n_critic=1, seed=0)
    assert np.isfinite(model.history["critic_loss"]).all()
    synth = model.sample(seed=0)
    assert np.isfinite(synth.X).all()


def test_interrupted_save_leaves_no_model_and_rerun_repairs(trained, tmp_path, monkeypatch):
    import os

    def crash(src, dst):
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        trained.save(tmp_path / "m")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []  # no model folder, and the staging folder is cleaned up
    trained.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_streamed_bank_gives_the_same_model_as_the_in_memory_bank(tmp_path, caplog):
    from gemmgan_sc.train import ConditionBank
    import torch

    adata, store = make_cohort(tmp_path, n=30, decided_by="image")
    from gemmgan_sc.data import PatchStore

    ps = PatchStore(store)
    ids = adata.obs["slide_id"].astype(str).tolist()
    feats, offsets, counts = ps.bank(ids)
    memory = ConditionBank(patches=feats, offsets=offsets, counts=counts, n_patches=8)
    stream = ConditionBank(stream_from=(ps, ids), n_patches=8)
    assert stream.streaming and not memory.streaming and stream.read_threads > 1
    idx = torch.arange(30)
    a = memory.draw_patches(idx, torch.Generator().manual_seed(1))
    b = stream.draw_patches(idx, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a[0], b[0])
    assert torch.equal(a[1], b[1])
    one_thread = ConditionBank(stream_from=(ps, ids), n_patches=8, read_threads=1)
    c = one_thread.draw_patches(idx, torch.Generator().manual_seed(1))
    assert torch.equal(b[0], c[0]) and torch.equal(b[1], c[1])
    with pytest.raises(ValueError, match="read_threads"):
        ConditionBank(stream_from=(ps, ids), n_patches=8, read_threads=0)

    runs = []
    for limit in (None, 0):  # default (in memory), then force streaming
        gg.settings.max_bank_bytes = limit
        try:
            gg.GeMMGAN.setup_anndata(adata, patch_store=store)
            model = gg.GeMMGAN(adata, **SMALL).train(max_epochs=2, batch_size=10, n_critic=1, seed=0)
            runs.append((model.history, model.sample(seed=0).X))
        finally:
            gg.settings.max_bank_bytes = None
    assert runs[0][0].drop(columns="time").equals(runs[1][0].drop(columns="time"))  # wall time differs
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_train_compile_falls_back_to_eager_when_compiling_fails(tmp_path, monkeypatch, caplog):
    import logging

    from gemmgan_sc.nn import ConditionFusion

    adata, store = make_cohort(tmp_path, n=20, decided_by="image")
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    with pytest.raises(ValueError, match="compile must be True or False"):
        gg.GeMMGAN(adata, **SMALL).train(max_epochs=1, compile="yes")

    def broken(self, *args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(ConditionFusion, "compile", broken)
    logger = logging.getLogger("gemmgan_sc")
    logger.addHandler(caplog.handler)
    try:
        model = gg.GeMMGAN(adata, **SMALL).train(max_epochs=2, batch_size=10, n_critic=1, compile=True, seed=0)
    finally:
        logger.removeHandler(caplog.handler)
    assert "training runs eagerly" in caplog.text and "no C++ compiler" in caplog.text
    assert len(model.history) == 2 and model.train_params["compile"] is True
    eager = gg.GeMMGAN(adata, **SMALL).train(max_epochs=2, batch_size=10, n_critic=1, seed=0)
    assert not hasattr(model.networks.gen_condition, "_orig_mod")
    assert set(model.networks.state_dict()) == set(eager.networks.state_dict())


@pytest.mark.slow
def test_train_compile_runs_compiled_networks(tmp_path):
    import shutil

    import torch

    adata, store = make_cohort(tmp_path, n=20, decided_by="image")
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    model = gg.GeMMGAN(adata, **SMALL)
    torch._dynamo.reset()
    model.train(max_epochs=2, batch_size=10, n_critic=1, compile=True, seed=0)
    fusion = model.networks.gen_condition
    # compiled in place when a compiler is available (state-dict keys unchanged either way)
    assert not any(k.startswith("_orig_mod") for k in model.networks.state_dict())
    assert len(model.history) == 2 and np.isfinite(model.history["generator_loss"]).all()
    if shutil.which("g++") or shutil.which("c++"):  # inductor's CPU backend needs a C++ compiler
        assert fusion._compiled_call_impl is not None  # noqa: SLF001  (no public flag says a module is compiled)
    synth = model.sample(seed=0)
    assert np.isfinite(synth.X).all()
