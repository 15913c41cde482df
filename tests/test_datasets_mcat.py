"""gg.datasets.read_mcat on small tables written here, and on the real MCAT tables in ../shared/data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import gemmgan_sc as gg


def write_table(path, cases, genes, *, extra=None, seed=0):
    """An MCAT-layout table: one row per slide; the expression repeats for the slides of one case."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, (case, n_slides) in enumerate(cases):
        expr = rng.normal(size=len(genes))
        for s in range(n_slides):
            row = {"Unnamed: 0": len(rows), "case_id": case, "slide_id": f"{case}-0{s}.svs", "site": "05",
                   "is_female": k % 2, "oncotree_code": "LUAD", "age": 60 + k, "survival_months": 10.5 + k,
                   "censorship": 1 - k % 2, **(extra or {})}
            row.update({f"{g}_rnaseq": v for g, v in zip(genes, expr)})
            row.update({f"{g}_cnv": 0 for g in genes})
            rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def two_tables(tmp_path):
    a = write_table(tmp_path / "tcga_luad_all_clean.csv.gz", [("TCGA-01", 2), ("TCGA-02", 1), ("TCGA-03", 1)],
                    ["A", "B", "C"])
    b = write_table(tmp_path / "tcga_blca_all_clean.csv.gz", [("TCGA-11", 1), ("TCGA-12", 3)], ["C", "A", "D"],
                    extra={"train": 1.0}, seed=1)
    return a, b


def test_read_mcat_one_row_per_case_common_genes(two_tables):
    a, b = two_tables
    adata = gg.datasets.read_mcat([a, b])
    assert adata.obs_names.tolist() == ["TCGA-01", "TCGA-02", "TCGA-03", "TCGA-11", "TCGA-12"]
    assert adata.obs["case_id"].tolist() == adata.obs_names.tolist()
    assert adata.var_names.tolist() == ["A", "C"]  # common to both, the first table's order
    assert adata.X.dtype == np.float32
    assert adata.obs["cohort"].cat.categories.tolist() == ["LUAD", "BLCA"]
    assert adata.obs["cohort"].tolist() == ["LUAD"] * 3 + ["BLCA"] * 2
    assert adata.obs["n_slides"].tolist() == [2, 1, 1, 1, 3]
    assert adata.obs.loc["TCGA-12", "slide_ids"] == "TCGA-12-00.svs;TCGA-12-01.svs;TCGA-12-02.svs"
    assert not any(c.startswith("Unnamed") or c.endswith(("_rnaseq", "_cnv")) for c in adata.obs.columns)
    assert adata.obs["train"].isna().sum() == 3 and (adata.obs.loc[["TCGA-11", "TCGA-12"], "train"] == 1).all()
    raw = pd.read_csv(b).drop_duplicates("case_id").set_index("case_id")
    np.testing.assert_allclose(adata[["TCGA-11", "TCGA-12"], ["A", "C"]].X, raw[["A_rnaseq", "C_rnaseq"]].to_numpy(),
                               rtol=1e-6)
    assert adata.obs.loc["TCGA-03", "age"] == 62
    assert adata.uns["gemmgan_mcat"]["params"] == {"cohort_key": "cohort", "n_per_cohort": -1}


def test_read_mcat_mapping_labels_key_and_n_per_cohort(two_tables):
    a, b = two_tables
    adata = gg.datasets.read_mcat({"lung": a, "bladder": b}, cohort_key="disease", n_per_cohort=1)
    assert adata.obs_names.tolist() == ["TCGA-01", "TCGA-11"]
    assert adata.obs["disease"].tolist() == ["lung", "bladder"]
    assert adata.obs.loc["TCGA-01", "n_slides"] == 2  # all slides of the kept case are listed
    single = gg.datasets.read_mcat(a)
    assert single.n_obs == 3 and single.var_names.tolist() == ["A", "B", "C"]


def test_read_mcat_rejects_bad_input(two_tables, tmp_path):
    a, b = two_tables
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gg.datasets.read_mcat(tmp_path / "missing.csv.gz")
    with pytest.raises(ValueError, match="n_per_cohort"):
        gg.datasets.read_mcat(a, n_per_cohort=0)
    with pytest.raises(ValueError, match="cohort_key"):
        gg.datasets.read_mcat(a, cohort_key="case_id")
    with pytest.raises(ValueError, match="non-empty list"):
        gg.datasets.read_mcat([])
    with pytest.raises(ValueError, match="same|label 'LUAD'"):
        gg.datasets.read_mcat([a, a])
    with pytest.raises(ValueError, match="more than one table"):
        gg.datasets.read_mcat({"x": a, "y": a})
    pd.DataFrame({"case_id": ["x"], "age": [1]}).to_csv(tmp_path / "plain.csv", index=False)
    with pytest.raises(ValueError, match="not an MCAT table"):
        gg.datasets.read_mcat(tmp_path / "plain.csv")
    other = write_table(tmp_path / "tcga_kirc_all_clean.csv", [("TCGA-21", 1)], ["Z"])
    with pytest.raises(ValueError, match="share no"):
        gg.datasets.read_mcat([a, other])


def test_read_mcat_real_tables(shared_data):
    folder = shared_data / "tcga_mcat"
    paths = [folder / "tcga_luad_all_clean.csv.gz", folder / "tcga_blca_all_clean.csv.gz"]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"MCAT tables not found in {folder}")
    adata = gg.datasets.read_mcat(paths)
    assert adata.obs["cohort"].value_counts().to_dict() == {"LUAD": 453, "BLCA": 373}  # cases, per the README
    assert adata.obs["n_slides"].sum() == 516 + 437
    assert adata.n_vars > 2000 and adata.obs_names.is_unique and adata.var_names.is_unique
    assert np.isfinite(adata.X).all()
    assert (adata.obs["oncotree_code"].astype(str) == adata.obs["cohort"].astype(str)).all()
