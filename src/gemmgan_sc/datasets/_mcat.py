"""Reader of the MCAT TCGA tables (Chen et al., ICCV 2021): one row per slide, clinical + ``<GENE>_rnaseq``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

_GENE_SUFFIX = "_rnaseq"
_SKIP_SUFFIXES = ("_rnaseq", "_cnv")
_NAME = re.compile(r"^tcga_([A-Za-z0-9]+)_", re.IGNORECASE)


def _as_path(path, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise TypeError(f"{what} must be a file path (str or os.PathLike), got {path!r}.")
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"MCAT table {str(p)!r} does not exist; pass the path of a tcga_<cohort>_all_clean.csv.gz file.")
    return p


def _label_from_name(path: Path) -> str | None:
    m = _NAME.match(path.name)
    return m.group(1).upper() if m else None


def _normalise_paths(paths) -> dict[str, Path]:
    """``{cohort label: path}`` from one path, a list of paths or a mapping; labels from the MCAT file name."""
    if isinstance(paths, Mapping):
        if not paths:
            raise ValueError("paths is an empty mapping; give {cohort label: path of an MCAT table}.")
        for label in paths:
            if not isinstance(label, str) or not label.strip():
                raise ValueError(f"Cohort labels (the keys of paths) must be non-empty strings, got {label!r}.")
        return {str(k).strip(): _as_path(v, f"paths[{k!r}]") for k, v in paths.items()}
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not isinstance(paths, Sequence) or not paths:
        raise ValueError(f"paths must be an MCAT table path, a non-empty list of them or a {{label: path}} mapping, got {paths!r}.")
    out: dict[str, Path] = {}
    for k, item in enumerate(paths):
        p = _as_path(item, f"paths[{k}]")
        label = _label_from_name(p) or p.name.split(".")[0]
        if label in out:
            raise ValueError(
                f"Two tables give the cohort label {label!r} ({out[label]} and {p}); pass a mapping "
                "{label: path} to name them."
            )
        out[label] = p
    return out


def _read_table(path: Path, label: str, n_cases: int | None) -> pd.DataFrame:
    """The clinical and ``_rnaseq`` columns of one table, one row per case (its first slide's row)."""
    header = pd.read_csv(path, nrows=0).columns
    genes = [c for c in header if c.endswith(_GENE_SUFFIX)]
    if "case_id" not in header or not genes:
        raise ValueError(
            f"{path} is not an MCAT table: it needs a 'case_id' column and '<GENE>{_GENE_SUFFIX}' columns "
            f"(found {list(header[:8])} ...)."
        )
    clinical = [c for c in header if not c.endswith(_SKIP_SUFFIXES) and not c.startswith("Unnamed")]
    df = pd.read_csv(path, usecols=[*clinical, *genes], dtype={"case_id": str})
    df["case_id"] = df["case_id"].str.strip()
    if "slide_id" in df:
        slides = df.groupby("case_id", sort=False)["slide_id"].agg(lambda s: ";".join(map(str, s)))
        df = df.drop(columns="slide_id")
    df = df.drop_duplicates("case_id", keep="first")
    if n_cases is not None:
        df = df.iloc[:n_cases]
    if "slide_id" in clinical:
        df.insert(1, "slide_ids", slides.loc[df["case_id"]].to_numpy())
        df.insert(2, "n_slides", df["slide_ids"].str.count(";").to_numpy() + 1)
    df.insert(0, "cohort", label)
    return df.reset_index(drop=True)


def _common_genes(frames: dict[str, pd.DataFrame]) -> list[str]:
    common: list[str] | None = None
    for df in frames.values():
        genes = [c for c in df.columns if c.endswith(_GENE_SUFFIX)]
        common = genes if common is None else [g for g in common if g in set(genes)]
    if not common:
        raise ValueError(f"The tables {list(frames)} share no '<GENE>{_GENE_SUFFIX}' column; read them one at a time.")
    return common


def read_mcat(
    paths: str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    *,
    cohort_key: str = "cohort",
    n_per_cohort: int | None = None,
):
    """Read MCAT TCGA tables (``tcga_<cohort>_all_clean.csv.gz``) into one AnnData, one row per case.

    The MCAT tables (Chen et al., ICCV 2021) have one row per slide: ``case_id, slide_id, site,
    is_female, oncotree_code, age, survival_months, censorship`` (some also ``train``), then
    ``<GENE>_rnaseq`` (per-gene z-scores) and ``<GENE>_cnv`` columns. The expression is per case, so
    the first row of each case is kept and its slides are listed in ``obs["slide_ids"]``.

    Parameters
    ----------
    paths
        One table, a list of tables, or a mapping ``{cohort label: table}``. Without a mapping the
        label comes from the MCAT file name (``tcga_luad_all_clean.csv.gz`` -> ``"LUAD"``), else the
        file name up to its first dot.
    cohort_key
        ``obs`` column of the cohort label (categorical, in the order of ``paths``).
    n_per_cohort
        Keep the first this many cases of each table (``None``: all), e.g. for quick runs.

    Returns
    -------
    AnnData: ``X`` = the ``_rnaseq`` z-scores as given (float32) of the genes present in every table,
    in the first table's order; ``var_names`` the gene symbols (suffix removed); ``obs_names`` and
    ``obs["case_id"]`` the case barcodes; ``obs``: ``cohort_key``, ``slide_ids`` (``;``-joined),
    ``n_slides`` and the clinical columns (``oncotree_code`` categorical, ``site`` as strings; a column
    missing from a table is NaN for its cases). The ``_cnv`` columns are not read.
    ``uns["gemmgan_mcat"]`` records the parameters, the source files and the scale.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> adata = gg.datasets.read_mcat(["tcga_luad_all_clean.csv.gz", "tcga_blca_all_clean.csv.gz"])  # doctest: +SKIP
    >>> adata.obs["cohort"].value_counts()  # doctest: +SKIP
    """
    import anndata as ad

    if not isinstance(cohort_key, str) or not cohort_key or cohort_key == "case_id":
        raise ValueError(f"cohort_key must be a non-empty obs column name other than 'case_id', got {cohort_key!r}.")
    if n_per_cohort is not None and (
        isinstance(n_per_cohort, bool) or not isinstance(n_per_cohort, (int, np.integer)) or n_per_cohort < 1
    ):
        raise ValueError(f"n_per_cohort must be a positive int or None, got {n_per_cohort!r}.")
    tables = _normalise_paths(paths)
    frames = {c: _read_table(p, c, None if n_per_cohort is None else int(n_per_cohort)) for c, p in tables.items()}
    genes = _common_genes(frames)
    both = pd.concat([df.drop(columns=[g for g in df.columns if g.endswith(_GENE_SUFFIX) and g not in set(genes)])
                      for df in frames.values()], ignore_index=True)
    dup = both["case_id"][both["case_id"].duplicated()]
    if len(dup):
        raise ValueError(f"Case {dup.iloc[0]!r} appears in more than one table; each case must belong to one cohort.")
    obs = both.drop(columns=genes).rename(columns={"cohort": cohort_key})
    obs[cohort_key] = pd.Categorical(obs[cohort_key], categories=list(tables))
    if "oncotree_code" in obs:
        obs["oncotree_code"] = obs["oncotree_code"].astype("category")
    if "site" in obs:
        obs["site"] = obs["site"].astype(str)
    obs.index = pd.Index(obs["case_id"].to_numpy(), name=None)
    var = pd.DataFrame(index=pd.Index([g[: -len(_GENE_SUFFIX)] for g in genes]))
    adata = ad.AnnData(X=both[genes].to_numpy(dtype=np.float32), obs=obs, var=var)
    adata.uns["gemmgan_mcat"] = {
        "params": {"cohort_key": cohort_key, "n_per_cohort": -1 if n_per_cohort is None else int(n_per_cohort)},
        "source": {c: str(p.resolve()) for c, p in tables.items()},
        "scale": "per-gene z-scores as given in the MCAT _rnaseq columns",
    }
    return adata
