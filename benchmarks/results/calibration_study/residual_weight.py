"""Issue 18 / 14 study: the covariance calibration's axes K and residual weight w (the share of each profile's
component outside the K axes that is kept; the per-gene noise refills the rest), refitted on one trained model on
TCGA split ``SPLIT`` of convergence.py; held-out scores on the model's validation rows and on the test rows.

    python benchmarks/results/calibration_study/residual_weight.py MODEL SPLIT SECONDS [SAVED_DIR]
    # e.g. ExpressionDiffusion 0 600 /tmp/diff_s0: trains at the defaults (max_time SECONDS) and saves there,
    # or loads SAVED_DIR when it holds a model; -> residual_weight_MODEL_sSPLIT.json beside this file
"""
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import gemmgan_sc as gg  # noqa: E402
from convergence import held_out_split, score, setup, synthetic_rows, tcga_cohort  # noqa: E402
from gemmgan_sc.models._calibration import OutputCalibration  # noqa: E402

torch.set_num_threads(1)
gg.settings.progress_bar = False
name, split, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
saved = Path(sys.argv[4]) if len(sys.argv) > 4 else None
adata, layer, label, scale = tcga_cohort(with_text=False)
test_rows, fit_rows = held_out_split(adata.n_obs, split)
cls = getattr(gg, name)
if saved is not None and (saved / "model.json").is_file():
    model = cls.load(saved)
else:
    fit = adata[fit_rows].copy()
    setup(cls, fit, layer, label, scale, None)
    model = cls(fit)
    model.train(seed=split, max_time={"seconds": seconds})
    if saved is not None:
        model.save(saved, overwrite=True, save_anndata=True)
model.calibration = None
train, val = np.asarray(model.split["train"]), np.asarray(model.split["validation"])
bank, device = model._make_bank(model.adata, with_expression=False), model._sampling_device(None)
codes_fit, codes_all = model._label_codes(model.adata), model._label_codes(adata)
labelled = model._uses("labels")


def generated(ad, rows, seed, codes):
    bank_ = bank if ad is model.adata else model._make_bank(ad, with_expression=False)
    z = model._generate(bank_, rows, seed, 1024, device)
    return z, (codes[rows] if labelled else None), np.random.default_rng(seed).standard_normal(z.shape)


start = time.time()
fit_draws = np.resize(train, max(1024, 2 * len(train)))
z_fit, g_fit, _ = generated(model.adata, fit_draws, 0, codes_fit)
sets = {"validation": (model.scaler.transform(model._expression(model.adata)[val]),
                       *generated(model.adata, synthetic_rows(val, len(train)), 1, codes_fit)),
        "test": (model.scaler.transform(model._expression(adata)[test_rows]),
                 *generated(adata, synthetic_rows(test_rows, len(train)), 2, codes_all))}
real_train = model.scaler.transform(model._expression(model.adata)[train])
print(f"generated in {time.time() - start:.0f} s", flush=True)
results = []
for k in (10, 20, 50, 100):
    for w in (1.0, 0.75, 0.5, 0.25, 0.0):
        cal = OutputCalibration.fit(z_fit, real_train, g_fit, codes_fit[train] if labelled else None,
                                    method="covariance", n_components=k, residual_weight=w)
        row = {"n_components": k, "residual_weight": w}
        for part, (real, z, groups, noise) in sets.items():
            row[part] = score(real, cal.apply(z, noise, groups), real_train)
        results.append(row)
        print(k, w, " | ".join(f"{p}: corr {row[p]['corr_mse']:.5f} auc {row[p]['lr_auc']:.3f} P {row[p]['precision']:.3f} "
                                f"R {row[p]['recall']:.3f}" for p in sets), flush=True)
out = HERE / f"residual_weight_{name}_s{split}.json"
out.write_text(json.dumps({"model": name, "split": split, "train_seconds_budget": seconds,
                           "steps": int(model.history["step"].max()), "results": results}, indent=1))
