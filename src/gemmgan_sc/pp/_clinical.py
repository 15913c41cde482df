"""Clinical records (GDC case JSON, tables, ``adata.obs``) -> short English descriptions."""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._settings import logger, settings

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["clinical_to_text", "LabelLeakWarning", "CLINICAL_FIELDS", "DEFAULT_CLINICAL_FIELDS", "ONCOTREE"]


class LabelLeakWarning(UserWarning):
    """A label the user will predict can be read from the descriptions."""


#: Facts a description can hold, in the order they are written.
CLINICAL_FIELDS: tuple[str, ...] = (
    "age",
    "gender",
    "primary_diagnosis",
    "tissue_or_organ_of_origin",
    "primary_site",
    "disease_type",
    "project_id",
    "stage",
    "tumor_size",
    "tumor_grade",
    "prior_malignancy",
    "treatments",
    "smoking",
    "alcohol_history",
    "race",
    "ethnicity",
    "vital_status",
)
#: Facts written when ``fields=None``.
DEFAULT_CLINICAL_FIELDS: tuple[str, ...] = tuple(
    f for f in CLINICAL_FIELDS if f not in ("project_id", "race", "ethnicity")
)
# names of source fields -> the fact they feed (for fields= / exclude=)
_FIELD_ALIASES = {
    "age_at_diagnosis": "age",
    "age_at_index": "age",
    "age_years": "age",
    "sex": "gender",
    "is_female": "gender",
    "ajcc_pathologic_stage": "stage",
    "ajcc_pathologic_t": "stage",
    "ajcc_pathologic_n": "stage",
    "ajcc_pathologic_m": "stage",
    "tobacco_smoking_status": "smoking",
    "pack_years_smoked": "smoking",
    "treatment_type": "treatments",
    "censorship": "vital_status",
    "survival_months": "vital_status",
    "days_to_death": "vital_status",
    "days_to_last_follow_up": "vital_status",
    "grade": "tumor_grade",
    "tumor_size_cm": "tumor_size",
    "tumor_largest_dimension_diameter": "tumor_size",
    "project": "project_id",
}

#: OncoTree codes of common TCGA cohorts -> (diagnosis, primary site), for tables that only give a code.
ONCOTREE: dict[str, tuple[str, str]] = {
    "LUAD": ("lung adenocarcinoma", "bronchus and lung"),
    "LUSC": ("lung squamous cell carcinoma", "bronchus and lung"),
    "BLCA": ("urothelial carcinoma of the bladder", "bladder"),
    "IDC": ("invasive ductal carcinoma of the breast", "breast"),
    "ILC": ("invasive lobular carcinoma of the breast", "breast"),
    "BRCA": ("invasive breast carcinoma", "breast"),
    "COAD": ("colon adenocarcinoma", "colon"),
    "READ": ("rectal adenocarcinoma", "rectum"),
    "CCRCC": ("renal clear cell carcinoma", "kidney"),
    "KIRC": ("renal clear cell carcinoma", "kidney"),
    "PRCC": ("papillary renal cell carcinoma", "kidney"),
    "KIRP": ("papillary renal cell carcinoma", "kidney"),
    "CHRCC": ("chromophobe renal cell carcinoma", "kidney"),
    "GB": ("glioblastoma", "brain"),
    "GBM": ("glioblastoma", "brain"),
    "HNSC": ("head and neck squamous cell carcinoma", "head and neck"),
    "STAD": ("stomach adenocarcinoma", "stomach"),
    "PAAD": ("pancreatic adenocarcinoma", "pancreas"),
    "PRAD": ("prostate adenocarcinoma", "prostate gland"),
    "SKCM": ("cutaneous melanoma", "skin"),
    "HCC": ("hepatocellular carcinoma", "liver"),
    "LIHC": ("hepatocellular carcinoma", "liver"),
    "THPA": ("papillary thyroid cancer", "thyroid gland"),
    "THCA": ("papillary thyroid cancer", "thyroid gland"),
    "UCEC": ("uterine endometrioid carcinoma", "corpus uteri"),
    "UEC": ("uterine endometrioid carcinoma", "corpus uteri"),
    "HGSOC": ("high-grade serous ovarian cancer", "ovary"),
    "OV": ("high-grade serous ovarian cancer", "ovary"),
    "CESC": ("cervical squamous cell carcinoma", "cervix uteri"),
    "ESCA": ("esophageal carcinoma", "esophagus"),
}

_NA_STRINGS = {
    "", "-", "--", "'--", "na", "n/a", "nan", "none", "null", "nat", "<na>",
    "not reported", "unknown", "not applicable", "not allowed to collect", "not available", "unknown tumor status",
    "smoking history not documented", "unknown if ever smoked", "gx", "tx", "nx", "mx",
}
# TCGA legacy codes of tobacco_smoking_status
_SMOKING_CODES = {
    "1": "lifelong non-smoker",
    "2": "current smoker",
    "3": "current reformed smoker for > 15 years",
    "4": "current reformed smoker for <= 15 years",
    "5": "current reformed smoker, duration not specified",
}
_WORDING_STREAM = 0x7E47  # salt of the wording streams (apart from any stream the caller seeds)
_LIST_FIELDS = ("diagnoses", "exposures", "treatments", "follow_ups")


def _is_na(value: Any, extra: frozenset[str] = frozenset()) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    if isinstance(value, str):
        s = value.strip().lower()
        return s in _NA_STRINGS or s in extra or (s.startswith("[") and s.endswith("]"))
    if isinstance(value, (list, tuple, dict)):
        return len(value) == 0
    return False


def _as_list(value: Any) -> list:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _unflatten(row: Mapping[str, Any]) -> dict:
    """``{"diagnoses.0.primary_diagnosis": x, "demographic.gender": y}`` -> nested dicts and lists."""
    out: dict = {}
    for key, value in row.items():
        key = str(key)
        if key.startswith("cases."):
            key = key[len("cases."):]
        parts = key.split(".")
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                idx = int(part)
                while len(node) <= idx:
                    node.append({})
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
                continue
            if last:
                if part not in node or _is_na(node.get(part)):
                    node[part] = value
            else:
                nxt = parts[i + 1]
                default: Any = [] if nxt.isdigit() else {}
                child = node.get(part)
                if not isinstance(child, (dict, list)):
                    child = default
                    node[part] = child
                node = child
    return out


def _pick_diagnosis(case: Mapping) -> Mapping:
    diags = _as_list(case.get("diagnoses"))
    if not diags:
        return {}
    for d in diags:
        if str(d.get("diagnosis_is_primary_disease", "")).lower() == "true":
            return d
    for d in diags:
        if str(d.get("classification_of_tumor", "")).lower() == "primary":
            return d
    for d in diags:
        if not _is_na(d.get("primary_diagnosis")):
            return d
    return diags[0]


class _Case:
    """Raw values of one record, looked up in the GDC nesting and at the top level."""

    def __init__(self, record: Mapping, na: frozenset[str]):
        self.rec = record
        self.na = na
        self.diag = _pick_diagnosis(record)
        demo = record.get("demographic")
        self.demo = _as_list(demo)[0] if _as_list(demo) else {}
        self.exposures = _as_list(record.get("exposures"))
        project = record.get("project")
        self.project = project if isinstance(project, Mapping) else {"project_id": project}

    def get(self, *names: str, where: Sequence[str] = ("top", "diag", "demo", "exposures", "project")) -> Any:
        for name in names:
            for w in where:
                if w == "exposures":
                    for e in self.exposures:
                        v = e.get(name)
                        if not _is_na(v, self.na):
                            return v
                    continue
                src = {"top": self.rec, "diag": self.diag, "demo": self.demo, "project": self.project}[w]
                v = src.get(name) if isinstance(src, Mapping) else None
                if not _is_na(v, self.na):
                    return v
        return None

    def treatments(self) -> list[Mapping]:
        return _as_list(self.diag.get("treatments")) + _as_list(self.rec.get("treatments"))


def _clean(value: Any) -> str:
    s = re.sub(r"\s+", " ", str(value).strip())
    s = re.sub(r"\byrs\b", "years", s)
    return s


def _lc_first(s: str) -> str:
    """Lower-case capitalised words ('Upper lobe, Lung' -> 'upper lobe, lung'), keep acronyms ('NOS', 'AJCC')."""
    return re.sub(r"\b([A-Z])([a-z][a-z'-]*)\b", lambda m: m.group(1).lower() + m.group(2), s)


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _facts(case: _Case) -> dict[str, str]:
    """Fact name -> raw fact text (no sentence yet); absent facts are left out."""
    f: dict[str, str] = {}
    # age in years: age (years) > age_at_diagnosis (days) > age_at_index (years)
    years = _number(case.get("age", "age_years", where=("top",)))
    if years is None:
        days = _number(case.get("age_at_diagnosis", where=("top", "diag")))
        years = days / 365.25 if days is not None else None
    if years is None:
        years = _number(case.get("age_at_index", where=("top", "demo")))
    if years is not None and 0 <= years < 130:
        f["age"] = str(int(years))
    # sex
    gender = case.get("gender", "sex", where=("top", "demo"))
    if gender is None:
        fem = case.get("is_female", where=("top",))
        if fem is not None and _number(fem) is not None:
            gender = "female" if _number(fem) == 1 else "male"
        elif isinstance(fem, (bool, np.bool_)):
            gender = "female" if fem else "male"
    if gender is not None:
        f["gender"] = _clean(gender).lower()
    onco = case.get("oncotree_code", where=("top",))
    onco_facts = ONCOTREE.get(str(onco).strip().upper()) if onco is not None else None
    dx = case.get("primary_diagnosis", where=("top", "diag"))
    if dx is not None:
        f["primary_diagnosis"] = _lc_first(_clean(dx))
    elif onco_facts is not None:
        f["primary_diagnosis"] = onco_facts[0]
    elif onco is not None:
        f["primary_diagnosis"] = f"OncoTree {_clean(onco)}"
    tissue = case.get("tissue_or_organ_of_origin", "site_of_resection_or_biopsy", where=("top", "diag"))
    if tissue is not None:
        f["tissue_or_organ_of_origin"] = _lc_first(_clean(tissue))
    site = case.get("primary_site", where=("top",))
    if isinstance(site, (list, tuple)):
        site = ", ".join(_clean(s) for s in site if not _is_na(s, case.na)) or None
    if site is not None:
        f["primary_site"] = _lc_first(_clean(site))
    elif onco_facts is not None:
        f["primary_site"] = onco_facts[1]
    disease = case.get("disease_type", where=("top", "project"))
    if disease is not None:
        f["disease_type"] = _lc_first(_clean(disease))
    project = case.get("project_id", where=("top", "project"))
    if project is not None:
        f["project_id"] = _clean(project)
    # stage
    stage = case.get("ajcc_pathologic_stage", "stage", where=("top", "diag"))
    tnm = [case.get(k, where=("top", "diag")) for k in ("ajcc_pathologic_t", "ajcc_pathologic_n", "ajcc_pathologic_m")]
    tnm = [_clean(v) for v in tnm if v is not None]
    if stage is not None or tnm:
        s = re.sub(r"^stage\s+", "", _clean(stage), flags=re.I) if stage is not None else ""
        s = f"stage {s}" if s else ""
        if tnm:
            s = f"{s} ({' '.join(tnm)})" if s else " ".join(tnm)
        f["stage"] = s
    # largest tumour dimension in cm (GDC diagnoses.tumor_largest_dimension_diameter)
    size = _number(case.get("tumor_size_cm", "tumor_largest_dimension_diameter", where=("top", "diag")))
    if size is not None and size > 0:
        f["tumor_size"] = f"{size:.1f}"
    grade = case.get("tumor_grade", "grade", where=("top", "diag"))
    if grade is not None:
        f["tumor_grade"] = _lc_first(_clean(grade))
    prior = case.get("prior_malignancy", where=("top", "diag"))
    if prior is not None:
        f["prior_malignancy"] = _clean(prior).lower()
    # treatments
    given, not_given = [], []
    for t in case.treatments():
        kind = t.get("treatment_type")
        if _is_na(kind, case.na):
            continue
        kind = _lc_first(_clean(kind))
        flag = t.get("treatment_or_therapy", "yes" if "treatment_or_therapy" not in t else None)
        flag = "" if _is_na(flag, case.na) else str(flag).strip().lower()
        if flag == "yes":
            agent = t.get("therapeutic_agents")
            if not _is_na(agent, case.na):
                kind = f"{kind} ({_clean(agent).lower()})"
            if kind not in given:
                given.append(kind)
        elif flag == "no" and kind not in not_given:
            not_given.append(kind)
    top_treat = case.get("treatment_type", where=("top",))
    if top_treat is not None and not isinstance(top_treat, (list, dict)):
        given.append(_lc_first(_clean(top_treat)))
    parts = [f"received {g}" for g in given] + [f"no {g}" for g in not_given]
    if parts:
        f["treatments"] = "; ".join(parts)
    # smoking
    status = case.get("tobacco_smoking_status", where=("top", "exposures", "diag"))
    if status is not None:
        code = str(status).strip()
        code = code[:-2] if code.endswith(".0") else code
        status = _SMOKING_CODES.get(code, _clean(status).lower())
    packs = _number(case.get("pack_years_smoked", where=("top", "exposures", "diag")))
    smoke = []
    if status is not None:
        smoke.append(status)
    if packs is not None and packs >= 0:
        smoke.append(f"{packs:g} pack-years")
    if smoke:
        f["smoking"] = ", ".join(smoke)
    alcohol = case.get("alcohol_history", where=("top", "exposures"))
    if alcohol is not None:
        f["alcohol_history"] = _clean(alcohol).lower()
    for key in ("race", "ethnicity"):
        v = case.get(key, where=("top", "demo"))
        if v is not None:
            f[key] = _clean(v).lower()
    # vital status and follow-up
    vital = case.get("vital_status", where=("top", "demo", "diag"))
    censor = _number(case.get("censorship", where=("top",)))
    if vital is None and censor is not None:
        vital = "alive" if censor == 1 else "dead"
    months = _number(case.get("survival_months", where=("top",)))
    if months is None:
        vital_l = str(vital).lower() if vital is not None else ""
        key = "days_to_death" if vital_l == "dead" else "days_to_last_follow_up"
        days = _number(case.get(key, where=("top", "demo", "diag")))
        months = days / 30.4375 if days is not None else None
    if vital is not None:
        v = _clean(vital).lower()
        if months is not None and months >= 0:
            v = f"{v} ({'died' if v == 'dead' else 'last follow-up'} {months:.1f} months after diagnosis)"
        f["vital_status"] = v
    return f


# Wordings of each sentence-fact; the first is the default (deterministic) one, the others are drawn
# with ``wording_seed``. Every wording carries the fact's value word for word (the leak check relies on it).
_WORDINGS: dict[str, tuple[str, ...]] = {
    "primary_diagnosis": ("diagnosed with {}", "who presented with {}", "with a diagnosis of {}"),
    "primary_site": ("Primary site: {}.", "The primary site is {}.", "Site of the primary tumor: {}."),
    "disease_type": ("Disease type: {}.", "The disease type is {}.", "Disease category: {}."),
    "project_id": ("Project: {}.", "The case belongs to project {}."),
    "stage": ("AJCC pathologic {}.", "The disease was staged as pathologic {}.", "Pathologic staging (AJCC): {}."),
    "tumor_size": ("Tumor size: {} cm.", "The largest tumor dimension was {} cm.", "The primary tumor measured {} cm."),
    "tumor_grade": ("Tumor grade: {}.", "Histologic grade: {}.", "On histology the tumor grade was {}."),
    "prior_malignancy": ("Prior malignancy: {}.", "History of a prior malignancy: {}."),
    "treatments": ("Treatment: {}.", "Treatment history: {}."),
    "smoking": ("Smoking: {}.", "Smoking history: {}.", "Tobacco use: {}."),
    "alcohol_history": ("Alcohol history: {}.", "Alcohol use: {}."),
    "race": ("Race: {}.", "Reported race: {}."),
    "ethnicity": ("Ethnicity: {}.", "Reported ethnicity: {}."),
    "vital_status": ("Vital status: {}.", "At last contact the vital status was {}.", "Outcome: {}."),
}


def _render(f: Mapping[str, str], rng: np.random.Generator | None = None) -> dict[str, str]:
    """Fact name -> the words it contributes to the description (``rng``: draw a wording per fact)."""

    def fmt(key: str) -> str:
        options = _WORDINGS[key]
        k = int(rng.integers(len(options))) if rng is not None else 0
        return options[k].format(f[key])

    out: dict[str, str] = {}
    noun = {"female": "woman", "male": "man"}
    g = f.get("gender")
    if "age" in f:
        out["age"] = f"{f['age']}-year-old"
    if g is not None:
        out["gender"] = noun.get(g, f"patient (gender: {g})")
    if "tissue_or_organ_of_origin" in f:
        out["tissue_or_organ_of_origin"] = f"of the {f['tissue_or_organ_of_origin']}"
    for key in _WORDINGS:
        if key in f:
            out[key] = fmt(key)
    return out


def _compose(words: Mapping[str, str]) -> str:
    subject = " ".join(w for w in (words.get("age"), words.get("gender")) if w)
    if subject:
        subject = ("An " if subject[0] in "8" or subject.startswith(("11-", "18-")) else "A ") + subject
        if "gender" not in words:
            subject += " patient"
    diag = " ".join(w for w in (words.get("primary_diagnosis"), words.get("tissue_or_organ_of_origin")) if w)
    if diag and not words.get("primary_diagnosis"):
        diag = "with a tumor " + diag
    first = ""
    if subject and diag:
        first = f"{subject} {diag}."
    elif subject:
        first = f"{subject}."
    elif diag:
        first = f"Patient {diag}."
    skip = {"age", "gender", "primary_diagnosis", "tissue_or_organ_of_origin"}
    rest = [words[k] for k in CLINICAL_FIELDS if k in words and k not in skip]
    return " ".join([s for s in [first, *rest] if s])


def _normalise_fields(names: Sequence[str] | str | None, what: str) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    out = []
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"{what} must hold field names (str), got {n!r}.")
        m = _FIELD_ALIASES.get(n, n)
        if m not in CLINICAL_FIELDS:
            raise ValueError(
                f"{what} names an unknown field {n!r}. Known fields: {list(CLINICAL_FIELDS)} "
                f"(source names such as {sorted(_FIELD_ALIASES)[:6]}... are accepted too)."
            )
        if m not in out:
            out.append(m)
    return out


def _records_from(records: Any, field_map: Mapping[str, str] | None) -> tuple[list[dict], str, Any]:
    """Return (records as dicts, input kind, index)."""
    from anndata import AnnData

    def rename(row: dict) -> dict:
        if not field_map:
            return row
        row = dict(row)
        for canonical, column in field_map.items():
            if column in row:
                row[canonical] = row.pop(column)
        return row

    if isinstance(records, AnnData):
        frame = records.obs
        kind = "anndata"
    elif isinstance(records, pd.DataFrame):
        frame = records
        kind = "dataframe"
    elif isinstance(records, Mapping):
        return [rename(_unflatten(records))], "dict", None
    elif isinstance(records, (list, tuple)):
        bad = [i for i, r in enumerate(records) if not isinstance(r, Mapping)]
        if bad:
            raise TypeError(
                f"records[{bad[0]}] is a {type(records[bad[0]]).__name__}, not a dict: give GDC case dicts "
                "(JSON objects), a list of them, a DataFrame or an AnnData."
            )
        return [rename(_unflatten(r)) for r in records], "list", None
    else:
        raise TypeError(
            f"records must be a GDC case dict, a list of them, a pandas DataFrame or an AnnData (obs columns); "
            f"got {type(records).__name__}."
        )
    if field_map:
        missing = [c for c in field_map.values() if c not in frame.columns]
        if missing:
            raise KeyError(f"field_map names columns that are not in the table: {missing}; columns: {list(frame.columns)[:20]}.")
    cols = [str(c) for c in frame.columns]
    rows = [rename(_unflatten(dict(zip(cols, vals)))) for vals in frame.itertuples(index=False, name=None)]
    return rows, kind, frame.index


_DEFAULT_PROMPT = (
    "You are a pathologist writing a clinical description of a cancer patient for a research data set. "
    "Using only the facts below, write one paragraph of about 200 words that covers the primary site, the "
    "patient's demographics and the diagnosis, then stage, grade, treatment and outcome where they are given. "
    "Do not invent facts.\n\nFacts: {facts}\n\nDescription:"
)


def _llm_generate(
    facts: list[str], model: Any, prompt: str, max_new_tokens: int, device: str | None, batch_size: int
) -> list[str]:
    if "{facts}" not in prompt:
        raise ValueError("prompt must contain '{facts}' where the facts of each record go.")
    prompts = [prompt.format(facts=t) for t in facts]
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"method='llm' needs model= a local folder with a causal language model and its tokenizer "
                f"(save_pretrained); {path!r} is not a folder. A transformers pipeline object works too."
            )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

        dev = settings.resolve_device(device)
        lm = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        gen = pipeline("text-generation", model=lm, tokenizer=tok, device=dev)
        if gen.tokenizer.pad_token is None:
            gen.tokenizer.pad_token = gen.tokenizer.eos_token
        gen.tokenizer.padding_side = "left"
        with torch.inference_mode():
            outs = gen(prompts, max_new_tokens=max_new_tokens, do_sample=False, return_full_text=False, batch_size=batch_size)
    elif callable(model):
        outs = model(prompts, max_new_tokens=max_new_tokens, do_sample=False, return_full_text=False)
    else:
        raise TypeError(
            f"model must be a local folder (str/path) or a transformers text-generation pipeline, got {type(model).__name__}."
        )
    texts = []
    for o in outs:
        while isinstance(o, list) and o:
            o = o[0]
        texts.append(re.sub(r"\s+", " ", str(o.get("generated_text", "") if isinstance(o, Mapping) else o)).strip())
    if len(texts) != len(prompts):
        raise RuntimeError(f"The language model returned {len(texts)} texts for {len(prompts)} prompts.")
    return texts


def _check_leaks(
    labels: Any, rows: list[dict], kind: str, records: Any, texts: list[str], frags: list[dict[str, str]], na: frozenset
) -> list[dict]:
    """Warn when a label's values appear in, or are determined by, the descriptions."""
    n = len(texts)
    if labels is None:
        return []
    if isinstance(labels, str):
        labels = [labels]
    if isinstance(labels, Mapping):
        label_values = {}
        for name, vals in labels.items():
            vals = list(vals)
            if len(vals) != n:
                raise ValueError(f"labels[{name!r}] has {len(vals)} values for {n} records; give one per record.")
            label_values[str(name)] = vals
    else:
        label_values = {}
        frame = None
        if kind == "anndata":
            frame = records.obs
        elif kind == "dataframe":
            frame = records
        for name in labels:
            if not isinstance(name, str):
                raise TypeError(f"labels must be column names (str) or a dict name -> values, got {name!r}.")
            if frame is not None and name in frame.columns:
                label_values[name] = list(frame[name])
            elif frame is None and all(name in r for r in rows):
                label_values[name] = [r[name] for r in rows]
            else:
                where = "the table's columns" if frame is not None else "every record (top-level key)"
                raise KeyError(f"label {name!r} is not in {where}; give labels={{name: values}} instead.")
    findings = []
    for name, vals in label_values.items():
        present = [not _is_na(v, na) for v in vals]
        verbatim: dict[str, int] = {}
        n_rows = 0
        for i, (v, ok) in enumerate(zip(vals, present)):
            if not ok:
                continue
            s = str(v).strip()
            if len(s) < 2:
                continue
            pat = re.compile(r"(?<!\w)" + re.escape(s.lower()) + r"(?!\w)")
            hit = False
            for fact, words in frags[i].items():
                if pat.search(words.lower()):
                    verbatim[fact] = verbatim.get(fact, 0) + 1
                    hit = True
            n_rows += hit
        determined = []
        idx = [i for i in range(n) if present[i]]
        classes = {str(vals[i]) for i in idx}
        if len(classes) >= 2:
            for fact in CLINICAL_FIELDS:
                rows_f = [i for i in idx if fact in frags[i]]
                if len(rows_f) < max(4, len(idx) // 2):
                    continue
                groups: dict[str, dict[str, int]] = {}
                for i in rows_f:
                    g = groups.setdefault(frags[i][fact], {})
                    g[str(vals[i])] = g.get(str(vals[i]), 0) + 1
                # only values shared by >= 5 rows count (a unique age 'predicts' anything), and they must
                # cover most rows: the fact then acts as a categorical stand-in for the label
                big = [g for g in groups.values() if sum(g.values()) >= 5]
                covered = sum(sum(g.values()) for g in big)
                if len(big) < 2 or covered < 0.8 * len(rows_f):
                    continue
                purity = sum(max(g.values()) for g in big) / covered
                if purity >= 0.95:
                    determined.append((fact, purity))
        if n_rows or determined:
            facts = sorted(set(verbatim) | {d[0] for d in determined}, key=CLINICAL_FIELDS.index)
            msg = f"The label {name!r} leaks into the descriptions:"
            if n_rows:
                msg += f" its value appears word for word in {n_rows} of {n} descriptions (fields {sorted(verbatim)});"
            if determined:
                msg += " " + ", ".join(f"{f!r} predicts it for {p:.0%} of rows" for f, p in determined) + ";"
            msg += (
                " a classifier trained on text-conditioned synthetic data would then measure the text, not the "
                f"generated expression (the utility metric). If that is not intended, pass exclude={facts}."
            )
            warnings.warn(msg, LabelLeakWarning, stacklevel=3)
            findings.append({"label": name, "n_verbatim": int(n_rows), "fields": facts})
    return findings


def clinical_to_text(
    records: Any,
    fields: Sequence[str] | None = None,
    exclude: Sequence[str] | str | None = None,
    method: str = "template",
    *,
    field_map: Mapping[str, str] | None = None,
    labels: str | Sequence[str] | Mapping[str, Sequence] | None = None,
    na_values: Sequence[str] | None = None,
    wording_seed: int | None = None,
    key_added: str = "text",
    model: Any = None,
    prompt: str | None = None,
    max_new_tokens: int = 320,
    batch_size: int = 8,
    device: str | None = None,
) -> str | list[str] | pd.Series | None:
    """Write concise English descriptions from clinical records.

    Parameters
    ----------
    records
        One GDC case (the JSON of the GDC ``cases`` endpoint with
        ``expand=project,diagnoses,diagnoses.treatments,demographic,exposures``), a list of them, a pandas
        DataFrame, or an AnnData (its ``obs`` columns). Table columns may be GDC names, flat
        (``primary_diagnosis``) or dotted (``diagnoses.0.primary_diagnosis``, ``demographic.gender``), plus
        ``age`` (years), ``is_female`` (0/1), ``oncotree_code``, ``censorship`` (1 = censored, i.e. alive at
        last follow-up; 0 = died; the TCGA/MCAT convention) and ``survival_months``: the TCGA tables of MCAT
        work as they are.
    fields
        Facts to write, in the fixed order of ``CLINICAL_FIELDS``; default ``DEFAULT_CLINICAL_FIELDS`` (all but
        ``project_id``, ``race`` and ``ethnicity``). Source names such as ``"ajcc_pathologic_stage"`` or
        ``"tobacco_smoking_status"`` are accepted for the fact they feed.
    exclude
        Facts to leave out (e.g. ``["primary_diagnosis", "primary_site"]`` when those are the labels).
    method
        ``"template"`` (deterministic, offline) or ``"llm"``: a local causal language model (``model=``)
        rewrites the template facts into a paragraph of about 200 words through the transformers
        ``text-generation`` pipeline (greedy decoding).
    field_map
        ``{fact or GDC field name: column}`` for tables whose columns have other names.
    labels
        Labels you will predict later (obs/DataFrame column names, or ``{name: values}``, one value per
        record). When a label's value appears in a description, or a written fact determines it, a
        :class:`LabelLeakWarning` says which facts to ``exclude``.
    na_values
        More strings to treat as missing (besides ``"not reported"``, ``"Unknown"``, ``"--"``, ``"[Not
        Available]"``, NaN, ...). Missing values are never written.
    wording_seed
        ``None`` (default): one fixed wording, the same text for the same facts. An int: each record's
        sentences are worded from a few equivalent phrasings (``"Tumor grade: G2."``, ``"Histologic grade:
        G2."``, ...), drawn from ``numpy.random.default_rng([wording_seed, position])``: deterministic per
        seed, and record ``i`` gets the same text whatever follows it. The facts, their order and their
        values are unchanged (the label-leak check sees the fixed wording). For ``method="llm"`` it varies
        the facts handed to the model.
    key_added
        For AnnData input: the ``obs`` column written.
    model, prompt, max_new_tokens, batch_size, device
        For ``method="llm"``: a local model folder or a text-generation pipeline, a prompt with ``{facts}``,
        generation length, prompts per batch and torch device.

    Returns
    -------
    A ``str`` for one dict, a list for a list, a ``Series`` (same index) for a DataFrame; for AnnData,
    ``None``: writes ``adata.obs[key_added]`` and ``adata.uns[f"gemmgan_clinical_{key_added}"]["params"]``.
    Records with no usable fact give ``""`` and a warning (``embed_text`` then refuses them unless
    ``na_text`` is given).

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> case = {
    ...     "primary_site": "Bronchus and lung", "disease_type": "Adenomas and Adenocarcinomas",
    ...     "demographic": {"gender": "female", "vital_status": "Alive"},
    ...     "diagnoses": [{"primary_diagnosis": "Adenocarcinoma, NOS", "tissue_or_organ_of_origin": "Upper lobe, lung",
    ...                    "age_at_diagnosis": 24472, "ajcc_pathologic_stage": "Stage IB", "tumor_grade": "Not Reported"}],
    ... }
    >>> gg.pp.clinical_to_text(case)
    'A 67-year-old woman diagnosed with adenocarcinoma, NOS of the upper lobe, lung. Primary site: bronchus and lung. Disease type: adenomas and adenocarcinomas. AJCC pathologic stage IB. Vital status: alive.'
    """
    if method not in ("template", "llm"):
        raise ValueError(f"method must be 'template' or 'llm', got {method!r}.")
    if field_map is not None and not isinstance(field_map, Mapping):
        raise TypeError(f"field_map must be a dict {{field: column}}, got {type(field_map).__name__}.")
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty obs column name, got {key_added!r}.")
    na = frozenset(s.strip().lower() for s in (na_values or ()))
    if na_values is not None and (isinstance(na_values, str) or not all(isinstance(s, str) for s in na_values)):
        raise TypeError(f"na_values must be a list of strings, got {na_values!r}.")
    if wording_seed is not None and (
        isinstance(wording_seed, bool) or not isinstance(wording_seed, (int, np.integer)) or wording_seed < 0
    ):
        raise ValueError(f"wording_seed must be None (fixed wording) or a non-negative int, got {wording_seed!r}.")
    chosen = _normalise_fields(fields, "fields") or list(DEFAULT_CLINICAL_FIELDS)
    dropped = _normalise_fields(exclude, "exclude") or []
    keep = [f for f in CLINICAL_FIELDS if f in chosen and f not in dropped]
    if method == "llm" and model is None:
        raise ValueError("method='llm' needs model=: a local causal language model folder or a text-generation pipeline.")

    rows, kind, index = _records_from(records, field_map)
    if not rows:
        raise ValueError("records is empty: there is nothing to describe.")
    frags: list[dict[str, str]] = []
    texts: list[str] = []
    for i, row in enumerate(rows):
        facts = _facts(_Case(row, na))
        words = {k: v for k, v in _render(facts).items() if k in keep}
        frags.append(words)
        if wording_seed is not None:
            rng = np.random.default_rng([int(wording_seed), i, _WORDING_STREAM])
            words = {k: v for k, v in _render(facts, rng).items() if k in keep}
        texts.append(_compose(words))
    empty = [i for i, t in enumerate(texts) if not t]
    names = [str(index[i]) for i in empty] if index is not None else empty
    if empty:
        warnings.warn(
            f"{len(empty)} record(s) have no usable clinical field and got an empty description: {names[:10]}. "
            "Check field names (field_map=) or give embed_text(na_text=...).",
            UserWarning,
            stacklevel=2,
        )
    if method == "llm":
        todo = [i for i, t in enumerate(texts) if t]
        if todo:
            gen = _llm_generate([texts[i] for i in todo], model, prompt or _DEFAULT_PROMPT, max_new_tokens, device, batch_size)
            fallback = []
            for i, g in zip(todo, gen):
                if g:
                    texts[i] = g
                else:
                    fallback.append(i)
            if fallback:
                warnings.warn(
                    f"The language model wrote nothing for {len(fallback)} record(s); they keep the template text.",
                    UserWarning,
                    stacklevel=2,
                )
    findings = _check_leaks(labels, rows, kind, records, texts, frags, na)

    if kind == "dict":
        return texts[0]
    if kind == "list":
        return texts
    if kind == "dataframe":
        return pd.Series(texts, index=index, name=key_added, dtype=object)
    adata: AnnData = records
    if key_added in adata.obs:
        logger.info("overwriting adata.obs[%r] with new descriptions", key_added)
    adata.obs[key_added] = pd.Series(texts, index=adata.obs_names, dtype=object)
    n_words = [len(t.split()) for t in texts]
    adata.uns[f"gemmgan_clinical_{key_added}"] = {
        "params": {
            "method": method,
            "fields": keep,
            "exclude": dropped,
            "field_map": {str(k): str(v) for k, v in (field_map or {}).items()},
            "na_values": sorted(na),
            "wording_seed": -1 if wording_seed is None else int(wording_seed),
            "n_empty": len(empty),
            "mean_words": float(np.mean(n_words)),
            "model": str(model) if isinstance(model, (str, os.PathLike)) else (type(model).__name__ if model is not None else ""),
            "labels_checked": sorted(str(k) for k in (labels if isinstance(labels, (Mapping, list, tuple)) else [labels] if labels else [])),
            "label_leaks": [f["label"] for f in findings],
        }
    }
    return None

