"""gg.tl.concat_real_synthetic, gg.tl.compare_models / comparison_table, gg.pl.history, gg.pl.real_vs_synthetic."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import gemmgan_sc as gg  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _real_synth():
    rng = np.random.default_rng(0)
    real = ad.AnnData(
        rng.normal(size=(6, 5)).astype(np.float32),
        obs=pd.DataFrame({"type": pd.Categorical(list("aabbcc")), "age": np.arange(6.0)}, index=[f"r{i}" for i in range(6)]),
    )
    real.var_names = [f"g{i}" for i in range(5)]
    real.layers["log1p"] = real.X + 10
    # a model drops genes and keeps its own order; synthetic rows carry a new category
    synth = ad.AnnData(
        rng.normal(size=(4, 3)).astype(np.float32),
        obs=pd.DataFrame({"type": pd.Categorical(list("abdd")), "source_obs": ["r0", "r2", "r4", "r5"],
                          "synthetic": True}, index=["r0", "s1", "s2", "s3"]),
    )
    synth.var_names = ["g3", "g0", "g1"]
    return real, synth


# ----------------------------------------------------------------------------- concat_real_synthetic
def test_concat_aligns_genes_and_marks_rows():
    real, synth = _real_synth()
    real_before, synth_before = real.copy(), synth.copy()
    both = gg.tl.concat_real_synthetic(real, synth)
    assert both.shape == (10, 3)
    assert list(both.var_names) == ["g3", "g0", "g1"]
    np.testing.assert_allclose(both.X[:6], real[:, ["g3", "g0", "g1"]].X)
    np.testing.assert_allclose(both.X[6:], synth.X)
    assert isinstance(both.obs["synthetic"].dtype, pd.CategoricalDtype)
    assert both.obs["synthetic"].tolist() == ["real"] * 6 + ["synthetic"] * 4
    # labels kept, categories merged; the clashing name r0 gets suffixes, the others stay
    assert both.obs["type"].tolist() == list("aabbcc") + list("abdd")
    assert list(both.obs["type"].cat.categories) == ["a", "b", "c", "d"]
    assert "r0-real" in both.obs_names and "r0-synth" in both.obs_names and "s1" in both.obs_names
    assert both.obs_names.is_unique
    assert both.obs["source_obs"].iloc[6:].tolist() == ["r0", "r2", "r4", "r5"]
    assert both.uns["gemmgan_concat"]["params"]["n_genes_dropped"] == 2
    # the inputs are untouched
    np.testing.assert_array_equal(real.X, real_before.X)
    assert list(synth.obs.columns) == list(synth_before.obs.columns)
    assert list(real.obs_names) == list(real_before.obs_names)


def test_concat_layer_obs_keys_and_h5ad(tmp_path):
    real, synth = _real_synth()
    both = gg.tl.concat_real_synthetic(real, synth, layer="log1p", obs_keys=["type", "age"])
    np.testing.assert_allclose(both.X[:6], real[:, ["g3", "g0", "g1"]].layers["log1p"])
    assert both.obs["age"].iloc[:6].tolist() == list(range(6))
    assert both.obs["age"].iloc[6:].isna().all()
    both.write_h5ad(tmp_path / "both.h5ad")
    back = ad.read_h5ad(tmp_path / "both.h5ad")
    assert back.obs["synthetic"].tolist() == both.obs["synthetic"].tolist()


def test_concat_errors():
    real, synth = _real_synth()
    with pytest.raises(TypeError, match="synth must be an AnnData"):
        gg.tl.concat_real_synthetic(real, synth.X)
    with pytest.raises(KeyError, match="layers\\['counts'\\]"):
        gg.tl.concat_real_synthetic(real, synth, layer="counts")
    other = synth.copy()
    other.var_names = ["x", "y", "z"]
    with pytest.raises(ValueError, match="share no gene names"):
        gg.tl.concat_real_synthetic(real, other)
    more = ad.AnnData(np.zeros((2, 2), np.float32))
    more.var_names = ["g0", "new"]
    with pytest.raises(ValueError, match="real lacks 1 genes"):
        gg.tl.concat_real_synthetic(real, more, genes="synth")
    with pytest.raises(ValueError, match="genes must be"):
        gg.tl.concat_real_synthetic(real, synth, genes="outer")
    with pytest.raises(KeyError, match="neither"):
        gg.tl.concat_real_synthetic(real, synth, obs_keys=["nope"])
    with pytest.raises(ValueError, match="no rows"):
        gg.tl.concat_real_synthetic(real[:0], synth)


# ----------------------------------------------------------------------------- compare_models
@pytest.fixture(scope="module")
def trained_pair():
    adata = gg.datasets.demo(n_samples=60, n_genes=60, seed=1, slides=False)
    gg.WGANGP.setup_anndata(adata, layer="log1p")
    wgan = gg.WGANGP(adata, n_latent=16, hidden=(32,)).train(max_epochs=2, seed=0, accelerator="cpu")
    gg.CondWGANGP.setup_anndata(adata, layer="log1p", labels_keys=["disease_type"])
    cond = gg.CondWGANGP(adata, n_latent=16, hidden=(32,)).train(max_epochs=2, seed=0, accelerator="cpu")
    return adata, wgan, cond


def test_compare_models_conditional_and_unconditional(trained_pair):
    adata, wgan, cond = trained_pair
    # same seed and train_size: the two models share one split
    np.testing.assert_array_equal(wgan.split["validation"], cond.split["validation"])
    table = gg.tl.compare_models({"WGAN-GP": wgan, "cond": cond}, adata, n_runs=2, classifiers=["logreg"], k=3)
    assert list(table.columns) == ["model", "metric", "classifier", "label", "mean", "std"]
    assert list(dict.fromkeys(table["model"])) == ["WGAN-GP", "cond", "real training rows"]  # the ceiling, once
    w, c = table[table.model == "WGAN-GP"], table[table.model == "cond"]
    ceiling = table[table.model == "real training rows"]
    assert not ceiling.duplicated(["metric", "classifier", "label"]).any()
    assert {"precision", "recall", "frechet_distance", "detectability_auc"} <= set(ceiling["metric"])
    # utility only for the label-conditioned model; fidelity/detectability/privacy for both
    assert not w["metric"].str.startswith("utility").any()
    assert (c["metric"].str.startswith("utility") & (c["label"] == "disease_type")).any()
    for m in ("precision", "recall", "correlation_mse", "detectability_auc", "privacy_nndr_mean"):
        assert m in set(w["metric"]) and m in set(c["metric"])
    assert table["mean"].notna().all() and (table["std"] >= 0).all()
    assert 0.0 <= float(w.loc[w.metric == "detectability_auc", "mean"].iloc[0]) <= 1.0
    # the stacked table is recorded; evaluate()'s own key is not left behind
    stored = adata.uns["gemmgan_comparison"]
    assert list(stored["table"]["model"]) == table["model"].tolist()
    assert stored["params"]["n_runs"] == 2
    assert "_gemmgan_compare_models_tmp" not in adata.uns
    # deterministic for a seed
    again = gg.tl.compare_models({"WGAN-GP": wgan}, adata, n_runs=2, classifiers=["logreg"], k=3, key_added=None,
                                 references=())
    assert set(again["model"]) == {"WGAN-GP"}
    np.testing.assert_allclose(again["mean"].to_numpy(), w["mean"].to_numpy())
    with pytest.raises(ValueError, match="taken by the reference rows"):
        gg.tl.compare_models({"real training rows": wgan}, adata, key_added=None)


def test_compare_models_errors(trained_pair):
    adata, wgan, _ = trained_pair
    with pytest.raises(TypeError, match="non-empty dict"):
        gg.tl.compare_models({}, adata)
    with pytest.raises(TypeError, match="not a gemmgan-sc model"):
        gg.tl.compare_models({"x": object()}, adata, key_added=None)
    with pytest.raises(ValueError, match="n_runs"):
        gg.tl.compare_models({"w": wgan}, adata, n_runs=0)
    with pytest.raises(ValueError, match="key_added needs adata"):
        gg.tl.compare_models({"w": wgan})
    gg.WGANGP.setup_anndata(adata, layer="log1p")
    untrained = gg.WGANGP(adata, n_latent=8, hidden=(8,))
    with pytest.raises(RuntimeError, match="not trained"):
        gg.tl.compare_models({"u": untrained}, adata, key_added=None)


def test_comparison_table_pivot_and_errors():
    long = pd.DataFrame({
        "model": ["A", "A", "B", "B"],
        "metric": ["precision", "utility_accuracy", "precision", "utility_accuracy"],
        "classifier": ["", "rf", "", "rf"],
        "label": ["", "type", "", "type"],
        "mean": [0.5, 0.75, 0.25, 0.125],
        "std": [0.1, 0.0, 0.05, 0.0],
    })
    wide = gg.tl.comparison_table(long, digits=2)
    assert list(wide.columns) == ["A", "B"]
    assert list(wide.index) == ["precision", "utility_accuracy (rf, type)"]
    assert wide.loc["precision", "B"] == "0.25 ± 0.05"
    means = gg.tl.comparison_table(long, std=False)
    assert means.loc["utility_accuracy (rf, type)", "B"] == pytest.approx(0.125)
    # a metric one model lacks is blank
    wide = gg.tl.comparison_table(long.iloc[:3])
    assert wide.loc["utility_accuracy (rf, type)", "B"] == ""
    with pytest.raises(ValueError, match="lacks the columns"):
        gg.tl.comparison_table(long.drop(columns="model"))
    with pytest.raises(TypeError):
        gg.tl.comparison_table(long.to_dict())
    with pytest.raises(ValueError, match="digits"):
        gg.tl.comparison_table(long, digits=-1)


# ----------------------------------------------------------------------------- pl.history
def test_history_from_model_and_dataframe(trained_pair):
    _, wgan, _ = trained_pair
    ax = gg.pl.history(wgan, show=False)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "critic_loss" in labels and "generator_loss" in labels
    assert "lr" not in labels and "epoch" not in labels
    assert ax.get_title() == "WGANGP"
    line = ax.get_lines()[labels.index("critic_loss")]
    np.testing.assert_allclose(line.get_ydata(), wgan.history["critic_loss"].to_numpy())

    fig, axes = plt.subplots(1, 2)
    df = pd.DataFrame({"epoch": [0, 1], "loss": [3.0, 2.0], "loss_val": [3.5, 2.5], "lr": [1e-3, 1e-3]})
    out = gg.pl.history(df, columns="loss_val", ax=axes[1], show=False, logy=True)
    assert out is axes[1] and [ln.get_label() for ln in out.get_lines()] == ["loss_val"]
    assert out.get_yscale() == "log"


def test_history_errors():
    with pytest.raises(TypeError, match="history"):
        gg.pl.history([1, 2, 3], show=False)
    with pytest.raises(ValueError, match="empty"):
        gg.pl.history(pd.DataFrame(), show=False)
    with pytest.raises(KeyError, match="nope"):
        gg.pl.history(pd.DataFrame({"epoch": [0], "loss": [1.0]}), columns=["nope"], show=False)
    with pytest.raises(ValueError, match="no numeric"):
        gg.pl.history(pd.DataFrame({"epoch": [0], "note": ["x"]}), show=False)


# ----------------------------------------------------------------------------- pl.real_vs_synthetic
def _embedded():
    real, synth = _real_synth()
    both = gg.tl.concat_real_synthetic(real, synth)
    both.obsm["X_umap"] = np.random.default_rng(0).normal(size=(both.n_obs, 2))
    return both


def test_real_vs_synthetic_default_categorical_numeric():
    both = _embedded()
    ax = gg.pl.real_vs_synthetic(both, show=False)
    labels = [c.get_label() for c in ax.collections]
    assert labels == ["real (6)", "synthetic (4)"]
    np.testing.assert_allclose(ax.collections[1].get_offsets(), both.obsm["X_umap"][6:])
    assert ax.get_xlabel() == "UMAP1"

    ax = gg.pl.real_vs_synthetic(both, color="type", show=False)
    # 4 categories x (real, synthetic) + 2 legend markers; each point is drawn once
    assert len(ax.collections) == 10
    assert sum(len(c.get_offsets()) for c in ax.collections) == both.n_obs
    assert ax.get_title() == "type"

    both.obs["score"] = np.linspace(0, 1, both.n_obs)
    fig, axes = plt.subplots(1, 2)
    out = gg.pl.real_vs_synthetic(both, color="score", ax=axes[0], show=False, basis="X_umap", title="t")
    assert out is axes[0] and out.get_title() == "t"


def test_real_vs_synthetic_errors():
    both = _embedded()
    with pytest.raises(KeyError, match="sc.tl.umap"):
        gg.pl.real_vs_synthetic(both, basis="tsne", show=False)
    with pytest.raises(KeyError, match="color='nope'"):
        gg.pl.real_vs_synthetic(both, color="nope", show=False)
    del both.obs["synthetic"]
    with pytest.raises(KeyError, match="concat_real_synthetic"):
        gg.pl.real_vs_synthetic(both, show=False)
    with pytest.raises(TypeError):
        gg.pl.real_vs_synthetic(np.zeros((3, 2)), show=False)


# ----------------------------------------------------------------------------- headline_table and report
def _long(models=("A", "B")):
    rows = []
    for i, m in enumerate(models):
        rows += [(m, "precision", "", "", 0.5 + 0.25 * i, 0.0), (m, "recall", "", "", 0.5 - 0.25 * i, 0.0),
                 (m, "correlation_mse", "", "", 0.02 - 0.01 * i, 0.0),
                 (m, "detectability_auc", "logreg", "", 0.9 - 0.3 * i, 0.0),
                 (m, "detectability_auc", "rf", "", 0.99, 0.0),
                 (m, "utility_accuracy", "logreg", "type", 0.6, 0.0)]
    return pd.DataFrame(rows, columns=["model", "metric", "classifier", "label", "mean", "std"])


def test_headline_table_one_row_per_family_and_floor():
    head = gg.tl.headline_table(_long(), floor="B")
    assert list(head.columns) == ["A", "B"]
    assert list(head.index) == ["precision", "recall", "correlation MSE", "detectability AUC (logreg)",
                                "utility accuracy (logreg, type)", "behind B on"]
    assert head.loc["precision", "B"] == "0.75" and head.loc["detectability AUC (logreg)", "A"] == "0.9"
    # A has the lower precision, the higher correlation MSE and an AUC further from 0.5; its recall is better
    assert head.loc["behind B on", "A"] == "precision, correlation MSE, detectability AUC (logreg)"
    assert head.loc["behind B on", "B"] == ""
    with_ceiling = pd.concat([_long(), _long(("real training rows",)).assign(mean=0.0)], ignore_index=True)
    assert gg.tl.headline_table(with_ceiling, floor="B").loc["behind B on", "real training rows"] == ""
    # a model missing a metric shows "-"; unknown floors and bad tables fail clearly
    partial = _long().query("not (model == 'B' and metric == 'recall')")
    assert gg.tl.headline_table(partial).loc["recall", "B"] == "-"
    with pytest.raises(ValueError, match="floor='C'"):
        gg.tl.headline_table(_long(), floor="C")
    with pytest.raises(ValueError, match="lacks the columns"):
        gg.tl.headline_table(_long().drop(columns="std"))


def test_report_writes_every_file_with_the_ceiling(trained_pair, tmp_path):
    adata, wgan, cond = trained_pair
    files = gg.tl.report(tmp_path / "r", {"cond": cond, "WGAN-GP": wgan}, adata, label_key="disease_type",
                         floor="WGAN-GP", title="t", description="d", n_runs=1, k=3, seed=0)
    assert set(files) == {"metrics.csv", "metrics.md", "training_curves.png", "umap.png", "synthetic.h5ad"}
    table = pd.read_csv(files["metrics.csv"], keep_default_na=False)
    assert list(dict.fromkeys(table["model"])) == ["cond", "WGAN-GP", "real training rows"]
    ceiling = table[table.model == "real training rows"]
    assert not ceiling.duplicated(["metric", "classifier", "label"]).any() and len(ceiling) > 10
    md = files["metrics.md"].read_text()
    assert md.startswith("# t\n") and "\nd\n" in md and "| metric | cond | WGAN-GP | real training rows |" in md
    assert "| behind WGAN-GP on |" in md
    for png in ("umap.png", "training_curves.png"):
        assert files[png].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    synth = ad.read_h5ad(files["synthetic.h5ad"])
    assert synth.n_obs == adata.n_obs and synth.obs["synthetic"].all()  # cond's samples, one per row
    assert not [p.name for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]  # no temporary left
    with pytest.raises(FileExistsError, match="overwrite=True"):
        gg.tl.report(tmp_path / "r", wgan, adata, n_runs=1, k=3)
    with pytest.raises(KeyError, match="synthetic_from='nope'"):
        gg.tl.report(tmp_path / "s", wgan, adata, synthetic_from="nope")


# ----------------------------------------------------------------------------- show= and save= (one rule)
@pytest.fixture
def count_show(monkeypatch):
    calls = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: calls.append(1))
    before = gg.settings.autoshow
    yield calls
    gg.settings.autoshow = before


def _plots(both):
    hist = pd.DataFrame({"epoch": [0, 1], "loss": [2.0, 1.0]})
    table = _long(("A",)).drop(columns="model")
    return {"history": lambda **kw: gg.pl.history(hist, **kw),
            "real_vs_synthetic": lambda **kw: gg.pl.real_vs_synthetic(both, **kw),
            "metrics": lambda **kw: gg.pl.metrics(table, **kw)}


def test_show_none_follows_autoshow(count_show):
    for name, plot in _plots(_embedded()).items():
        count_show.clear()
        gg.settings.autoshow = True
        assert plot().__class__.__name__ == "Axes"
        plot(show=False)
        gg.settings.autoshow = False
        plot()
        _, ax = plt.subplots()
        assert plot(ax=ax, show=True) is ax
        assert len(count_show) == 2, name  # autoshow=True with show=None, and show=True
    with pytest.raises(ValueError, match="autoshow"):
        gg.settings.autoshow = "yes"


def test_save_path_or_true(tmp_path, monkeypatch, count_show):
    monkeypatch.setattr(gg.settings, "figdir", tmp_path / "figs")
    for name, plot in _plots(_embedded()).items():
        ax = plot(show=False, save=tmp_path / f"{name}.pdf")
        assert (tmp_path / f"{name}.pdf").read_bytes()[:4] == b"%PDF" and ax is not None
        plot(show=False, save=tmp_path / name)  # no suffix: PNG
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        plot(show=False, save=True)
        assert (tmp_path / "figs" / f"{name}.png").exists()
        with pytest.raises(TypeError, match="save must be"):
            plot(show=False, save=3)
    assert not count_show
