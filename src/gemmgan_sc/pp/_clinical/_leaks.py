"""Label-leak check: does a label the user will predict appear in, or follow from, the descriptions?"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

from ._facts import CLINICAL_FIELDS
from ._records import is_na


class LabelLeakWarning(UserWarning):
    """A label the user will predict can be read from the descriptions."""


def _label_values(labels: Any, rows: list[dict], kind: str, records: Any, n: int) -> dict[str, list]:
    """``{label name: one value per record}`` from a mapping of values or from column / top-level key names."""
    if isinstance(labels, str):
        labels = [labels]
    if isinstance(labels, Mapping):
        out = {}
        for name, vals in labels.items():
            vals = list(vals)
            if len(vals) != n:
                raise ValueError(f"labels[{name!r}] has {len(vals)} values for {n} records; give one per record.")
            out[str(name)] = vals
        return out
    frame = records.obs if kind == "anndata" else records if kind == "dataframe" else None
    out = {}
    for name in labels:
        if not isinstance(name, str):
            raise TypeError(f"labels must be column names (str) or a dict name -> values, got {name!r}.")
        if frame is not None and name in frame.columns:
            out[name] = list(frame[name])
        elif frame is None and all(name in r for r in rows):
            out[name] = [r[name] for r in rows]
        else:
            where = "the table's columns" if frame is not None else "every record (top-level key)"
            raise KeyError(f"label {name!r} is not in {where}; give labels={{name: values}} instead.")
    return out


def _verbatim(vals: list, present: list[bool], frags: list[dict[str, str]]) -> tuple[dict[str, int], int]:
    """(fact -> records whose words hold the label value word for word, number of such records)."""
    hits: dict[str, int] = {}
    n_rows = 0
    for v, ok, words in zip(vals, present, frags):
        s = str(v).strip()
        if not ok or len(s) < 2:
            continue
        pat = re.compile(r"(?<!\w)" + re.escape(s.lower()) + r"(?!\w)")
        found = [fact for fact, text in words.items() if pat.search(text.lower())]
        for fact in found:
            hits[fact] = hits.get(fact, 0) + 1
        n_rows += bool(found)
    return hits, n_rows


def _purity(fact: str, idx: list[int], vals: list, frags: list[dict[str, str]]) -> float | None:
    """How well the fact's written value predicts the label, or ``None`` when it cannot act as a category."""
    rows = [i for i in idx if fact in frags[i]]
    if len(rows) < max(4, len(idx) // 2):
        return None
    groups: dict[str, dict[str, int]] = {}
    for i in rows:
        g = groups.setdefault(frags[i][fact], {})
        g[str(vals[i])] = g.get(str(vals[i]), 0) + 1
    # only values shared by >= 5 rows count (a unique age 'predicts' anything), and they must
    # cover most rows: the fact then acts as a categorical stand-in for the label
    big = [g for g in groups.values() if sum(g.values()) >= 5]
    covered = sum(sum(g.values()) for g in big)
    if len(big) < 2 or covered < 0.8 * len(rows):
        return None
    return sum(max(g.values()) for g in big) / covered


def _determining(vals: list, present: list[bool], frags: list[dict[str, str]]) -> list[tuple[str, float]]:
    """(fact, purity) of the facts that determine the label (purity >= 0.95) when it has two classes or more."""
    idx = [i for i, ok in enumerate(present) if ok]
    if len({str(vals[i]) for i in idx}) < 2:
        return []
    purities = ((fact, _purity(fact, idx, vals, frags)) for fact in CLINICAL_FIELDS)
    return [(fact, p) for fact, p in purities if p is not None and p >= 0.95]


def _message(name: str, n_rows: int, n: int, verbatim: dict, determined: list, facts: list[str]) -> str:
    msg = f"The label {name!r} leaks into the descriptions:"
    if n_rows:
        msg += f" its value appears word for word in {n_rows} of {n} descriptions (fields {sorted(verbatim)});"
    if determined:
        msg += " " + ", ".join(f"{f!r} predicts it for {p:.0%} of rows" for f, p in determined) + ";"
    return msg + (
        " a classifier trained on text-conditioned synthetic data would then measure the text, not the "
        f"generated expression (the utility metric). If that is not intended, pass exclude={facts}."
    )


def check_leaks(
    labels: Any, rows: list[dict], kind: str, records: Any, frags: list[dict[str, str]], na: frozenset,
    stacklevel: int = 2,
) -> list[dict]:
    """Warn (:class:`LabelLeakWarning`) when a label's values appear in, or are determined by, the words of the facts.

    ``frags`` holds each record's words per fact in the fixed wording; ``stacklevel`` is that of the
    public caller (the warning points at the user's call).
    """
    if labels is None:
        return []
    n = len(frags)
    findings = []
    for name, vals in _label_values(labels, rows, kind, records, n).items():
        present = [not is_na(v, na) for v in vals]
        verbatim, n_rows = _verbatim(vals, present, frags)
        determined = _determining(vals, present, frags)
        if n_rows or determined:
            facts = sorted(set(verbatim) | {d[0] for d in determined}, key=CLINICAL_FIELDS.index)
            warnings.warn(_message(name, n_rows, n, verbatim, determined, facts), LabelLeakWarning,
                          stacklevel=stacklevel + 1)
            findings.append({"label": name, "n_verbatim": int(n_rows), "fields": facts})
    return findings

