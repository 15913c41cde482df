"""Variants of the quantile step on one trained model (saved under /tmp/qmodels)."""
import sys, json, time, os, numpy as np, torch
sys.path.insert(0, '/work/main/benchmarks'); sys.path.insert(0, '/work/notes/exp')
torch.set_num_threads(1)
import gemmgan_sc as gg
import convergence as C
from quantile_cal_lib import QCal, Chain, RawChain, Floor
gg.settings.progress_bar = False
name = sys.argv[1]; variants = sys.argv[2].split(',')
adata, store, label, scale = C.tcga_cohort(with_text='GeMMGAN' in name)
seed = int(os.environ.get('SEED', 0))
order = np.random.default_rng(1000 + seed).permutation(adata.n_obs); n_test = int(round(0.2 * adata.n_obs))
test_rows, fit_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
cls = getattr(gg, name); fit = adata[fit_rows].copy(); C.setup(cls, fit, None, label, scale, store)
path = f'/tmp/qmodels/{name}_{seed}'
if os.path.exists(path):
    model = cls.load(path, fit)
else:
    model = cls(fit, **({"n_patches": 16, "d_model": 64, "d_ff": 128} if cls is gg.GeMMGAN else {}))
    model.train(seed=seed, calibrate=True); model.save(path, overwrite=True)
base = model.calibration
train = model.split['train']; rows = np.resize(train, 8192)
real = model.scaler.transform(model._expression(model.adata)[train])
codes = model._label_codes(model.adata) if model._uses('labels') else None
groups = (None, None) if codes is None else (codes[rows], codes[train])
model.calibration = None
zraw = model._generate(model._make_bank(model.adata, with_expression=False), rows, seed, 1024, model._sampling_device(None))
model.calibration = base
z = model._generate(model._make_bank(model.adata, with_expression=False), rows, seed, 1024, model._sampling_device(None))
for v in variants:
    if v == 'moments': model.calibration = base
    elif v.startswith('f'):
        model.calibration = Floor(base, z, real, *groups, thr=float(v[1:]))
    elif v.startswith('r'):
        model.calibration = RawChain(base, QCal.fit(zraw, real, *groups, min_mode=float(v[1:])))
    else:
        thr = float(v)   # mode fraction threshold; 0 = all genes
        model.calibration = Chain(base, QCal.fit(z, real, *groups, min_mode=thr))
    r = C.score(*C.held_out_sets(model, adata, test_rows, seed)); r.update(C.utility_scores(model, adata, test_rows, label, seed))
    print(name, seed, v, json.dumps({k: round(v, 4) for k, v in r.items()}), flush=True)
