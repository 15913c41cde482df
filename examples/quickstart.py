"""A small end-to-end run of gemmgan-sc on the simulated demo cohort (offline, CPU, about a minute or two).

Run: ``python examples/quickstart.py [output folder]``. Writes ``synthetic.h5ad`` and ``umap.png`` there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import scanpy as sc  # noqa: E402
import torch  # noqa: E402

import gemmgan_sc as gg  # noqa: E402


def main(out: Path) -> None:
    torch.set_num_threads(1)  # tiny networks: one thread is fastest on a shared CPU
    gg.settings.seed = 0
    out.mkdir(parents=True, exist_ok=True)

    adata = gg.datasets.demo(n_samples=80, n_genes=400)  # simulated, not real patients
    gg.pp.tile_slides(adata, tile_size=64, max_tiles=16, store=str(out / "patches.zarr"), overwrite=True)
    gg.pp.embed_tiles(adata, encoder="hed-texture")
    gg.pp.embed_text(adata, encoder="minilm", max_length=128)

    gg.GeMMGAN.setup_anndata(adata, layer="log1p", patch_store=str(out / "patches.zarr"),
                             labels_keys=["disease_type", "primary_site"])
    model = gg.GeMMGAN(adata, d_model=32, n_latent=32, n_patches=16, hidden=(128, 128), d_ff=64)
    model.train(max_epochs=10)
    synth = model.sample()
    synth.write_h5ad(out / "synthetic.h5ad")

    table = gg.metrics.evaluate(model, adata, n_runs=2, classifiers=["logreg"], k=5)
    print(table[table["metric"].isin(["precision", "recall", "correlation_mse", "detectability_auc"])])

    both = gg.tl.concat_real_synthetic(adata, synth, layer="log1p")
    sc.pp.scale(both, max_value=10)
    sc.pp.pca(both, n_comps=20)
    sc.pp.neighbors(both)
    sc.tl.umap(both)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    gg.pl.real_vs_synthetic(both, ax=axes[0], show=False)
    gg.pl.real_vs_synthetic(both, color="disease_type", ax=axes[1], show=False)
    fig.savefig(out / "umap.png", dpi=110, bbox_inches="tight")
    print(f"wrote {out / 'synthetic.h5ad'} and {out / 'umap.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "quickstart_output"))
