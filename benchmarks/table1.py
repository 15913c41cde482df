"""The paper's Table 1: GeMM-GAN against its competitors, trained and evaluated on one AnnData.

Rows: GeMM-GAN, unconditional WGAN-GP, label-conditioned WGAN-GP, CVAE, and two extra rows: the beta-VAE of RNA-GAN
(``--no-betavae`` leaves it out) and ``gg.ExpressionDiffusion`` (DDPM training, DDIM sampling with 50 steps, no
guidance; conditioned by the same fusion of slide tiles and text as GeMM-GAN, at the same size; ``--no-diffusion``
leaves it out); then two reference rows from ``gg.metrics.evaluate(..., references=["real_rows", "gaussian"])`` on
the same split: real training rows standing in for synthetic data (the ceiling) and ``gg.GaussianBaseline`` fitted
on the training rows (the floor); a last row gives the train-on-real utility. The column "Beats Gaussian floor"
says, for every model, whether its means are at least as close to the real data as the floor's, and names the
metrics where they are not. Every model is trained for ``--epochs`` with the same seed (so the same train/held-out
split), then ``gg.metrics.evaluate`` generates ``--n-runs`` synthetic sets and reports mean ± std.

Data: by default the demo cohort through the real pipeline (gg.datasets.demo -> gg.pp.tile_slides ->
gg.pp.embed_tiles("hed-texture") -> gg.pp.embed_text("minilm")), cached after the first run; ``--data file.h5ad``
for a prepared AnnData (e.g. benchmarks/data_tcga.py's TCGA LUAD + BLCA cohort: its ``uns["benchmark"]`` gives
the labels and expression scale).

Writes <out>.csv (the paper's layout), <out>_long.csv, <out>.md, <out>.png and <out>.json (epochs, seeds,
per-model train and evaluation time, machine).

    python benchmarks/table1.py                      # demo cohort, default budgets, 5 runs
    python benchmarks/table1.py --quick              # smoke run (seconds)
    python benchmarks/table1.py --data tcga.h5ad --epochs 150 --n-runs 3 --out benchmarks/results/table1_tcga
    python benchmarks/table1.py --quick --references       # no reference rows
    python benchmarks/table1.py --quick --no-diffusion --no-betavae --out /tmp/table1_quick   # the paper's rows
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import gemmgan_sc as gg  # noqa: E402
from _machine import machine_info  # noqa: E402
from _tables import (  # noqa: E402
    RESULTS, ModelSpec, apply_quick, budget_note, common_parser, data_setup, diffusion_note, diffusion_spec,
    gemmgan_size, load_for_args, paper_layout, run_specs, write_results,
)


def table1_specs(adata, layer: str | None, scale: str, gemmgan_hparams: dict[str, Any] | None = None,
                 extra: bool = True, diffusion: bool = True) -> list[ModelSpec]:
    """The models of Table 1 (GeMM-GAN, WGAN-GP, conditional WGAN-GP, CVAE; BetaVAE when ``extra``;
    ExpressionDiffusion on GeMM-GAN's conditions and fusion size when ``diffusion``)."""
    base = {"layer": layer, "expression_scale": scale}
    genes: dict = {}
    gemmgan_setup = data_setup(adata, layer, scale)
    specs = [
        ModelSpec("GeMM-GAN", gg.GeMMGAN, gemmgan_setup, {**(gemmgan_hparams or {}), **genes}),
        ModelSpec("WGAN-GP (unconditional)", gg.WGANGP, base, dict(genes), use_labels=False),
        ModelSpec("Conditional WGAN-GP", gg.CondWGANGP, base, dict(genes)),
        ModelSpec("CVAE", gg.CVAE, base, dict(genes)),
    ]
    if extra:
        specs.append(ModelSpec("β-VAE (RNA-GAN, extra)", gg.BetaVAE, base, dict(genes), use_labels=False))
    if diffusion:
        specs.append(diffusion_spec(gemmgan_setup, gemmgan_hparams))
    return specs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common_parser(__doc__)
    parser.add_argument("--no-betavae", action="store_true", help="leave out the extra beta-VAE row")
    parser.add_argument("--no-diffusion", action="store_true", help="leave out the extra diffusion row")
    args = parser.parse_args(argv)
    apply_quick(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    gg.settings.progress_bar = False
    start = time.perf_counter()
    adata, layer, scale, labels, data_name, prep = load_for_args(args)
    specs = table1_specs(adata, layer, scale, gemmgan_size(args), extra=not args.no_betavae,
                         diffusion=not args.no_diffusion)
    long, records = run_specs(specs, adata, args.epochs, args.n_runs, labels, args.classifiers, args.seed,
                               k=args.k, references=args.references)
    label = labels[0] if labels else None
    wide = paper_layout(long, args.classifiers, label)
    gem = records["GeMM-GAN"]
    record = {
        "benchmark": "table1", "data": args.data or "demo (gg.datasets.demo -> tile_slides -> hed-texture -> minilm)",
        "n_obs": int(adata.n_obs), "n_vars": int(adata.n_vars), "layer": layer, "expression_scale": scale,
        "labels": labels, "epochs": args.epochs, "n_runs": args.n_runs, "seed": args.seed, "k": args.k,
        "classifiers": args.classifiers, "gemmgan_conditioning": gem["conditioning"], "references": args.references,
        "data_args": {"n_samples": args.n_samples, "n_genes": args.n_genes, "tile_size": args.tile_size,
                      "text_max_length": args.text_max_length} if not args.data else {},
        "data_notes": adata.uns.get("benchmark", {}).get("notes", ""),
        "preparation_s": prep, "total_s": round(time.perf_counter() - start, 1), "models": records,
        "machine": machine_info(),
    }
    try:
        import os

        record["load_average_end"] = list(os.getloadavg())
    except OSError:
        pass
    notes = [
        f"data: {record['data']} ({adata.n_obs} samples; label for utility: {label}); "
        f"GeMM-GAN conditioning that ran: {gem['conditioning']}",
        f"{budget_note(args.epochs, 'every model')}; {args.n_runs} generation runs (paper: 10), seed {args.seed}",
        f"GeMM-GAN hyperparameters: {gem['hparams']}",
        *diffusion_note(records),
        "F1 of detectability is binary (real vs synthetic); F1 of utility is macro-averaged; "
        "unconditional models have no utility (their profiles carry no labels)",
        "reference rows: real training rows standing in for synthetic data (ceiling; detectability, utility and "
        "privacy on halves of the training rows) and gg.GaussianBaseline fitted on the training rows (floor; "
        + (f"class-conditional on {label}" if label else "unconditional")
        + "); their evaluation time is part of the first model's",
        "Fréchet distance in the top PCs of the z-scored real training rows (50, at most half the held-out rows); "
        "SD ratio = mean synthetic gene sd / "
        "mean real gene sd; Cond. Pearson = mean over genes of the per-gene Pearson r between held-out profiles "
        "and the mean of 10 draws from their conditions (unconditional models: chance level)",
        "Beats Gaussian floor: means at least as close to the real data as the floor's on every headline metric "
        "(AUC near 0.5, SD ratio near 1); otherwise the metrics where the model is worse",
    ]
    if record["data_notes"]:
        notes.append(str(record["data_notes"]))
    out = Path(args.out) if args.out else RESULTS / f"table1_{data_name}"
    paths = write_results(out, long, wide, record, f"Table 1 ({data_name})", args.classifiers, label, notes)
    print((out.with_suffix(".md")).read_text())
    print("wrote", ", ".join(str(p) for p in paths))
    return {"long": long, "wide": wide, "record": record, "paths": paths}


if __name__ == "__main__":
    main()
