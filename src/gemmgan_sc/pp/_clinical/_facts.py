"""One record -> its facts: a table of per-field extractors, each giving the fact's raw text or ``None``."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._records import Case, is_na

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
# TCGA legacy codes of tobacco_smoking_status
_SMOKING_CODES = {
    "1": "lifelong non-smoker",
    "2": "current smoker",
    "3": "current reformed smoker for > 15 years",
    "4": "current reformed smoker for <= 15 years",
    "5": "current reformed smoker, duration not specified",
}
_TOP_DIAG = ("top", "diag")


def clean(value: Any) -> str:
    s = re.sub(r"\s+", " ", str(value).strip())
    return re.sub(r"\byrs\b", "years", s)


def lc_first(s: str) -> str:
    """Lower-case capitalised words ('Upper lobe, Lung' -> 'upper lobe, lung'), keep acronyms ('NOS', 'AJCC')."""
    return re.sub(r"\b([A-Z])([a-z][a-z'-]*)\b", lambda m: m.group(1).lower() + m.group(2), s)


def number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


@dataclass(frozen=True)
class _Lookup:
    """A fact that is one source value, cleaned (and styled): the first of ``names`` found in ``where``."""

    names: tuple[str, ...]
    where: tuple[str, ...]
    style: Callable[[str], str] | None = None

    def __call__(self, case: Case) -> str | None:
        v = case.get(*self.names, where=self.where)
        if v is None:
            return None
        return self.style(clean(v)) if self.style else clean(v)


def _age(case: Case) -> str | None:
    # age in years: age (years) > age_at_diagnosis (days) > age_at_index (years)
    years = number(case.get("age", "age_years", where=("top",)))
    if years is None:
        days = number(case.get("age_at_diagnosis", where=_TOP_DIAG))
        years = days / 365.25 if days is not None else None
    if years is None:
        years = number(case.get("age_at_index", where=("top", "demo")))
    return str(int(years)) if years is not None and 0 <= years < 130 else None


def _gender(case: Case) -> str | None:
    gender = case.get("gender", "sex", where=("top", "demo"))
    if gender is None:
        female = number(case.get("is_female", where=("top",)))  # bools are numbers too
        gender = None if female is None else "female" if female == 1 else "male"
    return clean(gender).lower() if gender is not None else None


def _oncotree(case: Case) -> tuple[Any, tuple[str, str] | None]:
    code = case.get("oncotree_code", where=("top",))
    return code, ONCOTREE.get(str(code).strip().upper()) if code is not None else None


def _primary_diagnosis(case: Case) -> str | None:
    dx = case.get("primary_diagnosis", where=_TOP_DIAG)
    if dx is not None:
        return lc_first(clean(dx))
    code, known = _oncotree(case)
    if known is not None:
        return known[0]
    return f"OncoTree {clean(code)}" if code is not None else None


def _primary_site(case: Case) -> str | None:
    site = case.get("primary_site", where=("top",))
    if isinstance(site, (list, tuple)):
        site = ", ".join(clean(s) for s in site if not is_na(s, case.na)) or None
    if site is not None:
        return lc_first(clean(site))
    known = _oncotree(case)[1]
    return known[1] if known is not None else None


def _stage(case: Case) -> str | None:
    stage = case.get("ajcc_pathologic_stage", "stage", where=_TOP_DIAG)
    tnm = [case.get(k, where=_TOP_DIAG) for k in ("ajcc_pathologic_t", "ajcc_pathologic_n", "ajcc_pathologic_m")]
    tnm = [clean(v) for v in tnm if v is not None]
    if stage is None and not tnm:
        return None
    s = re.sub(r"^stage\s+", "", clean(stage), flags=re.I) if stage is not None else ""
    s = f"stage {s}" if s else ""
    if tnm:
        s = f"{s} ({' '.join(tnm)})" if s else " ".join(tnm)
    return s


def _tumor_size(case: Case) -> str | None:
    # largest tumour dimension in cm (GDC diagnoses.tumor_largest_dimension_diameter)
    size = number(case.get("tumor_size_cm", "tumor_largest_dimension_diameter", where=_TOP_DIAG))
    return f"{size:.1f}" if size is not None and size > 0 else None


def _treatment_flag(treatment: dict, na: frozenset[str]) -> str:
    """'yes', 'no', or another answer of ``treatment_or_therapy``; a treatment listed without the flag was given."""
    flag = treatment.get("treatment_or_therapy", "yes" if "treatment_or_therapy" not in treatment else None)
    return "" if is_na(flag, na) else str(flag).strip().lower()


def _treatments(case: Case) -> str | None:
    given: list[str] = []
    not_given: list[str] = []
    for t in case.treatments():
        kind = t.get("treatment_type")
        if is_na(kind, case.na):
            continue
        kind = lc_first(clean(kind))
        flag = _treatment_flag(t, case.na)
        if flag == "yes":
            agent = t.get("therapeutic_agents")
            if not is_na(agent, case.na):
                kind = f"{kind} ({clean(agent).lower()})"
            if kind not in given:
                given.append(kind)
        elif flag == "no" and kind not in not_given:
            not_given.append(kind)
    top = case.get("treatment_type", where=("top",))
    if top is not None and not isinstance(top, (list, dict)):
        given.append(lc_first(clean(top)))
    parts = [f"received {g}" for g in given] + [f"no {g}" for g in not_given]
    return "; ".join(parts) if parts else None


def _smoking(case: Case) -> str | None:
    where = ("top", "exposures", "diag")
    status = case.get("tobacco_smoking_status", where=where)
    if status is not None:
        code = str(status).strip()
        code = code[:-2] if code.endswith(".0") else code
        status = _SMOKING_CODES.get(code, clean(status).lower())
    packs = number(case.get("pack_years_smoked", where=where))
    smoke = [status] if status is not None else []
    if packs is not None and packs >= 0:
        smoke.append(f"{packs:g} pack-years")
    return ", ".join(smoke) if smoke else None


def _vital_status(case: Case) -> str | None:
    vital = case.get("vital_status", where=("top", "demo", "diag"))
    censor = number(case.get("censorship", where=("top",)))
    if vital is None and censor is not None:
        vital = "alive" if censor == 1 else "dead"  # MCAT/TCGA convention: 1 = censored, alive at last follow-up
    if vital is None:
        return None
    months = number(case.get("survival_months", where=("top",)))
    if months is None:
        key = "days_to_death" if str(vital).lower() == "dead" else "days_to_last_follow_up"
        days = number(case.get(key, where=("top", "demo", "diag")))
        months = days / 30.4375 if days is not None else None
    v = clean(vital).lower()
    if months is not None and months >= 0:
        v = f"{v} ({'died' if v == 'dead' else 'last follow-up'} {months:.1f} months after diagnosis)"
    return v


#: Fact name -> its extractor, in the order the facts are written.
EXTRACTORS: dict[str, Callable[[Case], str | None]] = {
    "age": _age,
    "gender": _gender,
    "primary_diagnosis": _primary_diagnosis,
    "tissue_or_organ_of_origin": _Lookup(("tissue_or_organ_of_origin", "site_of_resection_or_biopsy"), _TOP_DIAG, lc_first),
    "primary_site": _primary_site,
    "disease_type": _Lookup(("disease_type",), ("top", "project"), lc_first),
    "project_id": _Lookup(("project_id",), ("top", "project")),
    "stage": _stage,
    "tumor_size": _tumor_size,
    "tumor_grade": _Lookup(("tumor_grade", "grade"), _TOP_DIAG, lc_first),
    "prior_malignancy": _Lookup(("prior_malignancy",), _TOP_DIAG, str.lower),
    "treatments": _treatments,
    "smoking": _smoking,
    "alcohol_history": _Lookup(("alcohol_history",), ("top", "exposures"), str.lower),
    "race": _Lookup(("race",), ("top", "demo"), str.lower),
    "ethnicity": _Lookup(("ethnicity",), ("top", "demo"), str.lower),
    "vital_status": _vital_status,
}
#: Facts a description can hold, in the order they are written.
CLINICAL_FIELDS: tuple[str, ...] = tuple(EXTRACTORS)
#: Facts written when ``fields=None``.
DEFAULT_CLINICAL_FIELDS: tuple[str, ...] = tuple(
    f for f in CLINICAL_FIELDS if f not in ("project_id", "race", "ethnicity")
)


def facts(case: Case, names: Sequence[str] = CLINICAL_FIELDS) -> dict[str, str]:
    """Fact name -> raw fact text (no sentence yet); absent facts are left out."""
    out = {}
    for name in names:
        value = EXTRACTORS[name](case)
        if value is not None:
            out[name] = value
    return out
