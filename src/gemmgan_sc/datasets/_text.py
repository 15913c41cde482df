"""Clinical descriptions written from a clinical record (shared by the demo cohort and TCGA)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

_GRADE_WORDS = {
    "G1": "well differentiated (grade 1)",
    "G2": "moderately differentiated (grade 2)",
    "G3": "poorly differentiated (grade 3)",
    "G4": "undifferentiated (grade 4)",
}


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in {"", "nan", "not reported", "unknown", "--", "'--"}


def describe_case(record: Mapping[str, Any], rng: np.random.Generator | None = None) -> str:
    """Write a short clinical description from a record with harmonised keys.

    Known keys (all optional): ``age``, ``sex``, ``disease_type``, ``primary_site``, ``stage``,
    ``grade``, ``smoking_status``, ``pack_years``, ``tumor_size_cm``, ``primary_diagnosis``,
    ``treatments``, ``vital_status``, ``race``. Missing values are left out of the text. ``rng``
    varies the wording (not the facts); without it the first wording is used.
    """
    r = {k: v for k, v in record.items() if not _missing(v)}
    pick = (lambda opts: opts[int(rng.integers(len(opts)))]) if rng is not None else (lambda opts: opts[0])
    sex = str(r.get("sex", "")).lower()
    noun = {"female": "woman", "male": "man"}.get(sex, "patient")
    pron = {"female": "She", "male": "He"}.get(sex, "The patient")
    poss = {"female": "her", "male": "his"}.get(sex, "their")
    parts = []

    who = f"A {int(round(float(r['age'])))}-year-old {noun}" if "age" in r else f"A {noun}"
    disease = str(r.get("primary_diagnosis", r.get("disease_type", "a malignant tumour"))).lower()
    site = f" of the {str(r['primary_site']).lower()}" if "primary_site" in r else ""
    parts.append(pick([f"{who} was diagnosed with {disease}{site}.", f"{who} presented with {disease}{site}."]))

    stage_bits = []
    if "stage" in r:
        stage_bits.append(f"pathologic {str(r['stage'])}".replace("Stage", "stage"))
    if "tumor_size_cm" in r:
        stage_bits.append(f"a primary tumour of {float(r['tumor_size_cm']):.1f} cm")
    if stage_bits:
        parts.append(pick(["The disease was staged as ", "Staging showed "]) + " with ".join(stage_bits) + ".")
    if "grade" in r:
        g = str(r["grade"])
        words = _GRADE_WORDS.get(g, f"grade {g}")
        parts.append(pick([f"Histology showed a {words} tumour.", f"On histology the tumour was {words}."]))

    status = str(r.get("smoking_status", "")).lower()
    if status:
        if status.startswith("never") or status.startswith("lifelong non"):
            parts.append(pick([f"{pron} never smoked.", f"{pron} is a lifelong non-smoker."]))
        else:
            py = f" with about {float(r['pack_years']):.0f} pack-years" if "pack_years" in r else ""
            parts.append(f"{pron} is a {status.replace('smoker', '').strip()} smoker{py}.".replace("  ", " "))
    if "treatments" in r:
        parts.append(f"Treatment included {str(r['treatments']).lower()}.")
    if "vital_status" in r:
        parts.append(f"At last follow-up {poss} vital status was {str(r['vital_status']).lower()}.")
    return " ".join(parts)
