"""Issue 18 diagnostic, the control of diffusion_axes.py: the covariance calibration with K axes fitted on the
GaussianBaseline's own samples (TCGA split 0 of convergence.py), corr-MSE on its validation rows and the test rows.

    python benchmarks/results/calibration_study/gaussian_axes.py   # -> gaussian_axes.json beside this file
"""
import sys, json
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
import numpy as np
import gemmgan_sc as gg
from convergence import tcga_cohort, held_out_split, setup, held_out_sets
import torch; torch.set_num_threads(1)
adata, layer, label, scale = tcga_cohort(with_text=False)
test_rows, fit_rows = held_out_split(adata.n_obs, 0)
fit = adata[fit_rows].copy()
setup(gg.GaussianBaseline, fit, layer, label, scale, None)
m = gg.GaussianBaseline(fit).train(seed=0)
out = {}
for how in ["none", 20, 50, 100, 200, 400]:
    if how == "none":
        m.calibration = None
    else:
        m._calibrate(method="covariance", candidates=[(how, 1.0)])  # K axes, the whole residual kept
    rt, sy, tr = held_out_sets(m, adata, test_rows, 0)
    rv, sv, _ = held_out_sets(m, m.adata, np.asarray(m.split["validation"]), 0)
    out[str(how)] = {"val": gg.metrics.correlation_mse(rv, sv), "test": gg.metrics.correlation_mse(rt, sy)}
    print(how, out[str(how)], flush=True)
ceil_t = gg.metrics.correlation_mse(rt, tr); ceil_v = gg.metrics.correlation_mse(rv, tr)
print("ceiling", ceil_v, ceil_t)
out["real training rows"] = {"val": ceil_v, "test": ceil_t}
(HERE / "gaussian_axes.json").write_text(json.dumps({"corr_mse": out}, indent=1))
