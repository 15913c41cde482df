"""A real two-disease cohort for Table 1: TCGA LUAD + BLCA expression from the MCAT tables in ../shared/data.

One row per case (several slides share a case and its expression); ``X`` = the ``<GENE>_rnaseq`` columns present
in both cohorts (already per-gene z-scores, so models need ``expression_scale="any"`` and no gene filter);
``obs["cohort"]`` = LUAD / BLCA (the label). Descriptions are written from the clinical columns with
``gg.pp.clinical_to_text``; the facts that give the cohort away (found by its label-leak check) are excluded, and a
second check confirms that no leak is left. They are embedded with ``gg.pp.embed_text(encoder="minilm")``.
There are no slides: GeMM-GAN runs text-only on it.

The AnnData records ``uns["benchmark"] = {"labels": ["cohort"], "expression_scale": "any", "notes": ...}``, which
benchmarks/table1.py reads with ``--data``.

    python benchmarks/data_tcga.py [--shared ../shared/data] [--out tcga_luad_blca.h5ad]

Exits with status 0 and a message when the shared data folder is absent (nothing to build).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import gemmgan_sc as gg  # noqa: E402
from _tables import _atomic_write_h5ad, cache_dir  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COHORTS = {"LUAD": "tcga_luad_all_clean.csv.gz", "BLCA": "tcga_blca_all_clean.csv.gz"}
#: Clinical columns of the MCAT tables that the descriptions are written from.
CLINICAL = ["age", "is_female", "oncotree_code", "survival_months", "censorship"]
LABEL = "cohort"


def find_tables(shared: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """The two MCAT tables, or ``None`` when the shared data folder (or a table) is absent."""
    root = Path(shared) if shared is not None else SHARED
    paths = {c: root / "tcga_mcat" / f for c, f in COHORTS.items()}
    return paths if all(p.is_file() for p in paths.values()) else None


def read_cases(paths: dict[str, Path], n_per_cohort: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clinical obs, expression) with one row per case, genes = ``_rnaseq`` columns common to all cohorts."""
    frames = {}
    for cohort, path in paths.items():
        df = pd.read_csv(path)
        df = df.drop_duplicates("case_id", keep="first")
        if n_per_cohort is not None:
            df = df.iloc[:n_per_cohort]
        df.insert(0, LABEL, cohort)
        frames[cohort] = df
    common = None
    for df in frames.values():
        genes = [c for c in df.columns if c.endswith("_rnaseq")]
        common = genes if common is None else [g for g in common if g in set(genes)]
    if not common:
        raise ValueError("The cohorts share no <GENE>_rnaseq column.")
    both = pd.concat([df[[LABEL, "case_id", "site", *CLINICAL] + common] for df in frames.values()], ignore_index=True)
    if both["case_id"].duplicated().any():
        raise ValueError("A case_id appears in both cohorts; the tables are not what this script expects.")
    obs = both[[LABEL, "case_id", "site", *CLINICAL]].copy()
    obs.index = obs.pop("case_id").astype(str).to_numpy()
    obs.index.name = None
    obs[LABEL] = pd.Categorical(obs[LABEL], categories=list(paths))
    obs["site"] = obs["site"].astype(str)
    expr = both[common].astype(np.float32)
    expr.index = obs.index
    expr.columns = [c[: -len("_rnaseq")] for c in common]
    return obs, expr


def write_descriptions(adata, exclude_hint: list[str] | None = None) -> dict:
    """Descriptions from the clinical columns, without the facts that leak the cohort.

    First pass: every default fact, with the label-leak check on ``cohort``; the facts it names are excluded in
    the second pass, which must raise no leak warning. Returns what was found and excluded.
    """
    records = adata.obs[CLINICAL].copy()
    labels = {LABEL: adata.obs[LABEL].astype(str).tolist()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gg.pp.clinical_to_text(records, labels=labels)
    leaks = [str(w.message) for w in caught if issubclass(w.category, gg.pp.LabelLeakWarning)]
    flagged: list[str] = []
    for msg in leaks:
        m = re.search(r"exclude=\[([^\]]*)\]", msg)
        if m:
            flagged += [s.strip().strip("'\"") for s in m.group(1).split(",") if s.strip()]
    exclude = sorted(set(flagged) | set(exclude_hint or []))
    with warnings.catch_warnings():
        warnings.simplefilter("error", gg.pp.LabelLeakWarning)
        texts = gg.pp.clinical_to_text(records, exclude=exclude or None, labels=labels)
    adata.obs["text"] = texts.astype(str).to_numpy()
    return {"leak_warnings_first_pass": leaks, "excluded_fields": exclude}


def build_tcga(shared: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
               text_max_length: int = 64, n_per_cohort: int | None = None, log=print):
    """Build (and write to ``out``) the TCGA LUAD + BLCA AnnData; ``None`` when the shared data is absent."""
    import anndata as ad

    paths = find_tables(shared)
    if paths is None:
        log(f"TCGA MCAT tables not found under {shared or SHARED}: nothing to build (skipped).")
        return None
    t0 = time.perf_counter()
    obs, expr = read_cases(paths, n_per_cohort)
    adata = ad.AnnData(expr.to_numpy(), obs=obs, var=pd.DataFrame(index=expr.columns))
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    leak = write_descriptions(adata)
    gg.pp.embed_text(adata, text_key="text", encoder="minilm", max_length=text_max_length)
    text_s = time.perf_counter() - t0
    counts = adata.obs[LABEL].value_counts().to_dict()
    notes = (
        f"TCGA LUAD + BLCA (MCAT tables, real patients): {adata.n_obs} cases ({counts}), {adata.n_vars} genes "
        "(_rnaseq columns common to both cohorts, per-gene z-scores as given: expression_scale='any', no gene "
        f"filter). Descriptions by gg.pp.clinical_to_text from {CLINICAL}; fields excluded because they leak the "
        f"cohort: {leak['excluded_fields']} (the second pass raised no LabelLeakWarning). Text encoder: minilm, "
        f"max_length {text_max_length}. No slides: GeMM-GAN is text-only (conditioning text_cls)."
    )
    adata.uns["benchmark"] = {
        "labels": [LABEL], "expression_scale": "any", "notes": notes,
        "excluded_fields": leak["excluded_fields"], "leak_warnings_first_pass": leak["leak_warnings_first_pass"],
        "source": {c: str(p) for c, p in paths.items()}, "read_s": round(read_s, 2), "text_s": round(text_s, 2),
    }
    if out is not None:
        _atomic_write_h5ad(adata, Path(out))
        log(f"wrote {out}")
    log(notes)
    return adata


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=None, help=f"shared data folder (default {SHARED})")
    p.add_argument("--out", default=None, help="output .h5ad (default <gemmgan-sc cache>/benchmarks/tcga_luad_blca.h5ad)")
    p.add_argument("--text-max-length", type=int, default=64, help="tokens kept per description")
    p.add_argument("--n-per-cohort", type=int, default=None, help="first N cases per cohort (smoke runs)")
    args = p.parse_args(argv)
    gg.settings.progress_bar = False
    out = Path(args.out) if args.out else cache_dir() / "tcga_luad_blca.h5ad"
    return build_tcga(args.shared, out, args.text_max_length, args.n_per_cohort)


if __name__ == "__main__":
    main()
