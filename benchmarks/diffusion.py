"""gg.ExpressionDiffusion on the TCGA cohort, beside the Gaussian floor and the real-rows ceiling (issue 18, point 3).

Protocol and scores of ``benchmarks/convergence.py`` (its functions, imported): the LUAD + BLCA MCAT tables
(826 cases x 2,810 per-gene z-scores, label ``cohort``), a random 20 % held out as the test set (the same rows as
convergence.py for a seed), every model fitted on the rest with its own 80/20 train/validation split; one profile
per test row from that row's condition, scored on the z-scored scale of the model's training rows: 10-NN
precision / recall, LR real-vs-synthetic AUC (5-fold CV), corr-MSE, Frechet distance (PCA-50 of the training
rows), sd ratio. Added here: ``label_accuracy`` (a logistic regression fitted on the real training rows'
cohorts classifies the synthetic profiles: the share put in the cohort they were generated for) and sampling
speed (profiles/s; the diffusion model with DDIM and its ``n_steps``). Every trained model gets at most
``--budget-s`` seconds of training wall time (Lightning's ``max_time``, validation included; the output
calibration comes after and is part of ``wall_s``). Run it with one torch thread (``--threads 1``, the
default) on a shared CPU.

    python benchmarks/diffusion.py                      # 600 s budget, seed 0, Gaussian floor + diffusion
    python benchmarks/diffusion.py --models GaussianBaseline ExpressionDiffusion CondWGANGP
    python benchmarks/diffusion.py --budget-s 60 --out /tmp/quick.json

Writes ``benchmarks/results/diffusion_tcga.json``.
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
from convergence import RESULTS, held_out_sets, score, setup, tcga_cohort  # noqa: E402


def label_accuracy(model, fit, adata, test_rows: np.ndarray, synth: np.ndarray, label: str) -> float:
    """Share of ``synth`` (one profile per test row) that a logistic regression fitted on the model's real
    training rows puts in the test row's cohort."""
    from sklearn.linear_model import LogisticRegression

    train = model.split["train"]
    x = model.normalize(model._expression(fit)[train])
    clf = LogisticRegression(max_iter=2000).fit(x, fit.obs[label].astype(str).to_numpy()[train])
    return float((clf.predict(synth) == adata.obs[label].astype(str).to_numpy()[test_rows]).mean())


def profiles_per_second(model, adata, rows: np.ndarray, seed: int) -> float:
    start = time.perf_counter()
    model.sample(adata=adata, indices=rows, n_samples=1, seed=seed)
    return len(rows) / (time.perf_counter() - start)


def train(name: str, fit, label: str, args, seed: int):
    """Set up as convergence.py does and train within the budget; returns the model and its wall time."""
    cls = getattr(gg, name)
    setup(cls, fit, None, label, "any", None)
    model = cls(fit, n_steps=args.n_steps) if cls is gg.ExpressionDiffusion else cls(fit)
    start = time.perf_counter()
    if cls is gg.GaussianBaseline:
        model.train(seed=seed)
    else:
        extra = ({"validate_every": args.validate_every, "lr_halving_every": args.lr_halving_every}
                 if cls is gg.ExpressionDiffusion else {})
        steps = {} if args.max_steps is None else {"max_steps": args.max_steps}
        model.train(seed=seed, max_time={"seconds": args.budget_s}, **steps, **extra)
    return model, time.perf_counter() - start


def evaluate(name: str, adata, test_rows: np.ndarray, fit_rows: np.ndarray, label: str, args, seed: int) -> dict:
    fit = adata[fit_rows].copy()
    model, wall = train(name, fit, label, args, seed)
    real_test, synth, real_train = held_out_sets(model, adata, test_rows, seed)
    final = {**score(real_test, synth, real_train),
             "label_accuracy": label_accuracy(model, fit, adata, test_rows, synth, label)}
    raw = {}
    if model.calibration is not None:
        cal, model.calibration = model.calibration, None
        raw = score(*held_out_sets(model, adata, test_rows, seed))
        model.calibration = cal
    speed = profiles_per_second(model, adata, np.resize(test_rows, args.speed_rows), seed)
    hist = model.history
    curve = hist[["step", "time", "val_frechet"]].dropna().to_dict("records") if "val_frechet" in hist else []
    rng = np.random.default_rng(seed)
    ceiling = score(real_test, real_train[rng.choice(len(real_train), len(real_test), replace=False)], real_train)
    return {"model": name, "seed": seed, "wall_s": wall, "train_s": float(hist["time"].max()),
            "steps": int(hist["step"].max()) if "step" in hist else 0, "final": final, "uncalibrated": raw,
            "profiles_per_s": speed, "real_rows": ceiling, "val_curve": curve,
            "train_params": model.train_params, "hparams": model.hparams}


def table(results: list[dict]) -> str:
    cols = ("precision", "recall", "lr_auc", "corr_mse", "frechet", "sd_ratio", "label_accuracy")
    lines = ["| generator | " + " | ".join(cols) + " | profiles/s | train s | steps |",
             "|---" * (len(cols) + 4) + "|"]
    ceiling = {k: np.mean([r["real_rows"][k] for r in results]) for k in cols if k in results[0]["real_rows"]}
    lines.append("| real training rows | " + " | ".join(f"{ceiling[k]:.4g}" if k in ceiling else "-" for k in cols)
                 + " | - | - | - |")
    for r in results:
        lines.append(f"| {r['model']} s{r['seed']} | " + " | ".join(f"{r['final'][k]:.4g}" for k in cols)
                     + f" | {r['profiles_per_s']:.4g} | {r['train_s']:.0f} | {r['steps']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["GaussianBaseline", "ExpressionDiffusion"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--budget-s", type=float, default=600.0, help="training wall time per model")
    parser.add_argument("--max-steps", type=int, default=None, help="default: each model's default budget")
    parser.add_argument("--n-steps", type=int, default=50, help="DDIM steps of the diffusion model")
    parser.add_argument("--validate-every", type=int, default=250)
    parser.add_argument("--lr-halving-every", type=int, default=None, help="diffusion: halve the lr every N steps")
    parser.add_argument("--speed-rows", type=int, default=512, help="profiles generated for the speed figure")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    gg.settings.progress_bar = False
    adata, _, label, _ = tcga_cohort(with_text=False)
    results = []
    for seed in args.seeds:
        order = np.random.default_rng(1000 + seed).permutation(adata.n_obs)  # the held-out rows of convergence.py
        n_test = int(round(0.2 * adata.n_obs))
        test_rows, fit_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
        for name in args.models:
            res = evaluate(name, adata, test_rows, fit_rows, label, args, seed)
            print(name, seed, json.dumps({k: round(v, 4) for k, v in res["final"].items()}),
                  f"{res['profiles_per_s']:.1f} profiles/s, {res['steps']} steps, {res['wall_s']:.0f} s", flush=True)
            results.append(res)
    print(table(results))
    out = Path(args.out) if args.out else RESULTS / "diffusion_tcga.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"cohort": "tcga", "n_obs": adata.n_obs, "n_vars": adata.n_vars, "args": vars(args),
               "machine": machine_info(), "results": results, "table": table(results)}
    atomic_write_text(out, json.dumps(json_safe(payload), indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
