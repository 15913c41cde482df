"""gg.metrics.conditional_fidelity against hand-computed correlations, with fake models."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

import gemmgan_sc as gg

N, G = 12, 5


def make_adata(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, G)) * np.arange(1, G + 1) + 3
    adata = ad.AnnData(np.zeros_like(x), var=pd.DataFrame(index=[f"g{j}" for j in range(G)]),
                       obs=pd.DataFrame(index=[f"r{i}" for i in range(N)]))
    adata.layers["expr"] = x
    return adata


class PlantedModel:
    """Draws whose mean per row is exactly ``predict(real row)``: draw k adds ``+c`` or ``-c`` (n_draws even).

    ``shuffle`` returns the draws in a random order (``obs["source_obs"]`` names each draw's row);
    ``registry`` is left out on purpose (the layer is given to conditional_fidelity).
    """

    def __init__(self, adata, predict, shuffle=False):
        self.adata, self.predict, self.shuffle = adata, predict, shuffle
        self.var_names = pd.Index(adata.var_names)
        self.calls = []

    def sample(self, adata=None, indices=None, n_samples=1, seed=None):
        self.calls.append((list(indices), n_samples, seed))
        x = adata.layers["expr"][indices]
        means = np.repeat(self.predict(x), n_samples, axis=0)
        signs = np.tile(np.where(np.arange(n_samples) % 2 == 0, 1.0, -1.0), len(indices))[:, None]
        draws = means + 0.7 * signs * np.arange(1, x.shape[1] + 1)
        obs = pd.DataFrame({"source_obs": np.repeat(adata.obs_names[indices], n_samples)})
        order = np.random.default_rng(seed).permutation(len(obs)) if self.shuffle else np.arange(len(obs))
        obs = obs.iloc[order].reset_index(drop=True)
        obs.index = obs.index.astype(str)
        # genes reversed: conditional_fidelity aligns them by name
        return ad.AnnData(draws[order][:, ::-1], obs=obs, var=pd.DataFrame(index=self.var_names[::-1]))


def fixed_predictions(x):
    """Gene 0: 2x + 1 (r = 1); gene 1: -x (r = -1); genes 2-4: a fixed pattern unrelated to x."""
    out = np.empty_like(x)
    out[:, 0] = 2 * x[:, 0] + 1
    out[:, 1] = -x[:, 1]
    pattern = np.random.default_rng(42).normal(size=(len(x), x.shape[1] - 2))
    out[:, 2:] = x[:, 2:] + 3.0 * pattern
    return out


@pytest.mark.parametrize("shuffle", [False, True])
def test_per_gene_correlations_match_scipy(shuffle):
    adata = make_adata()
    rows = np.arange(N)
    model = PlantedModel(adata, fixed_predictions, shuffle=shuffle)
    res = gg.metrics.conditional_fidelity(model, adata, rows, n_draws=4, seed=7, layer="expr")
    assert model.calls == [(list(rows), 4, 7)]
    x = adata.layers["expr"]
    pred = fixed_predictions(x)
    exp_p = [pearsonr(x[:, g], pred[:, g])[0] for g in range(G)]
    exp_s = [spearmanr(x[:, g], pred[:, g])[0] for g in range(G)]
    assert list(res.per_gene.index) == list(adata.var_names)
    np.testing.assert_allclose(res.per_gene["pearson"], exp_p, atol=1e-12)
    np.testing.assert_allclose(res.per_gene["spearman"], exp_s, atol=1e-12)
    assert res.per_gene.loc["g0", "pearson"] == pytest.approx(1.0) and res.per_gene.loc["g1", "spearman"] == -1.0
    s = res.summary
    assert s["pearson_mean"] == pytest.approx(np.mean(exp_p)) and s["spearman_median"] == pytest.approx(np.median(exp_s))
    assert s["pearson_n_above"] == sum(r > 0.4 for r in exp_p)
    assert s["spearman_n_above"] == sum(r > 0.4 for r in exp_s)
    assert (s["n_genes"], s["n_rows"], s["n_draws"], s["threshold"]) == (G, N, 4, 0.4)


def test_subset_of_rows_by_name_and_threshold():
    adata = make_adata(1)
    names = [f"r{i}" for i in (1, 3, 4, 6, 8, 10)]
    res = gg.metrics.conditional_fidelity(PlantedModel(adata, lambda x: x ** 3), adata, names, n_draws=2,
                                          layer="expr", threshold=0.99)
    x = adata[names].layers["expr"]
    exp = [pearsonr(x[:, g], x[:, g] ** 3)[0] for g in range(G)]
    np.testing.assert_allclose(res.per_gene["pearson"], exp, atol=1e-12)
    np.testing.assert_allclose(res.per_gene["spearman"], 1.0)  # a monotone map: ranks agree
    assert res.summary["pearson_n_above"] == sum(r > 0.99 for r in exp)


def test_constant_gene_is_nan_and_left_out_of_the_summary():
    adata = make_adata(2)

    def predict(x):
        out = x.copy()
        out[:, 0] = 5.0  # the model predicts one value for every row: no correlation defined
        return out

    res = gg.metrics.conditional_fidelity(PlantedModel(adata, predict), adata, np.arange(N), n_draws=2, layer="expr")
    assert np.isnan(res.per_gene.loc["g0", "pearson"]) and np.isnan(res.per_gene.loc["g0", "spearman"])
    assert res.summary["n_genes"] == G - 1 and res.summary["pearson_mean"] == pytest.approx(1.0)


def test_defaults_from_the_model_and_unconditional_models_score_near_zero():
    adata = make_adata(3)
    n = 400
    big = ad.AnnData(np.random.default_rng(0).normal(size=(n, G)), var=pd.DataFrame(index=adata.var_names),
                     obs=pd.DataFrame(index=[f"r{i}" for i in range(n)]))
    big.layers["expr"] = big.X

    class Unconditional(PlantedModel):
        def sample(self, adata=None, indices=None, n_samples=1, seed=None):
            rng = np.random.default_rng(seed)
            obs = pd.DataFrame({"source_obs": np.repeat(adata.obs_names[indices], n_samples)})
            obs.index = obs.index.astype(str)
            return ad.AnnData(rng.normal(size=(len(obs), G)), obs=obs, var=pd.DataFrame(index=self.var_names))

    model = Unconditional(big, None)
    model.split = {"train": np.arange(300), "validation": np.arange(300, n)}
    res = gg.metrics.conditional_fidelity(model, n_draws=3, layer="expr")
    assert res.summary["n_rows"] == 100
    assert abs(res.summary["pearson_mean"]) < 0.15 and res.summary["pearson_n_above"] == 0


def test_conditional_fidelity_validates():
    adata = make_adata()
    model = PlantedModel(adata, lambda x: x)
    with pytest.raises(TypeError, match="model has no 'sample'"):
        gg.metrics.conditional_fidelity(object(), adata, [0, 1, 2])
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="n_draws must be a positive int"):
            gg.metrics.conditional_fidelity(model, adata, [0, 1, 2], n_draws=bad, layer="expr")
    with pytest.raises(ValueError, match="at least 3 rows"):
        gg.metrics.conditional_fidelity(model, adata, [0, 1], layer="expr")
    with pytest.raises(IndexError, match="out of range"):
        gg.metrics.conditional_fidelity(model, adata, [0, 1, 99], layer="expr")
    with pytest.raises(KeyError, match="not obs_names"):
        gg.metrics.conditional_fidelity(model, adata, ["r0", "r1", "nope"], layer="expr")
    with pytest.raises(ValueError, match="threshold must be a number"):
        gg.metrics.conditional_fidelity(model, adata, [0, 1, 2], threshold=2, layer="expr")
    with pytest.raises(ValueError, match="pass the held-out rows"):
        gg.metrics.conditional_fidelity(model, adata, layer="expr")
    with pytest.raises(TypeError, match="adata must be an AnnData"):
        gg.metrics.conditional_fidelity(model, np.zeros((3, 3)), [0, 1, 2])

    class Short(PlantedModel):
        def sample(self, **kw):
            return super().sample(**kw)[:-1]

    with pytest.raises(ValueError, match="returned 11 rows, expected 3 rows x 4 draws"):
        gg.metrics.conditional_fidelity(Short(adata, lambda x: x), adata, [0, 1, 2], n_draws=4, layer="expr")
