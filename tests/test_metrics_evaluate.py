"""gg.metrics.evaluate / evaluate_samples (the paper's Table 1), storage in uns, and gg.pl.metrics."""

from __future__ import annotations

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

import gemmgan_sc as gg
from gemmgan_sc.data._registry import AnnDataRegistry

N_GENES, N_GROUPS = 15, 3


def make_adata(n=160, seed=0, layer="log"):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, N_GROUPS, size=n)
    centres = np.random.default_rng(100).normal(0, 2.5, size=(N_GROUPS, N_GENES))
    x = (centres[group] + rng.normal(size=(n, N_GENES)) + 5).astype(np.float32)
    x[:, -1] = 1.0  # a constant gene: the model filters it out
    obs = pd.DataFrame({"group": pd.Categorical([f"t{g}" for g in group])}, index=[f"s{i}" for i in range(n)])
    adata = ad.AnnData(np.zeros_like(x), obs=obs, var=pd.DataFrame(index=[f"gene{j}" for j in range(N_GENES)]))
    adata.layers[layer] = x
    return adata, centres


class FakeModel:
    """Implements the model API ``evaluate`` relies on; samples from the true generating process.

    ``mode="true"``: group centre + fresh N(0, 1) noise (indistinguishable from real);
    ``"copy"``: returns the conditioning rows themselves (memorisation); ``"shifted"``: true + 3 (detectable).
    """

    def __init__(self, adata, centres, mode="true", layer="log"):
        self.adata, self.centres, self.mode = adata, centres, mode
        self.registry = AnnDataRegistry(layer=layer, labels_keys=["group"], expression_scale="any")
        self.var_names = pd.Index(adata.var_names[:-1])
        perm = np.random.default_rng(1).permutation(adata.n_obs)
        cut = int(0.75 * adata.n_obs)
        self.split = {"train": np.sort(perm[:cut]), "validation": np.sort(perm[cut:])}
        x = adata[:, self.var_names].layers[layer][self.split["train"]].astype(np.float64)
        self.mean, self.std = x.mean(0), x.std(0)
        self.calls = []

    def normalize(self, x):
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    def sample(self, adata=None, indices=None, n_samples=1, seed=None):
        adata = self.adata if adata is None else adata
        idx = np.arange(adata.n_obs) if indices is None else np.asarray(indices)
        self.calls.append((len(idx), n_samples, seed))
        idx = np.repeat(idx, n_samples)
        rng = np.random.default_rng(seed)
        group = adata.obs["group"].cat.codes.to_numpy()[idx]
        if self.mode == "copy":
            x = adata[:, self.var_names].layers[self.registry.layer][idx]
        else:
            x = self.centres[group][:, :-1] + rng.normal(size=(len(idx), len(self.var_names))) + 5
            x = x + (3.0 if self.mode == "shifted" else 0.0)
        obs = adata.obs.iloc[idx].copy()
        obs["source_obs"] = obs.index.astype(str)
        obs["synthetic"] = True
        obs.index = [f"synth{i}" for i in range(len(idx))]
        # genes in another order than the model's: evaluate must align by name
        out = ad.AnnData(np.asarray(x, dtype=np.float32)[:, ::-1], obs=obs,
                         var=pd.DataFrame(index=self.var_names[::-1]))
        return out


def value(table, metric, classifier="", label="", reference=""):
    row = table[(table.metric == metric) & (table.classifier == classifier) & (table.label == label)
                & (table.reference == reference)]
    assert len(row) == 1, (metric, classifier, label)
    return float(row["mean"].iloc[0])


@pytest.fixture(scope="module")
def data():
    return make_adata()


def test_evaluate_true_model_looks_real(data):
    adata, centres = data
    model = FakeModel(adata, centres)
    table = gg.metrics.evaluate(model, adata, n_runs=2, classifiers=("logreg", "rf"), seed=3, k=5, references=())
    assert list(table.columns) == ["metric", "classifier", "label", "mean", "std", "reference"]
    # train and held-out conditions, seeded; then 10 draws per held-out row for conditional fidelity (seed + 4 + i)
    assert model.calls == [(120, 1, 3), (40, 1, 4), (40, 10, 7), (120, 1, 5), (40, 1, 6), (40, 10, 8)]
    assert abs(value(table, "detectability_accuracy", "logreg") - 0.5) < 0.15
    assert value(table, "utility_accuracy", "rf", "group") > 0.9
    assert value(table, "utility_real_accuracy", "rf", "group") > 0.9
    assert value(table, "precision") > 0.5 and value(table, "recall") > 0.5
    assert value(table, "correlation_mse") < 0.1
    assert abs(value(table, "privacy_closer_to_train") - 0.75) < 0.15
    assert value(table, "privacy_closer_to_train_expected") == 0.75
    assert (table["std"] >= 0).all() and table["std"].max() > 0  # two runs differ
    stored = adata.uns["gemmgan_metrics"]
    assert stored["params"]["n_runs"] == 2 and stored["params"]["label_keys"] == ["group"]
    pd.testing.assert_frame_equal(gg.metrics.metrics_table(adata), table)


def test_evaluate_detects_shift_and_memorisation(data):
    adata, centres = data
    shifted = gg.metrics.evaluate(FakeModel(adata, centres, "shifted"), adata.copy(), n_runs=1,
                                  classifiers=["logreg"], k=5)
    assert value(shifted, "detectability_accuracy", "logreg") > 0.95
    assert value(shifted, "precision") < 0.2
    copy = gg.metrics.evaluate(FakeModel(adata, centres, "copy"), adata.copy(), n_runs=1, classifiers=["logreg"], k=5,
                               label_keys=[])
    assert value(copy, "privacy_closer_to_train") == 1.0 and value(copy, "privacy_nndr_mean") == 0.0
    assert not copy.metric.str.startswith("utility").any()


def test_metrics_table_h5ad_round_trip_and_plot(data, tmp_path):
    adata, centres = data
    adata = adata.copy()
    table = gg.metrics.evaluate(FakeModel(adata, centres), adata, n_runs=1, classifiers=["logreg"], k=5,
                                key_added="my_eval", references=())
    path = tmp_path / "eval.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    pd.testing.assert_frame_equal(gg.metrics.metrics_table(back, "my_eval"), table)
    assert back.uns["my_eval"]["params"]["k"] == 5
    import matplotlib.pyplot as plt

    ax = gg.pl.metrics(table, show=False)
    assert len(ax.patches) == len(table)
    fig, ax2 = plt.subplots()
    assert gg.pl.metrics(back, ax=ax2, key="my_eval", metrics=["precision", "detectability"], show=False) is ax2
    assert len(ax2.patches) == 1 + 3
    with pytest.raises(ValueError, match="none of metrics"):
        gg.pl.metrics(table, metrics=["fid"])
    with pytest.raises(KeyError, match="holds no metrics table"):
        gg.pl.metrics(back, key="other")
    plt.close("all")


def test_evaluate_validates(data):
    adata, centres = data
    model = FakeModel(adata, centres)
    with pytest.raises(TypeError, match="model has no 'split'"):
        gg.metrics.evaluate(object(), adata)
    other = adata[::-1].copy()
    with pytest.raises(ValueError, match="other rows than the AnnData the model was trained on"):
        gg.metrics.evaluate(model, other)
    with pytest.raises(ValueError, match="n_runs must be a positive int"):
        gg.metrics.evaluate(model, adata, n_runs=0)
    with pytest.raises(ValueError, match="classifier must be one of"):
        gg.metrics.evaluate(model, adata, classifiers=["svm"])
    with pytest.raises(ValueError, match="k=50 needs more than k samples"):
        gg.metrics.evaluate(model, adata, k=50)
    with pytest.raises(KeyError, match="'stage' is not a column"):
        gg.metrics.evaluate(model, adata, label_keys=["stage"], n_runs=1)


def test_evaluate_samples_runs_and_storage(data):
    adata, centres = data
    model = FakeModel(adata, centres)
    tr, te = model.split["train"], model.split["validation"]
    real_train, real_test = adata[tr].copy(), adata[te].copy()
    runs_tr = [model.sample(adata, tr, seed=s) for s in (0, 1)]
    runs_te = [model.sample(adata, te, seed=s) for s in (2, 3)]
    # the real sets carry one extra gene (the model filtered it): subset to the synthetic genes
    real_train, real_test = real_train[:, model.var_names].copy(), real_test[:, model.var_names].copy()
    target = ad.AnnData(np.zeros((2, 1)))
    table = gg.metrics.evaluate_samples(real_train, real_test, runs_tr, runs_te, label_key="group",
                                        classifiers=["logreg"], k=5, layer="log", adata=target, key_added="ext")
    assert value(table, "utility_accuracy", "logreg", "group") > 0.9
    assert "ext" in target.uns and target.uns["ext"]["params"]["n_runs"] == 2
    with pytest.raises(ValueError, match="synth_train has 2 runs but synth_test has 1"):
        gg.metrics.evaluate_samples(real_train, real_test, runs_tr, runs_te[:1], layer="log")
    with pytest.raises(ValueError, match="lacks 1 of the genes"):
        gg.metrics.evaluate_samples(adata[tr], adata[te], runs_tr[0], runs_te[0], layer="log")
    with pytest.raises(KeyError, match="layer 'log' is not in synth_train"):
        gg.metrics.evaluate_samples(real_train, real_test, runs_tr, runs_te, layer="log", synth_layer="log")


@pytest.mark.slow
def test_evaluate_real_gemmgan(tmp_path):
    from cohorts import SMALL, make_cohort

    adata, store = make_cohort(tmp_path, decided_by="image")
    gg.GeMMGAN.setup_anndata(adata, patch_store=store, labels_keys=["group"])
    model = gg.GeMMGAN(adata, **SMALL)
    model.train(max_epochs=4, batch_size=32, lr=1e-3, seed=0)  # the API is under test, not the model's quality
    table = gg.metrics.evaluate(model, n_runs=2, classifiers=["logreg", "rf"], k=5)
    assert np.isfinite(table["mean"]).all()
    assert value(table, "utility_real_accuracy", "rf", "group") > 0.9  # marker genes decide the group
    assert 0 <= value(table, "utility_accuracy", "rf", "group") <= 1
    assert value(table, "privacy_closer_to_train_expected") == pytest.approx(
        len(model.split["train"]) / adata.n_obs
    )
    assert gg.metrics.metrics_table(adata).equals(table)


# ------------------------------------------------------------------ Frechet, sd ratio, conditional, references
def test_new_fidelity_rows_equal_the_public_functions(data):
    adata, centres = data
    model = FakeModel(adata, centres, "shifted")
    table = gg.metrics.evaluate(model, adata.copy(), n_runs=1, classifiers=["logreg"], seed=2, k=5,
                                frechet_components=6)
    tr, te = model.split["train"], model.split["validation"]
    x = adata[:, model.var_names].layers["log"]
    z_tr, z_te = model.normalize(x[tr]), model.normalize(x[te])
    s_te = model.normalize(model.sample(adata, te, seed=3)[:, model.var_names].X)  # run 0, held-out: seed + 1
    fd = gg.metrics.frechet_distance(z_te, s_te, reference=z_tr, n_components=6)
    assert value(table, "frechet_distance") == pytest.approx(fd, rel=1e-5)
    assert value(table, "sd_ratio") == pytest.approx(gg.metrics.sd_ratio(z_te, s_te), rel=1e-5)
    cond = gg.metrics.conditional_fidelity(model, adata, te, n_draws=10, seed=2 + 2)  # seed + 2 n_runs + 0
    for name in ("pearson_mean", "spearman_median", "pearson_n_above"):
        assert value(table, f"conditional_{name}") == pytest.approx(cond.summary[name], rel=1e-5)
    # the shift shows against the ceiling
    assert value(table, "frechet_distance") > 5 * value(table, "frechet_distance", reference="real_rows")
    assert set(table.reference) == {"", "real_rows"}


def test_real_rows_ceiling(data):
    adata, centres = data
    table = gg.metrics.evaluate(FakeModel(adata, centres, "copy"), adata.copy(), n_runs=2, classifiers=["logreg"],
                                k=5)
    assert list(dict.fromkeys(table.reference)) == ["", "real_rows"]
    ceiling = table[table.reference == "real_rows"]
    # real rows against real rows: undetectable, on the manifold, same spread and correlations
    assert abs(value(table, "detectability_auc", "logreg", reference="real_rows") - 0.5) < 0.2
    assert value(table, "precision", reference="real_rows") > 0.6 and value(table, "recall", reference="real_rows") > 0.6
    assert abs(value(table, "sd_ratio", reference="real_rows") - 1.0) < 0.2
    assert value(table, "utility_accuracy", "logreg", "group", reference="real_rows") > 0.9
    # 120 training rows: 40 stand for the held-out conditions, the other 80 in halves of 40 (real / synthetic)
    assert value(table, "privacy_closer_to_train_expected", reference="real_rows") == 0.5
    assert abs(value(table, "privacy_closer_to_train", reference="real_rows") - 0.5) < 0.2
    assert not ceiling.metric.str.startswith("conditional").any()
    # the copying model: perfect conditional fidelity, and privacy far worse than the ceiling
    assert value(table, "conditional_pearson_mean") == pytest.approx(1.0)
    assert value(table, "conditional_pearson_n_above") == len(FakeModel(adata, centres).var_names)
    assert value(table, "privacy_closer_to_train") == 1.0
    assert (table["std"] >= 0).all() and np.isfinite(table["mean"]).all()


def test_ceiling_left_out_when_the_split_is_too_small(data, caplog):
    import logging

    adata, centres = data
    model = FakeModel(adata, centres)
    model.split = {"train": np.arange(42), "validation": np.arange(42, 82)}
    logging.getLogger("gemmgan_sc").addHandler(caplog.handler)
    try:
        table = gg.metrics.evaluate(model, adata.copy(), n_runs=1, classifiers=["logreg"], k=5, conditional_draws=0)
    finally:
        logging.getLogger("gemmgan_sc").removeHandler(caplog.handler)
    assert set(table.reference) == {""}
    assert "no real-rows ceiling" in caplog.text and "at least 44 rows" in caplog.text
    assert not table.metric.str.startswith("conditional").any()


def test_conditional_fidelity_only_for_conditional_models_unless_asked(data):
    adata, centres = data

    class Unconditional(FakeModel):
        def _uses(self, modality):
            return False

    model = Unconditional(adata, centres)
    table = gg.metrics.evaluate(model, adata.copy(), n_runs=1, classifiers=["logreg"], k=5, references=())
    assert not table.metric.str.startswith("conditional").any()
    assert all(n == 1 for _, n, _ in model.calls)
    forced = gg.metrics.evaluate(model, adata.copy(), n_runs=1, classifiers=["logreg"], k=5, references=(),
                                 conditional_draws=3)
    assert (40, 3, 2) in model.calls and "conditional_spearman_mean" in set(forced.metric)


def test_reference_arguments_validate(data):
    adata, centres = data
    model = FakeModel(adata, centres)
    with pytest.raises(ValueError, match="references must be a list of"):
        gg.metrics.evaluate(model, adata, references=["median"])
    with pytest.raises(ValueError, match="conditional_draws must be None or an int"):
        gg.metrics.evaluate(model, adata, conditional_draws=-1)
    with pytest.raises(ValueError, match="frechet_components must be a positive int"):
        gg.metrics.evaluate(model, adata, frechet_components=0)
    x = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ValueError, match=r"references must be a list of \('real_rows',\)"):
        gg.metrics.evaluate_samples(x, x, x, x, references=["gaussian"])


def test_evaluate_samples_ceiling_and_old_tables(data):
    rng = np.random.default_rng(0)
    tr, s_tr = rng.normal(size=(160, 6)), rng.normal(size=(160, 6))
    te, s_te = rng.normal(size=(60, 6)), rng.normal(size=(60, 6))
    target = ad.AnnData(np.zeros((2, 1)))
    table = gg.metrics.evaluate_samples(tr, te, s_tr, 2.0 * s_te, classifiers=["logreg"], k=5, normalize=False,
                                        adata=target)
    assert value(table, "sd_ratio") == pytest.approx(gg.metrics.sd_ratio(te, 2.0 * s_te))
    assert abs(value(table, "sd_ratio", reference="real_rows") - 1.0) < 0.2
    assert target.uns["gemmgan_metrics"]["params"]["references"] == ["real_rows"]
    # the Frechet space has at most half as many axes as the smaller compared set has rows (20 held-out -> 10)
    wide = [rng.normal(size=(m, 60)) for m in (100, 20, 100, 20)]
    gg.metrics.evaluate_samples(*wide, classifiers=["logreg"], k=5, adata=target, references=())
    assert target.uns["gemmgan_metrics"]["params"]["frechet_components"] == 10
    gg.metrics.evaluate_samples(tr, te, s_tr, 2.0 * s_te, classifiers=["logreg"], k=5, adata=target)
    # a table stored before the reference column existed reads back as the model's rows
    del target.uns["gemmgan_metrics"]["table"]["reference"]
    old = gg.metrics.metrics_table(target)
    assert list(old.columns)[-1] == "reference" and old.reference.eq("").all()


@pytest.mark.skipif(not hasattr(gg, "GaussianBaseline"), reason="gg.GaussianBaseline is not in this version")
def test_gaussian_floor_rows(data):
    adata, centres = data
    before = dict(adata.uns)
    shifted = gg.metrics.evaluate(FakeModel(adata, centres, "shifted"), adata, n_runs=1, classifiers=["logreg"], k=5,
                                  references=["real_rows", "gaussian"], key_added="with_floor")
    assert list(dict.fromkeys(shifted.reference)) == ["", "real_rows", "gaussian"]
    assert set(adata.uns) - set(before) == {"with_floor"}  # the baseline was set up on private copies
    # a class-conditional Gaussian on the true mixture beats the shifted generator, is beaten by the ceiling
    fd = {r: value(shifted, "frechet_distance", reference=r) for r in ("", "real_rows", "gaussian")}
    assert fd["real_rows"] < fd["gaussian"] < fd[""]
    assert value(shifted, "utility_accuracy", "logreg", "group", reference="gaussian") > 0.8
    assert "conditional_pearson_mean" in set(shifted[shifted.reference == "gaussian"].metric)
