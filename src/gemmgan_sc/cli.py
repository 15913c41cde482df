"""The ``gemmgan-sc`` command line: ``demo``, ``tile``, ``embed``, ``train``, ``sample``, ``evaluate``, ``tiles``.

Every subcommand reads and writes ``.h5ad`` files (and model folders), so the steps chain::

    gemmgan-sc demo --out demo_report
    gemmgan-sc tile cohort.h5ad --out tiled.h5ad --tile-size 256
    gemmgan-sc embed tiled.h5ad --out embedded.h5ad --image-encoder uni --text-encoder clinical-modernbert
    gemmgan-sc train embedded.h5ad --out my_model --labels disease_type,primary_site
    gemmgan-sc sample my_model --out synthetic.h5ad
    gemmgan-sc evaluate my_model --out my_report
    gemmgan-sc tiles train tiled.h5ad --out my_tilegan --layer log1p --max-steps 1500
    gemmgan-sc tiles sample my_tilegan --out generated_tiles --n-per-row 4

The commands are a thin layer over the library: each model class says what its setup reads
(``setup_inputs``, ``labels_required``), and reports are written by :func:`gemmgan_sc.tl.report`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._io import atomic_write, atomic_write_text

PROG = "gemmgan-sc"
DISPLAY = {"GeMMGAN": "GeMM-GAN", "WGANGP": "WGAN-GP", "CondWGANGP": "cond. WGAN-GP", "CVAE": "CVAE",
           "BetaVAE": "beta-VAE", "GaussianBaseline": "Gaussian (PCA)", "ExpressionDiffusion": "diffusion"}
ALIASES = {"gaussian": "gaussianbaseline", "diffusion": "expressiondiffusion"}
DEMO_LABELS = ("disease_type", "primary_site")
SETUP_INPUTS = frozenset({"text", "image", "labels"})


class CLIError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


# ----------------------------------------------------------------------------- small helpers
def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _write_h5ad(adata, path: Path) -> Path:
    return atomic_write(path, adata.write_h5ad)


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


def _check_folder(path: str | os.PathLike, overwrite: bool) -> Path:
    """A report folder: not a file, and empty unless ``overwrite``."""
    out = Path(path).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a file; give a folder for the report.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CLIError(f"output folder {str(out)!r} exists and is not empty; pass --overwrite or choose another.")
    return out


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


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


# ----------------------------------------------------------------------------- models: asked, not named
def model_classes() -> dict[str, type]:
    """``{key: class}`` of every expression model the library ships (keys: lower-case class names, e.g. ``"cvae"``);
    models that generate something else (``generates = "tiles"``: :class:`~gemmgan_sc.TileGAN`, see ``gemmgan-sc
    tiles``) are left out."""
    from . import models

    classes = dict(getattr(models, "MODEL_CLASSES", {}))
    for name in getattr(models, "__all__", []):
        cls = getattr(models, name, None)
        if isinstance(cls, type) and issubclass(cls, models.BaseGenerativeModel) and cls is not models.BaseGenerativeModel:
            classes.setdefault(cls.__name__, cls)
    return {name.lower(): cls for name, cls in classes.items() if getattr(cls, "generates", "expression") == "expression"}


def _model_class(name: str, option: str = "--model") -> type:
    key = name.replace("-", "").replace("_", "").lower()
    classes = model_classes()
    cls = classes.get(ALIASES.get(key, key))
    if cls is None:
        choices = ", ".join(c.__name__ for c in classes.values())
        raise CLIError(f"unknown model {name!r} in {option}; choose one of {choices}.")
    return cls


def display_name(cls: type) -> str:
    return DISPLAY.get(cls.__name__, cls.__name__)


def setup_inputs(cls: type) -> frozenset[str]:
    """What ``cls.setup_anndata`` can register, a subset of ``{"text", "image", "labels"}``.

    Read from the class attribute ``setup_inputs``; classes without it are read from the parameters of their
    ``setup_anndata`` (``text_key``, ``patch_store``, ``labels_keys``).
    """
    inputs = getattr(cls, "setup_inputs", None)
    if inputs is None:
        params = inspect.signature(cls.setup_anndata).parameters
        named = {"text_key": "text", "patch_store": "image", "labels_keys": "labels"}
        inputs = {named[p] for p in params if p in named}
    inputs = frozenset(inputs)
    if not inputs <= SETUP_INPUTS:
        raise TypeError(f"{cls.__name__}.setup_inputs has {sorted(inputs - SETUP_INPUTS)}; expected {sorted(SETUP_INPUTS)}.")
    return inputs


def labels_required(cls: type) -> bool:
    """Whether ``cls`` is conditioned on labels (``labels_required``; older classes: ``_needs_labels``)."""
    return bool(getattr(cls, "labels_required", getattr(cls, "_needs_labels", False)))


def setup_model(cls: type, adata, *, layer: str | None = None, labels: Sequence[str] | None = None,
                text_key: str | None = None, patch_store: str | None = None, slide_key: str = "slide_id") -> None:
    """``cls.setup_anndata`` with the inputs the class registers; clear errors for what it needs and lacks."""
    inputs = setup_inputs(cls)
    if labels_required(cls) and not labels:
        raise CLIError(f"{cls.__name__} is conditioned on labels: pass --labels col1,col2 (obs columns).")
    if labels and "labels" not in inputs:
        raise CLIError(f"{cls.__name__} registers no labels; leave out --labels.")
    kwargs: dict[str, Any] = {"layer": layer}
    if "labels" in inputs:
        kwargs["labels_keys"] = list(labels) if labels else None
    if "text" in inputs:
        kwargs["text_key"] = text_key
    if "image" in inputs:
        kwargs.update(patch_store=patch_store, slide_key=slide_key)
    if inputs & {"text", "image"} and text_key is None and patch_store is None:
        raise CLIError(f"{cls.__name__} needs text token embeddings (run `gemmgan-sc embed`) or a patch store (run "
                       "`gemmgan-sc tile` and `embed`); the input has neither.")
    cls.setup_anndata(adata, **kwargs)


def _accepted(func, **wanted: Any) -> dict[str, Any]:
    """The ``wanted`` keyword arguments (``None`` left out) that ``func`` takes."""
    params = inspect.signature(func).parameters.values()
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {p.name for p in params}
    return {k: v for k, v in wanted.items() if v is not None and (takes_any or k in names)}


def _hparams(cls: type, wanted: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``wanted`` that are hyperparameters of ``cls`` of the same kind (a ``hidden`` tuple of
    layer widths is not given to a model whose ``hidden`` is one width)."""
    known = getattr(cls, "_default_hparams", None)
    if known is None:
        return dict(wanted)
    return {k: v for k, v in wanted.items()
            if k in known and isinstance(v, tuple) == isinstance(known[k], (tuple, list))}


# ----------------------------------------------------------------------------- demo
class _Steps:
    """Numbered progress lines ``[i/n] text ...`` / ``done in x s`` and the timings they measure."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.i = total, quiet, 0
        self.timings: dict[str, float] = {}
        self._t0 = self._start = time.perf_counter()

    def start(self, text: str) -> None:
        self.i += 1
        _say(f"[{self.i}/{self.total}] {text} ...", self.quiet)
        self._t0 = time.perf_counter()

    def done(self, name: str, extra: str = "") -> None:
        self.timings[name] = time.perf_counter() - self._t0
        _say(f"      done in {self.timings[name]:.1f} s{extra}", self.quiet)

    def total_time(self) -> float:
        self.timings["total"] = time.perf_counter() - self._start
        return self.timings["total"]


def _demo_classes(models: Sequence[str] | None) -> list[type]:
    classes = list(model_classes().values()) if models is None else [_model_class(m, "--models") for m in models]
    if not classes:
        raise CLIError("--models is empty; name at least gemmgan.")
    if not any(c.__name__ == "GeMMGAN" for c in classes):
        raise CLIError("--models must include gemmgan (the report shows its samples).")
    return list(dict.fromkeys(classes))


def _demo_cohort(out: Path, steps: _Steps, n_samples: int, n_genes: int, tile_size: int, max_tiles: int,
                 seed: int, cache_dir, workers: int):
    """Simulated cohort -> tiles -> hed-texture tile embeddings -> MiniLM text embeddings; returns (adata, store)."""
    import gemmgan_sc as gg

    steps.start(f"simulating the demo cohort ({n_samples} samples, {n_genes} genes, slides)")
    adata = gg.datasets.demo(n_samples=n_samples, n_genes=n_genes, seed=seed, cache_dir=cache_dir)
    steps.done("cohort")
    steps.start(f"tiling {adata.n_obs} slides ({tile_size} px tiles, at most {max_tiles} per slide)")
    store = str(out / "patches.zarr")
    gg.pp.tile_slides(adata, slide_key="slide_path", tile_size=tile_size, max_tiles=max_tiles, store=store,
                      overwrite=True, seed=seed)
    n_tiles = adata.obs["n_tiles"]
    steps.done("tile", f"; {int(n_tiles.sum())} tiles, median {int(n_tiles.median())} per slide")
    steps.start("embedding tiles with 'hed-texture'")
    gg.pp.embed_tiles(adata, encoder="hed-texture", num_workers=workers, device="cpu")
    steps.done("embed_tiles")
    steps.start("embedding clinical text with 'minilm'")
    gg.pp.embed_text(adata, text_key="text", encoder="minilm", max_length=128, device="cpu")
    steps.done("embed_text")
    return adata, store


def _train_summary(model) -> str:
    import numpy as np

    hist = getattr(model, "history", None)
    if hist is None or len(hist) == 0:
        return ""
    last = hist.iloc[-1]
    parts = [f"{c} {last[c]:.3g}" for c in ("step", "val_frechet", "loss") if c in last and np.isfinite(last[c])]
    return f" ({', '.join(parts)})" if parts else ""


def _demo_train(cls: type, adata, store: str, out: Path, steps: _Steps, budget: dict[str, int | None],
                max_tiles: int, seed: int):
    """Set up, train (small CPU sizes) and save one model of the demo."""
    small = {"n_latent": 64, "hidden": (256, 256), "d_model": 64, "d_ff": 128, "n_patches": max(8, min(32, max_tiles))}
    said = ", ".join(f"{v} {k.split('_')[1]}" for k, v in budget.items() if v)
    steps.start(f"training {display_name(cls)}" + (f" ({said})" if said else ""))
    setup_model(cls, adata, layer="log1p", labels=list(DEMO_LABELS), text_key="X_text_tokens", patch_store=store)
    model = cls(adata, **_hparams(cls, small))
    model.train(**_accepted(model.train, **budget, seed=seed, accelerator="cpu"))
    model.save(out / "models" / cls.__name__.lower(), overwrite=True)
    steps.done(f"train_{cls.__name__.lower()}", _train_summary(model))
    return model


def _demo_budget(cls: Any, epochs: int | None, baseline_epochs: int | None, max_steps: int | None) -> dict:
    """The training budget of one demo model: ``max_steps`` for all, else its epochs."""
    if max_steps is not None:
        return {"max_steps": max_steps}
    name = cls.__name__ if isinstance(cls, type) else type(cls).__name__
    return {"max_epochs": epochs if name == "GeMMGAN" else baseline_epochs}


def _demo_description(adata, gem, tile_size: int, gem_budget: dict, n_runs: int) -> str:
    said = ", ".join(f"{v} {k.split('_')[1]}" for k, v in gem_budget.items() if v)
    budget = f"GeMM-GAN {said} (the others alike unless --baseline-epochs)" if said else "model default budgets"
    return (
        "Simulated demo cohort (`gg.datasets.demo`; not real patients): "
        f"{adata.n_obs} samples, {adata.n_vars} genes, {tile_size} px tiles (hed-texture features), "
        f"MiniLM text tokens. {budget}, small CPU sizes; metrics over {n_runs} generation runs on the held-out "
        f"split ({len(gem.split['validation'])} samples). `Gaussian (PCA)` is the floor a generator must beat.\n"
    )


def _check_shared_split(trained: dict[str, Any]) -> None:
    import numpy as np

    splits = {name: np.asarray(m.split["validation"]) for name, m in trained.items()}
    ref_name, ref = next(iter(splits.items()))
    odd = [n for n, s in splits.items() if not np.array_equal(np.sort(s), np.sort(ref))]
    if odd:
        raise CLIError(f"{odd} were trained on another split than {ref_name}; the table would not compare.")


def run_demo(
    out: str | os.PathLike,
    n_samples: int = 200,
    n_genes: int = 1000,
    epochs: int | None = 30,
    baseline_epochs: int | None = None,
    max_steps: int | None = None,
    n_runs: int = 2,
    models: Sequence[str] | None = None,
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

    Demo cohort -> tiles -> ``"hed-texture"`` tile embeddings -> ``"minilm"`` text embeddings -> GeMM-GAN, the
    baselines and the Gaussian floor (small CPU sizes) -> :func:`gemmgan_sc.tl.report` -> ``out/``:
    ``metrics.csv``, ``metrics.md`` (with the ``real training rows`` ceiling), ``umap.png`` (real vs GeMM-GAN
    synthetic), ``training_curves.png``, ``synthetic.h5ad`` (GeMM-GAN), ``demo.h5ad`` (the embedded cohort, set
    up for GeMM-GAN), ``patches.zarr`` (its patch store), ``models/<name>/`` and ``timings.json``.

    Parameters
    ----------
    out
        Report folder (created; must be empty unless ``overwrite``).
    n_samples, n_genes
        Size of the demo cohort (:func:`gemmgan_sc.datasets.demo`).
    epochs, baseline_epochs
        Training epochs of GeMM-GAN and of the other models (default: ``epochs``); ``None``: each model's
        default budget.
    max_steps
        Training steps of every model instead of epochs (``epochs`` and ``baseline_epochs`` are then unused).
    n_runs
        Generation runs of the evaluation.
    models
        Model keys (lower-case class names, e.g. ``gemmgan``, ``wgangp``, ``cvae``, ``gaussian``); default every
        model of the library. ``gemmgan`` is required.
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
    out = _check_folder(out, overwrite)
    classes = _demo_classes(models)
    baseline_epochs = epochs if baseline_epochs is None else baseline_epochs
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    out.mkdir(parents=True, exist_ok=True)
    steps = _Steps(5 + len(classes), quiet)
    adata, store = _demo_cohort(out, steps, n_samples, n_genes, tile_size, max_tiles, seed, cache_dir, workers)
    trained = {display_name(cls): _demo_train(cls, adata, store, out, steps, _demo_budget(
                   cls, epochs, baseline_epochs, max_steps), max_tiles, seed) for cls in classes}
    _check_shared_split(trained)
    gem = trained["GeMM-GAN"]
    files = _demo_report(out, steps, adata, store, trained, classifiers, n_runs, seed,
                         _demo_description(adata, gem, tile_size, _demo_budget(gem, epochs, baseline_epochs,
                                                                               max_steps), n_runs))
    steps.total_time()
    timings = json.dumps({k: round(v, 2) for k, v in steps.timings.items()}, indent=1)
    files["timings.json"] = atomic_write_text(out / "timings.json", timings)
    _say(f"report written to {out} in {steps.timings['total']:.0f} s:", quiet)
    for name in sorted(files):
        _say(f"  {files[name].relative_to(out)}", quiet)
    return files


def _demo_k(n_held_out: int) -> int:
    """Neighbours of the k-NN metrics: a tenth of the held-out rows (2 to 10). With 10 neighbours among 40
    held-out rows in 1,000 genes every ball covers nearly every row, and precision and recall read 1 for any
    generator that is not collapsed (the real rows included)."""
    return int(max(1, min(10, n_held_out - 1, max(2, n_held_out // 10))))


def _demo_report(out: Path, steps: _Steps, adata, store: str, trained: dict[str, Any], classifiers, n_runs: int,
                 seed: int, description: str) -> dict[str, Path]:
    import gemmgan_sc as gg

    gem = trained["GeMM-GAN"]
    # leave the AnnData set up for GeMM-GAN, the model a user continues with
    setup_model(type(gem), adata, layer="log1p", labels=list(DEMO_LABELS), text_key="X_text_tokens",
                patch_store=store)
    steps.start(f"evaluating {len(trained)} models and the real rows ({n_runs} runs, classifiers "
                f"{', '.join(classifiers)}); writing the report")
    floor = display_name(gg.models.GaussianBaseline) if hasattr(gg.models, "GaussianBaseline") else None
    files = gg.tl.report(out, trained, adata, synthetic_from="GeMM-GAN", label_key="disease_type",
                         floor=floor if floor in trained else None, title="gemmgan-sc demo report",
                         description=description, n_runs=n_runs, classifiers=list(classifiers),
                         k=_demo_k(len(gem.split["validation"])), conditional_draws=10, seed=seed, overwrite=True)
    files["demo.h5ad"] = _write_h5ad(adata, out / "demo.h5ad")
    steps.done("evaluate")
    return files


# ----------------------------------------------------------------------------- subcommands
def _cmd_demo(args) -> int:
    run_demo(
        args.out, n_samples=args.n_samples, n_genes=args.n_genes, epochs=args.epochs,
        baseline_epochs=args.baseline_epochs, max_steps=args.max_steps, n_runs=args.n_runs,
        models=_split_list(args.models),
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
        if "patch_store" not in (adata.uns.get("gemmgan") or {}):
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


def _parse_hparams(text: str | None) -> dict[str, Any]:
    try:
        hparams = json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        raise CLIError(f"--hparams is not valid JSON ({err}); e.g. --hparams '{{\"d_model\": 64}}'.") from err
    if not isinstance(hparams, dict):
        raise CLIError(f"--hparams must be a JSON object, got {text!r}.")
    return hparams


def _cmd_train(args) -> int:
    out = _check_out(args.out, args.overwrite, "model folder")
    cls = _model_class(args.model)
    hparams = _parse_hparams(args.hparams)
    adata = _read_h5ad(args.input)
    inputs = setup_inputs(cls)
    store = (args.patch_store or (adata.uns.get("gemmgan") or {}).get("patch_store")) if "image" in inputs else None
    text_key = args.text_key if "text" in inputs and args.text_key in adata.obsm else None
    setup_model(cls, adata, layer=args.layer, labels=_split_list(args.labels), text_key=text_key,
                patch_store=store, slide_key=args.slide_key)
    model = cls(adata, **hparams)
    budget = f"{args.max_steps} steps" if args.max_steps else f"{args.epochs} epochs" if args.epochs else "its budget"
    _say(f"training {cls.__name__} on {adata.n_obs} samples x {adata.n_vars} genes for {budget}", args.quiet)
    model.train(**_accepted(model.train, max_epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                            train_size=args.train_size, seed=args.seed, accelerator=args.accelerator,
                            calibrate={"auto": True, "none": False}.get(args.calibrate, args.calibrate)))
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

    out = _check_folder(args.out, args.overwrite)
    model = _load_model(args.model_dir, args.training_adata)
    name = display_name(type(model))
    labels = model.registry.labels_keys
    files = gg.tl.report(
        out, {name: model}, model.adata, label_key=labels[0] if labels else None, title=f"{name} evaluation",
        description=f"Model folder `{args.model_dir}`, {args.n_runs} generation runs.\n", n_runs=args.n_runs,
        classifiers=_split_list(args.classifiers) or [], k=args.k, seed=args.seed, overwrite=args.overwrite,
    )
    _say(f"wrote {', '.join(sorted(files))} to {out}", args.quiet)
    return 0


def _cmd_tiles_train(args) -> int:
    import gemmgan_sc as gg

    out = _check_out(args.out, args.overwrite, "model folder")
    adata = _read_h5ad(args.input)
    gg.TileGAN.setup_anndata(adata, layer=args.layer, patch_store=args.patch_store, slide_key=args.slide_key,
                             text_key=args.text_key)
    hparams = {**_parse_hparams(args.hparams), "conditioning": args.conditioning, "image_size": args.image_size}
    model = gg.TileGAN(adata, **hparams)
    budget = f"{args.max_steps} steps" if args.max_steps else "the preset's budget"
    _say(f"training TileGAN ({args.conditioning}, {args.image_size} px) on {adata.n_obs} rows for {budget}", args.quiet)
    model.train(max_steps=args.max_steps, batch_size=args.batch_size, preset=args.preset, train_size=args.train_size,
                seed=args.seed, accelerator=args.accelerator)
    model.save(out, overwrite=args.overwrite, save_anndata=True)
    _say(f"saved TileGAN to {out} (model.safetensors, model.json, adata.h5ad)", args.quiet)
    return 0


def _cmd_tiles_sample(args) -> int:
    import csv
    import io

    import gemmgan_sc as gg
    from PIL import Image

    out = _check_folder(args.out, args.overwrite)
    folder = Path(args.model_dir).expanduser()
    if not folder.is_dir():
        raise CLIError(f"model folder {str(folder)!r} does not exist (train one with `gemmgan-sc tiles train`).")
    training = _read_h5ad(args.training_adata) if args.training_adata else None
    model = gg.TileGAN.load(folder, adata=training)
    cond = _read_h5ad(args.conditions) if args.conditions else None
    rows = _split_list(args.rows)
    result = model.sample(adata=cond, indices=rows, n_per_row=args.n_per_row, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["file", "obs_name", "row", "draw"])
    draw = 0
    for i, (tile, name, row) in enumerate(zip(result.tiles, result.obs_names, result.rows)):
        draw = draw + 1 if i and result.rows[i - 1] == row else 0
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(name))
        file = f"{i:06d}_{safe}_{draw}.png"
        atomic_write(out / file, lambda p, t=tile: Image.fromarray(t).save(p, format="PNG"))
        writer.writerow([file, name, int(row), draw])
    atomic_write_text(out / "tiles.csv", table.getvalue())
    _say(f"wrote {len(result)} tiles ({model.hparams['image_size']} px PNG) and tiles.csv to {out}", args.quiet)
    return 0


# ----------------------------------------------------------------------------- parser
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: 1 for demo, torch's default otherwise).")
    p.add_argument("--quiet", action="store_true", help="no progress output.")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs.")


def _add_demo(sub) -> None:
    d = sub.add_parser("demo", help="run the whole pipeline on the simulated demo cohort and write a report.",
                       description="Simulated demo cohort -> tiles -> hed-texture tile embeddings -> MiniLM text "
                       "embeddings -> GeMM-GAN, the baselines and a Gaussian floor -> metrics with a real-rows "
                       "ceiling -> a report folder (metrics.md/.csv, umap.png, training_curves.png, synthetic.h5ad). "
                       "Offline, CPU, a few minutes.")
    d.add_argument("--out", required=True, help="report folder.")
    d.add_argument("--n-samples", type=_positive_int, default=200, help="patients in the demo cohort (200).")
    d.add_argument("--n-genes", type=_positive_int, default=1000, help="genes (1000).")
    d.add_argument("--epochs", type=_positive_int, default=30, help="GeMM-GAN training epochs (30).")
    d.add_argument("--baseline-epochs", type=_positive_int, default=None, help="baseline epochs (default: --epochs).")
    d.add_argument("--max-steps", type=_positive_int, default=None,
                   help="training steps of every model instead of epochs (default: use --epochs).")
    d.add_argument("--n-runs", type=_positive_int, default=2, help="generation runs of the evaluation (2).")
    d.add_argument("--models", default=None,
                   help="comma-separated models (default: all, e.g. gemmgan,wgangp,condwgangp,cvae,betavae,gaussian).")
    d.add_argument("--classifiers", default="logreg,rf", help="detectability/utility classifiers (logreg,rf; mlp too).")
    d.add_argument("--tile-size", type=_positive_int, default=64, help="tile edge in px (64; demo slides are small).")
    d.add_argument("--max-tiles", type=_positive_int, default=32, help="tiles kept per slide (32).")
    d.add_argument("--seed", type=int, default=0, help="seed of the cohort, split, training and metrics (0).")
    d.add_argument("--cache-dir", default=None, help="folder for the demo slides (default: pooch cache).")
    d.add_argument("--workers", type=int, default=None, help="tile-embedding worker processes (default min(2, CPUs)).")
    _common(d)
    d.set_defaults(func=_cmd_demo, default_threads=1)


def _add_tile(sub) -> None:
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
    _common(t)
    t.set_defaults(func=_cmd_tile)


def _add_embed(sub) -> None:
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
    _common(e)
    e.set_defaults(func=_cmd_embed)


def _add_train(sub) -> None:
    r = sub.add_parser("train", help="train GeMM-GAN or a baseline on an embedded .h5ad; save the model folder.",
                       description="Set up the AnnData with what the model reads, train, and save a model folder "
                       "(model.safetensors, model.json, adata.h5ad) that `sample` and `evaluate` read.")
    r.add_argument("input", help="input .h5ad (embedded with `gemmgan-sc embed` for GeMM-GAN).")
    r.add_argument("--out", required=True, help="model folder to write.")
    r.add_argument("--model", default="GeMMGAN",
                   help="GeMMGAN (default), WGANGP, CondWGANGP, CVAE, BetaVAE or GaussianBaseline.")
    r.add_argument("--layer", default=None, help="expression layer (default X), e.g. log1p.")
    r.add_argument("--labels", default=None, help="comma-separated categorical obs columns (disease_type,...).")
    r.add_argument("--text-key", default="X_text_tokens", help="obsm key of text token embeddings (GeMM-GAN).")
    r.add_argument("--patch-store", default=None, help="patch store (default: uns['gemmgan']['patch_store']).")
    r.add_argument("--slide-key", default="slide_id", help="obs column of slide ids in the store (slide_id).")
    r.add_argument("--epochs", type=_positive_int, default=None, help="training epochs (default: the model's).")
    r.add_argument("--max-steps", type=_positive_int, default=None,
                   help="training steps instead of epochs (default: the model's budget).")
    r.add_argument("--batch-size", type=_positive_int, default=None, help="batch size (default: the model's).")
    r.add_argument("--train-size", type=float, default=0.8, help="training fraction; the rest is held out (0.8).")
    r.add_argument("--hparams", default=None, help="model hyperparameters as JSON, e.g. '{\"d_model\": 64}'.")
    r.add_argument("--accelerator", default="auto", help="lightning accelerator: auto, cpu, gpu (auto).")
    r.add_argument("--calibrate", choices=("auto", "moments", "covariance", "quantiles", "none"), default="auto",
                   help="output calibration after training (auto: the model's default, covariance for label or "
                   "unconditional models, moments for embedding-conditioned ones; none: the raw generator).")
    r.add_argument("--seed", type=int, default=0, help="seed of split and training (0).")
    _common(r)
    r.set_defaults(func=_cmd_train)


def _add_sample_evaluate(sub) -> None:
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
    _common(s)
    s.set_defaults(func=_cmd_sample)

    v = sub.add_parser("evaluate", help="score a saved model on its held-out split; write a report folder.",
                       description="The paper's Table 1 (fidelity, detectability, utility, privacy; mean and std over "
                       "runs) beside the real-rows ceiling, as metrics.csv / metrics.md, plus umap.png, "
                       "training_curves.png, synthetic.h5ad.")
    v.add_argument("model_dir", help="model folder written by `gemmgan-sc train`.")
    v.add_argument("--out", required=True, help="report folder.")
    v.add_argument("--training-adata", default=None, help="training .h5ad if the model folder has none.")
    v.add_argument("--n-runs", type=_positive_int, default=10, help="generation runs (10, as the paper).")
    v.add_argument("--classifiers", default="logreg,mlp,rf", help="classifiers (logreg,mlp,rf).")
    v.add_argument("--k", type=_positive_int, default=10, help="nearest neighbours of precision/recall (10).")
    v.add_argument("--seed", type=int, default=0, help="base seed (0).")
    _common(v)
    v.set_defaults(func=_cmd_evaluate)


def _add_tiles(sub) -> None:
    t = sub.add_parser("tiles", help="TileGAN: train a generator of H&E tiles from expression, or sample PNG tiles.",
                       description="Tiles from expression (gg.TileGAN, RNA-GAN): `tiles train` sets up an .h5ad "
                       "tiled by `gemmgan-sc tile` (or gg.pp.tile_spots), trains and saves a model folder; `tiles "
                       "sample` writes generated tiles as PNG files (and tiles.csv: file, obs name, row, draw).")
    tsub = t.add_subparsers(dest="tiles_command", metavar="action", required=True)
    r = tsub.add_parser("train", help="train TileGAN and save the model folder.")
    r.add_argument("input", help="input .h5ad with expression and tiled slides or spots (uns['gemmgan']['patch_store']).")
    r.add_argument("--out", required=True, help="model folder to write.")
    r.add_argument("--layer", default=None, help="expression layer (default X), e.g. log1p.")
    r.add_argument("--patch-store", default=None, help="patch store (default: uns['gemmgan']['patch_store']).")
    r.add_argument("--slide-key", default="slide_id", help="obs column of slide ids in the store (slide_id).")
    r.add_argument("--text-key", default=None, help="obsm key of text token embeddings (for expression+text).")
    r.add_argument("--conditioning", choices=("expression", "expression+text", "none"), default="expression",
                   help="what the tiles are generated from (expression).")
    r.add_argument("--image-size", type=_positive_int, default=64, help="tile edge in px: 16 to 256, a power of two (64).")
    r.add_argument("--preset", choices=("default", "cpu", "paper"), default="cpu", help="training preset (cpu).")
    r.add_argument("--max-steps", type=_positive_int, default=None, help="generator steps (default: the preset's).")
    r.add_argument("--batch-size", type=_positive_int, default=None, help="rows per step (default: the preset's).")
    r.add_argument("--train-size", type=float, default=0.9, help="training fraction; the rest scores val_frechet (0.9).")
    r.add_argument("--hparams", default=None, help="more hyperparameters as JSON, e.g. '{\"channels\": 64}'.")
    r.add_argument("--accelerator", default="auto", help="lightning accelerator: auto, cpu, gpu (auto).")
    r.add_argument("--seed", type=int, default=0, help="seed of split and training (0).")
    _common(r)
    r.set_defaults(func=_cmd_tiles_train)
    s = tsub.add_parser("sample", help="generate tiles from a saved TileGAN into a folder of PNG files.")
    s.add_argument("model_dir", help="model folder written by `gemmgan-sc tiles train`.")
    s.add_argument("--out", required=True, help="folder of PNG tiles to write.")
    s.add_argument("--conditions", default=None, help=".h5ad of rows to generate from (default: the training rows).")
    s.add_argument("--rows", default=None, help="comma-separated obs names of the rows (default: all).")
    s.add_argument("--training-adata", default=None, help="training .h5ad if the model folder has none.")
    s.add_argument("--n-per-row", type=_positive_int, default=1, help="tiles per row (1).")
    s.add_argument("--seed", type=int, default=0, help="seed of the noise (0).")
    _common(s)
    s.set_defaults(func=_cmd_tiles_sample)


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
    for add in (_add_demo, _add_tile, _add_embed, _add_train, _add_sample_evaluate, _add_tiles):
        add(sub)
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
