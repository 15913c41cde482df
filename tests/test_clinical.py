"""clinical_to_text: GDC case JSON, tables and adata.obs -> descriptions."""

from __future__ import annotations

import copy
import re
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import gemmgan_sc as gg
from gemmgan_sc.pp._clinical import LabelLeakWarning


def _luad_case() -> dict:
    # the shape of GET /cases?expand=project,diagnoses,diagnoses.treatments,demographic,exposures
    return {
        "id": "0a2b7a35-7ab5-4f2a-9b6a-3f2d5e8c1a11",
        "submitter_id": "TCGA-05-4249",
        "primary_site": "Bronchus and lung",
        "disease_type": "Adenomas and Adenocarcinomas",
        "project": {"project_id": "TCGA-LUAD"},
        "demographic": {
            "gender": "male",
            "race": "white",
            "ethnicity": "not hispanic or latino",
            "vital_status": "Alive",
            "age_at_index": 67,
            "days_to_death": None,
        },
        "diagnoses": [
            {
                "primary_diagnosis": "Adenocarcinoma, NOS",
                "tissue_or_organ_of_origin": "Lower lobe, lung",
                "site_of_resection_or_biopsy": "Lower lobe, lung",
                "age_at_diagnosis": 24625,
                "ajcc_pathologic_stage": "Stage IB",
                "ajcc_pathologic_t": "T2",
                "ajcc_pathologic_n": "N0",
                "ajcc_pathologic_m": "M0",
                "tumor_grade": "Not Reported",
                "prior_malignancy": "no",
                "days_to_last_follow_up": 1523.0,
                "classification_of_tumor": "primary",
                "treatments": [
                    {"treatment_type": "Radiation Therapy, NOS", "treatment_or_therapy": "no"},
                    {
                        "treatment_type": "Pharmaceutical Therapy, NOS",
                        "treatment_or_therapy": "yes",
                        "therapeutic_agents": "Carboplatin",
                    },
                ],
            }
        ],
        "exposures": [
            {"tobacco_smoking_status": "Current Reformed Smoker for > 15 yrs", "pack_years_smoked": 30.0,
             "alcohol_history": "Not Reported"}
        ],
    }


def _blca_case() -> dict:
    return {
        "submitter_id": "TCGA-2F-A9KO",
        "primary_site": "Bladder",
        "disease_type": "Transitional Cell Papillomas and Carcinomas",
        "project": {"project_id": "TCGA-BLCA"},
        "demographic": {"gender": "female", "race": "not reported", "vital_status": "Dead", "days_to_death": 733},
        "diagnoses": [
            {
                "primary_diagnosis": "Transitional cell carcinoma",
                "tissue_or_organ_of_origin": "Bladder, NOS",
                "age_at_diagnosis": 23133,
                "ajcc_pathologic_stage": "Stage III",
                "ajcc_pathologic_t": "T3a",
                "ajcc_pathologic_n": "N0",
                "ajcc_pathologic_m": "MX",
                "tumor_grade": "High Grade",
                "prior_malignancy": "--",
                "treatments": [
                    {"treatment_type": "Pharmaceutical Therapy, NOS", "treatment_or_therapy": "not reported"},
                ],
            }
        ],
        "exposures": [{"tobacco_smoking_status": "2", "pack_years_smoked": None}],
    }


def _second_luad() -> dict:
    c = _luad_case()
    c["submitter_id"] = "TCGA-05-4250"
    c["demographic"].update(gender="female", vital_status="Dead", days_to_death=121)
    c["diagnoses"][0].update(age_at_diagnosis=29000, ajcc_pathologic_stage="Stage IIIA", ajcc_pathologic_t="T3")
    c["exposures"] = [{"tobacco_smoking_status": "Lifelong Non-Smoker"}]
    return c


def _second_blca() -> dict:
    c = _blca_case()
    c["submitter_id"] = "TCGA-2F-A9KP"
    c["demographic"].update(gender="male", vital_status="Alive", days_to_death="'--")
    c["diagnoses"][0].update(age_at_diagnosis=24200, ajcc_pathologic_stage="Stage II", tumor_grade="Unknown")
    return c


CASES = [_luad_case(), _second_luad(), _blca_case(), _second_blca()]
DISEASE = ["LUAD", "LUAD", "BLCA", "BLCA"]


def test_gdc_case_gives_the_facts_and_leaves_missing_out():
    text = gg.pp.clinical_to_text(_luad_case())
    assert isinstance(text, str)
    assert text.startswith("A 67-year-old man diagnosed with adenocarcinoma, NOS of the lower lobe, lung.")
    for part in (
        "Primary site: bronchus and lung.",
        "Disease type: adenomas and adenocarcinomas.",
        "AJCC pathologic stage IB (T2 N0 M0).",
        "Treatment: received pharmaceutical therapy, NOS (carboplatin); no radiation therapy, NOS.",
        "current reformed smoker for > 15 years, 30 pack-years",
        "Prior malignancy: no.",
        "alive (last follow-up 50.0 months after diagnosis)",
    ):
        assert part in text, part
    low = text.lower()
    for gone in ("not reported", "tumor grade", "alcohol", "none", "nan", "tcga-luad", "white"):
        assert not re.search(rf"\b{re.escape(gone)}\b", low), gone  # missing values, and project/race (not default fields)

    blca = gg.pp.clinical_to_text(_blca_case())
    assert blca.startswith("A 63-year-old woman diagnosed with transitional cell carcinoma of the bladder, NOS.")
    assert "AJCC pathologic stage III (T3a N0)." in blca  # MX = cannot be assessed -> left out
    assert "Tumor grade: high grade." in blca
    assert "Smoking: current smoker." in blca  # TCGA legacy code 2
    assert "dead (died 24.1 months after diagnosis)" in blca
    assert "Treatment" not in blca and "Prior malignancy" not in blca and "--" not in blca


def test_fields_exclude_and_aliases():
    full = gg.pp.clinical_to_text(_luad_case(), fields=list(gg.pp._clinical.CLINICAL_FIELDS))
    assert "Project: TCGA-LUAD." in full and "Race: white." in full
    only = gg.pp.clinical_to_text(_luad_case(), fields=["age", "ajcc_pathologic_stage"])
    assert only == "A 67-year-old patient. AJCC pathologic stage IB (T2 N0 M0)."
    dropped = gg.pp.clinical_to_text(_luad_case(), exclude=["primary_diagnosis", "primary_site", "tobacco_smoking_status"])
    assert "adenocarcinoma, NOS" not in dropped and "Primary site" not in dropped and "Smoking" not in dropped
    assert dropped.startswith("A 67-year-old man with a tumor of the lower lobe, lung.")
    with pytest.raises(ValueError, match="unknown field 'stagee'"):
        gg.pp.clinical_to_text(_luad_case(), exclude=["stagee"])


def test_list_dataframe_and_determinism():
    texts = gg.pp.clinical_to_text(CASES)
    assert isinstance(texts, list) and len(texts) == 4
    assert texts == gg.pp.clinical_to_text(copy.deepcopy(CASES))
    # a flat GDC-style table (dotted names, as json_normalize / GDC TSV give them)
    frame = pd.json_normalize(CASES, max_level=1)
    frame = frame.rename(columns={"demographic.gender": "demographic.gender"})
    frame.index = [c["submitter_id"] for c in CASES]
    flat = gg.pp.clinical_to_text(frame)
    assert isinstance(flat, pd.Series) and list(flat.index) == list(frame.index)
    assert flat.tolist() == texts
    table = pd.DataFrame(
        {
            "diagnoses.0.primary_diagnosis": ["Squamous cell carcinoma, NOS"],
            "diagnoses.0.age_at_diagnosis": [25600],
            "demographic.gender": ["female"],
            "diagnoses.0.treatments.0.treatment_type": ["Radiation Therapy, NOS"],
            "diagnoses.0.treatments.0.treatment_or_therapy": ["yes"],
        }
    )
    assert gg.pp.clinical_to_text(table).iloc[0] == (
        "A 70-year-old woman diagnosed with squamous cell carcinoma, NOS. Treatment: received radiation therapy, NOS."
    )


def test_field_map_and_na_values():
    table = pd.DataFrame({"dx": ["Adenocarcinoma, NOS", "Pending review"], "years": [55, 61]})
    out = gg.pp.clinical_to_text(table, field_map={"primary_diagnosis": "dx", "age": "years"}, na_values=["pending review"])
    assert out.tolist() == ["A 55-year-old patient diagnosed with adenocarcinoma, NOS.", "A 61-year-old patient."]
    with pytest.raises(KeyError, match="not in the table"):
        gg.pp.clinical_to_text(table, field_map={"primary_diagnosis": "diagnosis"})


def test_tumor_size_fact():
    case = _luad_case()
    case["diagnoses"][0]["tumor_largest_dimension_diameter"] = 3.25  # GDC field, cm
    text = gg.pp.clinical_to_text(case)
    assert "AJCC pathologic stage IB (T2 N0 M0). Tumor size: 3.2 cm. Prior malignancy" in text  # after stage
    table = pd.DataFrame({"age": [60, 61, 62], "tumor_size_cm": [2.0, "not reported", -1.0]})
    assert gg.pp.clinical_to_text(table).tolist() == [
        "A 60-year-old patient. Tumor size: 2.0 cm.", "A 61-year-old patient.", "A 62-year-old patient."]
    assert "Tumor size" not in gg.pp.clinical_to_text(case, exclude="tumor_size_cm")  # alias of the fact
    assert "tumor_size" in gg.pp._clinical.DEFAULT_CLINICAL_FIELDS


def test_wording_seed_varies_wording_not_facts():
    many = [_luad_case(), _blca_case()] * 20
    fixed = gg.pp.clinical_to_text(many)
    assert fixed == gg.pp.clinical_to_text(many, wording_seed=None) and len(set(fixed)) == 2  # default: deterministic
    varied = gg.pp.clinical_to_text(many, wording_seed=7)
    assert varied == gg.pp.clinical_to_text(copy.deepcopy(many), wording_seed=7)  # deterministic per seed
    assert varied[:5] == gg.pp.clinical_to_text(many[:5], wording_seed=7)  # record i does not depend on what follows
    assert varied != gg.pp.clinical_to_text(many, wording_seed=8)
    assert len(set(varied[0::2])) > 3 and varied != fixed  # the same case is worded differently per position
    for t in varied[0::2]:  # the facts and their values are all still there, in order
        pos = [t.index(v) for v in ("67-year-old man", "adenocarcinoma, NOS", "bronchus and lung",
                                    "adenomas and adenocarcinomas", "stage IB (T2 N0 M0)", "carboplatin",
                                    "current reformed smoker for > 15 years, 30 pack-years", "alive (last follow-up")]
        assert pos == sorted(pos), t
        assert "tumor grade" not in t.lower() and "alcohol" not in t.lower()
    # the leak check reads the facts, not the wording
    with pytest.warns(LabelLeakWarning, match=r"exclude=\[.*'primary_diagnosis'"):
        gg.pp.clinical_to_text(CASES * 3, labels={"disease": DISEASE * 3}, wording_seed=1)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="wording_seed"):
            gg.pp.clinical_to_text(_luad_case(), wording_seed=bad)
    adata = ad.AnnData(np.zeros((2, 1), dtype=np.float32), obs=pd.DataFrame({"age": [50, 60]}, index=["a", "b"]))
    gg.pp.clinical_to_text(adata, wording_seed=5)
    assert adata.uns["gemmgan_clinical_text"]["params"]["wording_seed"] == 5


def test_anndata_writes_obs_and_params(tmp_path):
    obs = pd.json_normalize(CASES, max_level=1)
    obs.index = [c["submitter_id"] for c in CASES]
    obs["disease"] = DISEASE
    adata = ad.AnnData(np.zeros((4, 3), dtype=np.float32), obs=obs[["primary_site", "disease_type", "disease"]].copy())
    # the nested GDC fields as object columns next to flat ones
    adata.obs["diagnoses"] = [c["diagnoses"] for c in CASES]
    adata.obs["demographic"] = [c["demographic"] for c in CASES]
    before = adata.obs.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gg.pp.clinical_to_text(adata, exclude=["primary_diagnosis", "primary_site", "disease_type", "tissue_or_organ_of_origin"],
                               labels=["disease"])
    assert "text" in adata.obs and adata.obs["text"].str.len().gt(10).all()
    pd.testing.assert_frame_equal(adata.obs.drop(columns="text"), before)  # user data untouched
    params = adata.uns["gemmgan_clinical_text"]["params"]
    assert params["method"] == "template" and params["labels_checked"] == ["disease"] and params["label_leaks"] == []
    assert "primary_site" in params["exclude"] and params["n_empty"] == 0
    adata.obs = adata.obs.drop(columns=["diagnoses", "demographic"])
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert back.obs["text"].tolist() == adata.obs["text"].tolist()
    assert list(back.uns["gemmgan_clinical_text"]["params"]["fields"]) == params["fields"]


def test_label_leak_warns_with_fields_to_exclude():
    with pytest.warns(LabelLeakWarning, match=r"exclude=\[.*'primary_diagnosis'"):
        gg.pp.clinical_to_text(CASES * 3, labels={"disease": DISEASE * 3})
    # a value written word for word
    with pytest.warns(LabelLeakWarning, match="word for word in 3 of 4"):
        gg.pp.clinical_to_text(CASES, labels={"site": ["Bronchus and lung", "Bronchus and lung", "bladder", "Kidney"]},
                               fields=["age", "primary_site"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gg.pp.clinical_to_text(CASES * 3, labels={"disease": DISEASE * 3},
                               exclude=["primary_diagnosis", "tissue_or_organ_of_origin", "primary_site", "disease_type"])
    with pytest.raises(ValueError, match="one per record"):
        gg.pp.clinical_to_text(CASES, labels={"disease": DISEASE[:2]})
    with pytest.raises(KeyError, match="label 'nope'"):
        gg.pp.clinical_to_text(pd.DataFrame({"age": [50]}), labels=["nope"])


def test_bad_input_and_empty_records():
    with pytest.raises(TypeError, match="GDC case dict"):
        gg.pp.clinical_to_text("lung")
    with pytest.raises(TypeError, match=r"records\[1\] is a str"):
        gg.pp.clinical_to_text([_luad_case(), "x"])
    with pytest.raises(ValueError, match="method must be"):
        gg.pp.clinical_to_text(_luad_case(), method="gpt")
    with pytest.raises(ValueError, match="needs model="):
        gg.pp.clinical_to_text(_luad_case(), method="llm")
    with pytest.raises(ValueError, match="empty"):
        gg.pp.clinical_to_text([])
    with pytest.warns(UserWarning, match=r"no usable clinical field .*\['b'\]"):
        out = gg.pp.clinical_to_text(pd.DataFrame({"gender": ["male", "not reported"]}, index=["a", "b"]))
    assert out.tolist() == ["A man.", ""]


def test_llm_method_with_a_callable_pipeline():
    seen = {}

    def fake_pipeline(prompts, **kw):
        seen["prompts"], seen["kw"] = prompts, kw
        return [[{"generated_text": f"  Paragraph {i}:\n {p.split('Facts: ')[1][:20]}  "}] for i, p in enumerate(prompts)]

    out = gg.pp.clinical_to_text(CASES[:2], method="llm", model=fake_pipeline)
    assert len(seen["prompts"]) == 2 and "about 200 words" in seen["prompts"][0]
    assert gg.pp.clinical_to_text(CASES[0]) in seen["prompts"][0]
    assert seen["kw"]["do_sample"] is False
    assert out[0] == "Paragraph 0: A 67-year-old man di"
    with pytest.raises(ValueError, match="facts"):
        gg.pp.clinical_to_text(CASES[:1], method="llm", model=fake_pipeline, prompt="no placeholder")


def test_llm_method_with_a_tiny_local_model(tmp_path):
    from gemmgan_sc.encoders._text import minilm_path

    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_path()))
    cfg = transformers.GPT2Config(vocab_size=tok.vocab_size, n_positions=512, n_embd=16, n_layer=1, n_head=2,
                                  bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                                  pad_token_id=tok.pad_token_id)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random model may write nothing -> template fallback warning
        out = gg.pp.clinical_to_text(CASES[:2], method="llm", model=str(tmp_path), max_new_tokens=8, device="cpu")
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        gg.pp.clinical_to_text(CASES[:1], method="llm", model=str(tmp_path / "missing"))


def test_tcga_tables_give_realistic_descriptions(shared_data):
    keep = ["case_id", "slide_id", "site", "is_female", "oncotree_code", "age", "survival_months", "censorship"]
    frames = [pd.read_csv(shared_data / "tcga_mcat" / f"tcga_{c}_all_clean.csv.gz", usecols=keep) for c in ("luad", "blca")]
    table = pd.concat(frames, ignore_index=True)
    with pytest.warns(LabelLeakWarning, match="'primary_diagnosis' predicts it"):
        texts = gg.pp.clinical_to_text(table, labels=["oncotree_code"])
    assert len(texts) == len(table) and texts.str.len().gt(0).all()
    luad = table["oncotree_code"].eq("LUAD").to_numpy()
    assert texts[luad].str.contains("diagnosed with lung adenocarcinoma. Primary site: bronchus and lung.").all()
    assert texts[~luad].str.contains("urothelial carcinoma of the bladder").all()
    sexes = np.where(table["is_female"] == 1, "woman", "man")
    assert all(s in t for s, t in zip(sexes, texts))
    has_age = table["age"].notna().to_numpy()
    assert texts[has_age].str.match(r"An? \d+-year-old (wo)?man").all()
    assert not texts[~has_age].str.contains("year-old").any()  # missing age left out, never "nan"
    dead = table["censorship"].eq(0).to_numpy()
    assert texts[dead].str.contains("Vital status: dead").all()
    assert not texts.str.contains(r"\bnan\b|None|TCGA", case=True).any()


def test_extractor_table_is_the_field_list():
    from gemmgan_sc.pp._clinical._facts import EXTRACTORS, facts
    from gemmgan_sc.pp._clinical._records import Case
    from gemmgan_sc.pp._clinical._wording import WORDINGS

    assert tuple(EXTRACTORS) == gg.pp._clinical.CLINICAL_FIELDS
    assert set(WORDINGS) <= set(EXTRACTORS)  # every worded fact has an extractor
    found = facts(Case(_luad_case(), frozenset()))
    assert list(found) == [f for f in gg.pp._clinical.CLINICAL_FIELDS if f in found]  # written in the table's order
    assert found["stage"] == "stage IB (T2 N0 M0)" and "tumor_grade" not in found
    assert facts(Case(_luad_case(), frozenset()), ["age", "race"]) == {"age": "67", "race": "white"}


def test_warnings_point_at_the_callers_line():
    with pytest.warns(LabelLeakWarning) as leak:
        gg.pp.clinical_to_text(CASES * 3, labels={"disease": DISEASE * 3})
    with pytest.warns(UserWarning, match="no usable") as empty:
        gg.pp.clinical_to_text([{"gender": "not reported"}])
    with pytest.warns(UserWarning, match="wrote nothing") as llm:
        gg.pp.clinical_to_text(CASES[:1], method="llm", model=lambda prompts, **kw: [[{"generated_text": " "}]])
    for caught in (leak, empty, llm):
        assert [w.filename for w in caught] == [__file__], [(w.filename, w.lineno) for w in caught]


def test_na_values_must_be_strings():
    for bad in ("pending", ["pending", 3]):
        with pytest.raises(TypeError, match="na_values must be a list of strings"):
            gg.pp.clinical_to_text(_luad_case(), na_values=bad)
