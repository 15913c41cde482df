"""Golden outputs of gg.pp.clinical_to_text: the texts, warnings and params recorded before the module was split.

``tests/data/clinical_golden.json`` holds what the code wrote for the records below (full texts) and, for the
real MCAT tables and a large random set, sha256 digests of the texts. A change of wording must be deliberate:
rerun ``python tests/test_clinical_golden.py --write`` and review the diff of the JSON.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import gemmgan_sc as gg

sys.path.insert(0, str(Path(__file__).parent))
from test_clinical import CASES, DISEASE  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "clinical_golden.json"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tcga_mcat"


def _edge_records() -> list[dict]:
    """Records that reach every branch of the fact extraction and the sentence composition."""
    return [
        {"age": 8, "is_female": True, "oncotree_code": "luad", "censorship": 1, "survival_months": 12.25},
        {"age": 11, "is_female": 0.0, "oncotree_code": "XYZ", "censorship": 0, "survival_months": 3},
        {"age": 18, "sex": "Female", "oncotree_code": "BLCA", "primary_site": ["Bladder", "not reported", "Kidney"]},
        {"age": 80.9, "gender": "unspecified", "tissue_or_organ_of_origin": "Upper lobe, Lung"},
        {"age_years": 45, "ajcc_pathologic_t": "T1", "ajcc_pathologic_n": "N1", "ajcc_pathologic_m": "MX"},
        {"age_at_diagnosis": 20000, "stage": "IIA", "grade": "G3", "tumor_size_cm": "4.44"},
        {"age_at_index": 131, "gender": "male", "stage": "Stage IV", "treatment_type": "Surgery, NOS"},
        {"site_of_resection_or_biopsy": "Bladder wall", "tobacco_smoking_status": "3.0", "pack_years_smoked": 12.5},
        {"tobacco_smoking_status": "5", "alcohol_history": "Yes", "race": "Asian", "ethnicity": "Hispanic or Latino"},
        {"pack_years_smoked": 0, "vital_status": "Dead", "days_to_death": 365},
        {"vital_status": "Alive", "days_to_last_follow_up": -5, "prior_malignancy": "Yes"},
        {"project_id": "TCGA-KIRC", "disease_type": "Adenomas and Adenocarcinomas", "primary_diagnosis": "Clear cell adenocarcinoma, NOS"},
        {"project": "TCGA-LUSC", "oncotree_code": "LUSC"},
        {"diagnoses": [{"primary_diagnosis": "Not Reported", "classification_of_tumor": "metastasis"},
                       {"primary_diagnosis": "Squamous cell carcinoma, NOS", "tumor_grade": "G2",
                        "treatments": [{"treatment_type": "Chemotherapy"},
                                       {"treatment_type": "Chemotherapy", "treatment_or_therapy": "yes"},
                                       {"treatment_type": "Radiation Therapy, NOS", "treatment_or_therapy": "no"},
                                       {"treatment_type": "Radiation Therapy, NOS", "treatment_or_therapy": "no"},
                                       {"treatment_type": "Immunotherapy", "treatment_or_therapy": "unknown"},
                                       {"treatment_type": "--", "treatment_or_therapy": "yes"}]}],
         "demographic": [{"gender": "female", "vital_status": "Dead", "days_to_death": 800}],
         "exposures": [{"tobacco_smoking_status": "Not Reported"}, {"tobacco_smoking_status": "4"}]},
        {"diagnoses": [{"age_at_diagnosis": 15000}, {"classification_of_tumor": "Primary", "age_at_diagnosis": 16000,
                                                      "ajcc_pathologic_stage": "Stage I"}],
         "treatments": [{"treatment_type": "Hormone Therapy", "treatment_or_therapy": "yes",
                         "therapeutic_agents": "Tamoxifen"}]},
        {"cases.demographic.gender": "male", "cases.diagnoses.0.age_at_diagnosis": 21900,
         "cases.diagnoses.0.primary_diagnosis": "Adenocarcinoma, NOS", "diagnoses.0.tumor_grade": "G1"},
        {"gender": "not reported", "age": "unknown", "primary_diagnosis": "[Not Available]"},
        {"is_female": "yes", "censorship": 1},
        {"age": float("nan"), "tumor_largest_dimension_diameter": 0.0, "primary_diagnosis": "  Adenocarcinoma ,   NOS "},
    ]


def _random_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A table of random clinical values (GDC vocabularies, missing-value codes mixed in)."""
    rng = np.random.default_rng(seed)

    def pick(values, p_na=0.2):
        vals = np.array(values + ["not reported", "--", None], dtype=object)
        w = np.r_[np.full(len(values), (1 - p_na) / len(values)), np.full(3, p_na / 3)]
        return rng.choice(vals, size=n, p=w)

    return pd.DataFrame({
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(20, 95, n).astype(float)),
        "is_female": rng.integers(0, 2, n),
        "oncotree_code": pick(["LUAD", "BLCA", "BRCA", "KIRC", "ZZZ"]),
        "diagnoses.0.ajcc_pathologic_stage": pick(["Stage I", "Stage IIA", "Stage IIIB", "Stage IV"]),
        "diagnoses.0.ajcc_pathologic_t": pick(["T1", "T2a", "TX"]),
        "diagnoses.0.tumor_grade": pick(["G1", "G2", "High Grade"]),
        "diagnoses.0.tumor_largest_dimension_diameter": np.round(rng.uniform(-1, 8, n), 2),
        "diagnoses.0.treatments.0.treatment_type": pick(["Radiation Therapy, NOS", "Pharmaceutical Therapy, NOS"]),
        "diagnoses.0.treatments.0.treatment_or_therapy": pick(["yes", "no"]),
        "exposures.0.tobacco_smoking_status": pick(["1", "2", "3", "Lifelong Non-Smoker"]),
        "exposures.0.pack_years_smoked": np.where(rng.random(n) < 0.5, np.nan, np.round(rng.uniform(0, 80, n), 1)),
        "censorship": rng.integers(0, 2, n),
        "survival_months": np.round(rng.uniform(0, 120, n), 2),
    })


def _digest(texts) -> str:
    return hashlib.sha256("\n".join(map(str, texts)).encode()).hexdigest()


def _leak_messages(records, **kw) -> tuple[list[str], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = gg.pp.clinical_to_text(records, **kw)
    return (list(out) if not isinstance(out, str) else [out]), [f"{w.category.__name__}: {w.message}" for w in caught]


def _fake_pipeline(prompts, **kw):
    return [[{"generated_text": "" if i == 1 else f" Rewritten ({kw['max_new_tokens']}): {p[-40:]} "}]
            for i, p in enumerate(prompts)]


def compute() -> dict:
    """Everything the golden file records, computed with the current code."""
    cases = copy.deepcopy(CASES)
    edge = _edge_records()
    out: dict = {"cases": gg.pp.clinical_to_text(cases), "edge": gg.pp.clinical_to_text(edge)}
    out["single"] = gg.pp.clinical_to_text(cases[0])
    out["all_fields"] = gg.pp.clinical_to_text(cases + edge, fields=list(gg.pp._clinical.CLINICAL_FIELDS))
    out["some_fields"] = gg.pp.clinical_to_text(cases + edge, fields=["age", "sex", "ajcc_pathologic_stage", "censorship"])
    out["excluded"] = gg.pp.clinical_to_text(cases + edge, exclude=["primary_diagnosis", "gender", "vital_status"])
    out["no_subject"] = gg.pp.clinical_to_text(cases + edge, exclude=["age", "gender"])
    out["seeds"] = {str(s): gg.pp.clinical_to_text((cases + edge) * 2, wording_seed=s) for s in (0, 7, 123)}
    out["seeded_no_subject"] = gg.pp.clinical_to_text(cases + edge, wording_seed=3, exclude=["age", "gender"])
    table = pd.DataFrame({"dx": ["Adenocarcinoma, NOS", "Pending review"], "years": [55, 61], "g": ["F", "female"]})
    out["field_map"] = gg.pp.clinical_to_text(table, field_map={"primary_diagnosis": "dx", "age": "years", "gender": "g"},
                                              na_values=["pending review", "f"]).tolist()
    out["leaks"] = {
        "disease": _leak_messages(cases * 3, labels={"disease": DISEASE * 3}),
        "seeded": _leak_messages(cases * 3, labels={"disease": DISEASE * 3}, wording_seed=1),
        "verbatim": _leak_messages(cases, labels={"site": ["Bronchus and lung", "Bronchus and lung", "bladder", "Kidney"]},
                                   fields=["age", "primary_site"]),
        "columns": _leak_messages(pd.DataFrame({"age": [50, 60, 70], "is_female": [1, 0, 1],
                                                "sex_label": ["female", "male", "female"]}), labels="sex_label"),
        "empty": _leak_messages(pd.DataFrame({"gender": ["male", "not reported"]}, index=["a", "b"])),
    }
    out["llm"] = _leak_messages(cases[:3], method="llm", model=_fake_pipeline, max_new_tokens=5)
    adata = ad.AnnData(np.zeros((len(cases), 1), dtype=np.float32),
                       obs=pd.DataFrame({"disease": DISEASE}, index=[c["submitter_id"] for c in cases]))
    adata.obs["diagnoses"] = [c["diagnoses"] for c in cases]
    adata.obs["demographic"] = [c["demographic"] for c in cases]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gg.pp.clinical_to_text(adata, labels=["disease"], exclude="stage", wording_seed=2, na_values=["x"], key_added="desc")
    out["anndata"] = {"texts": adata.obs["desc"].tolist(), "params": adata.uns["gemmgan_clinical_desc"]["params"]}
    rand = _random_table()
    out["random_sha256"] = {"default": _digest(gg.pp.clinical_to_text(rand)),
                            "seeded": _digest(gg.pp.clinical_to_text(rand, wording_seed=11)),
                            "all_fields": _digest(gg.pp.clinical_to_text(rand, fields=list(gg.pp._clinical.CLINICAL_FIELDS)))}
    out["random_head"] = gg.pp.clinical_to_text(rand.iloc[:8]).tolist()
    return json.loads(json.dumps(out))


def compute_mcat() -> dict | None:
    paths = [SHARED / f"tcga_{c}_all_clean.csv.gz" for c in ("luad", "blca")]
    if not all(p.is_file() for p in paths):
        return None
    keep = ["case_id", "slide_id", "site", "is_female", "oncotree_code", "age", "survival_months", "censorship"]
    table = pd.concat([pd.read_csv(p, usecols=keep) for p in paths], ignore_index=True)
    texts, msgs = _leak_messages(table, labels=["oncotree_code"])
    return {"default": _digest(texts), "warnings": msgs,
            "seeded": _digest(gg.pp.clinical_to_text(table, wording_seed=4)),
            "excluded": _digest(gg.pp.clinical_to_text(table, exclude=["primary_diagnosis", "primary_site"]))}


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def test_texts_warnings_and_params_match_the_golden_file(golden):
    now = compute()
    for key, value in golden["synthetic"].items():
        assert now[key] == value, key
    assert set(now) == set(golden["synthetic"])


def test_mcat_tables_match_the_golden_digests(golden):
    now = compute_mcat()
    if now is None:
        pytest.skip(f"MCAT tables not found in {SHARED}")
    assert now == golden["mcat"]


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"synthetic": compute(), "mcat": compute_mcat()}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
