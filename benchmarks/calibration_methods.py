"""The output calibrations of one trained model, side by side, on validation and held-out rows (TCGA).

Each model is trained once at its defaults (the protocol of ``benchmarks/convergence.py``: a random 20 % of the
cohort held out as the test set, the model fitted on the rest with its own 80/20 train/validation split); then
every calibration of ``--methods`` is fitted on profiles generated from the training rows' conditions (the
library's ``model._calibrate``, as ``train(calibrate=...)`` does) and scored twice, with convergence.py's
``score``: on the model's validation rows (the figures a default is chosen on) and on the held-out test rows (the
figures reported). ``covariance`` is the library's default (axes and residual weight chosen on the validation
rows); ``covariance:K:W`` fixes K principal axes and the residual weight W (default 1). The reference rows
(real training rows, Gaussian floor) are scored on the same two sets.

    python benchmarks/calibration_methods.py --models CondWGANGP WGANGP ExpressionDiffusion --threads 2
    python benchmarks/calibration_methods.py --models WGANGP --methods none moments covariance:20 covariance:50

Writes ``benchmarks/results/calibration_methods_tcga.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import gemmgan_sc as gg  # noqa: E402
from gemmgan_sc._io import atomic_write_text, json_safe  # noqa: E402
from _machine import machine_info  # noqa: E402
from convergence import RESULTS, ceiling_scores, held_out_sets, held_out_split, score, setup, tcga_cohort  # noqa: E402

SHOWN = ("precision", "recall", "lr_auc", "corr_mse", "frechet", "sd_ratio")


def calibrate(model, method: str, seed: int) -> None:
    """Refit ``model``'s output calibration: ``none``, ``moments``, ``quantiles``, ``covariance`` (the library's
    choice on the validation rows) or ``covariance:K[:W]`` (K axes, residual weight W, default 1)."""
    if method == "none":
        model.calibration = None
        return
    name, *fixed = method.split(":")
    candidates = [(int(fixed[0]), float(fixed[1]) if len(fixed) > 1 else 1.0)] if fixed else None
    model._calibrate(seed=seed, method=name, candidates=candidates)


def both_sets(model, adata, test_rows: np.ndarray, seed: int) -> dict[str, dict[str, float]]:
    """Scores on the model's validation rows and on the held-out test rows."""
    val_rows = np.asarray(model.split["validation"])
    return {"validation": score(*held_out_sets(model, model.adata, val_rows, seed)),
            "test": score(*held_out_sets(model, adata, test_rows, seed))}


def references(model, adata, test_rows: np.ndarray, seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """The real training rows (ceiling) on both sets; the Gaussian floor is a model row of its own."""
    out = {}
    for where, (rows, data) in {"validation": (model.split["validation"], model.adata),
                                "test": (test_rows, adata)}.items():
        real_train = model.normalize(model._expression(model.adata)[model.split["train"]])
        real = model.normalize(model._expression(data)[np.asarray(rows)])
        out[where] = ceiling_scores(real, real_train)
    return {"real training rows": out}


def run(name: str, adata, test_rows, fit_rows, label: str, methods: list[str], seed: int, train_kwargs: dict) -> dict:
    cls = getattr(gg, name)
    fit = adata[fit_rows].copy()
    setup(cls, fit, None, label, "any", None)
    model = cls(fit)
    start = time.perf_counter()
    model.train(seed=seed) if cls is gg.GaussianBaseline else model.train(seed=seed, **{**train_kwargs,
                                                                                  "calibrate": False})
    train_s = time.perf_counter() - start
    rows = {}
    for method in (["-"] if cls is gg.GaussianBaseline else methods):
        start = time.perf_counter()
        if method != "-":
            calibrate(model, method, seed)
        fit_s = time.perf_counter() - start
        rows[method] = {**both_sets(model, adata, test_rows, seed), "fit_s": fit_s}
        print(name, method, {w: {k: round(v, 4) for k, v in rows[method][w].items()} for w in ("validation", "test")},
              flush=True)
    return {"model": name, "seed": seed, "train_s": train_s, "rows": rows,
            "references": references(model, adata, test_rows, seed)}


def table(results: list[dict], where: str) -> str:
    lines = [f"| model | calibration | {' | '.join(SHOWN)} |", "|---" * (len(SHOWN) + 2) + "|"]
    refs = results[0]["references"]["real training rows"][where]
    lines.append("| real training rows (ceiling) | - | " + " | ".join(f"{refs[k]:.4g}" for k in SHOWN) + " |")
    for res in results:
        for method, row in res["rows"].items():
            lines.append(f"| {res['model']} | {method} | " + " | ".join(f"{row[where][k]:.4g}" for k in SHOWN) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["GaussianBaseline", "CondWGANGP", "WGANGP"])
    parser.add_argument("--methods", nargs="+",
                        default=["none", "moments", "quantiles", "covariance:50", "covariance"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-kwargs", type=json.loads, default={},
                        help='extra train() arguments as JSON, e.g. \'{"max_steps": 50}\' for a smoke run')
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    gg.settings.progress_bar = False
    adata, _, label, _ = tcga_cohort(with_text=False)
    results = []
    for seed in args.seeds:
        test_rows, fit_rows = held_out_split(adata.n_obs, seed)
        for name in args.models:
            results.append(run(name, adata, test_rows, fit_rows, label, args.methods, seed, args.train_kwargs))
    tables = {where: table(results, where) for where in ("validation", "test")}
    for where, text in tables.items():
        print(f"\n{where}\n{text}")
    out = Path(args.out) if args.out else RESULTS / "calibration_methods_tcga.json"
    payload = {"date": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args), "machine": machine_info(),
               "results": results, "tables": tables}
    atomic_write_text(out, json.dumps(json_safe(payload), indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
