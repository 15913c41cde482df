"""Cache folder resolution and atomic file writes for the dataset loaders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._io import atomic_write

CACHE_ENV = "GEMMGAN_SC_CACHE"


def resolve_cache_dir(cache_dir: str | os.PathLike | None, sub: str, name: str = "cache_dir") -> Path:
    """Return (and create) the cache folder ``<root>/<sub>``.

    The root is ``cache_dir`` when given, else the environment variable ``GEMMGAN_SC_CACHE``,
    else ``pooch.os_cache("gemmgan-sc")`` (the operating system's user cache folder).
    """
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)) or str(cache_dir) == "":
            raise TypeError(f"{name} must be a folder path (str or os.PathLike) or None, got {cache_dir!r}.")
        root = Path(cache_dir).expanduser()
    elif os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV]).expanduser()
    else:
        import pooch

        root = Path(pooch.os_cache("gemmgan-sc"))
    folder = (root / sub).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(
            f"Cannot create the folder {folder} ({err}). Pass {name}=<a writable folder> "
            f"or set the environment variable {CACHE_ENV}."
        ) from err
    return folder


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically."""

    def _write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1, sort_keys=True)

    atomic_write(path, _write)


def read_json(path: Path) -> Any | None:
    """Read JSON, or return ``None`` when the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
