"""Helpers shared by every reader and writer: atomic files and folders, JSON/uns-safe values, AnnData checks,
and the one schema of ``uns["gemmgan_synthetic"]``."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

SYNTHETIC_KEY = "gemmgan_synthetic"


def replace_folder(new: Path, target: Path, trash_dir: Path | None = None) -> None:
    """Move the finished folder ``new`` to ``target`` with renames only.

    An existing ``target`` is first renamed aside (into ``trash_dir``, default its parent) and deleted after the
    swap, so at every moment ``target`` is either the old complete folder, absent, or the new complete folder.
    """
    if target.exists():
        trash_dir = trash_dir or target.parent
        trash_dir.mkdir(parents=True, exist_ok=True)
        trash = trash_dir / f".trash-{target.name}-{uuid.uuid4().hex}"
        os.rename(target, trash)
        os.rename(new, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(new, target)


@contextmanager
def atomic_folder(target: str | os.PathLike, staging_dir: Path | None = None) -> Iterator[Path]:
    """Write a folder atomically: fill the yielded temporary folder; on success it replaces ``target``.

    On an exception (or a kill) the temporary folder is removed (or left as a hidden ``.tmp-*`` sibling that
    never reads as ``target``).
    """
    target = Path(target)
    parent = staging_dir or target.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=parent))
    try:
        yield tmp
        replace_folder(tmp, target, staging_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it into place; returns ``path``.

    The temporary file is hidden and ends in ``.tmp`` (so no glob for the real suffix picks it up; writers that
    read the format from the suffix, such as ``savefig``, must be told the format) and is removed when ``write``
    fails, so ``path`` is either the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def json_safe(value: Any, *, drop_none: bool = False) -> Any:
    """Plain Python types from NumPy scalars/arrays, paths and tuples, for JSON or for ``adata.uns``.

    ``drop_none=False`` (JSON): non-finite floats become ``None``. ``drop_none=True`` (``.h5ad``/``.zarr`` ``uns``,
    which cannot store ``None``): dict entries and list items that are ``None`` are left out; NaN stays.
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, drop_none=drop_none) for k, v in value.items()
                if not (drop_none and v is None)}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, drop_none=drop_none) for v in value if not (drop_none and v is None)]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist(), drop_none=drop_none)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        return str(value)
    if not drop_none and isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def uns_safe(value: Any) -> Any:
    """:func:`json_safe` for ``adata.uns`` (``None`` entries dropped)."""
    return json_safe(value, drop_none=True)


def check_anndata(adata: Any, *, genes: bool = True) -> None:
    """Fail with a clear message unless ``adata`` is an AnnData with rows.

    ``genes=True`` also asks for at least one gene and unique ``obs_names`` / ``var_names`` (what a model reads);
    ``genes=False`` only asks for rows (what slide tiling reads).
    """
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData, got {type(adata).__name__}.")
    if adata.n_obs == 0 or (genes and adata.n_vars == 0):
        raise ValueError(f"AnnData is empty ({adata.n_obs} obs x {adata.n_vars} vars); nothing to do.")
    if not genes:
        return
    for axis, names in (("obs", adata.obs_names), ("var", adata.var_names)):
        if not names.is_unique:
            dup = names[names.duplicated()].unique()[:5].tolist()
            raise ValueError(f"Duplicated {axis}_names, e.g. {dup}: call adata.{axis}_names_make_unique() first.")


def synthetic_uns(model_name: str, n_rows: int, n_per_row: int | None = None) -> dict[str, Any]:
    """The record a model writes to ``synth.uns["gemmgan_synthetic"]`` (one schema for every model).

    Parameters
    ----------
    model_name
        Class name of the model that generated the profiles (e.g. ``"GeMMGAN"``).
    n_rows
        Number of synthetic profiles (``synth.n_obs``).
    n_per_row
        Profiles generated per conditioning row; ``None`` for free draws not tied to rows (written as 0, since
        ``.h5ad`` cannot store ``None``).

    Returns
    -------
    ``{"model": str, "n_samples": int, "n_samples_per_row": int}``.

    Examples
    --------
    >>> from gemmgan_sc._io import synthetic_uns
    >>> synthetic_uns("WGANGP", 500)
    {'model': 'WGANGP', 'n_samples': 500, 'n_samples_per_row': 0}
    """
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"model_name must be a non-empty str, got {model_name!r}.")
    for name, value in (("n_rows", n_rows), ("n_per_row", 0 if n_per_row is None else n_per_row)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}.")
    return {"model": model_name, "n_samples": int(n_rows), "n_samples_per_row": int(n_per_row or 0)}
