import numpy as np
import pytest

import gemmgan_sc as gg
from cohorts import SMALL, make_cohort


@pytest.fixture
def cohort(tmp_path):
    return make_cohort(tmp_path, n=30, decided_by="image")


def test_setup_records_registry_and_modalities(cohort):
    adata, store = cohort
    gg.GeMMGAN.setup_anndata(adata, patch_store=store, labels_keys=["group"])
    reg = adata.uns["_gemmgan_setup"]
    assert reg["model"] == "GeMMGAN" and reg["text_dim"] == 12 and reg["patch_dim"] == 16
    assert list(reg["categories"]["group"]) == ["g0", "g1"]
    assert gg.GeMMGAN(adata, **SMALL).conditioning == "full"
    # no text in obsm + a store = image-only
    del adata.obsm["X_text_tokens"]
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    assert gg.GeMMGAN(adata, **SMALL).conditioning == "patch_transformer"


def test_registry_round_trips_through_h5ad(cohort, tmp_path):
    import anndata as ad

    adata, store = cohort
    gg.GeMMGAN.setup_anndata(adata, patch_store=store, labels_keys=["group"])
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    model = gg.GeMMGAN(back, **SMALL)
    assert model.registry.patch_store == store and model.registry.labels_keys == ["group"]


@pytest.mark.parametrize(
    "corrupt,match",
    [
        (lambda a: a.X.__setitem__((0, 0), np.nan), "NaN"),
        (lambda a: a.X.__setitem__((1, 2), np.inf), "NaN/inf"),
        (lambda a: a.X.__setitem__((0, 0), -1.0), "negative values"),
        (lambda a: setattr(a, "obs_names", ["x"] * a.n_obs), "Duplicated obs_names"),
        (lambda a: setattr(a, "var_names", ["g"] * a.n_vars), "Duplicated var_names"),
    ],
)
def test_bad_expression(cohort, corrupt, match):
    adata, store = cohort
    corrupt(adata)
    with pytest.raises(ValueError, match=match):
        gg.GeMMGAN.setup_anndata(adata, patch_store=store)


def test_negative_values_allowed_when_declared(cohort):
    adata, store = cohort
    adata.X[0, 0] = -1.0
    gg.GeMMGAN.setup_anndata(adata, patch_store=store, expression_scale="any")


def test_missing_and_wrong_modalities(cohort, tmp_path):
    adata, store = cohort
    with pytest.raises(KeyError, match="embed_text"):
        gg.GeMMGAN.setup_anndata(adata, text_key="nope")
    with pytest.raises(ValueError, match="needs a condition"):
        gg.GeMMGAN.setup_anndata(adata, text_key=None)
    with pytest.raises(KeyError, match="slide_key"):
        gg.GeMMGAN.setup_anndata(adata, patch_store=store, slide_key="nope")
    with pytest.raises(FileNotFoundError, match="patch store"):
        gg.GeMMGAN.setup_anndata(adata, patch_store=str(tmp_path / "missing.zarr"))
    with pytest.raises(KeyError, match="labels key"):
        gg.GeMMGAN.setup_anndata(adata, patch_store=store, labels_keys=["nope"])
    bad = adata.copy()
    bad.obsm["text_mask"][3, 0] = False
    with pytest.raises(ValueError, match="CLS"):
        gg.GeMMGAN.setup_anndata(bad, patch_store=store)
    bad = adata.copy()
    bad.obs["slide_id"] = bad.obs["slide_id"].astype(str)
    bad.obs.loc[bad.obs_names[2], "slide_id"] = "not-in-store"
    with pytest.raises(KeyError, match="not-in-store"):
        gg.GeMMGAN.setup_anndata(bad, patch_store=store)


def test_model_rejects_misfit_data_at_sample_time(cohort):
    adata, store = cohort
    gg.GeMMGAN.setup_anndata(adata, patch_store=store, labels_keys=["group"])
    model = gg.GeMMGAN(adata, **SMALL)
    with pytest.raises(RuntimeError, match="train"):
        model.sample()
    model.train(max_epochs=1, batch_size=15, n_critic=1)
    wide = adata.copy()
    wide.obsm["X_text_tokens"] = np.zeros((wide.n_obs, 6, 20), np.float16)
    with pytest.raises(ValueError, match="width 20"):
        model.sample(wide)
    nan = adata.copy()
    nan.obsm["X_text_tokens"] = nan.obsm["X_text_tokens"].astype(np.float32)
    nan.obsm["X_text_tokens"][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.sample(nan)
    other = adata.copy()
    other.obs["group"] = other.obs["group"].astype(str)
    other.obs.loc[other.obs_names[0], "group"] = "g9"
    with pytest.raises(ValueError, match="never saw"):
        model.sample(other)
    with pytest.raises(IndexError):
        model.sample(indices=[999])
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(n_samples=0)


def test_init_errors(cohort):
    adata, store = cohort
    with pytest.raises(ValueError, match="setup_anndata"):
        gg.GeMMGAN(adata)
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    with pytest.raises(TypeError, match="unknown arguments"):
        gg.GeMMGAN(adata, d_modle=3)
    with pytest.raises(ValueError, match="Unknown conditioning"):
        gg.GeMMGAN(adata, conditioning="bogus")
    with pytest.raises(ValueError, match="divisible"):
        gg.GeMMGAN(adata, d_model=10, n_heads=4)
    model = gg.GeMMGAN(adata, **SMALL)
    with pytest.raises(ValueError, match="optimizer"):
        model.train(max_epochs=1, optimizer="sgd")
    with pytest.raises(ValueError, match="max_epochs"):
        model.train(max_epochs=0)
    with pytest.raises(ValueError, match="train_size"):
        model.train(max_epochs=1, train_size=1.5)


def test_settings_validation_and_seed():
    import torch

    with pytest.raises(ValueError, match="seed"):
        gg.settings.seed = -1
    with pytest.raises(ValueError, match="verbosity"):
        gg.settings.verbosity = 9
    with pytest.raises(ValueError, match="num_workers"):
        gg.settings.num_workers = -2
    with pytest.raises(ValueError, match="torch device"):
        gg.settings.device = "gpu-please"
    gg.settings.seed = 11
    a = (np.random.rand(), torch.rand(1).item())
    gg.settings.seed = 11
    assert (np.random.rand(), torch.rand(1).item()) == a
    assert gg.settings.resolve_device("cpu").type == "cpu"
    gg.settings.seed = None


def test_max_bank_bytes_setting():
    with pytest.raises(ValueError, match="max_bank_bytes"):
        gg.settings.max_bank_bytes = -5
    gg.settings.max_bank_bytes = 123
    assert gg.settings.bank_limit() == 123
    gg.settings.max_bank_bytes = None
    assert gg.settings.bank_limit() > 2**20
