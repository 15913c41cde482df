"""The setup registry (scvi-tools' ``setup_anndata`` habit) and validation of AnnData against it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._io import check_anndata as _check_anndata

SETUP_KEY = "_gemmgan_setup"
EXPRESSION_SCALES = ("log", "any")


@dataclasses.dataclass
class AnnDataRegistry:
    """Which AnnData fields a model reads, and what they looked like at setup.

    Created by ``Model.setup_anndata``; stored in ``adata.uns["_gemmgan_setup"]`` and in saved models;
    every AnnData later given to the model is validated against it with :meth:`validate`.
    """

    layer: str | None = None
    text_key: str | None = None
    text_mask_key: str | None = None
    patch_store: str | None = None
    slide_key: str | None = None
    labels_keys: list[str] = dataclasses.field(default_factory=list)
    expression_scale: str = "log"
    # summary of the data at setup
    n_vars: int = 0
    text_dim: int | None = None
    patch_dim: int | None = None
    categories: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    # -------------------------------------------------------------- modality
    @property
    def has_text(self) -> bool:
        return self.text_key is not None

    @property
    def has_image(self) -> bool:
        return self.patch_store is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "AnnDataRegistry":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - fields
        if unknown:
            raise ValueError(f"Unknown registry entries {sorted(unknown)}; the setup was written by another version?")
        values = dict(values)
        values["labels_keys"] = [str(k) for k in values.get("labels_keys") or []]
        values["categories"] = {str(k): [str(c) for c in v] for k, v in (values.get("categories") or {}).items()}
        return cls(**values)

    def to_uns(self) -> dict[str, Any]:
        """h5ad-safe form (no None values)."""
        return {k: ("" if v is None else v) for k, v in self.to_dict().items() if k != "categories"} | {
            "categories": {k: list(v) for k, v in self.categories.items()}
        }

    @classmethod
    def from_uns(cls, values: dict[str, Any]) -> "AnnDataRegistry":
        out = {}
        for key, value in values.items():
            if isinstance(value, np.ndarray):
                value = value.tolist()
            if isinstance(value, np.generic):
                value = value.item()
            out[key] = None if isinstance(value, str) and value == "" else value
        if isinstance(out.get("categories"), dict):
            out["categories"] = {k: list(np.asarray(v).tolist()) for k, v in out["categories"].items()}
        return cls.from_dict(out)

    # ----------------------------------------------------------------- build
    @classmethod
    def setup(
        cls,
        adata,
        layer: str | None = None,
        text_key: str | None = "X_text_tokens",
        text_mask_key: str | None = "text_mask",
        patch_store: str | None = None,
        slide_key: str | None = "slide_id",
        labels_keys: Sequence[str] | None = None,
        expression_scale: str = "log",
        require_condition: bool = True,
        use_text: bool | None = None,
    ) -> "AnnDataRegistry":
        """Build and validate a registry for ``adata``.

        ``text_key`` missing from ``obsm`` with the default name means "no text" when a patch store is
        given (an image-only model); a text key the user named explicitly must exist.
        """
        _check_anndata(adata)
        if expression_scale not in EXPRESSION_SCALES:
            raise ValueError(f"expression_scale must be one of {EXPRESSION_SCALES}, got {expression_scale!r}.")
        if use_text is None:
            use_text = text_key is not None and (text_key in adata.obsm or patch_store is None)
        if not use_text:
            text_key = text_mask_key = None
        if text_key is not None and text_key not in adata.obsm:
            raise KeyError(
                f"adata.obsm[{text_key!r}] (text token embeddings) is missing. Run gg.pp.embed_text(adata, ...) "
                f"first, or pass patch_store=... for an image-only model. obsm has: {list(adata.obsm.keys())}."
            )
        if patch_store is not None:
            patch_store = str(patch_store)
            if slide_key is None or slide_key not in adata.obs:
                raise KeyError(
                    f"adata.obs[{slide_key!r}] (slide ids in the patch store) is missing; pass slide_key=... naming "
                    f"the obs column of slide ids. obs has: {list(adata.obs.columns)}."
                )
        else:
            slide_key = None
        if require_condition and text_key is None and patch_store is None:
            raise ValueError(
                "This model needs a condition: give text embeddings (text_key, run gg.pp.embed_text) and/or a "
                "patch store (patch_store=..., run gg.pp.tile_slides and gg.pp.embed_tiles)."
            )
        labels_keys = [str(k) for k in (labels_keys or [])]
        categories = {}
        for key in labels_keys:
            if key not in adata.obs:
                raise KeyError(f"labels key {key!r} is not a column of adata.obs ({list(adata.obs.columns)}).")
            values = adata.obs[key]
            if values.isna().any():
                raise ValueError(
                    f"adata.obs[{key!r}] has {int(values.isna().sum())} missing values; fill or drop those rows."
                )
            cats = values.cat.categories if isinstance(values.dtype, pd.CategoricalDtype) else sorted(values.unique())
            categories[key] = [str(c) for c in cats if (values.astype(str) == str(c)).any()]
        reg = cls(
            layer=layer,
            text_key=text_key,
            text_mask_key=text_mask_key,
            patch_store=patch_store,
            slide_key=slide_key,
            labels_keys=labels_keys,
            expression_scale=expression_scale,
            n_vars=int(adata.n_vars),
            categories=categories,
        )
        if text_key is not None:
            reg.text_dim = int(np.shape(adata.obsm[text_key])[-1])
        if patch_store is not None:
            from ._patch_store import PatchStore

            reg.patch_dim = PatchStore(patch_store, mode="r").dim
        reg.validate(adata, check_categories=False)
        return reg

    # -------------------------------------------------------------- validate
    def validate(self, adata, check_categories: bool = True, require_expression: bool = True) -> None:
        """Raise a clear error when ``adata`` does not fit this registry."""
        _check_anndata(adata)
        if require_expression:
            validate_expression(get_expression(adata, self.layer), self.layer, self.expression_scale)
        if self.text_key is not None:
            self._validate_text(adata)
        if self.patch_store is not None:
            self._validate_slides(adata)
        for key in self.labels_keys:
            if key not in adata.obs:
                raise KeyError(f"adata.obs[{key!r}] (a label the model was set up with) is missing.")
            values = adata.obs[key]
            if values.isna().any():
                raise ValueError(f"adata.obs[{key!r}] has {int(values.isna().sum())} missing values.")
            if check_categories and self.categories.get(key):
                unknown = sorted(set(values.astype(str)) - set(self.categories[key]))
                if unknown:
                    raise ValueError(
                        f"adata.obs[{key!r}] has categories the model never saw: {unknown[:10]} "
                        f"(known: {self.categories[key]})."
                    )

    def _validate_text(self, adata) -> None:
        key, mask_key = self.text_key, self.text_mask_key
        if key not in adata.obsm:
            raise KeyError(
                f"adata.obsm[{key!r}] (text token embeddings) is missing: run gg.pp.embed_text with the same "
                "encoder the model was set up with."
            )
        tokens = adata.obsm[key]
        shape = np.shape(tokens)
        if len(shape) != 3:
            raise ValueError(
                f"adata.obsm[{key!r}] must be n_obs x n_tokens x dim (token embeddings, CLS first), got shape {shape}."
            )
        if self.text_dim is not None and shape[2] != self.text_dim:
            raise ValueError(
                f"adata.obsm[{key!r}] has width {shape[2]}, but the model was set up with {self.text_dim}-d text "
                "embeddings: embed the text with the same encoder."
            )
        if not _all_finite(tokens):
            raise ValueError(f"adata.obsm[{key!r}] contains NaN or inf values.")
        if mask_key is not None:
            if mask_key not in adata.obsm:
                raise KeyError(f"adata.obsm[{mask_key!r}] (text attention mask, True = token) is missing.")
            mask = np.asarray(adata.obsm[mask_key])
            if mask.shape != shape[:2]:
                raise ValueError(
                    f"adata.obsm[{mask_key!r}] has shape {mask.shape}, expected {shape[:2]} to match adata.obsm[{key!r}]."
                )
            if not mask.astype(bool)[:, 0].all():
                bad = adata.obs_names[~mask.astype(bool)[:, 0]][:5].tolist()
                raise ValueError(
                    f"adata.obsm[{mask_key!r}] masks out the first (CLS) token of rows {bad}: those rows have no text."
                )

    def _validate_slides(self, adata) -> None:
        from ._patch_store import PatchStore

        if self.slide_key not in adata.obs:
            raise KeyError(f"adata.obs[{self.slide_key!r}] (slide ids) is missing.")
        ids = adata.obs[self.slide_key]
        if ids.isna().any():
            bad = adata.obs_names[ids.isna().to_numpy()][:5].tolist()
            raise ValueError(f"adata.obs[{self.slide_key!r}] is missing for rows {bad}.")
        store = PatchStore(self.patch_store, mode="r")
        if self.patch_dim is not None and store.dim is not None and store.dim != self.patch_dim:
            raise ValueError(
                f"The patch store {self.patch_store!r} holds {store.dim}-d features but the model was set up with "
                f"{self.patch_dim}-d features: embed the tiles with the same encoder."
            )
        present = set(store.embedded_slide_ids)
        missing = sorted(
            s for s in set(ids.astype(str)) - present if not (s in store and store.n_tiles(s) == 0)
        )  # slides tiled with 0 tiles (no tissue) are allowed: the model masks them
        if missing:
            raise KeyError(
                f"{len(missing)} slide(s) of adata.obs[{self.slide_key!r}] have no features in the patch store "
                f"{self.patch_store!r}, e.g. {missing[:5]}: run gg.pp.tile_slides and gg.pp.embed_tiles for them."
            )


def _all_finite(array, rows: int = 256) -> bool:
    """Whether every value is finite, checked a block of rows at a time in the array's own dtype (token embeddings
    of a large cohort are gigabytes: no float32 copy, no full-size boolean temporary)."""
    array = np.asarray(array)
    return all(np.isfinite(array[i : i + rows]).all() for i in range(0, array.shape[0], rows))


def get_expression(adata, layer: str | None) -> np.ndarray:
    """Dense float32 expression matrix from ``X`` or ``layers[layer]``."""
    if layer is None:
        x = adata.X
        where = "adata.X"
    else:
        if layer not in adata.layers:
            raise KeyError(f"Layer {layer!r} is not in adata.layers ({list(adata.layers.keys())}).")
        x = adata.layers[layer]
        where = f"adata.layers[{layer!r}]"
    if x is None:
        raise ValueError(f"{where} is empty.")
    if sp.issparse(x):
        x = x.toarray()
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{where} must be numeric, got dtype {x.dtype}.")
    return x.astype(np.float32, copy=False)


def validate_expression(x: np.ndarray, layer: str | None = None, scale: str = "log") -> None:
    """Raise if expression has NaN/inf, or negative values on a log scale."""
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    finite = np.isfinite(x)
    if not finite.all():
        rows, cols = np.nonzero(~finite)
        raise ValueError(
            f"{where} has {int((~finite).sum())} NaN/inf values (first at row {rows[0]}, column {cols[0]}): "
            "impute or drop them before training."
        )
    if scale == "log" and (x < 0).any():
        raise ValueError(
            f"{where} has {int((x < 0).sum())} negative values but a log scale such as log2(TPM+1) is expected. "
            "If the values are already centred (e.g. z-scores), call setup_anndata(..., expression_scale='any')."
        )
