"""Property-based checks of the setup registry's validation (hypothesis)."""

import anndata as ad
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gemmgan_sc as gg
from gemmgan_sc.data import AnnDataRegistry

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@st.composite
def text_cohorts(draw):
    n = draw(st.integers(2, 8))
    genes = draw(st.integers(1, 6))
    m = draw(st.integers(1, 4))
    d = draw(st.integers(1, 5))
    x = draw(st.lists(st.floats(0, 20, width=32), min_size=n * genes, max_size=n * genes))
    adata = ad.AnnData(np.array(x, dtype=np.float32).reshape(n, genes))
    adata.obs_names = [f"o{i}" for i in range(n)]
    adata.var_names = [f"v{j}" for j in range(genes)]
    adata.obsm["X_text_tokens"] = np.ones((n, m, d), np.float16)
    adata.obsm["text_mask"] = np.ones((n, m), bool)
    return adata


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adata=text_cohorts(), data=st.data())
def test_clean_data_passes_and_each_corruption_is_caught(adata, data):
    reg = AnnDataRegistry.setup(adata)
    assert reg.n_vars == adata.n_vars and reg.text_dim == adata.obsm["X_text_tokens"].shape[2]
    i = data.draw(st.integers(0, adata.n_obs - 1))
    j = data.draw(st.integers(0, adata.n_vars - 1))
    kind = data.draw(st.sampled_from(["nan", "inf", "negative", "mask_cls", "width", "dup_obs"]))
    bad = adata.copy()
    if kind == "nan":
        bad.X[i, j] = np.nan
    elif kind == "inf":
        bad.X[i, j] = -np.inf
    elif kind == "negative":
        bad.X[i, j] = -0.5
    elif kind == "mask_cls":
        bad.obsm["text_mask"][i, 0] = False
    elif kind == "width":
        tokens = bad.obsm["X_text_tokens"]
        bad.obsm["X_text_tokens"] = np.ones(tokens.shape[:2] + (tokens.shape[2] + 1,), np.float16)
    elif kind == "dup_obs":
        if bad.n_obs < 2:
            return
        names = list(bad.obs_names)
        names[i] = names[(i + 1) % bad.n_obs]
        bad.obs_names = names
    with pytest.raises((ValueError, KeyError)):
        if kind == "width":
            reg.validate(bad)  # the width only differs from what was registered
        else:
            AnnDataRegistry.setup(bad)


@settings(max_examples=30, deadline=None)
@given(adata=text_cohorts())
def test_registry_survives_uns_round_trip(adata):
    reg = AnnDataRegistry.setup(adata, labels_keys=None)
    assert AnnDataRegistry.from_uns(reg.to_uns()) == reg
    gg.GeMMGAN.setup_anndata(adata)
    assert AnnDataRegistry.from_uns({k: v for k, v in adata.uns["_gemmgan_setup"].items() if k != "model"}) == reg
