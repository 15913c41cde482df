"""gg.ExpressionDiffusion beside the Gaussian floor, the real-rows ceiling and WGAN-GP at the same training wall
time, on the TCGA or the demo cohort (issue 18, point 3).

Protocol, cohorts and scores of ``benchmarks/convergence.py`` (its functions, imported). ``--cohort tcga``: the LUAD
+ BLCA MCAT tables (826 cases x 2,810 per-gene z-scores, label ``cohort``), models conditioned on the label.
``--cohort demo``: ``convergence.demo_cohort`` (``gg.datasets.demo`` -> 64 px tiles -> ``hed-texture`` ->
``minilm``, label ``disease_type``, log1p layer); there the diffusion model and GeMM-GAN are conditioned by the
fusion of slide tiles and text (``conditioning="auto"`` -> ``"full"``), at the CPU size of the table scripts
(``_tables.CPU_GEMMGAN``), and the label models on ``disease_type``. A random 20 % is held out as the test set (the
same rows as convergence.py for a seed), every model fitted on the rest with its own 80/20 train/validation split;
one profile per test row from that row's condition, scored on the z-scored scale of the model's training rows: 10-NN
precision / recall, LR real-vs-synthetic AUC (5-fold CV), corr-MSE, Frechet distance (PCA-50 of the training rows),
sd ratio. Added here: ``label_accuracy`` (a logistic regression fitted on the real training rows' cohorts classifies
the synthetic profiles: the share put in the cohort they were generated for; the real test rows' share is the
ceiling) and sampling speed (profiles/s; the diffusion model with DDIM and its ``n_steps``). Every trained model,
the GANs included, gets the same ``--budget-s`` seconds of training wall time (Lightning's ``max_time``, validation
included; the output calibration comes after and is part of ``wall_s``); early stopping on the validation Frechet
distance may end a model sooner (``train_s`` and ``steps`` say when) and the best validation weights are restored;
``--no-early-stopping`` makes every model run the whole budget and keeps its last weights. Run it with one torch
thread (``--threads 1``, the default) on a shared CPU.

    python benchmarks/diffusion.py                      # TCGA, 600 s budget, seed 0: Gaussian floor + diffusion
    python benchmarks/diffusion.py --models GaussianBaseline ExpressionDiffusion WGANGP CondWGANGP
    python benchmarks/diffusion.py --cohort demo --budget-s 270 --no-early-stopping   # + WGAN-GP, GeMM-GAN
    python benchmarks/diffusion.py --budget-s 60 --out /tmp/quick.json

Writes ``benchmarks/results/diffusion_<cohort>.json``.
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
from _tables import CPU_GEMMGAN  # noqa: E402
from convergence import (RESULTS, ceiling_scores, demo_cohort, held_out_sets, held_out_split, score, setup,  # noqa: E402
                         synthetic_rows, tcga_cohort)  # noqa: E402

#: default ``--models`` per cohort (the demo adds GeMM-GAN: the same fused conditions as the diffusion model)
DEFAULT_MODELS = {"tcga": ["GaussianBaseline", "ExpressionDiffusion"],
                  "demo": ["GaussianBaseline", "ExpressionDiffusion", "WGANGP", "GeMMGAN"]}


def load_cohort(cohort: str, demo_samples: int = 300):
    """(adata, layer, label, expression scale, patch store) of ``--cohort``, from convergence.py's loaders."""
    if cohort == "tcga":
        adata, store, label, scale = tcga_cohort(with_text=False)
        return adata, None, label, scale, store
    adata, store, label, scale = demo_cohort(demo_samples)
    return adata, "log1p", label, scale, store


def hyperparameters(cls, args) -> dict:
    """Constructor arguments: the diffusion model's DDIM steps, and the tables' CPU fusion size (demo) for the
    models that have a fusion network."""
    hp = {"n_steps": args.n_steps, "guidance": args.guidance} if cls is gg.ExpressionDiffusion else {}
    if args.cohort == "demo" and cls in (gg.ExpressionDiffusion, gg.GeMMGAN):
        hp.update({k: v for k, v in CPU_GEMMGAN.items() if k in cls._default_hparams})
    return hp


def label_accuracy(model, fit, adata, test_rows: np.ndarray, synth: np.ndarray, label: str) -> float:
    """Share of ``synth`` (profiles of ``test_rows``, in turn as :func:`convergence.synthetic_rows`) that a
    logistic regression fitted on the model's real training rows puts in its test row's cohort."""
    from sklearn.linear_model import LogisticRegression

    train = model.split["train"]
    x = model.normalize(model._expression(fit)[train])
    clf = LogisticRegression(max_iter=2000).fit(x, fit.obs[label].astype(str).to_numpy()[train])
    rows = synthetic_rows(test_rows, len(synth))
    return float((clf.predict(synth) == adata.obs[label].astype(str).to_numpy()[rows]).mean())


def profiles_per_second(model, adata, rows: np.ndarray, seed: int) -> float:
    start = time.perf_counter()
    model.sample(adata=adata, indices=rows, n_samples=1, seed=seed)
    return len(rows) / (time.perf_counter() - start)


def train(name: str, fit, label: str, args, seed: int, layer: str | None = None, scale: str = "any",
          store: str | None = None):
    """Set up as convergence.py does (the diffusion model also with the patch store, when there is one) and train
    within the budget; returns the model and its wall time."""
    cls = getattr(gg, name)
    if cls is gg.ExpressionDiffusion:
        cls.setup_anndata(fit, layer=layer, patch_store=store, labels_keys=[label], expression_scale=scale)
    else:
        setup(cls, fit, layer, label, scale, store)
    model = cls(fit, **hyperparameters(cls, args))
    start = time.perf_counter()
    if cls is gg.GaussianBaseline:
        model.train(seed=seed)
    else:
        extra = ({"validate_every": args.validate_every, "lr_halving_every": args.lr_halving_every}
                 if cls is gg.ExpressionDiffusion else {})
        steps = {} if args.max_steps is None else {"max_steps": args.max_steps}
        fixed = {"early_stopping": False, "restore_best": False} if args.no_early_stopping else {}
        model.train(seed=seed, max_time={"seconds": args.budget_s}, **steps, **extra, **fixed, **args.train_kwargs)
    return model, time.perf_counter() - start


def evaluate(name: str, adata, test_rows: np.ndarray, fit_rows: np.ndarray, label: str, args, seed: int,
             layer: str | None = None, scale: str = "any", store: str | None = None) -> dict:
    fit = adata[fit_rows].copy()
    model, wall = train(name, fit, label, args, seed, layer, scale, store)
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
    ceiling = ceiling_scores(real_test, real_train)
    ceiling["label_accuracy"] = label_accuracy(model, fit, adata, test_rows, real_test, label)  # the real test rows
    return {"model": name, "seed": seed, "wall_s": wall, "train_s": float(hist["time"].max()),
            "steps": int(hist["step"].max()) if "step" in hist else 0, "final": final, "uncalibrated": raw,
            "profiles_per_s": speed, "real_rows": ceiling, "val_curve": curve,
            "conditioning": getattr(model, "conditioning", None),
            "train_params": model.train_params, "hparams": model.hparams}


def table(results: list[dict]) -> str:
    cols = ("precision", "recall", "lr_auc", "corr_mse", "frechet", "sd_ratio", "label_accuracy")
    lines = ["| generator | " + " | ".join(cols) + " | profiles/s | train s | steps |",
             "|---" * (len(cols) + 4) + "|"]
    ceiling = {k: np.mean([r["real_rows"][k] for r in results]) for k in cols if k in results[0]["real_rows"]}
    lines.append("| real training rows | " + " | ".join(f"{ceiling[k]:.4g}" if k in ceiling else "-" for k in cols)
                 + " | - | - | - |")
    for r in results:
        cond = f" ({r['conditioning']})" if r.get("conditioning") else ""
        lines.append(f"| {r['model']}{cond} s{r['seed']} | " + " | ".join(f"{r['final'][k]:.4g}" for k in cols)
                     + f" | {r['profiles_per_s']:.4g} | {r['train_s']:.0f} | {r['steps']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=tuple(DEFAULT_MODELS), default="tcga")
    parser.add_argument("--models", nargs="+", default=None,
                        help="default: " + "; ".join(f"{c}: {' '.join(m)}" for c, m in DEFAULT_MODELS.items()))
    parser.add_argument("--demo-samples", type=int, default=300, help="demo cohort size")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--budget-s", type=float, default=600.0, help="training wall time per model")
    parser.add_argument("--max-steps", type=int, default=None, help="default: each model's default budget")
    parser.add_argument("--n-steps", type=int, default=50, help="DDIM steps of the diffusion model")
    parser.add_argument("--guidance", type=float, default=0.0, help="classifier-free guidance weight (diffusion)")
    parser.add_argument("--validate-every", type=int, default=250)
    parser.add_argument("--lr-halving-every", type=int, default=None, help="diffusion: halve the lr every N steps")
    parser.add_argument("--speed-rows", type=int, default=512, help="profiles generated for the speed figure")
    parser.add_argument("--no-early-stopping", action="store_true",
                        help="every trained model runs its whole --budget-s (or step budget) and is scored with its "
                             "last weights: no early stopping, no restoring of the best validation weights")
    parser.add_argument("--train-kwargs", type=json.loads, default={},
                        help='JSON of extra train() arguments for every trained model, e.g. \'{"ema_decay": 0.999}\'')
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    gg.settings.progress_bar = False
    if args.models is None:
        args.models = DEFAULT_MODELS[args.cohort]
    unknown = [m for m in args.models if not isinstance(getattr(gg, m, None), type)]
    if unknown:
        raise SystemExit(f"--models {unknown}: not model classes of gemmgan_sc (e.g. {DEFAULT_MODELS['demo']}).")
    adata, layer, label, scale, store = load_cohort(args.cohort, args.demo_samples)
    results = []
    for seed in args.seeds:
        test_rows, fit_rows = held_out_split(adata.n_obs, seed)
        for name in args.models:
            res = evaluate(name, adata, test_rows, fit_rows, label, args, seed, layer, scale, store)
            print(name, seed, json.dumps({k: round(v, 4) for k, v in res["final"].items()}),
                  f"{res['profiles_per_s']:.1f} profiles/s, {res['steps']} steps, {res['wall_s']:.0f} s", flush=True)
            results.append(res)
    print(table(results))
    out = Path(args.out) if args.out else RESULTS / f"diffusion_{args.cohort}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"cohort": args.cohort, "label": label, "date": time.strftime("%Y-%m-%d %H:%M"), "n_obs": adata.n_obs,
               "n_vars": adata.n_vars, "args": vars(args),
               "machine": machine_info(), "results": results, "table": table(results)}
    atomic_write_text(out, json.dumps(json_safe(payload), indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
