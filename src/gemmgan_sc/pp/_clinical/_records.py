"""Clinical records in: missing values, GDC nesting (dotted columns, lists of diagnoses), one record's lookups."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Strings (lower-cased, stripped) that mean "no value" in GDC and TCGA tables; ``[...]`` codes count too.
NA_STRINGS = frozenset({
    "", "-", "--", "'--", "na", "n/a", "nan", "none", "null", "nat", "<na>",
    "not reported", "unknown", "not applicable", "not allowed to collect", "not available", "unknown tumor status",
    "smoking history not documented", "unknown if ever smoked", "gx", "tx", "nx", "mx",
})
_SOURCES = ("top", "diag", "demo", "exposures", "project")


def is_na(value: Any, extra: frozenset[str] = frozenset()) -> bool:
    """Whether ``value`` is missing: None/NaN/NA, an empty container, or a missing-value code (or one of ``extra``)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    if isinstance(value, str):
        s = value.strip().lower()
        return s in NA_STRINGS or s in extra or (s.startswith("[") and s.endswith("]"))
    if isinstance(value, (list, tuple, dict)):
        return len(value) == 0
    return False


def as_list(value: Any) -> list:
    """The mappings in ``value`` (one mapping, a list of them, or nothing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _grow(node: list, idx: int) -> None:
    while len(node) <= idx:
        node.append({})


def _child(node: dict | list, part: str, next_part: str) -> Any:
    """The container under ``node[part]``, created (a list when the next key is a number) when absent."""
    if isinstance(node, list):
        idx = int(part)
        _grow(node, idx)
        return node[idx]
    child = node.get(part)
    if not isinstance(child, (dict, list)):
        child = [] if next_part.isdigit() else {}
        node[part] = child
    return child


def _put(out: dict, parts: list[str], value: Any) -> None:
    node: Any = out
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, parts[i + 1])
    last = parts[-1]
    if isinstance(node, list):
        _grow(node, int(last))
        node[int(last)] = value
    elif last not in node or is_na(node.get(last)):  # a nested value already there wins over a missing one
        node[last] = value


def unflatten(row: Mapping[str, Any]) -> dict:
    """``{"diagnoses.0.primary_diagnosis": x, "demographic.gender": y}`` -> nested dicts and lists."""
    out: dict = {}
    for key, value in row.items():
        key = str(key)
        if key.startswith("cases."):
            key = key[len("cases."):]
        _put(out, key.split("."), value)
    return out


def pick_diagnosis(case: Mapping) -> Mapping:
    """The primary diagnosis of a GDC case (flagged primary, else classified primary, else the first named one)."""
    diags = as_list(case.get("diagnoses"))
    tests = (
        lambda d: str(d.get("diagnosis_is_primary_disease", "")).lower() == "true",
        lambda d: str(d.get("classification_of_tumor", "")).lower() == "primary",
        lambda d: not is_na(d.get("primary_diagnosis")),
    )
    for test in tests:
        for d in diags:
            if test(d):
                return d
    return diags[0] if diags else {}


class Case:
    """Raw values of one record, looked up in the GDC nesting and at the top level."""

    def __init__(self, record: Mapping, na: frozenset[str]):
        self.rec = record
        self.na = na
        self.diag = pick_diagnosis(record)
        demo = as_list(record.get("demographic"))
        self.demo = demo[0] if demo else {}
        self.exposures = as_list(record.get("exposures"))
        project = record.get("project")
        self.project = project if isinstance(project, Mapping) else {"project_id": project}

    def _sources(self, where: str) -> Sequence[Mapping]:
        if where == "exposures":
            return self.exposures
        return [{"top": self.rec, "diag": self.diag, "demo": self.demo, "project": self.project}[where]]

    def get(self, *names: str, where: Sequence[str] = _SOURCES) -> Any:
        """The first value that is not missing, trying each name in each place of ``where`` in turn."""
        for name in names:
            for w in where:
                for src in self._sources(w):
                    v = src.get(name) if isinstance(src, Mapping) else None
                    if not is_na(v, self.na):
                        return v
        return None

    def treatments(self) -> list[Mapping]:
        return as_list(self.diag.get("treatments")) + as_list(self.rec.get("treatments"))


def _rename(row: dict, field_map: Mapping[str, str] | None) -> dict:
    if not field_map:
        return row
    row = dict(row)
    for canonical, column in field_map.items():
        if column in row:
            row[canonical] = row.pop(column)
    return row


def _table_rows(frame: pd.DataFrame, field_map: Mapping[str, str] | None) -> list[dict]:
    if field_map:
        missing = [c for c in field_map.values() if c not in frame.columns]
        if missing:
            raise KeyError(f"field_map names columns that are not in the table: {missing}; columns: {list(frame.columns)[:20]}.")
    cols = [str(c) for c in frame.columns]
    return [_rename(unflatten(dict(zip(cols, vals))), field_map) for vals in frame.itertuples(index=False, name=None)]


def records_from(records: Any, field_map: Mapping[str, str] | None) -> tuple[list[dict], str, Any]:
    """Return (records as nested dicts, input kind: anndata/dataframe/dict/list, index or None)."""
    from anndata import AnnData

    if isinstance(records, AnnData):
        return _table_rows(records.obs, field_map), "anndata", records.obs.index
    if isinstance(records, pd.DataFrame):
        return _table_rows(records, field_map), "dataframe", records.index
    if isinstance(records, Mapping):
        return [_rename(unflatten(records), field_map)], "dict", None
    if isinstance(records, (list, tuple)):
        bad = [i for i, r in enumerate(records) if not isinstance(r, Mapping)]
        if bad:
            raise TypeError(
                f"records[{bad[0]}] is a {type(records[bad[0]]).__name__}, not a dict: give GDC case dicts "
                "(JSON objects), a list of them, a DataFrame or an AnnData."
            )
        return [_rename(unflatten(r), field_map) for r in records], "list", None
    raise TypeError(
        f"records must be a GDC case dict, a list of them, a pandas DataFrame or an AnnData (obs columns); "
        f"got {type(records).__name__}."
    )
