"""Sampler settings of one trained diffusion model: DDIM steps, the ancestral sampler and guidance.

Trains ``gg.ExpressionDiffusion`` once on TCGA as ``diffusion.py`` does (its held-out rows, its defaults), then
generates with each sampler setting and scores the profiles twice: on the model's own validation rows (where a
default is chosen) and on the held-out test rows (what is reported). The output calibration fitted at the end of
training (with the default sampler) is re-fitted for each setting, so every setting is calibrated the same way.

    python benchmarks/diffusion_sampling.py [--seed 0] [--threads 1]

Writes ``benchmarks/results/diffusion_sampling_tcga.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gemmgan_sc as gg  # noqa: E402
from _machine import machine_info  # noqa: E402
from convergence import held_out_sets, held_out_split, score  # noqa: E402
from diffusion import load_cohort, train  # noqa: E402

from gemmgan_sc._io import atomic_write_text, json_safe  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: (sampler, n_steps, guidance) settings compared; the first is the model's default
SETTINGS = [("ddim", 50, 0.0), ("ddim", 100, 0.0), ("ddim", 200, 0.0), ("ancestral", 200, 0.0),
            ("ddim", 50, 0.5), ("ddim", 50, 1.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    gg.settings.progress_bar = False
    adata, layer, label, scale, store = load_cohort("tcga")
    test_rows, fit_rows = held_out_split(adata.n_obs, args.seed)
    fit = adata[fit_rows].copy()
    ns = argparse.Namespace(validate_every=250, lr_halving_every=None, max_steps=None,
                            no_early_stopping=False, budget_s=args.budget_s, train_kwargs={}, n_steps=50,
                            guidance=0.0, cohort="tcga")
    model, wall = train("ExpressionDiffusion", fit, label, ns, args.seed, layer, scale, store)
    rows = []
    for sampler, n_steps, guidance in SETTINGS:
        with model.networks.sampling(n_steps=n_steps, guidance=guidance, sampler=sampler):
            model._calibrate(seed=0, method=model.train_params.get("calibrate") or None)
            start = time.perf_counter()
            val = score(*held_out_sets(model, fit, np.asarray(model.split["validation"]), args.seed))
            test = score(*held_out_sets(model, adata, test_rows, args.seed))
            seconds = time.perf_counter() - start
        rows.append({"sampler": sampler, "n_steps": n_steps, "guidance": guidance, "validation": val, "test": test,
                     "sample_s": seconds})
        print(sampler, n_steps, guidance, "val", json.dumps({k: round(v, 4) for k, v in val.items()}),
              "test", json.dumps({k: round(v, 4) for k, v in test.items()}), f"{seconds:.0f} s", flush=True)
    out = Path(args.out) if args.out else RESULTS / "diffusion_sampling_tcga.json"
    payload = {"seed": args.seed, "train_s": wall, "steps": int(model.history["step"].max()),
               "train_params": model.train_params, "rows": rows, "machine": machine_info(),
               "date": time.strftime("%Y-%m-%d %H:%M")}
    atomic_write_text(out, json.dumps(json_safe(payload), indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
