"""Turn AnnData or arrays into dense float matrices with aligned genes, and read labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

VALID_DTYPES = ("float64", "float32")


def _is_anndata(obj: Any) -> bool:
    try:
        from anndata import AnnData
    except ImportError:  # pragma: no cover - anndata is a hard dependency
        return False
    return isinstance(obj, AnnData)


def _check_dtype(dtype: str) -> np.dtype:
    if str(np.dtype(dtype)) not in VALID_DTYPES:
        raise ValueError(f"dtype must be one of {VALID_DTYPES}, got {dtype!r}.")
    return np.dtype(dtype)


def expression_of(data: Any, layer: str | None = None, name: str = "data") -> tuple[Any, pd.Index | None]:
    """Return ``(matrix, var_names)`` of ``data`` (AnnData: ``X`` or ``layers[layer]``; array: itself)."""
    if _is_anndata(data):
        if layer is None:
            mat = data.X
            if mat is None:
                raise ValueError(f"{name}.X is empty; pass layer=... naming the layer with expression values.")
        else:
            if layer not in data.layers:
                raise KeyError(f"layer {layer!r} is not in {name}.layers ({list(data.layers.keys())}); pass layer=None for X.")
            mat = data.layers[layer]
        return mat, pd.Index(data.var_names.astype(str))
    if isinstance(data, pd.DataFrame):
        return data.to_numpy(), pd.Index(data.columns.astype(str))
    if sp.issparse(data) or isinstance(data, np.ndarray):
        return data, None
    if isinstance(data, (list, tuple)):
        return np.asarray(data), None
    raise TypeError(
        f"{name} must be an AnnData, a numpy array, a scipy sparse matrix or a pandas DataFrame, got {type(data).__name__}."
    )


def _all_finite(x: np.ndarray) -> bool:
    # min and max propagate NaN and show +-inf: two reductions, no temporary of the matrix's size
    return bool(np.isfinite(x.min()) and np.isfinite(x.max()))


def _dense(mat: Any, dtype: np.dtype, name: str, keep_float32: bool = False) -> np.ndarray:
    if sp.issparse(mat):
        mat = mat.toarray()
    out = np.asarray(mat)
    if out.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples x genes), got shape {out.shape}.")
    if not np.issubdtype(out.dtype, np.number) or np.issubdtype(out.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {out.dtype}.")
    if keep_float32 and out.dtype == np.float32 and dtype == np.float64:
        out = np.ascontiguousarray(out)  # float32 -> float64 is exact and cannot overflow: done later, lazily
    else:
        out = np.ascontiguousarray(out, dtype=dtype)  # no copy when already C-contiguous in dtype
    if out.shape[0] == 0 or out.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {out.shape}); give at least one sample and one gene.")
    if not _all_finite(out):
        bad = int((~np.isfinite(out)).sum())
        raise ValueError(f"{name} has {bad} NaN or infinite values; impute or drop them first.")
    return out


def as_matrices(
    *datas: Any,
    names: Sequence[str] | None = None,
    layer: str | None | Sequence[str | None] = None,
    var_names: Sequence[str] | None = None,
    dtype: str = "float64",
    keep_float32: bool = False,
) -> list[np.ndarray]:
    """Dense C-contiguous matrices of ``datas`` with the genes in one order.

    AnnData and DataFrames are aligned by gene name (to ``var_names`` when given, else to the first named
    input); arrays must already have the same columns in the same order.
    ``layer`` applies to every AnnData input, or give a list with one entry per input.
    Inputs already C-contiguous in ``dtype`` are returned as they are (not copied). With ``keep_float32``,
    float32 inputs stay float32 when ``dtype`` is float64, for callers that convert on the fly.
    """
    dt = _check_dtype(dtype)
    names = list(names) if names is not None else [f"input {i}" for i in range(len(datas))]
    layers = list(layer) if isinstance(layer, (list, tuple)) else [layer] * len(datas)
    if len(layers) != len(datas):
        raise ValueError(f"give one layer per input ({len(datas)}), got {len(layers)}.")
    raw = [expression_of(d, layer=ly, name=n) for d, ly, n in zip(datas, layers, names)]
    ref: pd.Index | None = pd.Index(np.asarray(var_names).astype(str)) if var_names is not None else None
    if ref is None:
        for _, vn in raw:
            if vn is not None:
                ref = vn
                break
    if ref is not None and ref.has_duplicates:
        dup = ref[ref.duplicated()].unique()[:5].tolist()
        raise ValueError(f"gene names must be unique to align inputs; duplicated: {dup}. Run adata.var_names_make_unique().")
    out = []
    for (mat, vn), n in zip(raw, names):
        if vn is not None and ref is not None and not vn.equals(ref):
            if vn.has_duplicates:
                raise ValueError(f"{n} has duplicated gene names; run var_names_make_unique() first.")
            missing = ref.difference(vn)
            if len(missing):
                raise ValueError(
                    f"{n} lacks {len(missing)} of the genes to compare (e.g. {missing[:5].tolist()}); "
                    "subset all inputs to shared genes first, e.g. adata[:, genes]."
                )
            mat = mat[:, vn.get_indexer(ref)]
        arr = _dense(mat, dt, n, keep_float32=keep_float32)
        if ref is not None and arr.shape[1] != len(ref):
            raise ValueError(f"{n} has {arr.shape[1]} genes but the others have {len(ref)}; give the same genes.")
        out.append(arr)
    widths = {a.shape[1] for a in out}
    if len(widths) > 1:
        raise ValueError(
            "inputs have different numbers of genes "
            + ", ".join(f"{n}: {a.shape[1]}" for n, a in zip(names, out))
            + "; give matrices over the same genes in the same order."
        )
    return out


def labels_of(data: Any, label_key: str | None, labels: Any, name: str) -> np.ndarray:
    """Labels of the rows of ``data``: explicit ``labels`` or ``data.obs[label_key]`` as strings."""
    n = data.n_obs if _is_anndata(data) else np.shape(expression_of(data, name=name)[0])[0]
    if labels is not None:
        out = np.asarray(labels)
    elif label_key is not None and _is_anndata(data):
        if label_key not in data.obs:
            raise KeyError(f"{label_key!r} is not a column of {name}.obs ({list(data.obs.columns)}).")
        col = data.obs[label_key]
        if col.isna().any():
            raise ValueError(f"{name}.obs[{label_key!r}] has {int(col.isna().sum())} missing labels; fill or drop them.")
        out = col.astype(str).to_numpy()
    else:
        raise ValueError(
            f"labels for {name} are missing: pass an AnnData with label_key naming an obs column, "
            f"or the labels themselves (e.g. {name.replace(' ', '_')}_labels=...)."
        )
    if out.ndim != 1 or out.shape[0] != n:
        raise ValueError(f"labels for {name} must be 1-D with {n} entries (one per sample), got shape {out.shape}.")
    return out.astype(str)
