"""File-system helpers shared by every writer: atomic folder replacement and JSON-safe values."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


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


def json_safe(value: Any) -> Any:
    """Plain JSON types from NumPy scalars/arrays, paths, tuples and non-finite floats (-> None)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
