"""Smoke runs of benchmarks/table1.py and table2.py on a tiny prepared AnnData, and their table layout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _tables  # noqa: E402


def _tiny(tmp_path: Path, n: int = 48, genes: int = 30) -> Path:
    """A prepared cohort: log-scale expression with a label signal, text tokens and a patch store."""
    import gemmgan_sc as gg

    rng = np.random.default_rng(0)
    label = np.array(["A", "B"])[np.arange(n) % 2]
    shift = np.where(label == "A", 2.0, 0.0)[:, None] * (np.arange(genes) < genes // 2)
    x = np.log1p(rng.poisson(5 + 10 * shift, size=(n, genes))).astype(np.float32)
    adata = ad.AnnData(x)
    adata.obs_names = [f"s{i}" for i in range(n)]
    adata.var_names = [f"g{j}" for j in range(genes)]
    adata.obs["disease_type"] = pd.Categorical(label)
    adata.obs["slide_id"] = [f"slide{i}" for i in range(n)]
    store = gg.data.PatchStore(tmp_path / "p.zarr", mode="w")
    for i, sid in enumerate(adata.obs["slide_id"]):
        store.add(sid, (rng.normal(size=(6, 12)) + (label[i] == "A")).astype(np.float16))
    adata.uns["gemmgan"] = {"patch_store": str(store.path)}
    tokens = rng.normal(size=(n, 8, 16)).astype(np.float16)
    tokens[:, 0] += (label == "A")[:, None]
    adata.obsm["X_text_tokens"] = tokens
    adata.obsm["text_mask"] = np.ones((n, 8), bool)
    path = tmp_path / "tiny.h5ad"
    adata.write_h5ad(path)
    return path


FAST = ["--epochs", "1", "--n-runs", "1", "--classifiers", "logreg", "--labels", "disease_type", "--threads", "1", "--k", "5"]


@pytest.mark.slow  # 8 s on an idle 2-core CPU, ~50 s when the cores are shared (load ~8)
def test_table1_and_table2_smoke(tmp_path):
    import table1
    import table2

    data = _tiny(tmp_path)
    res = table1.main(["--data", str(data), *FAST, "--out", str(tmp_path / "t1")])
    wide = res["wide"]
    models = ["GeMM-GAN", "WGAN-GP (unconditional)", "Conditional WGAN-GP", "CVAE", "β-VAE (RNA-GAN, extra)",
              _tables.DIFFUSION_ROW]
    refs = ["Real training rows (ceiling)", "Gaussian baseline (floor)"]
    assert list(wide.index) == models + refs + ["Real data (train on real)"]
    assert "Detect. logreg AUC ↓" in wide.columns and "Utility logreg Acc ↑" in wide.columns
    assert wide.loc["WGAN-GP (unconditional)", "Utility logreg Acc ↑"] == "–"  # no labels, no utility
    assert "±" in wide.loc["CVAE", "Utility logreg Acc ↑"]
    # every table shows the ceiling and the floor, and says which model beats the floor
    for col in ("Fréchet ↓", "SD ratio →1", "Precision ↑", "Detect. logreg AUC ↓"):
        assert all("±" in wide.loc[r, col] for r in refs)
    # the floor is class-conditional: it has conditional fidelity; the ceiling has none (no conditional draws)
    assert "±" in wide.loc[refs[1], "Cond. Pearson ↑"] and wide.loc[refs[0], "Cond. Pearson ↑"] == "–"
    assert "±" in wide.loc["WGAN-GP (unconditional)", "Cond. Pearson ↑"]  # chance level, computed
    beats = wide[_tables.BEATS_COLUMN]
    assert all(beats[m] == "yes" or beats[m].startswith("no (worse on ") for m in models)
    assert (beats[refs] == "–").all()
    for suffix in (".csv", ".md", ".png", ".json"):
        assert (tmp_path / f"t1{suffix}").stat().st_size > 0
    rec = json.loads((tmp_path / "t1.json").read_text())
    assert rec["epochs"] == 1 and rec["seed"] == 0 and "cpu_count" in rec["machine"]
    assert rec["models"]["GeMM-GAN"]["conditioning"] == "full" and rec["models"]["CVAE"]["train_s"] >= 0
    # the diffusion row: the same fused conditions as GeMM-GAN, labels for utility, a note under the table
    diff = rec["models"][_tables.DIFFUSION_ROW]
    assert diff["model"] == "ExpressionDiffusion" and diff["conditioning"] == "full"
    assert diff["hparams"]["d_model"] == _tables.CPU_GEMMGAN["d_model"] and diff["hparams"]["sampler"] == "ddim"
    assert "±" in wide.loc[_tables.DIFFUSION_ROW, "Utility logreg Acc ↑"]
    assert "±" in wide.loc[_tables.DIFFUSION_ROW, "Cond. Pearson ↑"]
    assert f"- {_tables.DIFFUSION_ROW}: gg.ExpressionDiffusion" in (tmp_path / "t1.md").read_text()
    assert pd.read_csv(tmp_path / "t1.csv", index_col=0).shape == wide.shape
    assert "| GeMM-GAN |" in (tmp_path / "t1.md").read_text()

    res2 = table2.main(["--data", str(data), *FAST, "--ablations", "text_cls", "mean_image", "--no-diffusion",
                        "--out", str(tmp_path / "t2")])
    assert list(res2["wide"].index)[:2] == ["Text CLS only", "Mean image embedding"]
    conds = {k: v["conditioning"] for k, v in res2["record"]["models"].items()}
    assert conds == {"Text CLS only": "text_cls", "Mean image embedding": "mean_image"}
    assert table2.DIFFUSION_ROW_T2 not in res2["wide"].index


def test_table_specs_lists(tmp_path):
    """The rows of both tables, with and without the extra beta-VAE and diffusion rows (no training)."""
    import gemmgan_sc as gg
    import table1
    import table2

    adata = ad.read_h5ad(_tiny(tmp_path, n=20, genes=8))
    size = dict(_tables.CPU_GEMMGAN)
    specs = table1.table1_specs(adata, None, "log", size)
    assert [s.name for s in specs] == ["GeMM-GAN", "WGAN-GP (unconditional)", "Conditional WGAN-GP", "CVAE",
                                       "β-VAE (RNA-GAN, extra)", _tables.DIFFUSION_ROW]
    gem, diff = specs[0], specs[-1]
    assert diff.cls is gg.ExpressionDiffusion and diff.use_labels
    assert diff.setup == gem.setup and diff.setup["patch_store"] is not None  # GeMM-GAN's conditions
    assert diff.hparams == {"d_model": 64, "n_patches": 32, "d_ff": 128, "n_heads": 4, "conditioning": "full"}
    assert "n_latent" not in diff.hparams  # the diffusion model's latent is the genes
    assert [s.name for s in table1.table1_specs(adata, None, "log", size, extra=False, diffusion=False)] == [
        "GeMM-GAN", "WGAN-GP (unconditional)", "Conditional WGAN-GP", "CVAE"]
    # the spec builds a model conditioned by the full fusion of tiles and text
    diff.cls.setup_anndata(adata, labels_keys=["disease_type"], **diff.setup)
    assert gg.ExpressionDiffusion(adata, **diff.hparams).conditioning == "full"

    t2 = table2.table2_specs(adata, None, "log", size, ablations=["text_cls", "full"], authors_code=True)
    assert [s.name for s in t2] == ["Text CLS only", "Full GeMM-GAN", "Full, authors' code fusion",
                                    table2.DIFFUSION_ROW_T2]
    assert t2[-1].cls is gg.ExpressionDiffusion and t2[-1].hparams["conditioning"] == "full"
    assert all(s.cls is gg.GeMMGAN for s in t2[:-1])
    assert table2.DIFFUSION_ROW_T2 not in [s.name for s in table2.table2_specs(adata, None, "log", size,
                                                                              diffusion=False)]
    with pytest.raises(ValueError, match="unknown ablation"):
        table2.table2_specs(adata, None, "log", size, ablations=["nope"])


def test_diffusion_note():
    rec = {"conditioning": "full", "epochs": "3 epochs", "hparams": {"n_steps": 50, "guidance": 0.0}}
    (note,) = _tables.diffusion_note({_tables.DIFFUSION_ROW: rec})
    assert "conditioning that ran: full" in note and "DDIM with 50 steps" in note and "trained for 3 epochs" in note
    assert _tables.diffusion_note({"GeMM-GAN": rec}) == []


def test_budget_note_and_text():
    assert _tables.budget_note(40) == "40 epochs for every model (paper: 500)"
    assert _tables.budget_note(None, "every ablation").startswith("every ablation: its default step budget")

    class Trained:
        history = pd.DataFrame({"step": [10, 250, 640]})
        train_params = {"max_steps": 3000}

    assert _tables.budget_text(Trained(), None) == "640 of 3000 steps"
    assert _tables.budget_text(Trained(), 5) == "5 epochs"


def test_diffusion_benchmark_hyperparameters():
    """benchmarks/diffusion.py: the DDIM settings go to the diffusion model, the CPU fusion size (demo cohort) to
    the models with a fusion network only."""
    import argparse

    import diffusion
    import gemmgan_sc as gg

    demo = argparse.Namespace(cohort="demo", n_steps=20, guidance=0.5)
    hp = diffusion.hyperparameters(gg.ExpressionDiffusion, demo)
    assert hp == {"n_steps": 20, "guidance": 0.5, "d_model": 64, "n_patches": 32, "d_ff": 128, "n_heads": 4}
    assert diffusion.hyperparameters(gg.GeMMGAN, demo) == dict(_tables.CPU_GEMMGAN)
    assert diffusion.hyperparameters(gg.WGANGP, demo) == {}
    tcga = argparse.Namespace(cohort="tcga", n_steps=50, guidance=0.0)
    assert diffusion.hyperparameters(gg.ExpressionDiffusion, tcga) == {"n_steps": 50, "guidance": 0.0}
    assert diffusion.DEFAULT_MODELS["demo"][:3] == ["GaussianBaseline", "ExpressionDiffusion", "WGANGP"]


def test_paper_layout_and_markdown():
    rows = [("M1", "precision", "", "", 0.5, 0.1), ("M1", "recall", "", "", 0.25, 0.0),
            ("M1", "detectability_auc", "logreg", "", 0.75, 0.05),
            ("M1", "utility_accuracy", "logreg", "y", 0.8, 0.02), ("M1", "utility_real_accuracy", "logreg", "y", 0.9, 0.0),
            ("M2", "precision", "", "", 0.4, 0.0)]
    long = pd.DataFrame(rows, columns=["model", "metric", "classifier", "label", "mean", "std"])
    wide = _tables.paper_layout(long, ["logreg"], "y", digits=2)
    assert list(wide.index) == ["M1", "M2", "Real data (train on real)"]
    assert wide.loc["M1", "Precision ↑"] == "0.50 ± 0.10"
    assert wide.loc["M1", "Detect. logreg AUC ↓"] == "0.75 ± 0.05"
    assert wide.loc["M2", "Recall ↑"] == "–"
    assert wide.loc["Real data (train on real)", "Utility logreg Acc ↑"] == "0.90 ± 0.00"
    md = _tables.to_markdown(wide)
    assert md.splitlines()[0].startswith("| model | Precision ↑") and md.count("\n") == 5
    with pytest.raises(ValueError, match="lacks columns"):
        _tables.paper_layout(long.drop(columns="std"), ["logreg"], "y")


def test_beats_floor_column():
    rows = []
    for model, p, auc, sd, fd in (("good", 0.9, 0.55, 0.95, 1.0), ("bad", 0.5, 0.95, 0.4, 9.0),
                                  ("Gaussian baseline (floor)", 0.6, 0.8, 0.9, 3.0),
                                  ("Real training rows (ceiling)", 0.95, 0.5, 1.0, 0.5)):
        rows += [(model, "precision", "", "", p, 0.0), (model, "detectability_auc", "logreg", "", auc, 0.0),
                 (model, "sd_ratio", "", "", sd, 0.0), (model, "frechet_distance", "", "", fd, 0.0)]
    rows.append(("mixed", "precision", "", "", 0.7, 0.0))
    rows.append(("mixed", "frechet_distance", "", "", 4.0, 0.0))
    long = pd.DataFrame(rows, columns=["model", "metric", "classifier", "label", "mean", "std"])
    wide = _tables.paper_layout(long, ["logreg"], None, digits=2)
    assert list(wide.index) == ["good", "bad", "mixed", "Real training rows (ceiling)", "Gaussian baseline (floor)"]
    beats = wide[_tables.BEATS_COLUMN]
    assert beats["good"] == "yes"
    assert beats["bad"] == "no (worse on Precision, Fréchet, SD ratio, Detect. logreg AUC)"
    assert beats["mixed"] == "no (worse on Fréchet)"  # metrics the model lacks are not compared
    assert beats["Gaussian baseline (floor)"] == "–" and wide.loc["good", "SD ratio →1"] == "0.95 ± 0.00"
    # without a floor row there is no such column
    assert _tables.BEATS_COLUMN not in _tables.paper_layout(long[long.model == "good"], ["logreg"], None).columns


def test_name_rows_maps_references():
    table = pd.DataFrame({"metric": ["precision"] * 3, "classifier": [""] * 3, "label": [""] * 3,
                          "mean": [0.1, 0.2, 0.3], "std": [0.0] * 3, "reference": ["", "real_rows", "gaussian"]})
    named = _tables.name_rows(table, "M")
    assert named["model"].tolist() == ["M", "Real training rows (ceiling)", "Gaussian baseline (floor)"]
    assert list(named.columns) == ["model", "metric", "classifier", "label", "mean", "std"]


def test_run_specs_validates(tmp_path):
    import gemmgan_sc as gg

    adata = ad.read_h5ad(_tiny(tmp_path, n=20, genes=8))
    spec = _tables.ModelSpec("CVAE", gg.CVAE, {"layer": None})
    with pytest.raises(KeyError, match="not in adata.obs"):
        _tables.run_specs([spec], adata, 1, 1, ["nope"], ["logreg"])
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        _tables.run_specs([spec], adata, 0, 1, [], ["logreg"])
    with pytest.raises(ValueError, match="no models"):
        _tables.run_specs([], adata, 1, 1, [], ["logreg"])


def test_data_tcga_skips_without_shared_data(tmp_path):
    import data_tcga

    msgs = []
    assert data_tcga.build_tcga(tmp_path / "absent", tmp_path / "x.h5ad", log=msgs.append) is None
    assert "skipped" in msgs[0] and not (tmp_path / "x.h5ad").exists()


def test_data_tcga_real_cases(shared_data, tmp_path):
    import data_tcga

    out = tmp_path / "tcga.h5ad"
    adata = data_tcga.build_tcga(shared_data, out, text_max_length=32, n_per_cohort=6, log=lambda m: None)
    assert adata.n_obs == 12 and adata.n_vars > 2000 and out.exists()
    assert adata.obs["cohort"].value_counts().to_dict() == {"LUAD": 6, "BLCA": 6}
    assert adata.obs_names.is_unique
    # leaking facts are excluded: no description names the diagnosis or the organ
    assert {"primary_diagnosis", "primary_site"} <= set(adata.uns["benchmark"]["excluded_fields"])
    text = " ".join(adata.obs["text"]).lower()
    assert "adenocarcinoma" not in text and "bladder" not in text and "lung" not in text
    assert adata.obsm["X_text_tokens"].shape[:2] == (12, 32)
    assert adata.uns["benchmark"]["expression_scale"] == "any"
