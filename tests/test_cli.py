"""The gemmgan-sc command line: help, clear errors, tile/embed/train/sample/evaluate on .h5ad, a tiny demo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import gemmgan_sc as gg
from gemmgan_sc.cli import build_parser, main

SUBCOMMANDS = ("demo", "tile", "embed", "train", "sample", "evaluate")


# ----------------------------------------------------------------------------- help and usage
@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: gemmgan-sc {command}")
    assert "--out" in out and "--overwrite" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    for command in SUBCOMMANDS:
        assert command in err


def test_bad_option_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", "x", "--epochs", "0"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_console_script_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "gemmgan_sc.cli", "--version"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"gemmgan-sc {gg.__version__}"
    exe = shutil.which("gemmgan-sc", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("the gemmgan-sc console script is not installed in this environment")
    out = subprocess.run([exe, "train", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--hparams" in out.stdout


# ----------------------------------------------------------------------------- clear errors
def test_missing_input_file(tmp_path, capsys):
    code = main(["tile", str(tmp_path / "nope.h5ad"), "--out", str(tmp_path / "out.h5ad")])
    assert code == 1
    err = capsys.readouterr().err
    assert "gemmgan-sc tile: error:" in err and "nope.h5ad" in err and "does not exist" in err
    assert "Traceback" not in err


def test_not_an_h5ad_file(tmp_path, capsys):
    bad = tmp_path / "bad.h5ad"
    bad.write_text("not hdf5")
    assert main(["embed", str(bad), "--out", str(tmp_path / "o.h5ad")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_existing_output_needs_overwrite(tmp_path, capsys):
    (tmp_path / "out.h5ad").write_text("x")
    assert main(["tile", str(tmp_path / "in.h5ad"), "--out", str(tmp_path / "out.h5ad")]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "out.h5ad")]) == 1
    assert "is a file" in capsys.readouterr().err


def test_unknown_model_and_bad_hparams(tmp_path, capsys):
    assert main(["train", str(tmp_path / "in.h5ad"), "--out", str(tmp_path / "m"), "--model", "gpt"]) == 1
    assert "unknown model 'gpt'" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "in.h5ad"), "--out", str(tmp_path / "m"), "--hparams", "{d_model"]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_missing_model_folder(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "no_model"), "--out", str(tmp_path / "s.h5ad")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_library_errors_are_one_line(tmp_path, capsys):
    adata = gg.datasets.demo(n_samples=5, n_genes=30, slides=False)
    adata.write_h5ad(tmp_path / "a.h5ad")
    # no slide paths in this AnnData: tile_slides names the missing column
    assert main(["tile", str(tmp_path / "a.h5ad"), "--out", str(tmp_path / "b.h5ad")]) == 1
    err = capsys.readouterr().err
    assert "slide_path" in err and "Traceback" not in err
    assert main(["embed", str(tmp_path / "a.h5ad"), "--out", str(tmp_path / "b.h5ad"), "--text-encoder", "none"]) == 1
    assert "not tiled" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "a.h5ad"), "--out", str(tmp_path / "m"), "--model", "CVAE"]) == 1
    assert "--labels" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the steps on .h5ad files
def test_tile_then_embed(tmp_path):
    adata = gg.datasets.demo(n_samples=3, n_genes=30, cache_dir=tmp_path / "cache")
    adata.write_h5ad(tmp_path / "cohort.h5ad")
    args = ["--quiet", "--tile-size", "64", "--max-tiles", "5"]
    assert main(["tile", str(tmp_path / "cohort.h5ad"), "--out", str(tmp_path / "tiled.h5ad"), *args]) == 0
    tiled = ad.read_h5ad(tmp_path / "tiled.h5ad")
    store = Path(tiled.uns["gemmgan"]["patch_store"])
    assert store == (tmp_path / "tiled_patches.zarr").absolute()
    assert (tiled.obs["n_tiles"] == 5).all()
    assert main(["embed", str(tmp_path / "tiled.h5ad"), "--out", str(tmp_path / "emb.h5ad"), "--quiet",
                 "--text-encoder", "none", "--workers", "0"]) == 0
    emb = ad.read_h5ad(tmp_path / "emb.h5ad")
    assert emb.uns["gemmgan"]["image_encoder"] == "hed-texture"
    ps = gg.data.PatchStore(store, mode="r")
    feats = ps.features(emb.obs["slide_id"].iloc[0])
    assert feats.shape[0] == 5 and np.isfinite(np.asarray(feats, dtype=np.float32)).all()
    assert "X_text_tokens" not in emb.obsm
    # the input files are not changed
    assert "n_tiles" not in ad.read_h5ad(tmp_path / "cohort.h5ad").obs


@pytest.fixture(scope="module")
def text_cohort(tmp_path_factory):
    """A text-only cohort embedded with MiniLM through the CLI."""
    d = tmp_path_factory.mktemp("cli_text")
    adata = gg.datasets.demo(n_samples=40, n_genes=60, seed=2, slides=False)
    adata.write_h5ad(d / "cohort.h5ad")
    assert main(["embed", str(d / "cohort.h5ad"), "--out", str(d / "emb.h5ad"), "--image-encoder", "none",
                 "--max-length", "48", "--device", "cpu", "--quiet"]) == 0
    return d


def test_embed_text_only(text_cohort):
    emb = ad.read_h5ad(text_cohort / "emb.h5ad")
    assert emb.obsm["X_text_tokens"].shape == (40, 48, 384)
    assert emb.obsm["text_mask"][:, 0].all()


def test_train_sample_evaluate_unconditional_and_text(text_cohort, capsys):
    d = text_cohort
    hp = json.dumps({"d_model": 16, "n_latent": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "hidden": [32]})
    assert main(["train", str(d / "emb.h5ad"), "--out", str(d / "gem"), "--layer", "log1p", "--labels",
                 "disease_type", "--epochs", "2", "--hparams", hp, "--quiet"]) == 0
    assert {p.name for p in (d / "gem").iterdir()} >= {"model.safetensors", "model.json", "adata.h5ad"}
    model = gg.GeMMGAN.load(d / "gem")
    assert model.conditioning == "text_cls" and len(model.history) == 2

    assert main(["sample", str(d / "gem"), "--out", str(d / "s.h5ad"), "--n-samples", "2", "--seed", "3", "--quiet"]) == 0
    synth = ad.read_h5ad(d / "s.h5ad")
    assert synth.n_obs == 80 and list(synth.var_names) == list(model.var_names)
    assert synth.obs["synthetic"].all()
    # a seed gives the same profiles; new conditioning rows work
    ref = model.sample(n_samples=2, seed=3)
    np.testing.assert_allclose(synth.X, ref.X, rtol=1e-5, atol=1e-5)
    ad.read_h5ad(d / "emb.h5ad")[:5].write_h5ad(d / "five.h5ad")
    assert main(["sample", str(d / "gem"), "--out", str(d / "s5.h5ad"), "--conditions", str(d / "five.h5ad"),
                 "--quiet"]) == 0
    assert ad.read_h5ad(d / "s5.h5ad").n_obs == 5

    assert main(["train", str(d / "emb.h5ad"), "--out", str(d / "wgan"), "--model", "WGANGP", "--layer", "log1p",
                 "--epochs", "2", "--hparams", '{"n_latent": 8, "hidden": [16]}', "--quiet"]) == 0
    assert main(["sample", str(d / "wgan"), "--out", str(d / "w.h5ad"), "--n-samples", "7", "--quiet"]) == 0
    assert ad.read_h5ad(d / "w.h5ad").n_obs == 7
    assert main(["sample", str(d / "wgan"), "--out", str(d / "w2.h5ad"), "--conditions", str(d / "five.h5ad")]) == 0
    assert "unconditional" in capsys.readouterr().err
    assert list(ad.read_h5ad(d / "w2.h5ad").obs["source_obs"]) == list(ad.read_h5ad(d / "five.h5ad").obs_names)


@pytest.mark.slow
def test_evaluate_writes_a_report(text_cohort):
    d = text_cohort
    if not (d / "gem").is_dir():
        pytest.skip("needs test_train_sample_evaluate_unconditional_and_text to have trained the model")
    out = d / "report"
    assert main(["evaluate", str(d / "gem"), "--out", str(out), "--n-runs", "2", "--classifiers", "logreg",
                 "--k", "3", "--quiet"]) == 0
    table = pd.read_csv(out / "metrics.csv", keep_default_na=False)
    assert set(table["model"]) == {"GeMM-GAN"}
    assert {"precision", "detectability_auc", "utility_accuracy"} <= set(table["metric"])
    md = (out / "metrics.md").read_text()
    assert "| metric | GeMM-GAN |" in md and "±" in md
    for png in ("umap.png", "training_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ad.read_h5ad(out / "synthetic.h5ad").n_obs == 40
    assert main(["evaluate", str(d / "gem"), "--out", str(out), "--quiet"]) == 1  # not empty, no --overwrite


# ----------------------------------------------------------------------------- the one-command demo
@pytest.mark.slow
def test_demo_tiny(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["demo", "--out", str(out), "--n-samples", "30", "--n-genes", "80", "--epochs", "2", "--n-runs", "1",
                 "--classifiers", "logreg", "--max-tiles", "8", "--workers", "0", "--cache-dir", str(tmp_path / "c")])
    assert code == 0
    err = capsys.readouterr().err
    assert "[1/10] simulating the demo cohort" in err and "[10/10] evaluating 5 models" in err
    names = {p.name for p in out.iterdir()}
    assert {"metrics.csv", "metrics.md", "umap.png", "training_curves.png", "synthetic.h5ad", "demo.h5ad",
            "timings.json", "patches.zarr", "models"} <= names
    table = pd.read_csv(out / "metrics.csv", keep_default_na=False)
    assert list(dict.fromkeys(table["model"])) == ["GeMM-GAN", "WGAN-GP", "cond. WGAN-GP", "CVAE", "beta-VAE"]
    assert np.isfinite(table["mean"]).all()
    md = (out / "metrics.md").read_text()
    assert md.startswith("# gemmgan-sc demo report") and "not real patients" in md
    assert "| metric | GeMM-GAN | WGAN-GP | cond. WGAN-GP | CVAE | beta-VAE |" in md
    for png in ("umap.png", "training_curves.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    synth = ad.read_h5ad(out / "synthetic.h5ad")
    demo = ad.read_h5ad(out / "demo.h5ad")
    assert synth.n_obs == 30 and synth.obs["synthetic"].all()
    assert set(synth.var_names) <= set(demo.var_names)
    assert demo.obsm["X_text_tokens"].shape[:2] == (30, 128)
    assert demo.uns["_gemmgan_setup"]["model"] == "GeMMGAN"  # left set up for the model a user continues with
    model = gg.GeMMGAN.load(out / "models" / "gemmgan", adata=demo)
    assert model.conditioning == "full" and len(model.history) == 2
    timings = json.loads((out / "timings.json").read_text())
    assert timings["total"] > 0 and set(timings) >= {"cohort", "tile", "embed_tiles", "embed_text", "evaluate"}
    # a second run into the same folder needs --overwrite
    assert main(["demo", "--out", str(out), "--n-samples", "30", "--quiet"]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_parser_defaults_match_the_readme():
    args = build_parser().parse_args(["demo", "--out", "r"])
    assert (args.n_samples, args.n_genes, args.epochs, args.tile_size) == (200, 1000, 30, 64)
    assert args.models.split(",") == ["gemmgan", "wgangp", "condwgangp", "cvae", "betavae"]
