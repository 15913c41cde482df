"""Time-to-quality: held-out quality of each generator against its training steps and wall-clock seconds.

Protocol (issue "Realistic by default"): a random 20 % of the rows is held out as the test set and never given
to a model; every model (and the Gaussian floor) is trained on the rest with its own 80/20 train/validation
split, so its training rows are 64 % of the cohort. Every ``--eval-every`` steps the callback generates as many
profiles as the model has training rows, from the test rows' conditions (each test row's condition in turn:
:func:`synthetic_rows`), and scores them against the test rows, on the z-scored scale of the model's training
rows: 10-NN precision and recall, logistic-regression real-vs-synthetic AUC (5-fold CV), corr-MSE, Frechet
distance (PCA-50 of the training rows) and the sd ratio. The reference rows are the same scores for all the
model's real training rows (the ceiling: a set of the same size as the synthetic one, so both carry the same
sampling noise, e.g. in the correlation matrix of corr-MSE) and for ``gg.GaussianBaseline`` (the floor). Wall
time excludes the scoring.

    python benchmarks/convergence.py --cohort tcga --models WGANGP CondWGANGP --seeds 0
    python benchmarks/convergence.py --cohort demo --max-steps 600

Writes ``benchmarks/results/convergence_<cohort>.json`` and ``.png`` (curves, references as horizontal lines).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np

import gemmgan_sc as gg
from gemmgan_sc.models._training import _calibration_method

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
METRICS = ("precision", "recall", "lr_auc", "corr_mse", "frechet", "sd_ratio")


def lr_detect_auc(real: np.ndarray, synth: np.ndarray, seed: int = 0) -> float:
    """5-fold cross-validated ROC AUC of a logistic regression telling ``synth`` from ``real`` rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.vstack([real, synth])
    y = np.r_[np.zeros(len(real)), np.ones(len(synth))]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=folds, scoring="roc_auc").mean())


def score(real_test: np.ndarray, synth: np.ndarray, real_train: np.ndarray) -> dict[str, float]:
    """The held-out scores of one synthetic set (z-scored scale of the training rows)."""
    pr = gg.metrics.precision_recall(real_test, synth, k=10)
    return {"precision": pr["precision"], "recall": pr["recall"], "lr_auc": lr_detect_auc(real_test, synth),
            "corr_mse": gg.metrics.correlation_mse(real_test, synth),
            "frechet": gg.metrics.frechet_distance(real_test, synth, reference=real_train),
            "sd_ratio": gg.metrics.sd_ratio(real_test, synth)}


# ----------------------------------------------------------------------------- cohorts
def tcga_cohort(with_text: bool):
    paths = [SHARED / "tcga_mcat" / f"tcga_{c}_all_clean.csv.gz" for c in ("luad", "blca")]
    if not all(p.is_file() for p in paths):
        raise SystemExit(f"The MCAT tables are missing under {SHARED / 'tcga_mcat'}.")
    adata = gg.datasets.read_mcat(paths)
    if with_text:
        # age and sex only: the tissue source site and the survival fields would give the cohort away
        adata.obs["gender"] = np.where(adata.obs["is_female"].astype(float) > 0.5, "female", "male")
        gg.pp.clinical_to_text(adata, fields=["age", "gender"])
        gg.pp.embed_text(adata, encoder="minilm")
    return adata, None, "cohort", "any"


def demo_cohort(n_samples: int):
    adata = gg.datasets.demo(n_samples=n_samples)
    store = RESULTS / "tmp_convergence_demo.zarr"
    gg.pp.tile_slides(adata, tile_size=64, store=str(store), overwrite=True)
    gg.pp.embed_tiles(adata, encoder="hed-texture")
    gg.pp.embed_text(adata, encoder="minilm")
    return adata, str(store), "disease_type", "log"


# ------------------------------------------------------------------------------ models
def setup(cls, adata, layer, label, scale, store) -> None:
    if cls is gg.GeMMGAN:
        cls.setup_anndata(adata, layer=layer, patch_store=store, labels_keys=[label], expression_scale=scale)
    elif cls in (gg.WGANGP, gg.BetaVAE):
        cls.setup_anndata(adata, layer=layer, expression_scale=scale)
    else:
        cls.setup_anndata(adata, layer=layer, labels_keys=[label], expression_scale=scale)


def held_out_split(n_obs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(test rows, fit rows): a random 20 % held out for ``seed`` (the same rows in every benchmark of a seed).

    Examples
    --------
    >>> test, fit = held_out_split(10, 0)
    >>> len(test), len(fit), sorted(set(test) | set(fit)) == list(range(10))
    (2, 8, True)
    """
    order = np.random.default_rng(1000 + seed).permutation(n_obs)
    n_test = int(round(0.2 * n_obs))
    return np.sort(order[:n_test]), np.sort(order[n_test:])


def synthetic_rows(test_rows: np.ndarray, n_train: int) -> np.ndarray:
    """The test rows whose conditions the synthetic set is drawn from: each in turn, until there are as many as
    training rows (the real-rows ceiling), and at least one per test row.

    Examples
    --------
    >>> synthetic_rows(np.array([7, 8]), 5)
    array([7, 8, 7, 8, 7])
    """
    return np.resize(np.asarray(test_rows), max(len(test_rows), int(n_train)))


def held_out_sets(model, adata, test_rows: np.ndarray, seed: int):
    """(real test, synthetic for :func:`synthetic_rows` of the test rows, real training rows), z-scored with the
    model's statistics.

    ``adata`` holds the test rows; the training rows are the model's own (``model.adata``)."""
    real_train = model.normalize(model._expression(model.adata)[model.split["train"]])
    real_test = model.normalize(model._expression(adata)[test_rows])
    rows = synthetic_rows(test_rows, len(real_train))
    synth = model.sample(adata=adata, indices=rows, n_samples=1, seed=seed)
    return real_test, model.normalize(np.asarray(synth.X)), real_train


def ceiling_scores(real_test: np.ndarray, real_train: np.ndarray) -> dict[str, float]:
    """:func:`score` of the real training rows themselves (all of them, as many as the synthetic set)."""
    return score(real_test, real_train, real_train)


def utility_scores(model, adata, test_rows: np.ndarray, label: str, seed: int) -> dict[str, float]:
    """Train-on-synthetic / test-on-real random-forest accuracy of ``label`` (models that follow labels), with
    the train-on-real accuracy beside it; synthetic profiles are generated from the training rows' labels."""
    if label not in model.registry.labels_keys:
        return {}
    train_rows = model.split["train"]
    synth = model.sample(adata=model.adata, indices=train_rows, seed=seed)
    real_train = model.normalize(model._expression(model.adata)[train_rows])
    real_test = model.normalize(model._expression(adata)[test_rows])
    out = gg.metrics.utility(model.normalize(np.asarray(synth.X)), real_test, classifier="rf", real_train=real_train,
                             seed=seed, synth_labels=synth.obs[label].astype(str).to_numpy(),
                             test_labels=adata.obs[label].astype(str).to_numpy()[test_rows],
                             train_labels=model.adata.obs[label].astype(str).to_numpy()[train_rows])
    return {f"utility_{k}": float(v) for k, v in out.items() if "accuracy" in k}


class CurveCallback(pl.Callback):
    """Scores the model every ``every`` steps, its generator calibrated as it would be at the end."""

    def __init__(self, model, adata, test_rows, every: int, seed: int, calibrate: str | bool | None = None) -> None:
        self.model, self.adata, self.test_rows, self.every, self.seed = model, adata, test_rows, every, seed
        self.calibrate = calibrate
        self.points, self.scoring, self.next = [], 0.0, every

    def on_train_batch_end(self, trainer, plan, outputs, batch, batch_idx) -> None:
        steps = trainer.global_step // plan.optimizer_steps_per_batch
        if steps >= self.next:
            self.next += self.every
            self.evaluate(plan, steps)

    def evaluate(self, plan, steps: int) -> None:
        start = time.perf_counter()
        model = self.model
        # the weights the model would generate with if training ended here (the averaged ones, with ema_decay)
        model.networks, model.is_trained = copy.deepcopy(plan.networks), True
        model.networks.load_state_dict(plan.sampling_state_dict())
        if self.calibrate is not False:  # None: the model's default calibration
            model._calibrate(seed=self.seed, method=self.calibrate)
        real_test, synth, real_train = held_out_sets(model, self.adata, self.test_rows, self.seed)
        row = {"step": int(steps), **score(real_test, synth, real_train)}
        model.calibration = None
        model.networks = plan.networks
        self.scoring += time.perf_counter() - start
        row["time"] = float(model._history[-1]["time"] - self.scoring) if model._history else 0.0
        self.points.append(row)
        print(json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)


def run_model(name: str, adata, test_rows, fit_rows, args, seed: int, layer, label, scale, store) -> dict:
    cls = getattr(gg, name)
    fit = adata[fit_rows].copy()
    setup(cls, fit, layer, label, scale, store)
    model = cls(fit, **({"n_patches": 16, "d_model": 64, "d_ff": 128} if cls is gg.GeMMGAN else {}))
    start = time.perf_counter()
    if cls is gg.GaussianBaseline:
        model.train(seed=seed)
        curve = []
    else:
        kwargs = dict(args.train_kwargs)  # the library's default calibration unless --train-kwargs names one
        if args.max_steps is not None:
            kwargs["max_steps"] = args.max_steps
        method = _calibration_method(kwargs.get("calibrate", True), model.default_calibration)
        cb = CurveCallback(model, adata, test_rows, args.eval_every, seed, method)
        model.train(seed=seed, callbacks=[cb], **kwargs)
        curve = cb.points
    wall = time.perf_counter() - start
    final, raw = {}, {}
    real_test, synth, real_train = held_out_sets(model, adata, test_rows, seed)
    final = score(real_test, synth, real_train)
    if model.calibration is not None:
        cal, model.calibration = model.calibration, None
        raw = score(*held_out_sets(model, adata, test_rows, seed))
        model.calibration = cal
    ceiling = ceiling_scores(real_test, real_train)
    final.update(utility_scores(model, adata, test_rows, label, seed))
    steps = int(model.history["step"].max()) if "step" in model.history else 0
    return {"model": name, "seed": seed, "wall_s": wall, "steps": steps, "final": final, "uncalibrated": raw,
            "real_rows": ceiling, "curve": curve, "train_params": model.train_params}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for metric, ax in zip(METRICS, axes.ravel()):
        for res in results:
            if res["curve"]:
                ax.plot([p["time"] for p in res["curve"]], [p[metric] for p in res["curve"]],
                        marker=".", label=f"{res['model']} s{res['seed']}")
            elif res["model"] == "GaussianBaseline":
                ax.axhline(res["final"][metric], color="grey", ls="--", label="Gaussian floor")
        ceiling = np.mean([r["real_rows"][metric] for r in results])
        ax.axhline(ceiling, color="black", ls=":", label="real training rows")
        ax.set_title(metric)
        ax.set_xlabel("training wall time (s)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=("tcga", "demo"), default="tcga")
    parser.add_argument("--models", nargs="+", default=["GaussianBaseline", "WGANGP", "CondWGANGP", "GeMMGAN",
                                                        "CVAE", "BetaVAE"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max-steps", type=int, default=None, help="default: each model's default budget")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--demo-samples", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--train-kwargs", type=json.loads, default={},
                        help='JSON of extra train() arguments for every trained model, e.g. \'{"ema_decay": null}\'')
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    gg.settings.progress_bar = False
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.cohort == "tcga":
        adata, store, label, scale = tcga_cohort(with_text="GeMMGAN" in args.models)
        layer = None
    else:
        (adata, store, label, scale), layer = demo_cohort(args.demo_samples), "log1p"
    results = []
    for seed in args.seeds:
        test_rows, fit_rows = held_out_split(adata.n_obs, seed)
        for name in args.models:
            res = run_model(name, adata, test_rows, fit_rows, args, seed, layer, label, scale, store)
            print(name, seed, json.dumps({k: round(v, 4) for k, v in res["final"].items()}), flush=True)
            results.append(res)
    out = Path(args.out) if args.out else RESULTS / f"convergence_{args.cohort}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"cohort": args.cohort, "n_obs": adata.n_obs, "n_vars": adata.n_vars, "models": args.models,
               "seeds": args.seeds, "train_kwargs": args.train_kwargs, "results": results}
    out.write_text(json.dumps(gg._io.json_safe(payload), indent=1))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
