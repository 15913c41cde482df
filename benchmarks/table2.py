"""The paper's Table 2: GeMM-GAN's conditioning ablations, trained and evaluated on one AnnData.

Rows: ``conditioning=`` "mean_image" (mean of the patch embeddings), "text_cls" (text CLS only),
"patch_transformer" (patch Transformer, no text), "film" (FiLM + Transformer, no cross attention),
"cross_attention" (cross attention, no FiLM), "full"; optionally (``--authors-code``) the full model with the
fusion of the authors' public code; and an extra row, ``gg.ExpressionDiffusion`` conditioned by the full fusion
at GeMM-GAN's size (DDIM sampling, 50 steps: the same conditions, another generator; ``--no-diffusion`` leaves it
out). Same training, seed and evaluation as benchmarks/table1.py, whose options
this script shares (default data: the demo cohort through the real pipeline, which has slides and text).

    python benchmarks/table2.py                        # demo cohort, default budgets, 5 runs
    python benchmarks/table2.py --quick                # smoke run
    python benchmarks/table2.py --ablations text_cls full --epochs 50
    python benchmarks/table2.py --quick --no-diffusion --out /tmp/table2_quick
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

#: conditioning -> row name (the paper's Table 2 order).
ABLATIONS = {
    "mean_image": "Mean image embedding",
    "text_cls": "Text CLS only",
    "patch_transformer": "Patch Transformer (image only)",
    "film": "FiLM + Transformer (no cross attention)",
    "cross_attention": "Cross attention (no FiLM)",
    "full": "Full GeMM-GAN",
}
#: Row name of the extra diffusion row (the full fusion, another generator).
DIFFUSION_ROW_T2 = "Diffusion, full fusion (DDIM, extra)"


def table2_specs(adata, layer: str | None, scale: str, hparams: dict[str, Any] | None = None,
                 ablations: list[str] | None = None, authors_code: bool = False,
                 diffusion: bool = True) -> list[ModelSpec]:
    """One GeMM-GAN spec per ablation (and the authors' fusion variant of the full model when asked), then the
    diffusion model on the full fusion when ``diffusion``."""
    chosen = list(ABLATIONS) if ablations is None else list(ablations)
    unknown = [a for a in chosen if a not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; choose from {list(ABLATIONS)}.")
    setup = data_setup(adata, layer, scale)
    has_image, has_text = setup["patch_store"] is not None, setup.get("text_key", "X_text_tokens") is not None
    if not (has_image and has_text):
        raise ValueError("Table 2 compares image, text and fused conditionings: the AnnData needs both text tokens "
                         "and a patch store (the demo cohort has both).")
    base = dict(hparams or {})
    specs = [ModelSpec(ABLATIONS[a], gg.GeMMGAN, setup, {**base, "conditioning": a}) for a in chosen]
    if authors_code:
        specs.append(ModelSpec("Full, authors' code fusion", gg.GeMMGAN, setup,
                               {**base, "conditioning": "full", "fusion_variant": "authors_code"}))
    if diffusion:
        specs.append(diffusion_spec(setup, base, name=DIFFUSION_ROW_T2))
    return specs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common_parser(__doc__)
    parser.add_argument("--ablations", nargs="+", default=None, choices=list(ABLATIONS),
                        help="conditionings to run (default: all six)")
    parser.add_argument("--authors-code", action="store_true",
                        help="add a row: full model with the fusion of the authors' public code")
    parser.add_argument("--no-diffusion", action="store_true", help="leave out the extra diffusion row")
    args = parser.parse_args(argv)
    apply_quick(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    gg.settings.progress_bar = False
    start = time.perf_counter()
    adata, layer, scale, labels, data_name, prep = load_for_args(args)
    specs = table2_specs(adata, layer, scale, gemmgan_size(args), args.ablations, args.authors_code,
                         diffusion=not args.no_diffusion)
    long, records = run_specs(specs, adata, args.epochs, args.n_runs, labels, args.classifiers, args.seed,
                               k=args.k, references=args.references)
    label = labels[0] if labels else None
    wide = paper_layout(long, args.classifiers, label)
    record = {
        "benchmark": "table2", "data": args.data or "demo (gg.datasets.demo -> tile_slides -> hed-texture -> minilm)",
        "n_obs": int(adata.n_obs), "n_vars": int(adata.n_vars), "layer": layer, "expression_scale": scale,
        "labels": labels, "epochs": args.epochs, "n_runs": args.n_runs, "seed": args.seed, "k": args.k,
        "classifiers": args.classifiers,
        "data_args": {"n_samples": args.n_samples, "n_genes": args.n_genes, "tile_size": args.tile_size,
                      "text_max_length": args.text_max_length} if not args.data else {},
        "preparation_s": prep, "total_s": round(time.perf_counter() - start, 1), "models": records,
        "machine": machine_info(),
    }
    try:
        import os

        record["load_average_end"] = list(os.getloadavg())
    except OSError:
        pass
    first = next(iter(records.values()))
    notes = [
        f"data: {record['data']} ({adata.n_obs} samples; label for utility: {label})",
        f"{budget_note(args.epochs, 'every ablation')}; {args.n_runs} generation runs (paper: 10), seed {args.seed}",
        "GeMM-GAN hyperparameters (besides conditioning): "
        + str({k: v for k, v in first["hparams"].items() if k not in ("conditioning", "fusion_variant")}),
        "F1 of detectability is binary (real vs synthetic); F1 of utility is macro-averaged",
        *diffusion_note(records, DIFFUSION_ROW_T2),
    ]
    out = Path(args.out) if args.out else RESULTS / f"table2_{data_name}"
    paths = write_results(out, long, wide, record, f"Table 2: GeMM-GAN ablations ({data_name})", args.classifiers,
                          label, notes)
    print(out.with_suffix(".md").read_text())
    print("wrote", ", ".join(str(p) for p in paths))
    return {"long": long, "wide": wide, "record": record, "paths": paths}


if __name__ == "__main__":
    main()
