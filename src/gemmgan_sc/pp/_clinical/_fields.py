"""Which facts to write: ``fields=`` / ``exclude=`` names, with source-field aliases."""

from __future__ import annotations

from collections.abc import Sequence

from ._facts import CLINICAL_FIELDS, DEFAULT_CLINICAL_FIELDS

# names of source fields -> the fact they feed (for fields= / exclude=)
FIELD_ALIASES = {
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


def normalise_fields(names: Sequence[str] | str | None, what: str) -> list[str] | None:
    """Fact names (aliases resolved, duplicates dropped, order kept); ``None`` stays ``None``."""
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    out = []
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"{what} must hold field names (str), got {n!r}.")
        m = FIELD_ALIASES.get(n, n)
        if m not in CLINICAL_FIELDS:
            raise ValueError(
                f"{what} names an unknown field {n!r}. Known fields: {list(CLINICAL_FIELDS)} "
                f"(source names such as {sorted(FIELD_ALIASES)[:6]}... are accepted too)."
            )
        if m not in out:
            out.append(m)
    return out


def chosen_fields(fields: Sequence[str] | None, exclude: Sequence[str] | str | None) -> tuple[list[str], list[str]]:
    """(facts to write in the order of ``CLINICAL_FIELDS``, facts excluded)."""
    chosen = normalise_fields(fields, "fields") or list(DEFAULT_CLINICAL_FIELDS)
    dropped = normalise_fields(exclude, "exclude") or []
    return [f for f in CLINICAL_FIELDS if f in chosen and f not in dropped], dropped
