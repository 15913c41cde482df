"""Real and synthetic profiles in one AnnData, for scanpy embeddings and plots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["concat_real_synthetic"]


def _dense(x: Any) -> np.ndarray:
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=np.float32)


def _matrix(adata, layer: str | None, name: str) -> np.ndarray:
    if layer is None:
        if adata.X is None:
            raise ValueError(f"{name}.X is empty; pass {'layer' if name == 'real' else 'synth_layer'}=... naming a layer.")
        return _dense(adata.X)
    if layer not in adata.layers:
        raise KeyError(f"{name}.layers[{layer!r}] is missing; {name} has layers {list(adata.layers)}.")
    return _dense(adata.layers[layer])


def _kept_genes(real, synth, genes: str) -> pd.Index:
    if genes == "synth":
        missing = synth.var_names.difference(real.var_names)
        if len(missing):
            raise ValueError(
                f"real lacks {len(missing)} genes of synth (e.g. {list(missing[:5])}); use genes='inner' or subset."
            )
        keep = pd.Index(synth.var_names)
    else:
        keep = synth.var_names[synth.var_names.isin(real.var_names)]
    if len(keep) == 0:
        raise ValueError(
            "real and synth share no gene names (var_names); were they made from the same genes? "
            f"real: {list(real.var_names[:3])}..., synth: {list(synth.var_names[:3])}..."
        )
    return keep


def _obs_columns(real, synth, obs_keys, key_added: str) -> list[str]:
    if obs_keys is None:
        cols = [c for c in real.obs.columns if c in synth.obs.columns and c != key_added]
        if "source_obs" in synth.obs.columns and "source_obs" not in cols:
            cols.append("source_obs")
        return cols
    cols = [obs_keys] if isinstance(obs_keys, str) else list(obs_keys)
    absent = [c for c in cols if c not in real.obs.columns and c not in synth.obs.columns]
    if absent:
        raise KeyError(f"obs_keys {absent} are in neither real.obs nor synth.obs.")
    if key_added in cols:
        raise ValueError(f"obs_keys must not contain key_added={key_added!r}; it is written by this function.")
    return cols


def _merged_obs(real, synth, cols: Sequence[str]) -> pd.DataFrame:
    """The ``cols`` of both ``obs`` stacked (NaN where one lacks a column; categories of a column merged)."""
    obs = {}
    for c in cols:
        a = real.obs[c] if c in real.obs.columns else pd.Series(np.nan, index=real.obs_names)
        b = synth.obs[c] if c in synth.obs.columns else pd.Series(np.nan, index=synth.obs_names)
        values = pd.concat([a.astype(object), b.astype(object)], ignore_index=True)
        if isinstance(a.dtype, pd.CategoricalDtype) or isinstance(b.dtype, pd.CategoricalDtype):
            cats = []
            for s in (a, b):
                cats.extend(s.cat.categories if isinstance(s.dtype, pd.CategoricalDtype) else pd.unique(s.dropna()))
            values = pd.Categorical(values, categories=list(dict.fromkeys(cats)))
        else:
            values = values.infer_objects()
        obs[c] = values
    return pd.DataFrame(obs, index=pd.RangeIndex(real.n_obs + synth.n_obs))


def _row_names(real, synth) -> pd.Index:
    """Real then synthetic obs names, with ``-real`` / ``-synth`` suffixes only on names found in both."""
    names_r = pd.Index(real.obs_names.astype(str))
    names_s = pd.Index(synth.obs_names.astype(str))
    clash = names_r.intersection(names_s)
    if len(clash):
        names_r = pd.Index([f"{n}-real" if n in clash else n for n in names_r])
        names_s = pd.Index([f"{n}-synth" if n in clash else n for n in names_s])
    return names_r.append(names_s)


def concat_real_synthetic(
    real,
    synth,
    layer: str | None = None,
    synth_layer: str | None = None,
    obs_keys: Sequence[str] | None = None,
    key_added: str = "synthetic",
    genes: str = "inner",
):
    """Stack real and synthetic profiles into one new AnnData (real rows first).

    Genes are aligned by name (``var_names``), so ``synth`` may have its genes in another order or only a subset
    of the genes of ``real``. Labels in ``obs`` are kept, ``obs[key_added]`` says which rows are synthetic
    (a categorical with the categories ``"real"`` and ``"synthetic"``, so that scanpy colours and labels it
    directly). Neither input is changed.

    Parameters
    ----------
    real
        The real AnnData (samples x genes).
    synth
        The synthetic AnnData, e.g. from ``model.sample()``.
    layer
        Layer of ``real`` holding the expression (default ``X``).
    synth_layer
        Layer of ``synth`` (default ``X``, where ``model.sample`` writes).
    obs_keys
        ``obs`` columns to keep (default: every column the two share, plus ``source_obs`` of ``synth``).
        A named column missing from one input is filled with NaN there.
    key_added
        Name of the ``obs`` column that marks synthetic rows.
    genes
        ``"inner"``: keep the genes in both (default). ``"synth"``: keep the genes of ``synth`` and fail if
        ``real`` lacks some.

    Returns
    -------
    AnnData with ``X`` (float32) on the scale of the inputs, ``obs`` with the kept columns (categories
    of the same column are merged) and ``obs[key_added]``, obs names made unique with a ``-real`` /
    ``-synth`` suffix only where the two collide, and ``uns["gemmgan_concat"]["params"]``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> import gemmgan_sc as gg
    >>> real = ad.AnnData(np.ones((3, 4), np.float32), obs=pd.DataFrame({"type": list("aab")}, index=list("xyz")))
    >>> real.var_names = ["g1", "g2", "g3", "g4"]
    >>> synth = ad.AnnData(np.zeros((2, 3), np.float32), obs=pd.DataFrame({"type": list("ab")}, index=["s1", "s2"]))
    >>> synth.var_names = ["g2", "g3", "g4"]
    >>> both = gg.tl.concat_real_synthetic(real, synth)
    >>> both.shape, both.obs["synthetic"].tolist()
    ((5, 3), ['real', 'real', 'real', 'synthetic', 'synthetic'])
    """
    import anndata as ad

    for name, obj in (("real", real), ("synth", synth)):
        if not isinstance(obj, ad.AnnData):
            raise TypeError(f"{name} must be an AnnData, got {type(obj).__name__}.")
        if obj.n_obs == 0:
            raise ValueError(f"{name} has no rows (n_obs == 0); nothing to concatenate.")
        if obj.var_names.has_duplicates:
            dup = obj.var_names[obj.var_names.duplicated()].unique()[:5].tolist()
            raise ValueError(f"{name}.var_names has duplicates {dup}; run {name}.var_names_make_unique() first.")
    if genes not in ("inner", "synth"):
        raise ValueError(f"genes must be 'inner' or 'synth', got {genes!r}.")
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty str, got {key_added!r}.")

    keep = _kept_genes(real, synth, genes)
    x_real = _matrix(real, layer, "real")[:, real.var_names.get_indexer(keep)]
    x_synth = _matrix(synth, synth_layer, "synth")[:, synth.var_names.get_indexer(keep)]
    obs = _merged_obs(real, synth, _obs_columns(real, synth, obs_keys, key_added))
    obs[key_added] = pd.Categorical(["real"] * real.n_obs + ["synthetic"] * synth.n_obs, categories=["real", "synthetic"])
    obs.index = _row_names(real, synth)

    out = ad.AnnData(X=np.vstack([x_real, x_synth]), obs=obs, var=pd.DataFrame(index=keep.astype(str)))
    if not out.obs_names.is_unique:
        out.obs_names_make_unique()
    out.uns["gemmgan_concat"] = {
        "params": {
            "layer": layer or "", "synth_layer": synth_layer or "", "key_added": key_added, "genes": genes,
            "n_real": int(real.n_obs), "n_synthetic": int(synth.n_obs), "n_genes": int(len(keep)),
            "n_genes_dropped": int(real.n_vars - len(keep)),
        }
    }
    return out
