"""Helpers shared by the slide pipelines (tile_slides, embed_tiles, tile_spots): checks, the patch store, records."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._io import check_anndata
from .._io import uns_safe as _uns_safe
from .._settings import progress as _progress
from ..data import PatchStore

DEFAULT_STORE_PREFIX = "gemmgan_patches"
_ERRORS = ("raise", "warn")


def _logger():
    from .._settings import logger

    return logger


def _check_adata(adata) -> None:
    check_anndata(adata, genes=False)


def _int_param(name: str, value, minimum: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{' or None' if allow_none else ''}, got {value!r}.")
    return int(value)


def _open_store(adata, store, key_added: str, create: bool = False, default: Path | None = None) -> PatchStore:
    """The store passed, else the one ``uns[key_added]`` names, else ``default``.

    ``create``: the store may be new (a pipeline that writes coordinates); ``default`` implies it. A caller
    that only reads needs an existing store.
    """
    if isinstance(store, PatchStore):
        return store if store.mode != "r" else PatchStore(store.path, mode="a")
    create = create or default is not None
    if store is None:
        record = adata.uns.get(key_added)
        store = (record.get("patch_store") if isinstance(record, dict) else None) or default
        if store is None:
            raise ValueError(
                f"No patch store: adata.uns[{key_added!r}]['patch_store'] is missing. "
                + ("Pass store=... (a folder for the new patch store)." if create else
                   "Run gg.pp.tile_slides first or pass store=...")
            )
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a path or a PatchStore, got {type(store).__name__}.")
    if not create and not (Path(store).expanduser() / "zarr.json").is_file():
        raise FileNotFoundError(f"No patch store at {str(store)!r}: run gg.pp.tile_slides first.")
    return PatchStore(store, mode="a")


def default_store(mapping: dict[str, str], params: dict[str, Any]) -> Path:
    """``./gemmgan_patches-<hash>.zarr``: the hash of the slides (ids and absolute paths) and the tiling parameters.

    The same cohort tiled the same way finds its store again (resumable); another cohort, or other
    parameters, get their own store in the same folder.
    """
    slides = sorted((sid, str(Path(p).expanduser().absolute())) for sid, p in mapping.items())
    key = json.dumps({"slides": slides, "params": _uns_safe(params)}, sort_keys=True)
    return Path(f"{DEFAULT_STORE_PREFIX}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.zarr").absolute()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("gemmgan-sc", "openslide-python", "openslide-bin", "tifffile", "scikit-image", "timm", "torch"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def check_key_and_tissue_kwargs(key_added: str, tissue_kwargs: dict | None) -> dict:
    """Check ``key_added`` and that ``tissue_kwargs`` are options of :func:`gemmgan_sc.pp.detect_tissue`;
    returns a copy of ``tissue_kwargs`` (shared by ``tile_slides`` and ``tile_spots``)."""
    import inspect

    from ._tissue import detect_tissue

    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty str, got {key_added!r}.")
    tissue_kwargs = dict(tissue_kwargs or {})
    bad = set(tissue_kwargs) - (set(inspect.signature(detect_tissue).parameters) - {"slide"})
    if bad:
        raise ValueError(f"Unknown tissue_kwargs {sorted(bad)}; see gg.pp.detect_tissue for the options.")
    return tissue_kwargs
