"""The ``gemmgan-sc`` command line: ``demo``, ``tile``, ``embed``, ``train``, ``sample``, ``evaluate``.

Every subcommand reads and writes ``.h5ad`` files (and model folders), so the steps chain::

    gemmgan-sc demo --out demo_report
    gemmgan-sc tile cohort.h5ad --out tiled.h5ad --tile-size 256
    gemmgan-sc embed tiled.h5ad --out embedded.h5ad --image-encoder uni --text-encoder clinical-modernbert
    gemmgan-sc train embedded.h5ad --out my_model --labels disease_type,primary_site
    gemmgan-sc sample my_model --out synthetic.h5ad
    gemmgan-sc evaluate my_model --out my_report
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PROG = "gemmgan-sc"
MODEL_NAMES = {"gemmgan": "GeMMGAN", "wgangp": "WGANGP", "condwgangp": "CondWGANGP", "cvae": "CVAE", "betavae": "BetaVAE"}
DISPLAY = {"GeMMGAN": "GeMM-GAN", "WGANGP": "WGAN-GP", "CondWGANGP": "cond. WGAN-GP", "CVAE": "CVAE", "BetaVAE": "beta-VAE"}
DEMO_LABELS = ("disease_type", "primary_site")


class CLIError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


# ----------------------------------------------------------------------------- small helpers
def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through ``write(tmp_path)`` next to ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_text(path: Path, text: str) -> Path:
    return _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _write_h5ad(adata, path: Path) -> Path:
    return _atomic_write(path, lambda p: adata.write_h5ad(p))


def _save_fig(fig, path: Path) -> Path:
    return _atomic_write(path, lambda p: fig.savefig(p, dpi=120, bbox_inches="tight", format="png"))


def _read_h5ad(path: str | os.PathLike):
    import anndata as ad

    p = Path(path).expanduser()
    if not p.exists():
        raise CLIError(f"input file {str(p)!r} does not exist.")
    if p.is_dir():
        raise CLIError(f"{str(p)!r} is a folder; give an .h5ad file.")
    try:
        return ad.read_h5ad(p)
    except Exception as err:  # h5py/anndata raise many types for a bad file
        raise CLIError(f"cannot read {str(p)!r} as an .h5ad file: {err}") from err


def _check_out(path: str | os.PathLike, overwrite: bool, what: str = "output") -> Path:
    p = Path(path).expanduser()
    if p.exists() and not overwrite:
        raise CLIError(f"{what} {str(p)!r} exists; pass --overwrite to replace it or choose another path.")
    return p


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items


def _set_threads(n: int | None) -> None:
    if n is None:
        return
    import torch

    torch.set_num_threads(int(n))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _markdown_table(df, index_name: str | None = None) -> str:
    """A GitHub Markdown table of a DataFrame (no extra dependency)."""
    cols = [index_name or df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for idx, row in df.iterrows():
        cells = [str(idx)] + ["" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _model_class(name: str):
    import gemmgan_sc as gg

    key = name.replace("-", "").replace("_", "").lower()
    if key not in MODEL_NAMES:
        raise CLIError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES.values())}.")
    return getattr(gg, MODEL_NAMES[key])


# ----------------------------------------------------------------------------- report pieces
def write_report(
    out: Path,
    table,
    models: dict[str, Any],
    adata,
    synth,
    label_key: str | None,
    header: str = "",
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``metrics.csv``, ``metrics.md``, ``umap.png``, ``training_curves.png`` and ``synthetic.h5ad``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    import scanpy as sc

    import gemmgan_sc as gg

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    files["metrics.csv"] = _atomic_write(out / "metrics.csv", lambda p: table.to_csv(p, index=False))
    wide = gg.tl.comparison_table(table)
    files["metrics.md"] = _write_text(out / "metrics.md", header + _markdown_table(wide, "metric"))

    n = len(models)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.6), squeeze=False)
    for ax, (name, model) in zip(axes[0], models.items()):
        gg.pl.history(model, ax=ax, show=False, title=name)
    fig.tight_layout()
    files["training_curves.png"] = _save_fig(fig, out / "training_curves.png")
    plt.close(fig)

    if synth is not None:
        real = adata
        layer = getattr(next(iter(models.values())).registry, "layer", None)
        both = gg.tl.concat_real_synthetic(real, synth, layer=layer)
        x = np.asarray(both.X, dtype=np.float32)
        both.layers["expression"] = x.copy()
        sc.pp.scale(both, max_value=10)
        n_comps = int(max(2, min(30, both.n_obs - 1, both.n_vars - 1)))
        sc.pp.pca(both, n_comps=n_comps, random_state=seed)
        sc.pp.neighbors(both, n_neighbors=int(min(15, both.n_obs - 1)), random_state=seed)
        sc.tl.umap(both, random_state=seed)
        colors = [None] + ([label_key] if label_key and label_key in both.obs else [])
        fig, axes = plt.subplots(1, len(colors), figsize=(6.2 * len(colors), 4.6), squeeze=False)
        for ax, color in zip(axes[0], colors):
            gg.pl.real_vs_synthetic(both, color=color, ax=ax, show=False)
        fig.tight_layout()
        files["umap.png"] = _save_fig(fig, out / "umap.png")
        plt.close(fig)
        files["synthetic.h5ad"] = _write_h5ad(synth, out / "synthetic.h5ad")
    return files


# ----------------------------------------------------------------------------- demo
def run_demo(
    out: str | os.PathLike,
    n_samples: int = 200,
    n_genes: int = 1000,
    epochs: int = 30,
    baseline_epochs: int | None = None,
    n_runs: int = 2,
    models: Sequence[str] = ("gemmgan", "wgangp", "condwgangp", "cvae", "betavae"),
    classifiers: Sequence[str] = ("logreg", "rf"),
    tile_size: int = 64,
    max_tiles: int = 32,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Path]:
    """The whole pipeline on the simulated demo cohort (``gemmgan-sc demo``); returns the report files.

    Demo cohort -> tiles -> ``"hed-texture"`` tile embeddings -> ``"minilm"`` text embeddings -> GeMM-GAN
    and the baselines (small CPU sizes) -> :func:`gemmgan_sc.tl.compare_models` -> ``out/``:
    ``metrics.csv``, ``metrics.md``, ``umap.png`` (real vs GeMM-GAN synthetic), ``training_curves.png``,
    ``synthetic.h5ad`` (GeMM-GAN), ``demo.h5ad`` (the embedded cohort, set up for GeMM-GAN),
    ``patches.zarr`` (its patch store), ``models/<name>/`` and ``timings.json``.

    Parameters
    ----------
    out
        Report folder (created; must be empty unless ``overwrite``).
    n_samples, n_genes
        Size of the demo cohort (:func:`gemmgan_sc.datasets.demo`).
    epochs, baseline_epochs
        Training epochs of GeMM-GAN and of the baselines (default: ``epochs``).
    n_runs
        Generation runs of the evaluation.
    models
        Model keys: ``gemmgan`` (required), ``wgangp``, ``condwgangp``, ``cvae``, ``betavae``.
    classifiers
        Detectability and utility classifiers (``logreg``, ``rf``, ``mlp``).
    tile_size, max_tiles
        Tile edge in px and tiles kept per slide (the demo slides are 512-960 px).
    seed
        Seed of the cohort, split, training and metrics.
    cache_dir
        Folder for the demo slides (default: the pooch cache).
    workers
        Tile-embedding worker processes (default ``min(2, CPUs)``).
    overwrite
        Write into a non-empty ``out``.
    quiet
        No progress output.

    Returns
    -------
    ``{file name: path}`` of the report files.

    Examples
    --------
    >>> from gemmgan_sc.cli import run_demo
    >>> files = run_demo("demo_report", n_samples=60, epochs=5)  # doctest: +SKIP
    >>> files["metrics.md"].read_text()  # doctest: +SKIP
    """
    import numpy as np

    import gemmgan_sc as gg

    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a file; give a folder for the report.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CLIError(f"output folder {str(out)!r} exists and is not empty; pass --overwrite or choose another.")
    keys = []
    for m in models:
        k = m.replace("-", "").replace("_", "").lower()
        if k not in MODEL_NAMES:
            raise CLIError(f"unknown model {m!r} in --models; choose from {', '.join(MODEL_NAMES)}.")
        keys.append(k)
    if "gemmgan" not in keys:
        raise CLIError("--models must include gemmgan (the report shows its samples).")
    baseline_epochs = epochs if baseline_epochs is None else baseline_epochs
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    out.mkdir(parents=True, exist_ok=True)
    steps = 5 + len(keys)
    t_all = time.perf_counter()
    timings: dict[str, float] = {}

    def step(i: int, text: str) -> float:
        _say(f"[{i}/{steps}] {text} ...", quiet)
        return time.perf_counter()

    def done(name: str, t0: float, extra: str = "") -> None:
        timings[name] = time.perf_counter() - t0
        _say(f"      done in {timings[name]:.1f} s{extra}", quiet)

    t = step(1, f"simulating the demo cohort ({n_samples} samples, {n_genes} genes, slides)")
    adata = gg.datasets.demo(n_samples=n_samples, n_genes=n_genes, seed=seed, cache_dir=cache_dir)
    done("cohort", t)
    t = step(2, f"tiling {adata.n_obs} slides ({tile_size} px tiles, at most {max_tiles} per slide)")
    store = out / "patches.zarr"
    gg.pp.tile_slides(adata, slide_key="slide_path", tile_size=tile_size, max_tiles=max_tiles, store=str(store),
                      overwrite=True, seed=seed)
    done("tile", t, f"; {int(adata.obs['n_tiles'].sum())} tiles, median {int(adata.obs['n_tiles'].median())} per slide")
    t = step(3, "embedding tiles with 'hed-texture'")
    gg.pp.embed_tiles(adata, encoder="hed-texture", num_workers=workers, device="cpu")
    done("embed_tiles", t)
    t = step(4, "embedding clinical text with 'minilm'")
    gg.pp.embed_text(adata, text_key="text", encoder="minilm", max_length=128, device="cpu")
    done("embed_text", t)

    trained: dict[str, Any] = {}
    small = {"n_latent": 64, "hidden": (256, 256)}
    for i, k in enumerate(keys):
        cls = getattr(gg, MODEL_NAMES[k])
        ep = epochs if k == "gemmgan" else baseline_epochs
        t = step(5 + i, f"training {DISPLAY[cls.__name__]} ({ep} epochs)")
        if k == "gemmgan":
            cls.setup_anndata(adata, layer="log1p", patch_store=str(store), labels_keys=list(DEMO_LABELS))
            model = cls(adata, d_model=64, n_patches=max(8, min(32, max_tiles)), d_ff=128, **small)
        elif k in ("condwgangp", "cvae"):
            cls.setup_anndata(adata, layer="log1p", labels_keys=list(DEMO_LABELS))
            model = cls(adata, **small)
        else:
            cls.setup_anndata(adata, layer="log1p")
            model = cls(adata, **small)
        model.train(max_epochs=ep, seed=seed, accelerator="cpu")
        model.save(out / "models" / k, overwrite=True)
        trained[DISPLAY[cls.__name__]] = model
        last = model.history.iloc[-1]
        summary = ", ".join(f"{c} {last[c]:.3g}" for c in ("wasserstein_val", "loss_val", "loss") if c in last and np.isfinite(last[c]))
        done(f"train_{k}", t, f" ({summary})" if summary else "")

    gem = trained["GeMM-GAN"]
    # leave the AnnData set up for GeMM-GAN, the model a user continues with
    gg.GeMMGAN.setup_anndata(adata, layer="log1p", patch_store=str(store), labels_keys=list(DEMO_LABELS))
    t = step(steps, f"evaluating {len(trained)} models ({n_runs} runs, classifiers {', '.join(classifiers)})")
    table = gg.tl.compare_models(trained, adata, n_runs=n_runs, classifiers=list(classifiers), seed=seed,
                                 k=int(min(10, max(1, len(gem.split["validation"]) - 1))))
    done("evaluate", t)

    t = time.perf_counter()
    synth = gem.sample(seed=seed)
    header = (
        "# gemmgan-sc demo report\n\n"
        "Simulated demo cohort (`gg.datasets.demo`; not real patients): "
        f"{adata.n_obs} samples, {adata.n_vars} genes, {tile_size} px tiles (hed-texture features), "
        f"MiniLM text tokens. GeMM-GAN {epochs} epochs, baselines {baseline_epochs} epochs, small CPU sizes; "
        f"metrics over {n_runs} generation runs (mean ± std) on the held-out split "
        f"({len(gem.split['validation'])} samples).\n\n"
    )
    files = write_report(out, table, trained, adata, synth, "disease_type", header=header, seed=seed)
    files["demo.h5ad"] = _write_h5ad(adata, out / "demo.h5ad")
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    files["timings.json"] = _write_text(out / "timings.json", json.dumps({k: round(v, 2) for k, v in timings.items()}, indent=1))
    _say(f"report written to {out} in {timings['total']:.0f} s:", quiet)
    for name in sorted(files):
        _say(f"  {files[name].relative_to(out)}", quiet)
    return files


# ----------------------------------------------------------------------------- subcommands
def _cmd_demo(args) -> int:
    models = _split_list(args.models) or []
    run_demo(
        args.out, n_samples=args.n_samples, n_genes=args.n_genes, epochs=args.epochs,
        baseline_epochs=args.baseline_epochs, n_runs=args.n_runs, models=models,
        classifiers=_split_list(args.classifiers) or [], tile_size=args.tile_size, max_tiles=args.max_tiles,
        seed=args.seed, cache_dir=args.cache_dir, workers=args.workers, overwrite=args.overwrite, quiet=args.quiet,
    )
    return 0


def _cmd_tile(args) -> int:
    import gemmgan_sc as gg

    out = _check_out(args.out, args.overwrite)
    adata = _read_h5ad(args.input)
    store = Path(args.store).expanduser() if args.store else out.with_name(out.stem + "_patches.zarr")
    gg.pp.tile_slides(
        adata, slide_key=args.slide_key, tile_size=args.tile_size, mpp=args.mpp, min_tissue=args.min_tissue,
        max_tiles=args.max_tiles, store=str(store.absolute()), errors=args.errors, seed=args.seed,
        overwrite=args.overwrite,
    )
    _write_h5ad(adata, out)
    _say(f"tiled {adata.obs[args.slide_key].nunique()} slides ({int(adata.obs['n_tiles'].sum())} tile rows); "
         f"patch store {store}; wrote {out}", args.quiet)
    return 0


def _cmd_embed(args) -> int:
    import gemmgan_sc as gg

    out = _check_out(args.out, args.overwrite)
    if args.image_encoder == "none" and args.text_encoder == "none":
        raise CLIError("both encoders are 'none': nothing to embed.")
    adata = _read_h5ad(args.input)
    if args.image_encoder != "none":
        if "gemmgan" not in adata.uns or "patch_store" not in adata.uns["gemmgan"]:
            raise CLIError(f"{args.input!r} is not tiled (no uns['gemmgan']['patch_store']): run `gemmgan-sc tile` "
                           "first, or pass --image-encoder none.")
        gg.pp.embed_tiles(adata, encoder=args.image_encoder, checkpoint=args.checkpoint, token=args.token,
                          batch_size=args.batch_size, num_workers=args.workers, device=args.device,
                          overwrite=args.overwrite)
        _say(f"embedded tiles with {args.image_encoder!r}", args.quiet)
    if args.text_encoder != "none":
        gg.pp.embed_text(adata, text_key=args.text_key, encoder=args.text_encoder, max_length=args.max_length,
                         device=args.device, token=args.token)
        _say(f"embedded adata.obs[{args.text_key!r}] with {args.text_encoder!r}", args.quiet)
    _write_h5ad(adata, out)
    _say(f"wrote {out}", args.quiet)
    return 0


def _cmd_train(args) -> int:
    out = _check_out(args.out, args.overwrite, "model folder")
    cls = _model_class(args.model)
    try:
        hparams = json.loads(args.hparams) if args.hparams else {}
    except json.JSONDecodeError as err:
        raise CLIError(f"--hparams is not valid JSON ({err}); e.g. --hparams '{{\"d_model\": 64}}'.") from err
    if not isinstance(hparams, dict):
        raise CLIError(f"--hparams must be a JSON object, got {args.hparams!r}.")
    adata = _read_h5ad(args.input)
    labels = _split_list(args.labels)
    if cls.__name__ == "GeMMGAN":
        store = args.patch_store or (adata.uns.get("gemmgan", {}) or {}).get("patch_store")
        text_key = args.text_key if args.text_key in adata.obsm else None
        if store is None and text_key is None:
            raise CLIError(f"{args.input!r} has neither a patch store (run `gemmgan-sc tile` and `embed`) nor "
                           f"obsm[{args.text_key!r}] (run `gemmgan-sc embed`); GeMM-GAN needs at least one.")
        cls.setup_anndata(adata, layer=args.layer, text_key=text_key, patch_store=store, slide_key=args.slide_key,
                          labels_keys=labels)
    elif cls.__name__ in ("CondWGANGP", "CVAE"):
        if not labels:
            raise CLIError(f"{cls.__name__} is conditioned on labels: pass --labels col1,col2 (obs columns).")
        cls.setup_anndata(adata, layer=args.layer, labels_keys=labels)
    else:
        cls.setup_anndata(adata, layer=args.layer, labels_keys=labels)
    model = cls(adata, **hparams)
    _say(f"training {cls.__name__} on {adata.n_obs} samples x {adata.n_vars} genes for {args.epochs or 'default'} epochs",
         args.quiet)
    model.train(max_epochs=args.epochs, batch_size=args.batch_size, train_size=args.train_size, seed=args.seed,
                accelerator=args.accelerator)
    model.save(out, overwrite=args.overwrite, save_anndata=True)
    _say(f"saved {cls.__name__} to {out} (model.safetensors, model.json, adata.h5ad)", args.quiet)
    return 0


def _load_model(path: str, adata_path: str | None):
    from .models import BaseGenerativeModel

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CLIError(f"model folder {str(folder)!r} does not exist (train one with `gemmgan-sc train`).")
    adata = _read_h5ad(adata_path) if adata_path else None
    return BaseGenerativeModel.load(folder, adata=adata)


def _cmd_sample(args) -> int:
    from .tl._compare import _is_unconditional

    out = _check_out(args.out, args.overwrite)
    model = _load_model(args.model_dir, args.training_adata)
    cond = _read_h5ad(args.conditions) if args.conditions else None
    if _is_unconditional(model) and cond is None:
        synth = model.sample(n_samples=args.n_samples, seed=args.seed)
    else:
        if _is_unconditional(model):
            _say(f"note: {type(model).__name__} is unconditional; --conditions only sets the rows' obs.", args.quiet)
        synth = model.sample(adata=cond, n_samples=args.n_samples or 1, seed=args.seed)
    _write_h5ad(synth, out)
    _say(f"wrote {synth.n_obs} synthetic profiles x {synth.n_vars} genes to {out}", args.quiet)
    return 0


def _cmd_evaluate(args) -> int:
    import gemmgan_sc as gg

    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a file; give a folder for the report.")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise CLIError(f"output folder {str(out)!r} is not empty; pass --overwrite or choose another.")
    model = _load_model(args.model_dir, args.training_adata)
    name = DISPLAY.get(type(model).__name__, type(model).__name__)
    classifiers = _split_list(args.classifiers) or []
    table = gg.tl.compare_models({name: model}, model.adata, n_runs=args.n_runs, classifiers=classifiers,
                                 seed=args.seed, k=args.k, key_added=None)
    synth = model.sample(adata=model.adata, seed=args.seed)
    label = model.registry.labels_keys[0] if model.registry.labels_keys else None
    header = f"# {name} evaluation\n\nModel folder `{args.model_dir}`, {args.n_runs} generation runs (mean ± std).\n\n"
    files = write_report(out, table, {name: model}, model.adata, synth, label, header=header, seed=args.seed)
    _say(f"wrote {', '.join(sorted(files))} to {out}", args.quiet)
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gemmgan-sc`` (one sub-parser per subcommand)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="GeMM-GAN for scverse: gene expression generated from whole-slide images and clinical text.",
        epilog="Run `gemmgan-sc <command> --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--threads", type=_positive_int, default=None,
                       help="torch CPU threads (default: 1 for demo, torch's default otherwise).")
        p.add_argument("--quiet", action="store_true", help="no progress output.")
        p.add_argument("--overwrite", action="store_true", help="replace existing outputs.")

    d = sub.add_parser("demo", help="run the whole pipeline on the simulated demo cohort and write a report.",
                       description="Simulated demo cohort -> tiles -> hed-texture tile embeddings -> MiniLM text "
                       "embeddings -> GeMM-GAN and the baselines -> metrics -> a report folder (metrics.md/.csv, "
                       "umap.png, training_curves.png, synthetic.h5ad). Offline, CPU, a few minutes.")
    d.add_argument("--out", required=True, help="report folder.")
    d.add_argument("--n-samples", type=_positive_int, default=200, help="patients in the demo cohort (200).")
    d.add_argument("--n-genes", type=_positive_int, default=1000, help="genes (1000).")
    d.add_argument("--epochs", type=_positive_int, default=30, help="GeMM-GAN training epochs (30).")
    d.add_argument("--baseline-epochs", type=_positive_int, default=None, help="baseline epochs (default: --epochs).")
    d.add_argument("--n-runs", type=_positive_int, default=2, help="generation runs of the evaluation (2).")
    d.add_argument("--models", default="gemmgan,wgangp,condwgangp,cvae,betavae",
                   help="comma-separated models (gemmgan,wgangp,condwgangp,cvae,betavae).")
    d.add_argument("--classifiers", default="logreg,rf", help="detectability/utility classifiers (logreg,rf; mlp too).")
    d.add_argument("--tile-size", type=_positive_int, default=64, help="tile edge in px (64; demo slides are small).")
    d.add_argument("--max-tiles", type=_positive_int, default=32, help="tiles kept per slide (32).")
    d.add_argument("--seed", type=int, default=0, help="seed of the cohort, split, training and metrics (0).")
    d.add_argument("--cache-dir", default=None, help="folder for the demo slides (default: pooch cache).")
    d.add_argument("--workers", type=int, default=None, help="tile-embedding worker processes (default min(2, CPUs)).")
    common(d)
    d.set_defaults(func=_cmd_demo, default_threads=1)

    t = sub.add_parser("tile", help="tile the slides of an .h5ad (obs column of slide paths) into a patch store.",
                       description="Otsu tissue detection and a grid of tiles per slide; tile coordinates go to a "
                       "zarr patch store named in uns['gemmgan']['patch_store'].")
    t.add_argument("input", help="input .h5ad with one row per sample and a column of slide paths.")
    t.add_argument("--out", required=True, help="output .h5ad.")
    t.add_argument("--slide-key", default="slide_path", help="obs column of slide paths (slide_path).")
    t.add_argument("--store", default=None, help="patch-store folder (default: <out>_patches.zarr).")
    t.add_argument("--tile-size", type=_positive_int, default=256, help="tile edge in px (256).")
    t.add_argument("--mpp", type=float, default=None, help="micrometres per pixel of the tiles (default: level 0).")
    t.add_argument("--min-tissue", type=float, default=0.2, help="minimum tissue fraction of a kept tile (0.2).")
    t.add_argument("--max-tiles", type=_positive_int, default=None, help="keep at most this many tiles per slide.")
    t.add_argument("--errors", choices=("raise", "warn"), default="raise", help="unreadable slides: stop or skip.")
    t.add_argument("--seed", type=int, default=0, help="seed of the --max-tiles subset (0).")
    common(t)
    t.set_defaults(func=_cmd_tile)

    e = sub.add_parser("embed", help="embed tiles (image encoder) and clinical text (text encoder).",
                       description="Frozen encoders: tile features into the patch store, token embeddings into "
                       "obsm['X_text_tokens'] / obsm['text_mask'].")
    e.add_argument("input", help="input .h5ad (tiled with `gemmgan-sc tile` for image embeddings).")
    e.add_argument("--out", required=True, help="output .h5ad.")
    e.add_argument("--image-encoder", default="hed-texture",
                   help="hed-texture (offline), uni, uni2, timm:<name>, a checkpoint path, or none.")
    e.add_argument("--text-encoder", default="minilm",
                   help="minilm (offline), clinical-modernbert, hf:<id>, a local model folder, or none.")
    e.add_argument("--text-key", default="text", help="obs column of clinical descriptions (text).")
    e.add_argument("--max-length", type=_positive_int, default=300, help="tokens kept per description (300).")
    e.add_argument("--checkpoint", default=None, help="local weights for uni/uni2/timm encoders (no network).")
    e.add_argument("--token", default=None, help="Hugging Face token for gated models (default: HF_TOKEN).")
    e.add_argument("--batch-size", type=_positive_int, default=64, help="tiles per encoder call (64).")
    e.add_argument("--workers", type=int, default=None, help="tile-reading worker processes.")
    e.add_argument("--device", default=None, help="torch device (default: gg.settings.device).")
    common(e)
    e.set_defaults(func=_cmd_embed)

    r = sub.add_parser("train", help="train GeMM-GAN or a baseline on an embedded .h5ad; save the model folder.",
                       description="Set up the AnnData, train, and save a model folder (model.safetensors, "
                       "model.json, adata.h5ad) that `sample` and `evaluate` read.")
    r.add_argument("input", help="input .h5ad (embedded with `gemmgan-sc embed` for GeMM-GAN).")
    r.add_argument("--out", required=True, help="model folder to write.")
    r.add_argument("--model", default="GeMMGAN", help="GeMMGAN (default), WGANGP, CondWGANGP, CVAE or BetaVAE.")
    r.add_argument("--layer", default=None, help="expression layer (default X), e.g. log1p.")
    r.add_argument("--labels", default=None, help="comma-separated categorical obs columns (disease_type,...).")
    r.add_argument("--text-key", default="X_text_tokens", help="obsm key of text token embeddings (GeMM-GAN).")
    r.add_argument("--patch-store", default=None, help="patch store (default: uns['gemmgan']['patch_store']).")
    r.add_argument("--slide-key", default="slide_id", help="obs column of slide ids in the store (slide_id).")
    r.add_argument("--epochs", type=_positive_int, default=None, help="training epochs (model default: 500 GAN, 300 VAE).")
    r.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (64).")
    r.add_argument("--train-size", type=float, default=0.8, help="training fraction; the rest is held out (0.8).")
    r.add_argument("--hparams", default=None, help="model hyperparameters as JSON, e.g. '{\"d_model\": 64}'.")
    r.add_argument("--accelerator", default="auto", help="lightning accelerator: auto, cpu, gpu (auto).")
    r.add_argument("--seed", type=int, default=0, help="seed of split and training (0).")
    common(r)
    r.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="generate a synthetic .h5ad from a saved model.",
                       description="Conditional models generate one profile per row of the conditioning AnnData "
                       "(default: the training AnnData saved with the model); unconditional ones draw --n-samples.")
    s.add_argument("model_dir", help="model folder written by `gemmgan-sc train`.")
    s.add_argument("--out", required=True, help="output .h5ad of synthetic profiles.")
    s.add_argument("--conditions", default=None, help=".h5ad of rows to condition on (embedded like the training data).")
    s.add_argument("--training-adata", default=None, help="training .h5ad if the model folder has none.")
    s.add_argument("--n-samples", type=_positive_int, default=None,
                   help="profiles per row (conditional, default 1) or in total (unconditional, default: training rows).")
    s.add_argument("--seed", type=int, default=0, help="seed of the noise (0).")
    common(s)
    s.set_defaults(func=_cmd_sample)

    v = sub.add_parser("evaluate", help="score a saved model on its held-out split; write a report folder.",
                       description="The paper's Table 1 (fidelity, detectability, utility, privacy; mean and std over "
                       "runs) as metrics.csv / metrics.md, plus umap.png, training_curves.png, synthetic.h5ad.")
    v.add_argument("model_dir", help="model folder written by `gemmgan-sc train`.")
    v.add_argument("--out", required=True, help="report folder.")
    v.add_argument("--training-adata", default=None, help="training .h5ad if the model folder has none.")
    v.add_argument("--n-runs", type=_positive_int, default=10, help="generation runs (10, as the paper).")
    v.add_argument("--classifiers", default="logreg,mlp,rf", help="classifiers (logreg,mlp,rf).")
    v.add_argument("--k", type=_positive_int, default=10, help="nearest neighbours of precision/recall (10).")
    v.add_argument("--seed", type=int, default=0, help="base seed (0).")
    common(v)
    v.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gemmgan-sc``; returns the exit status (0 ok, 1 error, 2 usage).

    Examples
    --------
    >>> from gemmgan_sc.cli import main
    >>> main(["demo", "--out", "report", "--n-samples", "40", "--epochs", "2"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    os.environ.setdefault("MPLBACKEND", "Agg")
    threads = args.threads if args.threads is not None else getattr(args, "default_threads", None)
    import gemmgan_sc as gg

    if args.quiet:
        gg.settings.progress_bar = False
    try:
        _set_threads(threads)
        return int(args.func(args) or 0)
    except CLIError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, NotImplementedError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{PROG} {args.command}: error: {type(err).__name__}: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
