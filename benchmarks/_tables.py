"""Shared code of benchmarks/table1.py and benchmarks/table2.py (the paper's Tables 1 and 2).

Data preparation (the demo cohort through the real pipeline, or a prepared ``.h5ad``), training a list of
model specifications, evaluation with :func:`gemmgan_sc.tl.compare_models` (which calls
:func:`gemmgan_sc.metrics.evaluate`), the paper's layout as CSV and Markdown, a figure and a JSON record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import gemmgan_sc as gg  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEMO_LABEL = "disease_type"
#: CPU-sized GeMM-GAN (the paper: d_model 256, N = 256 patches, FFN 512).
CPU_GEMMGAN = {"d_model": 64, "n_latent": 64, "n_patches": 32, "d_ff": 128, "n_heads": 4}
#: Short names of the metrics in the paper's layout.
METRIC_NAMES = {"accuracy": "Acc", "f1": "F1", "f1_macro": "F1", "auc": "AUC"}
#: Row names of the reference rows of ``gg.metrics.evaluate`` (its ``reference`` column).
REFERENCE_ROWS = {"real_rows": "Real training rows (ceiling)", "gaussian": "Gaussian baseline (floor)"}
#: Column of the paper layout saying whether a model beats the Gaussian floor.
BEATS_COLUMN = "Beats Gaussian floor"
_TMP_KEY = "_benchmark_tables_tmp"


# ----------------------------------------------------------------------------------------------- data
def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_write_h5ad(adata, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        adata.write_h5ad(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """Folder of prepared benchmark cohorts (``<gemmgan-sc cache>/benchmarks`` unless given)."""
    from gemmgan_sc.datasets._cache import resolve_cache_dir

    return resolve_cache_dir(cache, "benchmarks", name="cache")


def build_demo(
    n_samples: int = 300,
    n_genes: int = 2000,
    tile_size: int = 64,
    max_tiles: int | None = None,
    text_max_length: int = 128,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
):
    """The demo cohort through the real pipeline, cached as ``.h5ad`` + patch store.

    ``gg.datasets.demo`` -> ``gg.pp.tile_slides`` (``tile_size`` px) -> ``gg.pp.embed_tiles("hed-texture")``
    -> ``gg.pp.embed_text("minilm", max_length=text_max_length)``. A second call with the same arguments reads
    the cached file. Returns the AnnData and a dict of preparation timings (empty when read from the cache).
    """
    for name, value, low in (("n_samples", n_samples, 20), ("n_genes", n_genes, 10), ("tile_size", tile_size, 16),
                             ("text_max_length", text_max_length, 8)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    tag = f"demo_n{n_samples}_g{n_genes}_t{tile_size}_m{max_tiles}_l{text_max_length}_s{seed}"
    folder = cache_dir(cache) / tag
    path = folder / "adata.h5ad"
    store = folder / "patches.zarr"
    if path.exists() and not rebuild:
        import anndata as ad

        adata = ad.read_h5ad(path)
        if Path(adata.uns["gemmgan"]["patch_store"]).exists():
            log(f"demo cohort read from the cache {path}")
            return adata, {}
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    adata = gg.datasets.demo(n_samples=n_samples, n_genes=n_genes, seed=seed)
    timings["demo_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gg.pp.tile_slides(adata, slide_key="slide_path", tile_size=tile_size, max_tiles=max_tiles, store=store,
                      overwrite=True, seed=seed)
    timings["tile_slides_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gg.pp.embed_tiles(adata, encoder="hed-texture", num_workers=0)
    timings["embed_tiles_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gg.pp.embed_text(adata, text_key="text", encoder="minilm", max_length=text_max_length)
    timings["embed_text_s"] = time.perf_counter() - t0
    _atomic_write_h5ad(adata, path)
    log(f"demo cohort prepared in {sum(timings.values()):.0f} s, cached at {path}")
    return adata, timings


def read_data(path: str | os.PathLike):
    """A prepared AnnData (``.h5ad``): expression in ``X`` or a layer, text tokens and/or a patch store."""
    import anndata as ad

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--data {str(p)!r} is not a file; give an .h5ad written by the preparation steps.")
    return ad.read_h5ad(p)


# ---------------------------------------------------------------------------------------------- specs
@dataclass
class ModelSpec:
    """One row of a table: a model class, its setup and constructor arguments, and training arguments."""

    name: str
    cls: Any
    setup: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    #: False for unconditional models: their profiles carry no labels, so utility is not computed.
    use_labels: bool = True


def data_setup(adata, layer: str | None, expression_scale: str) -> dict[str, Any]:
    """Setup arguments of GeMM-GAN for ``adata``: the text tokens if embedded, the patch store if tiled."""
    setup: dict[str, Any] = {"layer": layer, "expression_scale": expression_scale}
    store = adata.uns.get("gemmgan", {}).get("patch_store") if "gemmgan" in adata.uns else None
    setup["patch_store"] = str(store) if store and Path(str(store)).exists() else None
    if "X_text_tokens" not in adata.obsm:
        setup["text_key"] = None
    if setup["patch_store"] is None and setup.get("text_key", "X_text_tokens") is None:
        raise ValueError("The AnnData has neither obsm['X_text_tokens'] nor a patch store: embed text or tiles first.")
    return setup


# ------------------------------------------------------------------------------------------- running
def run_specs(
    specs: Sequence[ModelSpec],
    adata,
    epochs: int | None,
    n_runs: int,
    labels: Sequence[str],
    classifiers: Sequence[str],
    seed: int = 0,
    log: Callable[[str], None] = print,
    k: int = 10,
    references: Sequence[str] = tuple(REFERENCE_ROWS),
    conditional_draws: int = 10,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Train each spec for ``epochs`` (None: the model's default step budget, early stopping and best weights)
    with ``seed`` (same split for all), evaluate over ``n_runs`` generations.

    Every model goes through ``gg.metrics.evaluate`` with ``conditional_draws`` draws per held-out row for
    conditional fidelity (unconditional models then show the chance level). The ``references`` rows of
    ``evaluate`` (real training rows as the ceiling, ``gg.GaussianBaseline`` as the floor) are computed once,
    with the first spec (all specs share its split) and its label keys, and become rows named by
    ``REFERENCE_ROWS``; their time is part of the first spec's ``eval_s``.

    Returns the long table (``model, metric, classifier, label, mean, std``) and per-model records (train and
    evaluation seconds, epochs, hyperparameters, the conditioning that ran).
    """
    if not specs:
        raise ValueError("no models to run.")
    for name, value in (("epochs", 1 if epochs is None else epochs), ("n_runs", n_runs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    missing = [k for k in labels if k not in adata.obs]
    if missing:
        raise KeyError(f"label column(s) {missing} not in adata.obs (columns: {list(adata.obs.columns)}).")
    tables, records = [], {}
    for j, spec in enumerate(specs):
        log(f"[{spec.name}] setup + training {'the default budget' if epochs is None else f'{epochs} epochs'} ...")
        keys = list(labels) if spec.use_labels else []
        spec.cls.setup_anndata(adata, labels_keys=keys or None, **spec.setup)
        model = spec.cls(adata, **spec.hparams)
        t0 = time.perf_counter()
        budget = {} if epochs is None else {"max_epochs": int(epochs)}
        model.train(seed=seed, accelerator="cpu", **budget, **spec.train)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = gg.metrics.evaluate(model, adata, n_runs=int(n_runs), label_keys=keys, classifiers=list(classifiers),
                                    seed=seed, k=int(k), key_added=_TMP_KEY, references=list(references) if j == 0
                                    else [], conditional_draws=int(conditional_draws))
        adata.uns.pop(_TMP_KEY, None)
        eval_s = time.perf_counter() - t0
        hist = model.history
        records[spec.name] = {
            "model": type(model).__name__, "epochs": budget_text(model, epochs), "train_s": round(train_s, 2),
            "eval_s": round(eval_s, 2), "hparams": {k: _plain(v) for k, v in model.hparams.items()},
            "conditioning": getattr(model, "conditioning", None), "train": {k: _plain(v) for k, v in spec.train.items()},
            "n_genes": int(len(model.var_names)), "n_train": int(len(model.split["train"])),
            "n_test": int(len(model.split["validation"])),
            "last_epoch": {k: _plain(v) for k, v in hist.iloc[-1].items()} if len(hist) else {},
        }
        log(f"[{spec.name}] trained in {train_s:.0f} s, evaluated in {eval_s:.0f} s")
        tables.append(name_rows(table, spec.name))
    return pd.concat(tables, ignore_index=True), records


def budget_text(model, epochs: int | None) -> str:
    """What a model trained for: ``"150 epochs"`` or, with the default budget, the steps it ran of it."""
    if epochs is not None:
        return f"{int(epochs)} epochs"
    hist = model.history
    steps = int(hist["step"].max()) if "step" in hist and len(hist) else 0
    return f"{steps} of {model.train_params.get('max_steps')} steps"


def name_rows(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """``evaluate``'s table with a ``model`` column: ``model`` for its own rows, ``REFERENCE_ROWS`` names else."""
    names = table["reference"].map(lambda r: model if r == "" else REFERENCE_ROWS.get(r, r))
    return table.assign(model=names)[["model", "metric", "classifier", "label", "mean", "std"]]


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, tuple):
        return list(v)
    return v


# -------------------------------------------------------------------------------------------- layout
def _cell(mean: float, std: float, digits: int) -> str:
    if mean is None or not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


#: Metrics where lower means closer to the real data (for the floor comparison).
_LOWER_BETTER = {"correlation_mse", "frechet_distance"}


def _closeness(metric: str, value: float) -> float:
    """A score where higher is better: AUC near 0.5, sd ratio near 1, lower MSE / Frechet, else higher."""
    if metric == "detectability_auc":
        return -abs(value - 0.5)
    if metric == "sd_ratio":
        return -abs(np.log(value)) if value > 0 else -np.inf
    return -value if metric in _LOWER_BETTER else value


def _layout_columns(classifiers: Sequence[str], label: str | None, conditional: bool) -> list[tuple[str, str, str, str]]:
    cols = [  # (column name, metric, classifier, label)
        ("Precision ↑", "precision", "", ""), ("Recall ↑", "recall", "", ""),
        ("Corr. MSE ↓", "correlation_mse", "", ""), ("Corr. γ ↑", "correlation_gamma", "", ""),
        ("Fréchet ↓", "frechet_distance", "", ""), ("SD ratio →1", "sd_ratio", "", ""),
    ]
    if conditional:
        cols.append(("Cond. Pearson ↑", "conditional_pearson_mean", "", ""))
    for clf in classifiers:
        for m in ("accuracy", "f1", "auc"):
            cols.append((f"Detect. {clf} {METRIC_NAMES[m]} ↓", f"detectability_{m}", clf, ""))
    if label:
        for clf in classifiers:
            for m in ("accuracy", "f1_macro"):
                cols.append((f"Utility {clf} {METRIC_NAMES[m]} ↑", f"utility_{m}", clf, label))
    return cols


def beats_floor(get: Callable[..., tuple[float, float]], model: str, floor: str,
                checks: Sequence[tuple[str, str, str, str]]) -> str:
    """``"yes"`` when ``model``'s means are at least as close to the real data as the floor's on every metric of
    ``checks`` that both have, else ``"no (worse on ...)"``; ``"–"`` when nothing compares."""
    worse, compared = [], 0
    for name, metric, clf, lab in checks:
        m, f = get(model, metric, clf, lab)[0], get(floor, metric, clf, lab)[0]
        if not (np.isfinite(m) and np.isfinite(f)):
            continue
        compared += 1
        if _closeness(metric, m) < _closeness(metric, f):
            worse.append(name.rstrip(" ↑↓→1").strip())
    if not compared:
        return "–"
    return "yes" if not worse else f"no (worse on {', '.join(worse)})"


def paper_layout(long: pd.DataFrame, classifiers: Sequence[str], label: str | None, digits: int = 3,
                 real_row: str | None = "Real data (train on real)") -> pd.DataFrame:
    """Rows = models, then the reference rows; columns = precision, recall, correlation MSE and gamma, Fréchet
    distance, sd ratio, conditional Pearson (when any row has it), detectability per classifier (accuracy, F1,
    AUC), utility per classifier (accuracy, macro F1) on ``label``; cells ``mean ± std``.

    With the Gaussian floor row present, a last column says whether each model beats it: its mean is at least
    as close to the real data as the floor's on precision, recall, correlation MSE, Fréchet distance, sd ratio
    (near 1), conditional Pearson, detectability AUC (near 0.5) and utility accuracy of the first classifier.
    With ``real_row``, a last row holds the train-on-real utility (the same held-out rows and classifiers).
    """
    need = {"model", "metric", "classifier", "label", "mean", "std"}
    if not need <= set(long.columns):
        raise ValueError(f"long table lacks columns {sorted(need - set(long.columns))}.")
    present = list(dict.fromkeys(long["model"]))
    refs = [r for r in REFERENCE_ROWS.values() if r in present]
    models = [m for m in present if m not in refs] + refs

    def get(model: str, metric: str, clf: str = "", lab: str = "") -> tuple[float, float]:
        hit = long[(long["model"] == model) & (long["metric"] == metric) & (long["classifier"] == clf)
                   & (long["label"] == lab)]
        return (float(hit["mean"].iloc[0]), float(hit["std"].iloc[0])) if len(hit) else (np.nan, np.nan)

    cols = _layout_columns(classifiers, label, bool((long["metric"] == "conditional_pearson_mean").any()))
    rows = {model: {c: _cell(*get(model, metric, clf, lab), digits) for c, metric, clf, lab in cols}
            for model in models}
    floor = REFERENCE_ROWS["gaussian"]
    if floor in refs:
        checks = [c for c in cols if c[1] in ("precision", "recall", "correlation_mse", "frechet_distance",
                                              "sd_ratio", "conditional_pearson_mean")]
        checks += [c for c in cols if c[2] == classifiers[0] and c[1] in ("detectability_auc", "utility_accuracy")]
        for model in models:
            rows[model][BEATS_COLUMN] = "–" if model in refs else beats_floor(get, model, floor, checks)
    if label and real_row:
        ref = next((m for m in models if np.isfinite(get(m, "utility_real_accuracy", classifiers[0], label)[0])), None)
        if ref is not None:
            row = {c: "" for c, *_ in cols}
            for c, metric, clf, lab in cols:
                if metric.startswith("utility_"):
                    row[c] = _cell(*get(ref, metric.replace("utility_", "utility_real_"), clf, lab), digits)
            rows[real_row] = row
    names = [c for c, *_ in cols] + ([BEATS_COLUMN] if floor in refs else [])
    out = pd.DataFrame.from_dict(rows, orient="index", columns=names).fillna("")
    out.index.name = "model"
    return out


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (no extra dependency)."""
    head = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + [":-:"] * len(table.columns)) + "|"]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row]) + " |")
    return "\n".join(lines) + "\n"


def plot_table(long: pd.DataFrame, classifiers: Sequence[str], label: str | None, title: str, path: Path) -> None:
    """Grouped bars (mean ± std over runs) of the main metrics, one panel per metric, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("precision", "", "", "Precision ↑"), ("recall", "", "", "Recall ↑"),
              ("correlation_mse", "", "", "Correlation MSE ↓"), ("frechet_distance", "", "", "Fréchet distance ↓"),
              ("sd_ratio", "", "", "SD ratio (1 best)")]
    panels += [("detectability_auc", c, "", f"Detectability AUC ({c}) ↓ 0.5 best") for c in classifiers]
    if label:
        panels += [("utility_accuracy", c, label, f"Utility accuracy ({c}) ↑") for c in classifiers]
    present = list(dict.fromkeys(long["model"]))
    refs = [r for r in REFERENCE_ROWS.values() if r in present]
    models = [m for m in present if m not in refs] + refs
    ncol = 3
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 0.35 * len(models) * nrow + 1.6 * nrow), squeeze=False)
    colors = plt.get_cmap("tab10")(np.arange(len(models)) % 10)
    for ax, (metric, clf, lab, name) in zip(axes.ravel(), panels):
        sub = long[(long["metric"] == metric) & (long["classifier"] == clf) & (long["label"] == lab)]
        sub = sub.set_index("model").reindex(models)
        y = np.arange(len(models))
        ax.barh(y, sub["mean"].to_numpy(float), xerr=sub["std"].to_numpy(float), color=colors, capsize=2)
        if metric.startswith("utility_"):
            real = long[(long["metric"] == "utility_real_accuracy") & (long["classifier"] == clf)
                        & (long["label"] == lab)]
            if len(real):
                ax.axvline(float(real["mean"].iloc[0]), color="k", ls="--", lw=1, label="train on real")
                ax.legend(fontsize=7, loc="lower right")
        if metric == "detectability_auc":
            ax.axvline(0.5, color="k", ls=":", lw=1)
        if metric == "sd_ratio":
            ax.axvline(1.0, color="k", ls=":", lw=1)
        if metric not in ("correlation_mse", "frechet_distance", "sd_ratio"):
            ax.set_xlim(0, 1.05)
        ax.set_yticks(y, models, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=9)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def write_results(prefix: Path, long: pd.DataFrame, wide: pd.DataFrame, record: dict[str, Any],
                  title: str, classifiers: Sequence[str], label: str | None, notes: Sequence[str] = ()) -> list[Path]:
    """Write ``<prefix>.csv`` (paper layout), ``<prefix>_long.csv``, ``<prefix>.md``, ``<prefix>.png``, ``<prefix>.json``."""
    prefix = Path(prefix)
    _atomic_write_text(prefix.with_suffix(".csv"), wide.to_csv())
    _atomic_write_text(prefix.with_name(prefix.name + "_long.csv"), long.to_csv(index=False))
    md = [f"# {title}", ""]
    md += [f"- {n}" for n in notes]
    md += ["", to_markdown(wide)]
    runs = record.get("models", {})
    if runs:
        md += ["", "| model | trained for | train (s) | evaluation (s) |", "|---|:-:|:-:|:-:|"]
        md += [f"| {k} | {v['epochs']} | {v['train_s']:.0f} | {v['eval_s']:.0f} |" for k, v in runs.items()]
    _atomic_write_text(prefix.with_suffix(".md"), "\n".join(md) + "\n")
    plot_table(long, classifiers, label, title, prefix.with_suffix(".png"))
    _atomic_write_text(prefix.with_suffix(".json"), json.dumps(record, indent=1, default=str))
    return [prefix.with_suffix(s) for s in (".csv", ".md", ".png", ".json")] + [prefix.with_name(prefix.name + "_long.csv")]


# ------------------------------------------------------------------------------------------- CLI bits
def common_parser(description: str) -> argparse.ArgumentParser:
    """Arguments shared by table1.py and table2.py."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="prepared .h5ad (default: the demo cohort through the real pipeline)")
    p.add_argument("--layer", default=None, help="expression layer of --data (default X; the demo uses 'log1p')")
    p.add_argument("--expression-scale", default=None, choices=["log", "any"],
                   help="'log' (non-negative, default) or 'any' (e.g. z-scores: also disables the gene filter)")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs of every model (paper: 500; default: each model's default step budget)")
    p.add_argument("--n-runs", type=int, default=5, help="generation runs per model (paper: 10)")
    p.add_argument("--labels", nargs="*", default=None,
                   help="obs label columns (utility metric, label-conditioned baselines); default: disease_type")
    p.add_argument("--classifiers", nargs="+", default=["logreg", "mlp", "rf"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--references", nargs="*", default=list(REFERENCE_ROWS), choices=list(REFERENCE_ROWS),
                   help="reference rows: real_rows (ceiling), gaussian (floor); give none to leave them out")
    p.add_argument("--k", type=int, default=10, help="nearest neighbours of precision/recall (paper: 10)")
    p.add_argument("--n-samples", type=int, default=300, help="demo cohort size")
    p.add_argument("--n-genes", type=int, default=2000, help="demo genes")
    p.add_argument("--tile-size", type=int, default=64, help="demo tile size in px (demo slides are small)")
    p.add_argument("--text-max-length", type=int, default=128, help="text tokens kept by embed_text (paper: 300)")
    p.add_argument("--cache", default=None, help="folder for the prepared demo cohort (default: gemmgan-sc cache)")
    p.add_argument("--full-size", action="store_true",
                   help="GeMM-GAN at the paper's size (d_model 256, 256 patches) instead of the CPU size")
    p.add_argument("--quick", action="store_true",
                   help="smoke preset: 60 samples, 200 genes, 2 epochs, 1 run, logreg only")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out", default=None, help="output prefix (default benchmarks/results/<table>_<data>)")
    return p


def apply_quick(args: argparse.Namespace) -> None:
    """The ``--quick`` preset (explicit values given on the command line are overridden)."""
    if args.quick:
        args.n_samples, args.n_genes, args.epochs, args.n_runs = 60, 200, 2, 1
        args.classifiers = ["logreg"]


def load_for_args(args: argparse.Namespace, log: Callable[[str], None] = print):
    """(adata, layer, expression_scale, labels, data name, preparation timings) for the parsed arguments."""
    if args.data:
        adata = read_data(args.data)
        name = Path(args.data).stem
        layer, scale = args.layer, args.expression_scale or adata.uns.get("benchmark", {}).get("expression_scale", "log")
        labels = args.labels if args.labels is not None else list(adata.uns.get("benchmark", {}).get("labels", []))
        prep = {}
    else:
        adata, prep = build_demo(args.n_samples, args.n_genes, args.tile_size, None, args.text_max_length, args.seed,
                                 args.cache, log=log)
        name = "quick" if args.quick else "demo"
        layer, scale = args.layer or "log1p", args.expression_scale or "log"
        labels = args.labels if args.labels is not None else [DEMO_LABEL]
    if args.labels is None and not labels:
        labels = [DEMO_LABEL] if DEMO_LABEL in adata.obs else []
    return paper_gene_filter(adata, scale), layer, scale, labels, name, prep


def gemmgan_size(args: argparse.Namespace) -> dict[str, Any]:
    return {} if args.full_size else dict(CPU_GEMMGAN)


#: Row name of the extra diffusion row of both tables.
DIFFUSION_ROW = "Diffusion (DDIM, extra)"


def diffusion_spec(setup: dict[str, Any], size: dict[str, Any] | None = None, name: str = DIFFUSION_ROW,
                   conditioning: str = "full") -> ModelSpec:
    """The extra row of Tables 1 and 2: ``gg.ExpressionDiffusion`` (DDIM sampling, its default 50 steps, no
    guidance) on GeMM-GAN's setup (``setup``: text tokens and / or patch store), conditioned by the same fusion
    network (``conditioning``), at the fusion size of ``size`` (GeMM-GAN's hyperparameters; those the diffusion
    model lacks, such as ``n_latent``, are dropped).

    Examples
    --------
    >>> spec = diffusion_spec({"layer": "log1p", "patch_store": "p.zarr"}, CPU_GEMMGAN)
    >>> spec.name, spec.hparams["conditioning"], "n_latent" in spec.hparams
    ('Diffusion (DDIM, extra)', 'full', False)
    """
    cls = gg.ExpressionDiffusion
    hparams = {k: v for k, v in (size or {}).items() if k in cls._default_hparams}
    return ModelSpec(name, cls, dict(setup), {**hparams, "conditioning": conditioning})


def diffusion_note(records: dict[str, dict[str, Any]], name: str = DIFFUSION_ROW) -> list[str]:
    """The table note on the diffusion row of ``run_specs``' ``records`` (none when the row did not run)."""
    if name not in records:
        return []
    rec = records[name]
    return [f"{name}: gg.ExpressionDiffusion on GeMM-GAN's conditions and fusion size (conditioning that ran: "
            f"{rec['conditioning']}), DDIM with {rec['hparams']['n_steps']} steps, guidance "
            f"{rec['hparams']['guidance']}; trained for {rec['epochs']} (validation for early stopping every 250 "
            "steps)"]


def budget_note(epochs: int | None, what: str = "every model") -> str:
    """The table note on the training budget of ``--epochs``."""
    if epochs is None:
        return (f"{what}: its default step budget, early stopping on the validation Frechet distance and the best "
                "weights restored (steps per model below)")
    return f"{epochs} epochs for {what} (paper: 500)"


def paper_gene_filter(adata, scale: str):
    """The paper's preprocessing on log-scale data: drop genes that are zero in more than 90 % of the samples
    (``sc.pp.filter_genes``, recorded by scanpy in ``var["n_cells"]``); z-scored inputs keep every gene."""
    if scale == "any":
        return adata
    import math

    import scanpy as sc

    sc.pp.filter_genes(adata, min_cells=math.ceil(0.1 * adata.n_obs))
    return adata

