"""Figures of the spatial tutorial (issue 16): GeMM-GAN trained on two her2st sections, generated on the third.

Genes: the 200 most variable (log1p CPM) of the training sections plus three markers (ERBB2 for the HER2+
tumour, COL1A1 for stroma, IGKC for immune / plasma cells: too uniformly expressed in this tumour to be among
the most variable). GeMM-GAN image-only in the CPU configuration of ``benchmarks/spatial_her2st.py``; each held-out
spot's generated profile is the mean of 10 draws from its own tiles.

Writes ``tutorials/figures/spatial_markers.png`` (real vs generated maps on the held-out section),
``tutorials/figures/spatial_fidelity.png`` (per-gene Pearson r histogram, with the ridge reference) and
``benchmarks/results/spatial_figures.json``.

    python benchmarks/spatial_figures.py [--held-out C4] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gemmgan_sc as gg  # noqa: E402
from spatial_her2st import DATA, GAN_TRAIN, GEMMGAN_CPU, LAYER, RESULTS, SECTIONS, prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "tutorials" / "figures"
MARKERS = {"ERBB2": "tumour (HER2)", "COL1A1": "stroma", "IGKC": "immune (plasma cells)"}


def split(adata, held: str, n_genes: int = 200):
    """Training and held-out AnnData on the top-variable genes of training plus the markers (log1p CPM in X)."""
    import anndata as ad

    is_test = (adata.obs["library_id"].astype(str) == held).to_numpy()
    x = adata.layers[LAYER]
    top = np.argsort(-x[~is_test].var(axis=0), kind="stable")[:n_genes]
    markers = [int(adata.var_names.get_loc(g)) for g in MARKERS if g in adata.var_names]
    genes = np.sort(np.unique(np.r_[top, markers]))

    def part(rows):
        out = ad.AnnData(x[rows][:, genes].copy(), obs=adata.obs.iloc[rows].copy(), var=adata.var.iloc[genes].copy())
        out.obsm["spatial"] = adata.obsm["spatial"][rows]
        out.uns["spatial"] = adata.uns["spatial"]
        return out

    return part(np.flatnonzero(~is_test)), part(np.flatnonzero(is_test))


def ridge_r(train, test, rows) -> np.ndarray:
    """Per-gene r of the ridge reference (mean tile features, alpha by leave-one-section-out CV)."""
    from gemmgan_sc.metrics._conditional import column_correlations
    from spatial_her2st import ALPHAS, _choose_alpha, _ridge

    fit_rows = np.flatnonzero(train.obs["n_tiles"].to_numpy() > 0)
    alpha, _ = _choose_alpha(train, fit_rows, ALPHAS)
    fit = _ridge(alpha).fit(train.obsm["X_tile_mean"][fit_rows], train.X[fit_rows])
    return column_correlations(test.X[rows], fit.predict(test.obsm["X_tile_mean"][rows]))


def plot_maps(test, generated: np.ndarray, per_gene, held: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scanpy as sc

    genes = [g for g in MARKERS if g in test.var_names]
    test = test.copy()
    test.layers["generated"] = generated
    fig, axes = plt.subplots(2, len(genes), figsize=(3.6 * len(genes), 7))
    for j, gene in enumerate(genes):
        col = test.var_names.get_loc(gene)
        lo, hi = np.percentile(np.r_[test.X[:, col], generated[:, col]], [2, 98])
        for i, layer in enumerate([None, "generated"]):
            sc.pl.spatial(test, color=gene, layer=layer, library_id=held, ax=axes[i, j], show=False, vmin=lo, vmax=hi,
                          title=f"{gene} ({MARKERS[gene]}): {'real' if layer is None else 'generated'}")
        axes[1, j].set_xlabel(f"per-spot r = {per_gene.loc[gene, 'pearson']:.2f}")
    fig.suptitle(f"Held-out section {held}: real vs GeMM-GAN (mean of 10 draws per spot, image only)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_hist(gem_r: np.ndarray, ridge: np.ndarray, held: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    bins = np.linspace(-0.4, 0.9, 40)
    ax.hist(gem_r, bins=bins, alpha=0.7, label=f"GeMM-GAN (mean {np.nanmean(gem_r):.3f})")
    ax.hist(ridge, bins=bins, alpha=0.5, label=f"ridge on tile means (mean {np.nanmean(ridge):.3f})")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"per-gene Pearson r across held-out spots ({held})")
    ax.set_ylabel("genes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gemmgan_her2st_bench")
    parser.add_argument("--held-out", default="C4", choices=SECTIONS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    gg.settings.progress_bar = False
    args.work.mkdir(parents=True, exist_ok=True)
    adata = prepare(args.data, args.work)
    train, test = split(adata, args.held_out)
    for part in (train, test):
        part.obsm["X_tile_mean"] = adata.obsm["X_tile_mean"][adata.obs_names.get_indexer(part.obs_names)]
        part.uns["gemmgan"] = {k: adata.uns["gemmgan"][k] for k in ("patch_store", "tile_size", "min_tissue")}
    rows = np.flatnonzero(test.obs["n_tiles"].to_numpy() > 0)
    gg.GeMMGAN.setup_anndata(train, patch_store=adata.uns["gemmgan"]["patch_store"], text_key=None)
    start = time.perf_counter()
    model = gg.GeMMGAN(train, **GEMMGAN_CPU).train(seed=args.seed, **GAN_TRAIN)
    seconds = time.perf_counter() - start
    fid = gg.metrics.conditional_fidelity(model, test, indices=rows, n_draws=10, seed=args.seed)
    synth = model.sample(test, indices=rows, n_samples=10, seed=args.seed)
    mean = synth.to_df().groupby(synth.obs["source_obs"].to_numpy()).mean().loc[test.obs_names[rows]]
    ridge = ridge_r(train, test, rows)
    FIGURES.mkdir(parents=True, exist_ok=True)
    plot_maps(test[rows], mean.to_numpy(), fid.per_gene, args.held_out, FIGURES / "spatial_markers.png")
    plot_hist(fid.per_gene["pearson"].to_numpy(), ridge, args.held_out, FIGURES / "spatial_fidelity.png")
    out = {"held_out": args.held_out, "n_genes": int(train.n_vars), "n_spots": int(len(rows)),
           "train_seconds": round(seconds, 1), "gemmgan": fid.summary, "ridge_pearson_mean": float(np.nanmean(ridge)),
           "markers": {g: {"gemmgan_r": float(fid.per_gene.loc[g, "pearson"]),
                           "ridge_r": float(ridge[test.var_names.get_loc(g)])} for g in MARKERS if g in test.var_names}}
    (RESULTS / "spatial_figures.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
