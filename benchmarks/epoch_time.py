"""Seconds per training epoch of GeMM-GAN on a paper-shaped cohort (issue 2's figure).

200 samples x 2,000 genes, 256 tiles x 1024-d per slide, 64 text tokens x 384-d; the default (paper)
configuration and a small one. Prints a table and writes benchmarks/results/epoch_time.json.

    python benchmarks/epoch_time.py [--epochs 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import gemmgan_sc as gg  # noqa: E402
from _machine import machine_info  # noqa: E402

CONFIGS = {
    "default": {},
    "small": dict(d_model=64, n_latent=64, n_patches=64, hidden=(128, 128), d_ff=128, n_heads=4),
}


def cohort(tmp: Path, n=200, genes=2000, tiles=256, patch_dim=1024, tokens=64, text_dim=384, seed=0):
    rng = np.random.default_rng(seed)
    adata = ad.AnnData(np.abs(rng.normal(3, 1, size=(n, genes))).astype(np.float32))
    adata.obs_names = [f"s{i}" for i in range(n)]
    adata.var_names = [f"g{j}" for j in range(genes)]
    adata.obs["slide_id"] = [f"slide-{i}" for i in range(n)]
    store = gg.data.PatchStore(tmp / "p.zarr", mode="w")
    for sid in adata.obs["slide_id"]:
        store.add(sid, rng.normal(size=(tiles, patch_dim)).astype(np.float16))
    adata.obsm["X_text_tokens"] = rng.normal(size=(n, tokens, text_dim)).astype(np.float16)
    adata.obsm["text_mask"] = np.ones((n, tokens), bool)
    return adata, str(store.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "epoch_time.json"))
    args = parser.parse_args()
    gg.settings.progress_bar = False
    import os

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        adata, store = cohort(Path(tmp))
        for name, hp in CONFIGS.items():
            gg.GeMMGAN.setup_anndata(adata, patch_store=store)
            model = gg.GeMMGAN(adata, **hp)
            model.train(max_epochs=1, accelerator=args.device, seed=0)  # warm-up (allocations, first-call costs)
            start = time.perf_counter()
            model.train(max_epochs=args.epochs, accelerator=args.device, seed=0)
            per_epoch = (time.perf_counter() - start) / args.epochs
            results[name] = {"hparams": model.hparams, "seconds_per_epoch": per_epoch,
                             "steps_per_epoch": int(np.ceil(160 / 64))}
            print(f"{name:8s} {per_epoch:8.2f} s/epoch  ({hp or 'paper configuration'})", flush=True)
    out = {"benchmark": "epoch_time", "cohort": "200 x 2000 genes, 256 tiles x 1024-d, 64 tokens x 384-d",
           "epochs_timed": args.epochs, "device": args.device, "results": results, "machine": machine_info(),
           "load_average_before_after": [load_before, os.getloadavg()[0]]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps({k: round(v["seconds_per_epoch"], 3) for k, v in results.items()}))


if __name__ == "__main__":
    main()
