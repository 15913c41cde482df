"""Which output calibration for image-conditioned GeMM-GAN, chosen without the held-out section (2026-12-03).

Validation inside the training sections of the C2 rotation: train on C3, score C4, and train on C4, score C3
(each time the 200 most variable genes of the training section); the same networks calibrated with "moments"
and with "covariance", scored by gg.metrics.conditional_fidelity (mean of 10 draws) as benchmarks/spatial_her2st.py.

    python benchmarks/results/calibration_study/her2st_validation.py --work /tmp/her2st_cache
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BENCH))
import gemmgan_sc as gg  # noqa: E402
from spatial_her2st import DATA, GAN_TRAIN, GEMMGAN_CPU, LAYER, Rotation, prepare  # noqa: E402


def one_section_rotation(adata, train_section: str, test_section: str, n_genes: int = 200) -> Rotation:
    import anndata as ad

    lib = adata.obs["library_id"].astype(str).to_numpy()
    x = adata.layers[LAYER]
    genes = np.sort(np.argsort(-x[lib == train_section].var(axis=0), kind="stable")[:n_genes])

    def subset(rows):
        part = ad.AnnData(x[rows][:, genes].copy(), obs=adata.obs.iloc[rows].copy(), var=adata.var.iloc[genes].copy())
        for key in adata.obsm:
            part.obsm[key] = adata.obsm[key][rows]
        part.uns["gemmgan"] = {k: adata.uns["gemmgan"][k] for k in ("patch_store", "tile_size", "min_tissue")}
        return part

    return Rotation(f"{train_section}->{test_section}", subset(np.flatnonzero(lib == train_section)),
                    subset(np.flatnonzero(lib == test_section)), adata.uns["gemmgan"]["patch_store"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/her2st_cache"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    gg.settings.progress_bar = False
    adata = prepare(DATA, args.work, num_workers=1)
    out = {}
    for train_section, test_section in (("C3", "C4"), ("C4", "C3")):
        rot = one_section_rotation(adata, train_section, test_section)
        train = rot.train.copy()
        gg.GeMMGAN.setup_anndata(train, patch_store=rot.store, text_key=None)
        model = gg.GeMMGAN(train, **GEMMGAN_CPU).train(seed=0, calibrate=False, **GAN_TRAIN)
        for method in ("moments", "covariance"):
            model._calibrate(seed=0, method=method)
            res = gg.metrics.conditional_fidelity(model, rot.test, indices=rot.test_rows, n_draws=10, seed=0)
            out.setdefault(method, {})[rot.name] = res.summary["pearson_mean"]
            print(rot.name, method, round(res.summary["pearson_mean"], 4), flush=True)
    for method, per in out.items():
        per["mean"] = float(np.mean(list(per.values())))
    print(json.dumps(out, indent=1))
    (Path(__file__).parent / "her2st_validation.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
