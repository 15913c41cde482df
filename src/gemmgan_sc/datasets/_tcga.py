"""Real TCGA cohorts through the GDC API: STAR counts (TPM), clinical records and slides."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._settings import logger, settings
from ._cache import resolve_cache_dir
from ._gdc import GDC_API, GDCClient, GDCError
from ..pp._clinical import clinical_to_text
from ..pp._clinical._records import is_na as _is_na

_EXPR_FIELDS = [
    "file_id", "file_name", "md5sum", "file_size", "cases.case_id", "cases.submitter_id",
    "cases.project.project_id", "cases.samples.sample_type", "cases.samples.submitter_id",
]
_SLIDE_FIELDS = [*_EXPR_FIELDS, "experimental_strategy", "data_format"]
_CASE_FIELDS = ["case_id", "submitter_id", "project.project_id", "disease_type", "primary_site"]
_CASE_EXPAND = ["diagnoses", "demographic", "exposures", "diagnoses.treatments"]
_CATEGORICAL = ("project_id", "disease_type", "primary_site", "sex", "stage", "grade", "smoking_status",
                "vital_status", "race", "ethnicity", "sample_type")


def _f_in(field: str, values: Sequence[str]) -> dict:
    return {"op": "in", "content": {"field": field, "value": list(values)}}


def read_star_counts(path: str | os.PathLike, gene_types: Sequence[str] | None = ("protein_coding",)) -> pd.DataFrame:
    """Read a GDC "STAR - Counts" gene-expression table.

    Skips the ``# gene-model:`` comment line and the ``N_unmapped``/``N_multimapping``/
    ``N_noFeature``/``N_ambiguous`` summary rows, and keeps the genes of ``gene_types``
    (``None``: all). Returns columns ``gene_id, gene_name, gene_type, unstranded, tpm_unstranded``.
    """
    with open(path, encoding="utf-8") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    from io import StringIO

    df = pd.read_csv(StringIO("".join(lines)), sep="\t", dtype={"gene_id": str, "gene_name": str, "gene_type": str})
    need = {"gene_id", "gene_name", "gene_type", "unstranded", "tpm_unstranded"}
    if not need <= set(df.columns):
        raise ValueError(
            f"{path} is not a GDC STAR - Counts table: columns {sorted(need - set(df.columns))} are missing "
            f"(found {list(df.columns)[:10]})."
        )
    df = df[~df["gene_id"].str.startswith("N_")]
    if gene_types is not None:
        df = df[df["gene_type"].isin(list(gene_types))]
    return df[["gene_id", "gene_name", "gene_type", "unstranded", "tpm_unstranded"]].reset_index(drop=True)


def _first(items: Any) -> dict:
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


def _clean(value: Any) -> Any:
    return np.nan if _is_na(value) else value


def _smoking(status: Any) -> Any:
    s = str(status).lower()
    if _is_na(status):
        return np.nan
    if "non-smoker" in s or "never" in s:
        return "never"
    if "reformed" in s or "former" in s:
        return "former"
    if "current" in s:
        return "current"
    return np.nan


def _flatten_case(hit: dict) -> dict:
    """Harmonised and raw clinical fields of one GDC ``cases`` hit."""
    demo = hit.get("demographic") or {}
    diags = hit.get("diagnoses") or []
    primary = [d for d in diags if str(d.get("diagnosis_is_primary_disease", "")).lower() == "true"]
    diag = (primary or diags or [{}])[0]
    expo = _first(hit.get("exposures"))
    treat = sorted({
        str(t.get("treatment_type")) for d in diags for t in (d.get("treatments") or [])
        if str(t.get("treatment_or_therapy", "")).lower() == "yes" and not _is_na(t.get("treatment_type"))
    })
    age_days = diag.get("age_at_diagnosis")
    age = float(age_days) / 365.25 if not _is_na(age_days) else _clean(demo.get("age_at_index"))
    return {
        "age": float(np.round(age, 1)) if not _is_na(age) else np.nan,
        "sex": _clean(demo.get("gender")),
        "stage": _clean(diag.get("ajcc_pathologic_stage")),
        "grade": _clean(diag.get("tumor_grade")),
        "smoking_status": _smoking(expo.get("tobacco_smoking_status")),
        "pack_years": pd.to_numeric(_clean(expo.get("pack_years_smoked")), errors="coerce"),
        "vital_status": _clean(demo.get("vital_status")),
        "treatments": "; ".join(treat) if treat else np.nan,
        "primary_diagnosis": _clean(diag.get("primary_diagnosis")),
        "race": _clean(demo.get("race")),
        "ethnicity": _clean(demo.get("ethnicity")),
        "days_to_death": pd.to_numeric(_clean(demo.get("days_to_death")), errors="coerce"),
        "days_to_last_follow_up": pd.to_numeric(_clean(diag.get("days_to_last_follow_up")), errors="coerce"),
        "ajcc_pathologic_t": _clean(diag.get("ajcc_pathologic_t")),
        "ajcc_pathologic_n": _clean(diag.get("ajcc_pathologic_n")),
        "ajcc_pathologic_m": _clean(diag.get("ajcc_pathologic_m")),
        "tissue_or_organ_of_origin": _clean(diag.get("tissue_or_organ_of_origin")),
        "morphology": _clean(diag.get("morphology")),
        "tobacco_smoking_status": _clean(expo.get("tobacco_smoking_status")),
    }


def _case_of(hit: dict) -> dict:
    cases = hit.get("cases") or []
    if not cases:
        raise GDCError(f"GDC file {hit.get('file_id')} has no case attached; cannot place it in the cohort.")
    return cases[0]


def _sample_id(hit: dict) -> str:
    samples = _case_of(hit).get("samples") or [{}]
    return str(samples[0].get("submitter_id", ""))


def _slide_id(file_name: str) -> str:
    stem = re.sub(r"\.(svs|tiff?|ndpi|mrxs)$", "", file_name, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem)


def tcga(
    project_ids: str | Sequence[str],
    n_cases: int | None = None,
    data_dir: str | os.PathLike | None = None,
    slides: bool = True,
    *,
    base_url: str = GDC_API,
    sample_types: Sequence[str] = ("Primary Tumor",),
    slide_types: Sequence[str] = ("Diagnostic Slide", "Tissue Slide"),
    gene_types: Sequence[str] | None = ("protein_coding",),
    timeout: float = 60.0,
):
    """Download a real TCGA cohort from the NCI GDC API and build a paired AnnData.

    For each project: open-access "STAR - Counts" gene-expression files of ``sample_types``
    samples (one per case), the clinical record of each case (``cases`` endpoint with diagnoses,
    demographic, exposures and treatments), and, with ``slides=True``, one slide per case (SVS,
    ``slide_types`` in order of preference, the slide of the expression sample first). Files are
    downloaded with pooch and checked against GDC's md5; files already present with the right md5
    are not fetched again, so an interrupted call resumes. Query answers are cached in
    ``<data_dir>/_gdc/``: when GDC is unreachable the call runs from the cache and the files on disk.

    Slides are large (often 0.5-3 GB each); try ``n_cases`` small first.

    Parameters
    ----------
    project_ids
        GDC project ids, e.g. ``"TCGA-LUAD"`` or ``["TCGA-LUAD", "TCGA-BLCA"]``.
    n_cases
        Keep at most this many cases per project (the first by case barcode); ``None``: all.
    data_dir
        Download folder. Default: ``<cache>/tcga`` where ``<cache>`` is ``GEMMGAN_SC_CACHE`` or
        ``pooch.os_cache("gemmgan-sc")``. Files go to ``expression/`` and ``slides/``.
    slides
        Download one slide per case and fill ``obs["slide_path"]``; cases without a slide are
        dropped (with a warning). ``False``: expression and clinical data only.
    base_url
        Root of the GDC API (tests point it at a local server).
    sample_types
        GDC sample types to keep for the expression (``cases.samples.sample_type``).
    slide_types
        GDC ``experimental_strategy`` values of acceptable slides, most preferred first.
    gene_types
        GENCODE gene types to keep (``None``: all, including non-coding).
    timeout
        Seconds to wait for each answer of the server.

    Returns
    -------
    AnnData: ``X`` = log2(TPM + 1) (float32, from ``tpm_unstranded``), ``layers["log1p"]`` (the
    same), ``layers["counts"]`` (``unstranded`` read counts); ``var_names`` gene names (made
    unique), ``var["gene_id"]`` (Ensembl with version), ``var["gene_type"]``; ``obs_names`` case
    barcodes; ``obs``: ``case_id``, ``project_id``, ``disease_type``, ``primary_site``,
    ``sample_id``, ``sample_type``, ``expression_file_id``, ``slide_id``, ``slide_path``,
    ``slide_file_id`` (with slides), ``text`` (written by :func:`gemmgan_sc.pp.clinical_to_text`
    from the GDC case JSON, default fields: it names the diagnosis and site, so rewrite it with
    ``exclude=`` before predicting those) and the
    clinical fields (``age`` in years, ``sex``, ``stage``, ``grade``, ``smoking_status``,
    ``pack_years``, ``vital_status``, ``treatments``, and raw GDC fields such as
    ``primary_diagnosis``, ``ajcc_pathologic_t``, ``days_to_death``). GDC's "not reported",
    "--", "Unknown" and the other missing-value codes that ``clinical_to_text`` knows become
    missing values. ``uns["gemmgan_tcga"]`` records the parameters.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> adata = gg.datasets.tcga(["TCGA-LUAD", "TCGA-BLCA"], n_cases=20)  # doctest: +SKIP
    >>> adata.obs[["project_id", "disease_type", "slide_path"]].head()  # doctest: +SKIP
    """
    project_ids = _check_args(project_ids, n_cases, slides, base_url, sample_types, slide_types, gene_types)
    import anndata as ad

    root = resolve_cache_dir(None, "tcga") if data_dir is None else resolve_cache_dir(data_dir, ".", name="data_dir")
    client = GDCClient(base_url, root, timeout=timeout)
    chosen: list[tuple[dict, dict | None]] = []  # (expression hit, slide hit)
    for pid in project_ids:
        chosen.extend(_choose_files(client, pid, n_cases, slides, sample_types, slide_types))
    cases = _case_records(client, chosen)
    tables = _read_expression(client, root, chosen, gene_types)
    slide_paths = _download_slides(client, root, chosen) if slides else None
    X = np.log2(np.clip(np.stack([t["tpm_unstranded"].to_numpy(dtype=np.float64) for t in tables]), 0.0, None) + 1.0)
    X = X.astype(np.float32)
    adata = ad.AnnData(X=X, obs=_obs(chosen, cases, slide_paths), var=_var(tables[0]))
    adata.layers["log1p"] = X.copy()
    adata.layers["counts"] = np.stack([t["unstranded"].to_numpy(dtype=np.float32) for t in tables])
    adata.uns["gemmgan_tcga"] = {
        "params": {
            "project_ids": list(project_ids),
            "n_cases": -1 if n_cases is None else int(n_cases),
            "data_dir": str(root),
            "slides": bool(slides),
            "base_url": base_url,
            "sample_types": list(sample_types),
            "slide_types": list(slide_types),
            "gene_types": list(gene_types) if gene_types is not None else ["all"],
        },
        "scale": "log2(TPM + 1) from tpm_unstranded",
        "source": "NCI Genomic Data Commons (GDC), open access",
        "offline_cache_used": bool(client.used_cache),
    }
    return adata


def _check_args(project_ids, n_cases, slides, base_url, sample_types, slide_types, gene_types) -> list[str]:
    """Validate the arguments of :func:`tcga`; return the project ids, stripped, without repeats."""
    if isinstance(project_ids, str):
        project_ids = [project_ids]
    if not isinstance(project_ids, Sequence) or not project_ids or not all(
        isinstance(p, str) and p.strip() for p in project_ids
    ):
        raise ValueError(f"project_ids must be a GDC project id or a non-empty list of them (e.g. 'TCGA-LUAD'), got {project_ids!r}.")
    if n_cases is not None and (isinstance(n_cases, bool) or not isinstance(n_cases, (int, np.integer)) or n_cases < 1):
        raise ValueError(f"n_cases must be a positive int or None, got {n_cases!r}.")
    if not isinstance(slides, (bool, np.bool_)):
        raise TypeError(f"slides must be True or False, got {slides!r}.")
    if not isinstance(base_url, str) or not re.match(r"^https?://", base_url):
        raise ValueError(f"base_url must be an http(s) URL such as {GDC_API!r}, got {base_url!r}.")
    for name, seq in (("sample_types", sample_types), ("slide_types", slide_types)):
        if isinstance(seq, str) or not seq or not all(isinstance(s, str) for s in seq):
            raise ValueError(f"{name} must be a non-empty list of strings, got {seq!r}.")
    if gene_types is not None and (isinstance(gene_types, str) or not all(isinstance(s, str) for s in gene_types)):
        raise ValueError(f"gene_types must be a list of GENCODE gene types or None, got {gene_types!r}.")
    return list(dict.fromkeys(p.strip() for p in project_ids))


def _open_files(pid: str, *more: dict) -> dict:
    """GDC filter: the open-access files of project ``pid`` that also pass ``more``."""
    return {"op": "and", "content": [_f_in("cases.project.project_id", [pid]), _f_in("access", ["open"]), *more]}


def _expression_by_case(client: GDCClient, pid: str, sample_types: Sequence[str]) -> dict[str, dict]:
    """case_id -> its STAR - Counts file hit (the first by sample barcode, then file name)."""
    expr = client.query(
        "files",
        _open_files(pid, _f_in("data_type", ["Gene Expression Quantification"]),
                    _f_in("analysis.workflow_type", ["STAR - Counts"]),
                    _f_in("cases.samples.sample_type", list(sample_types))),
        _EXPR_FIELDS,
    )
    if not expr:
        raise ValueError(
            f"GDC has no open STAR - Counts expression files for project {pid!r} with sample types "
            f"{list(sample_types)}: check the project id (e.g. 'TCGA-LUAD'; list them at "
            f"https://portal.gdc.cancer.gov/projects) and sample_types."
        )
    by_case: dict[str, dict] = {}
    for hit in sorted(expr, key=lambda h: (_sample_id(h), h.get("file_name", ""))):
        by_case.setdefault(_case_of(hit)["case_id"], hit)
    return by_case


def _slide_by_case(client: GDCClient, pid: str, by_case: dict[str, dict], slide_types: Sequence[str]) -> dict[str, dict]:
    """case_id -> its slide hit: the most preferred type, then the slide of the expression sample, then by name."""
    slide_hits = client.query(
        "files",
        _open_files(pid, _f_in("data_type", ["Slide Image"]), _f_in("experimental_strategy", list(slide_types))),
        _SLIDE_FIELDS,
    )
    rank = {s: k for k, s in enumerate(slide_types)}
    slide_of: dict[str, dict] = {}
    for cid, ehit in by_case.items():
        sample_prefix = _sample_id(ehit)[:15]
        cands = [h for h in slide_hits if _case_of(h).get("case_id") == cid]
        cands.sort(key=lambda h: (rank.get(h.get("experimental_strategy"), 99),
                                  not _sample_id(h).startswith(sample_prefix), h.get("file_name", "")))
        if cands:
            slide_of[cid] = cands[0]
    missing = [c for c in by_case if c not in slide_of]
    if missing:
        logger.warning("%s: %d of %d cases have no %s slide and are left out.", pid, len(missing),
                       len(by_case), " or ".join(slide_types))
    if not slide_of:
        raise ValueError(f"No case of {pid!r} has both expression and a slide of types {list(slide_types)}.")
    return slide_of


def _choose_files(client: GDCClient, pid: str, n_cases: int | None, slides: bool, sample_types: Sequence[str],
                  slide_types: Sequence[str]) -> list[tuple[dict, dict | None]]:
    """(expression hit, slide hit or None) of the cases kept for project ``pid``, by case barcode."""
    by_case = _expression_by_case(client, pid, sample_types)
    slide_of = _slide_by_case(client, pid, by_case, slide_types) if slides else {}
    keep = sorted((h for c, h in by_case.items() if not slides or c in slide_of),
                  key=lambda h: _case_of(h).get("submitter_id", ""))
    if n_cases is not None:
        keep = keep[: int(n_cases)]
    return [(h, slide_of.get(_case_of(h)["case_id"])) for h in keep]


def _case_records(client: GDCClient, chosen: list[tuple[dict, dict | None]]) -> dict[str, dict]:
    """case_id -> the clinical record (GDC ``cases`` hit) of every chosen case."""
    case_ids = [_case_of(h)["case_id"] for h, _ in chosen]
    case_hits = client.query("cases", _f_in("case_id", case_ids), _CASE_FIELDS, expand=_CASE_EXPAND)
    case_by_id = {c["case_id"]: c for c in case_hits}
    lost = [c for c in case_ids if c not in case_by_id]
    if lost:
        raise GDCError(f"GDC returned no clinical record for {len(lost)} case(s), e.g. {lost[:3]}.")
    return case_by_id


def _read_expression(client: GDCClient, root: Path, chosen: list[tuple[dict, dict | None]],
                     gene_types: Sequence[str] | None) -> list[pd.DataFrame]:
    """The STAR - Counts table of every chosen case (downloaded when missing), all with one gene list."""
    from tqdm.auto import tqdm

    tables = []
    for ehit, _ in tqdm(chosen, desc="expression files", disable=not settings.progress_bar):
        path = client.download(ehit["file_id"], ehit["file_name"], ehit.get("md5sum"), root / "expression", False)
        tables.append(read_star_counts(path, gene_types))
    genes = tables[0]["gene_id"]
    for k, t in enumerate(tables):
        if not t["gene_id"].equals(genes):
            raise ValueError(
                f"Expression file {chosen[k][0]['file_name']} has a different gene list than "
                f"{chosen[0][0]['file_name']}; mixing GENCODE versions is not supported."
            )
    return tables


def _download_slides(client: GDCClient, root: Path, chosen: list[tuple[dict, dict | None]]) -> list[str]:
    from tqdm.auto import tqdm

    bar = settings.progress_bar
    paths = []
    for _, shit in tqdm(chosen, desc="slides", disable=not bar):
        p = client.download(shit["file_id"], shit["file_name"], shit.get("md5sum"), root / "slides", bar)
        paths.append(str(Path(p).resolve()))
    return paths


def _obs_row(ehit: dict, shit: dict | None, case: dict, slide_path: str | None) -> dict[str, Any]:
    ref = _case_of(ehit)
    samples = ref.get("samples") or [{}]
    row: dict[str, Any] = {
        "case_id": case["case_id"],
        "submitter_id": case.get("submitter_id", ref.get("submitter_id")),
        "project_id": (case.get("project") or {}).get("project_id") or (ref.get("project") or {}).get("project_id"),
        "disease_type": _clean(case.get("disease_type")),
        "primary_site": _clean(case.get("primary_site")),
        "sample_id": samples[0].get("submitter_id"),
        "sample_type": samples[0].get("sample_type"),
        "expression_file_id": ehit["file_id"],
    }
    if slide_path is not None:
        row.update(slide_id=_slide_id(shit["file_name"]), slide_path=slide_path, slide_file_id=shit["file_id"])
    row.update(_flatten_case(case))
    return row


def _obs(chosen: list[tuple[dict, dict | None]], cases: dict[str, dict], slide_paths: list[str] | None) -> pd.DataFrame:
    """One row per chosen case: ids, files, the flattened clinical fields and the description."""
    import anndata as ad

    raw = [cases[_case_of(ehit)["case_id"]] for ehit, _ in chosen]
    paths = slide_paths if slide_paths is not None else [None] * len(chosen)
    obs = pd.DataFrame([_obs_row(e, s, c, p) for (e, s), c, p in zip(chosen, raw, paths)])
    obs["text"] = clinical_to_text(raw)  # from the GDC case JSON itself, the default fields
    obs.index = pd.Index(obs["submitter_id"].astype(str).to_numpy())
    if obs.index.has_duplicates:
        obs.index = ad.utils.make_index_unique(obs.index)
    for col in _CATEGORICAL:
        if col in obs:
            obs[col] = obs[col].astype("category")
    for col in obs.columns:
        if obs[col].dtype == object:
            obs[col] = obs[col].astype(str).where(obs[col].notna(), other=np.nan)
    return obs


def _var(table: pd.DataFrame) -> pd.DataFrame:
    """Genes: names made unique (the Ensembl id where a name is missing), ``gene_id``, ``gene_type``."""
    import anndata as ad

    genes = table["gene_id"]
    names = pd.Index(table["gene_name"].fillna(genes).astype(str).to_numpy())
    return pd.DataFrame({"gene_id": genes.to_numpy(), "gene_type": table["gene_type"].to_numpy()},
                        index=ad.utils.make_index_unique(names))
