"""Facts -> sentences: one fixed wording, or wordings drawn per record with ``wording_seed``."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from ._facts import CLINICAL_FIELDS

_WORDING_STREAM = 0x7E47  # salt of the wording streams (apart from any stream the caller seeds)

# Wordings of each sentence-fact; the first is the default (deterministic) one, the others are drawn
# with ``wording_seed``. Every wording carries the fact's value word for word (the leak check relies on it).
WORDINGS: dict[str, tuple[str, ...]] = {
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
_NOUNS = {"female": "woman", "male": "man"}
_FIRST_SENTENCE = ("age", "gender", "primary_diagnosis", "tissue_or_organ_of_origin")


def wording_rng(seed: int, position: int) -> np.random.Generator:
    """The wording stream of the record at ``position``: it does not depend on the records that follow."""
    return np.random.default_rng([int(seed), position, _WORDING_STREAM])


def render(f: Mapping[str, str], keep: Collection[str], rng: np.random.Generator | None = None) -> dict[str, str]:
    """Fact name -> the words it contributes, for the facts in ``keep`` (``rng``: draw a wording per fact).

    A wording is drawn for every fact present, kept or not, so that the draws of one record do not
    depend on ``keep``.
    """
    out: dict[str, str] = {}
    if "age" in f:
        out["age"] = f"{f['age']}-year-old"
    if "gender" in f:
        out["gender"] = _NOUNS.get(f["gender"], f"patient (gender: {f['gender']})")
    if "tissue_or_organ_of_origin" in f:
        out["tissue_or_organ_of_origin"] = f"of the {f['tissue_or_organ_of_origin']}"
    for key, options in WORDINGS.items():
        if key in f:
            k = int(rng.integers(len(options))) if rng is not None else 0
            out[key] = options[k].format(f[key])
    return {k: v for k, v in out.items() if k in keep}


def _subject(words: Mapping[str, str]) -> str:
    subject = " ".join(w for w in (words.get("age"), words.get("gender")) if w)
    if not subject:
        return ""
    subject = ("An " if subject[0] in "8" or subject.startswith(("11-", "18-")) else "A ") + subject
    return subject if "gender" in words else subject + " patient"


def compose(words: Mapping[str, str]) -> str:
    """The description: a first sentence (who, diagnosis, origin), then one sentence per fact."""
    subject = _subject(words)
    diag = " ".join(w for w in (words.get("primary_diagnosis"), words.get("tissue_or_organ_of_origin")) if w)
    if diag and not words.get("primary_diagnosis"):
        diag = "with a tumor " + diag
    if subject and diag:
        first = f"{subject} {diag}."
    elif subject or diag:
        first = f"{subject}." if subject else f"Patient {diag}."
    else:
        first = ""
    rest = [words[k] for k in CLINICAL_FIELDS if k in words and k not in _FIRST_SENTENCE]
    return " ".join([s for s in [first, *rest] if s])
