"""``clinical_to_text``: clinical records (GDC case JSON, tables, ``adata.obs``) -> short English descriptions.

The steps live in their own modules: ``_records`` (parsing), ``_facts`` (per-field extractors),
``_fields`` (which facts), ``_wording`` (sentences), ``_llm`` (language-model rewrite), ``_leaks`` (label-leak check).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..._settings import logger
from ._facts import CLINICAL_FIELDS, facts
from ._fields import chosen_fields
from ._leaks import check_leaks
from ._llm import DEFAULT_PROMPT, rewrite
from ._records import Case, records_from
from ._wording import compose, render, wording_rng

if TYPE_CHECKING:
    from anndata import AnnData

_USER = 3  # stacklevel of a warning issued by a helper of clinical_to_text: the user's call


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
    keep, dropped, na = _check_options(method, fields, exclude, field_map, key_added, na_values, wording_seed, model)
    rows, kind, index = records_from(records, field_map)
    if not rows:
        raise ValueError("records is empty: there is nothing to describe.")
    texts, frags = _template_texts(rows, keep, na, wording_seed)
    n_empty = _warn_empty(texts, index)
    if method == "llm":
        kept = rewrite(texts, model, prompt or DEFAULT_PROMPT, max_new_tokens, device, batch_size)
        if kept:
            warnings.warn(f"The language model wrote nothing for {kept} record(s); they keep the template text.",
                          UserWarning, stacklevel=2)
    findings = check_leaks(labels, rows, kind, records, frags, na, stacklevel=2)
    if kind == "dict":
        return texts[0]
    if kind == "list":
        return texts
    if kind == "dataframe":
        return pd.Series(texts, index=index, name=key_added, dtype=object)
    params = {
        "method": method, "fields": keep, "exclude": dropped,
        "field_map": {str(k): str(v) for k, v in (field_map or {}).items()}, "na_values": sorted(na),
        "wording_seed": -1 if wording_seed is None else int(wording_seed), "n_empty": n_empty,
        "mean_words": float(np.mean([len(t.split()) for t in texts])), "model": _model_name(model),
        "labels_checked": _label_names(labels), "label_leaks": [f["label"] for f in findings],
    }
    _write_obs(records, texts, key_added, params)
    return None


def _check_options(
    method: str, fields: Any, exclude: Any, field_map: Any, key_added: Any, na_values: Any, wording_seed: Any, model: Any
) -> tuple[list[str], list[str], frozenset[str]]:
    """Validate the options; return (facts to write, facts excluded, extra missing-value strings)."""
    if method not in ("template", "llm"):
        raise ValueError(f"method must be 'template' or 'llm', got {method!r}.")
    if field_map is not None and not isinstance(field_map, Mapping):
        raise TypeError(f"field_map must be a dict {{field: column}}, got {type(field_map).__name__}.")
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty obs column name, got {key_added!r}.")
    if na_values is not None and (isinstance(na_values, str) or not all(isinstance(s, str) for s in na_values)):
        raise TypeError(f"na_values must be a list of strings, got {na_values!r}.")
    if wording_seed is not None and (
        isinstance(wording_seed, bool) or not isinstance(wording_seed, (int, np.integer)) or wording_seed < 0
    ):
        raise ValueError(f"wording_seed must be None (fixed wording) or a non-negative int, got {wording_seed!r}.")
    keep, dropped = chosen_fields(fields, exclude)
    if method == "llm" and model is None:
        raise ValueError("method='llm' needs model=: a local causal language model folder or a text-generation pipeline.")
    return keep, dropped, frozenset(s.strip().lower() for s in (na_values or ()))


def _template_texts(
    rows: list[dict], keep: list[str], na: frozenset[str], wording_seed: int | None
) -> tuple[list[str], list[dict[str, str]]]:
    """(descriptions, each record's words per fact in the fixed wording: what the leak check reads)."""
    texts, frags = [], []
    for i, row in enumerate(rows):
        found = facts(Case(row, na), CLINICAL_FIELDS)
        words = render(found, keep)
        frags.append(words)
        if wording_seed is not None:
            words = render(found, keep, wording_rng(wording_seed, i))
        texts.append(compose(words))
    return texts, frags


def _warn_empty(texts: list[str], index: Any) -> int:
    empty = [i for i, t in enumerate(texts) if not t]
    if empty:
        names = [str(index[i]) for i in empty] if index is not None else empty
        warnings.warn(
            f"{len(empty)} record(s) have no usable clinical field and got an empty description: {names[:10]}. "
            "Check field names (field_map=) or give embed_text(na_text=...).",
            UserWarning,
            stacklevel=_USER,
        )
    return len(empty)


def _model_name(model: Any) -> str:
    if isinstance(model, (str, os.PathLike)):
        return str(model)
    return type(model).__name__ if model is not None else ""


def _label_names(labels: Any) -> list[str]:
    names = labels if isinstance(labels, (Mapping, list, tuple)) else [labels] if labels else []
    return sorted(str(k) for k in names)


def _write_obs(adata: AnnData, texts: list[str], key_added: str, params: dict) -> None:
    if key_added in adata.obs:
        logger.info("overwriting adata.obs[%r] with new descriptions", key_added)
    adata.obs[key_added] = pd.Series(texts, index=adata.obs_names, dtype=object)
    adata.uns[f"gemmgan_clinical_{key_added}"] = {"params": params}
