"""Issue 18 diagnostic: the covariance calibration with K principal axes, refitted on one ExpressionDiffusion trained
at the defaults on TCGA split 0 of convergence.py (label-conditioned, ``max_time`` given in seconds as the argument),
corr-MSE on the model's validation rows and on the held-out test rows.

    python benchmarks/results/calibration_study/diffusion_axes.py 600   # -> diffusion_axes.json beside this file
"""
import sys, json, time
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
import numpy as np
import torch; torch.set_num_threads(1)
import gemmgan_sc as gg
gg.settings.progress_bar = False
from convergence import tcga_cohort, held_out_split, held_out_sets
adata, layer, label, scale = tcga_cohort(with_text=False)
test_rows, fit_rows = held_out_split(adata.n_obs, 0)
fit = adata[fit_rows].copy()
gg.ExpressionDiffusion.setup_anndata(fit, labels_keys=[label], expression_scale=scale)
m = gg.ExpressionDiffusion(fit)
t0 = time.time(); m.train(seed=0, max_time={"seconds": int(sys.argv[1])}, validate_every=250); print("train", time.time() - t0, flush=True)
val = np.asarray(m.split["validation"])
res = {}
for k in ["none", "moments", 20, 50, 100, 200, 400, 659]:
    if k == "none":
        m.calibration = None
    elif k == "moments":
        m._calibrate(method="moments")
    else:
        m._calibrate(method="covariance", candidates=[(k, 1.0)])  # K axes, the whole residual kept
    rv, sv, tr = held_out_sets(m, m.adata, val, 0)
    rt, st, _ = held_out_sets(m, adata, test_rows, 0)
    res[str(k)] = {"val": gg.metrics.correlation_mse(rv, sv), "test": gg.metrics.correlation_mse(rt, st)}
    print(k, res[str(k)], flush=True)
(HERE / "diffusion_axes.json").write_text(json.dumps({"train_seconds_budget": int(sys.argv[1]), "corr_mse": res}, indent=1))
