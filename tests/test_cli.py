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
from gemmgan_sc.cli import _demo_classes, build_parser, display_name, main

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


@pytest.fixture(scope="module")
def text_model(text_cohort):
    """A text-only GeMM-GAN trained and saved through the CLI (its own fixture: no test depends on another)."""
    d = text_cohort
    hp = json.dumps({"d_model": 16, "n_latent": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "hidden": [32]})
    assert main(["train", str(d / "emb.h5ad"), "--out", str(d / "gem"), "--layer", "log1p", "--labels",
                 "disease_type", "--epochs", "2", "--hparams", hp, "--quiet"]) == 0
    return d / "gem"


def test_train_sample_unconditional_and_text(text_cohort, text_model, capsys):
    d = text_cohort
    assert {p.name for p in text_model.iterdir()} >= {"model.safetensors", "model.json", "adata.h5ad"}
    model = gg.GeMMGAN.load(text_model)
    assert model.conditioning == "text_cls" and len(model.history) == 2
    assert model.calibration.method == "moments"  # --calibrate auto: the default of a text-conditioned model

    assert main(["sample", str(text_model), "--out", str(d / "s.h5ad"), "--n-samples", "2", "--seed", "3",
                 "--quiet"]) == 0
    synth = ad.read_h5ad(d / "s.h5ad")
    assert synth.n_obs == 80 and list(synth.var_names) == list(model.var_names)
    assert synth.obs["synthetic"].all()
    # a seed gives the same profiles; new conditioning rows work
    ref = model.sample(n_samples=2, seed=3)
    np.testing.assert_allclose(synth.X, ref.X, rtol=1e-5, atol=1e-5)
    ad.read_h5ad(d / "emb.h5ad")[:5].write_h5ad(d / "five.h5ad")
    assert main(["sample", str(text_model), "--out", str(d / "s5.h5ad"), "--conditions", str(d / "five.h5ad"),
                 "--quiet"]) == 0
    assert ad.read_h5ad(d / "s5.h5ad").n_obs == 5

    assert main(["train", str(d / "emb.h5ad"), "--out", str(d / "wgan"), "--model", "WGANGP", "--layer", "log1p",
                 "--epochs", "2", "--hparams", '{"n_latent": 8, "hidden": [16]}', "--calibrate", "moments",
                 "--quiet"]) == 0
    assert gg.WGANGP.load(d / "wgan").calibration.method == "moments"  # the default would be "covariance"
    assert main(["sample", str(d / "wgan"), "--out", str(d / "w.h5ad"), "--n-samples", "7", "--quiet"]) == 0
    assert ad.read_h5ad(d / "w.h5ad").n_obs == 7
    assert main(["sample", str(d / "wgan"), "--out", str(d / "w2.h5ad"), "--conditions", str(d / "five.h5ad")]) == 0
    assert "unconditional" in capsys.readouterr().err
    assert list(ad.read_h5ad(d / "w2.h5ad").obs["source_obs"]) == list(ad.read_h5ad(d / "five.h5ad").obs_names)


def test_train_sample_diffusion(text_cohort, capsys):
    d = text_cohort
    hp = json.dumps({"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "hidden": 32, "n_blocks": 1})
    assert main(["train", str(d / "emb.h5ad"), "--out", str(d / "diff"), "--model", "diffusion", "--layer", "log1p",
                 "--epochs", "2", "--hparams", hp, "--quiet"]) == 0
    model = gg.ExpressionDiffusion.load(d / "diff")
    assert model.is_trained and len(model.history) == 2
    assert main(["sample", str(d / "diff"), "--out", str(d / "dd.h5ad"), "--n-samples", "2", "--seed", "1",
                 "--quiet"]) == 0
    synth = ad.read_h5ad(d / "dd.h5ad")
    assert synth.n_obs == 80 and np.isfinite(synth.X).all()


@pytest.mark.slow
def test_evaluate_writes_a_report(text_cohort, text_model, tmp_path):
    out = tmp_path / "report"
    assert main(["evaluate", str(text_model), "--out", str(out), "--n-runs", "2", "--classifiers", "logreg",
                 "--k", "3", "--quiet"]) == 0
    table = pd.read_csv(out / "metrics.csv", keep_default_na=False)
    assert list(dict.fromkeys(table["model"])) == ["GeMM-GAN", "real training rows"]
    assert {"precision", "detectability_auc", "utility_accuracy"} <= set(table["metric"])
    md = (out / "metrics.md").read_text()
    assert md.startswith("# GeMM-GAN evaluation")
    assert "| metric | GeMM-GAN | real training rows |" in md and "| precision |" in md
    for png in ("umap.png", "training_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ad.read_h5ad(out / "synthetic.h5ad").n_obs == 40
    assert main(["evaluate", str(text_model), "--out", str(out), "--quiet"]) == 1  # not empty, no --overwrite


# ----------------------------------------------------------------------------- models are asked, not named
class _Fake:
    """A stand-in model class: records the setup call the CLI makes."""

    calls: list = []

    @classmethod
    def setup_anndata(cls, adata, layer=None, labels_keys=None, text_key=None, patch_store=None,
                      slide_key="slide_id"):
        cls.calls.append({"layer": layer, "labels_keys": labels_keys, "text_key": text_key,
                          "patch_store": patch_store})


def test_setup_inputs_from_the_attribute_or_the_signature():
    from gemmgan_sc.cli import labels_required, setup_inputs

    class Declared(_Fake):
        setup_inputs = frozenset({"labels"})
        labels_required = True

    assert setup_inputs(_Fake) == {"text", "image", "labels"}  # read from setup_anndata's parameters
    assert setup_inputs(Declared) == {"labels"} and labels_required(Declared)
    assert not labels_required(_Fake)
    for cls in gg.models.MODEL_CLASSES.values():
        assert setup_inputs(cls) <= {"text", "image", "labels"} and "labels" in setup_inputs(cls)
    assert labels_required(gg.CVAE) and labels_required(gg.CondWGANGP) and not labels_required(gg.WGANGP)

    class Bad(_Fake):
        setup_inputs = frozenset({"audio"})

    with pytest.raises(TypeError, match="audio"):
        setup_inputs(Bad)


def test_setup_model_passes_only_what_the_class_registers():
    from gemmgan_sc.cli import CLIError, setup_model

    class LabelsOnly(_Fake):
        setup_inputs = frozenset({"labels"})
        labels_required = True
        calls: list = []

        @classmethod
        def setup_anndata(cls, adata, layer=None, labels_keys=None):
            cls.calls.append({"layer": layer, "labels_keys": labels_keys})

    setup_model(LabelsOnly, None, layer="log1p", labels=["a"], text_key="X_text_tokens", patch_store="p.zarr")
    assert LabelsOnly.calls == [{"layer": "log1p", "labels_keys": ["a"]}]
    with pytest.raises(CLIError, match="--labels"):
        setup_model(LabelsOnly, None, layer=None, labels=None)

    class NoLabels(LabelsOnly):
        setup_inputs = frozenset({"text"})
        labels_required = False

    with pytest.raises(CLIError, match="leave out --labels"):
        setup_model(NoLabels, None, labels=["a"], text_key="t")
    with pytest.raises(CLIError, match="neither"):
        setup_model(NoLabels, None, text_key=None, patch_store=None)
    _Fake.calls.clear()
    setup_model(_Fake, None, text_key=None, patch_store="p.zarr")
    assert _Fake.calls == [{"layer": None, "labels_keys": None, "text_key": None, "patch_store": "p.zarr"}]


# ----------------------------------------------------------------------------- the one-command demo
@pytest.mark.slow
def test_demo_tiny(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["demo", "--out", str(out), "--n-samples", "30", "--n-genes", "80", "--epochs", "2", "--n-runs", "1",
                 "--classifiers", "logreg", "--max-tiles", "8", "--workers", "0", "--cache-dir", str(tmp_path / "c")])
    assert code == 0
    err = capsys.readouterr().err
    shown = [display_name(c) for c in _demo_classes(None)]  # every model of the library, GeMM-GAN first
    steps = 5 + len(shown)
    assert f"[1/{steps}] simulating the demo cohort" in err and f"[{steps}/{steps}] evaluating {len(shown)} models" in err
    names = {p.name for p in out.iterdir()}
    assert {"metrics.csv", "metrics.md", "umap.png", "training_curves.png", "synthetic.h5ad", "demo.h5ad",
            "timings.json", "patches.zarr", "models"} <= names
    table = pd.read_csv(out / "metrics.csv", keep_default_na=False)
    assert list(dict.fromkeys(table["model"])) == [*shown, "real training rows"]
    assert np.isfinite(table["mean"]).all()
    md = (out / "metrics.md").read_text()
    assert md.startswith("# gemmgan-sc demo report") and "not real patients" in md
    assert "| metric | " + " | ".join(shown) + " | real training rows |" in md
    # the headline: one row per metric family
    for family in ("precision", "recall", "correlation MSE", "detectability AUC (logreg)", "utility accuracy"):
        assert f"\n| {family}" in md
    if "Gaussian (PCA)" in shown:
        assert "| behind Gaussian (PCA) on |" in md
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
    assert args.models is None  # every model of the library
    names = [c.__name__ for c in _demo_classes(args.models)]
    assert set(gg.models.MODEL_CLASSES) <= set(names) and names[0] == "GeMMGAN"


def test_demo_budget_and_neighbours():
    from gemmgan_sc.cli import _demo_budget, _demo_k

    assert _demo_budget(gg.GeMMGAN, 30, 50, None) == {"max_epochs": 30}
    assert _demo_budget(gg.WGANGP, 30, 50, None) == {"max_epochs": 50}
    assert _demo_budget(gg.WGANGP, 30, 50, 400) == {"max_steps": 400}
    # a tenth of the held-out rows, 2 to 10, and fewer than the rows
    assert [_demo_k(n) for n in (2, 6, 40, 165, 400)] == [1, 2, 4, 10, 10]
    assert build_parser().parse_args(["train", "in.h5ad", "--out", "m", "--max-steps", "7"]).max_steps == 7


def test_tiles_train_and_sample_to_png(tmp_path, capsys):
    """`gemmgan-sc tiles train` / `tiles sample`: a TileGAN folder, then one PNG per generated tile + tiles.csv."""
    from PIL import Image
    from test_tilegan import NBH, TILE, TINY, _cohort, _section

    adata = _cohort(np.random.default_rng(1))
    gg.pp.tile_spots(adata, image=_section(np.random.default_rng(0)), tile_size=TILE, neighbourhood_px=NBH,
                     store=tmp_path / "spots.zarr", min_tissue=0.0)
    adata.write_h5ad(tmp_path / "tiled.h5ad")
    hp = json.dumps({k: v for k, v in TINY.items() if k != "image_size"})
    assert main(["tiles", "train", str(tmp_path / "tiled.h5ad"), "--out", str(tmp_path / "tg"), "--image-size", "16",
                 "--max-steps", "2", "--batch-size", "16", "--accelerator", "cpu", "--hparams", hp, "--quiet"]) == 0
    assert {p.name for p in (tmp_path / "tg").iterdir()} == {"model.safetensors", "model.json", "adata.h5ad"}
    assert main(["tiles", "sample", str(tmp_path / "tg"), "--out", str(tmp_path / "png"), "--rows", "spot0,spot3",
                 "--n-per-row", "2", "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "png" / "tiles.csv")
    assert list(table["obs_name"]) == ["spot0", "spot0", "spot3", "spot3"] and list(table["draw"]) == [0, 1, 0, 1]
    first = np.asarray(Image.open(tmp_path / "png" / table["file"][0]))
    assert first.shape == (16, 16, 3) and first.dtype == np.uint8
    # the same seed writes the same tiles; an unsupported tile size is a one-line error
    model = gg.TileGAN.load(tmp_path / "tg")
    np.testing.assert_array_equal(first, model.sample(indices=["spot0", "spot3"], n_per_row=2, seed=0).tiles[0])
    assert main(["tiles", "train", str(tmp_path / "tiled.h5ad"), "--out", str(tmp_path / "bad"), "--image-size", "48",
                 "--quiet"]) == 1
    assert "image_size=48" in capsys.readouterr().err
    assert "tilegan" not in {c.__name__.lower() for c in _demo_classes(None)}  # demo/train list expression models
