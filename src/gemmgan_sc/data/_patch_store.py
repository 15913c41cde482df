"""Zarr-backed store of per-slide tile embeddings (the image half of the AnnData contract)."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_folder, json_safe

_SLIDE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_MODES = ("r", "w", "a")


def validate_slide_id(slide_id: Any) -> str:
    """Return ``slide_id`` as a string or raise if it could escape the store folder.

    Allowed: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most 255
    characters, and never ``..`` (so no ``/``, ``\\``, absolute paths or parent references).
    """
    if not isinstance(slide_id, (str, np.str_)):
        raise TypeError(f"slide id must be a str, got {type(slide_id).__name__} {slide_id!r}.")
    slide_id = str(slide_id)
    if not _SLIDE_ID.match(slide_id) or ".." in slide_id:
        raise ValueError(
            f"Invalid slide id {slide_id!r}: use letters, digits, '.', '_' and '-' only (no path separators, "
            "no '..', at most 255 characters, starting with a letter or digit)."
        )
    return slide_id


class PatchStore:
    """Per-slide tile embeddings and tile coordinates in a zarr folder.

    Layout: ``<path>/zarr.json`` (root group; ``attrs`` hold the encoder, tile size in level-0 px,
    mpp, tissue threshold, ...), and one group per slide ``<path>/slides/<slide_id>/`` with the arrays
    ``features`` (n_tiles x D, float16, one chunk of rows per 4096 tiles) and ``coords`` (n_tiles x 2,
    int64, level-0 x, y of each tile's top-left corner). A slide is first written to a staging folder
    and moved into place with one ``rename``, so a crash never leaves a half slide that reads as complete;
    leftovers of interrupted writes are removed the next time the store is opened for writing.

    Parameters
    ----------
    path
        Folder of the store (local file system).
    mode
        ``"r"`` read only, ``"w"`` create (erasing an existing store), ``"a"`` read/write, create if missing.

    Examples
    --------
    >>> import numpy as np, tempfile, gemmgan_sc as gg
    >>> store = gg.data.PatchStore(tempfile.mkdtemp() + "/patches.zarr", mode="w")
    >>> store.add("slide-1", np.ones((3, 8)), coords=np.array([[0, 0], [256, 0], [0, 256]]))
    >>> store.features("slide-1").shape, store.dim
    ((3, 8), 8)
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r") -> None:
        import zarr

        if mode not in _MODES:
            raise ValueError(f"PatchStore mode must be one of {_MODES}, got {mode!r}.")
        self.path = Path(path).expanduser().absolute()
        self.mode = mode
        if mode == "r":
            if not (self.path / "zarr.json").is_file():
                raise FileNotFoundError(
                    f"No patch store at {str(self.path)!r}: create one with PatchStore(path, mode='w') or run "
                    "gg.pp.tile_slides first."
                )
        elif mode == "w":
            if self.path.exists():
                if not (self.path / "zarr.json").is_file() and any(self.path.iterdir()):
                    raise FileExistsError(
                        f"{str(self.path)!r} exists and is not a patch store; refusing to erase it. Pick another path."
                    )
                shutil.rmtree(self.path)
        self._root = zarr.open_group(str(self.path), mode="r" if mode == "r" else "a")
        if mode != "r":
            (self.path / "slides").mkdir(parents=True, exist_ok=True)
            self._clean_staging()

    # ------------------------------------------------------------------ info
    def __repr__(self) -> str:
        return f"PatchStore({str(self.path)!r}, mode={self.mode!r}, n_slides={len(self.slide_ids)}, dim={self.dim})"

    def __contains__(self, slide_id: object) -> bool:
        try:
            return self._slide_dir(slide_id).is_dir()  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    def __len__(self) -> int:
        return len(self.slide_ids)

    @property
    def attrs(self) -> dict:
        """Store-wide metadata (encoder, tile size, mpp, tissue threshold...) as a plain dict (a copy)."""
        return dict(self._root.attrs.asdict())

    def update_attrs(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Merge ``values`` / keyword arguments into :attr:`attrs` (JSON-serialisable values only)."""
        self._check_writable()
        merged = dict(values or {}, **kwargs)
        self._root.attrs.update(json_safe(merged))

    @property
    def slide_ids(self) -> list[str]:
        """Ids of all complete slides (with coordinates, features or both), sorted."""
        slides = self.path / "slides"
        if not slides.is_dir():
            return []
        return sorted(p.name for p in slides.iterdir() if p.is_dir() and (p / "zarr.json").is_file())

    @property
    def embedded_slide_ids(self) -> list[str]:
        """Ids of the slides that have features."""
        return [s for s in self.slide_ids if (self._slide_dir(s) / "features").is_dir()]

    @property
    def dim(self) -> int | None:
        """Feature width D (None while the store holds no features)."""
        dim = self._root.attrs.get("dim")
        return None if dim is None else int(dim)

    def has_features(self, slide_id: str) -> bool:
        """Whether ``slide_id`` has features (not only tile coordinates)."""
        return (self._slide_dir(slide_id) / "features").is_dir()

    def n_tiles(self, slide_id: str) -> int:
        """Number of tiles of ``slide_id``."""
        group = self._group(slide_id)
        name = "features" if "features" in group else "coords"
        return int(group[name].shape[0])

    # ------------------------------------------------------------------ read
    def features(self, slide_id: str) -> np.ndarray:
        """Tile embeddings of ``slide_id`` (n_tiles x D, float16).

        A slide tiled with 0 tiles (no tissue) gives an empty (0 x D) array, D being :attr:`dim` (0 while the
        store holds no features at all).
        """
        group = self._group(slide_id)
        if "features" not in group:
            if "coords" in group and group["coords"].shape[0] == 0:
                return np.zeros((0, self.dim or 0), dtype=np.float16)
            raise KeyError(
                f"Slide {slide_id!r} has {self.n_tiles(slide_id)} tiles but no features in {str(self.path)!r}: run "
                "gg.pp.embed_tiles first."
            )
        return np.asarray(group["features"][...])

    def features_array(self, slide_id: str):
        """The zarr array of ``slide_id``'s features, for reading a subset of rows without loading them all."""
        group = self._group(slide_id)
        if "features" not in group:
            if "coords" in group and group["coords"].shape[0] == 0:
                raise KeyError(
                    f"Slide {slide_id!r} has no tissue (0 tiles) in {str(self.path)!r}, so there are no features to "
                    "read; use features() (an empty array) or skip the slide."
                )
            raise KeyError(f"Slide {slide_id!r} has no features in {str(self.path)!r}: run gg.pp.embed_tiles first.")
        return group["features"]

    def bank_nbytes(self, slide_ids: Iterable[str]) -> int:
        """Bytes the float16 bank of ``slide_ids`` would take in memory (repeats counted once)."""
        unique = dict.fromkeys(str(s) for s in slide_ids)
        return sum(self.n_tiles(s) for s in unique if s in self and self.has_features(s)) * (self.dim or 0) * 2

    def feature_moments(self, slide_ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation of the tile features of ``slide_ids`` (repeats counted once).

        Read slide by slide (float64 sums), so the bank is never held in memory. Slides without tissue add
        nothing; with no tile at all the result is (zeros, ones).

        Examples
        --------
        >>> mean, sd = store.feature_moments(adata.obs["slide_id"])  # doctest: +SKIP
        """
        dim = self.dim or 0
        total, sq, n = np.zeros(dim), np.zeros(dim), 0
        for s in dict.fromkeys(str(s) for s in slide_ids):
            feats = self.features(s).astype(np.float64)
            total += feats.sum(0)
            sq += (feats**2).sum(0)
            n += len(feats)
        if n == 0:
            return np.zeros(dim), np.ones(dim)
        mean = total / n
        sd = np.sqrt(np.maximum(sq / n - mean**2, 0.0))
        return mean, sd

    def coords(self, slide_id: str) -> np.ndarray | None:
        """Level-0 (x, y) of each tile's top-left corner (n_tiles x 2, int64), or None if not stored."""
        group = self._group(slide_id)
        return np.asarray(group["coords"][...]) if "coords" in group else None

    def bank(self, slide_ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Concatenate the features of ``slide_ids`` (repeats read once) into one contiguous array.

        Slides tiled with no tissue (0 tiles, no features) get count 0; the model masks their patches.

        Returns
        -------
        features
            (total tiles x D) float16.
        offsets, counts
            int64 arrays aligned with ``slide_ids``: the rows of slide ``i`` are
            ``features[offsets[i] : offsets[i] + counts[i]]``.
        """
        slide_ids = [str(s) for s in slide_ids]
        unique = list(dict.fromkeys(slide_ids))
        missing = [s for s in unique if s not in self or (not self.has_features(s) and self.n_tiles(s) > 0)]
        if missing:
            raise KeyError(
                f"{len(missing)} slide(s) have no features in the patch store {str(self.path)!r}, e.g. "
                f"{missing[:5]}: run gg.pp.tile_slides and gg.pp.embed_tiles for them."
            )
        # slides tiled with no tissue (0 tiles) get count 0: the model masks them
        sizes = np.array([self.n_tiles(s) if self.has_features(s) else 0 for s in unique], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        out = np.empty((int(sizes.sum()), self.dim or 0), dtype=np.float16)
        for s, start, size in zip(unique, starts, sizes):
            if size == 0:
                continue
            out[start : start + size] = self._group(s)["features"][...]
        where = {s: i for i, s in enumerate(unique)}
        index = np.array([where[s] for s in slide_ids], dtype=np.int64)
        return out, starts[index], sizes[index]

    # ----------------------------------------------------------------- write
    def add(
        self,
        slide_id: str,
        features: np.ndarray | None = None,
        coords: np.ndarray | None = None,
        overwrite: bool = True,
    ) -> None:
        """Write one slide atomically.

        Parameters
        ----------
        slide_id
            Stable slide id (see :func:`validate_slide_id`).
        features
            n_tiles x D embeddings, stored as float16. ``None`` stores coordinates only (tiled, not yet
            embedded).
        coords
            n_tiles x 2 level-0 (x, y) of each tile's top-left corner. When omitted and the slide already
            has coordinates with the same number of tiles, they are kept.
        overwrite
            Replace an existing slide (default). With ``False`` an existing slide raises.
        """
        import zarr

        self._check_writable()
        slide_id = validate_slide_id(slide_id)
        if features is None and coords is None:
            raise ValueError(f"add({slide_id!r}): give features, coords or both.")
        if slide_id in self and not overwrite:
            raise FileExistsError(f"Slide {slide_id!r} is already in the store; pass overwrite=True to replace it.")
        n = None
        if features is not None:
            features = np.asarray(features)
            if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
                raise ValueError(
                    f"features of slide {slide_id!r} must be a non-empty 2-D array (n_tiles x D), got shape "
                    f"{features.shape}."
                )
            if not np.isfinite(features).all():
                raise ValueError(f"features of slide {slide_id!r} contain NaN or inf values.")
            if np.abs(features).max() > np.finfo(np.float16).max:
                raise ValueError(
                    f"features of slide {slide_id!r} exceed the float16 range (|x| > 65504); rescale them."
                )
            if self.dim is not None and features.shape[1] != self.dim:
                raise ValueError(
                    f"features of slide {slide_id!r} have width {features.shape[1]}, but the store holds "
                    f"{self.dim}-d features (encoder {self.attrs.get('encoder')!r}). Use a new store per encoder."
                )
            n = features.shape[0]
        if coords is None and slide_id in self:
            old = self.coords(slide_id)
            if old is not None and (n is None or len(old) == n):
                coords = old
        if coords is not None:
            coords = np.asarray(coords)
            if coords.ndim != 2 or coords.shape[1] != 2 or not np.issubdtype(coords.dtype, np.number):
                raise ValueError(f"coords of slide {slide_id!r} must be n_tiles x 2 numbers, got shape {coords.shape}.")
            if n is not None and coords.shape[0] != n:
                raise ValueError(
                    f"slide {slide_id!r}: {coords.shape[0]} coords for {n} feature rows; they must match."
                )
            coords = coords.astype(np.int64)

        with atomic_folder(self._slide_dir(slide_id), staging_dir=self.path / ".staging") as staging:
            group = zarr.open_group(str(staging), mode="w")
            if features is not None:
                arr = group.create_array(
                    "features", shape=features.shape, dtype="float16", chunks=(min(4096, features.shape[0]), features.shape[1])
                )
                arr[...] = features.astype(np.float16)
            if coords is not None:
                arr = group.create_array("coords", shape=coords.shape, dtype="int64", chunks=(max(1, min(65536, len(coords))), 2))
                arr[...] = coords
        if features is not None and self.dim is None:
            self._root.attrs["dim"] = int(features.shape[1])

    def remove(self, slide_id: str) -> None:
        """Delete one slide."""
        self._check_writable()
        target = self._slide_dir(slide_id)
        if not target.is_dir():
            raise KeyError(f"Slide {slide_id!r} is not in the patch store {str(self.path)!r}.")
        trash = self.path / ".staging" / f"trash-{uuid.uuid4().hex}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # --------------------------------------------------------------- helpers
    def _slide_dir(self, slide_id: str) -> Path:
        return self.path / "slides" / validate_slide_id(slide_id)

    def _group(self, slide_id: str):
        import zarr

        path = self._slide_dir(slide_id)
        if not path.is_dir():
            raise KeyError(
                f"Slide {slide_id!r} is not in the patch store {str(self.path)!r} "
                f"({len(self.slide_ids)} slides there); run gg.pp.tile_slides / gg.pp.embed_tiles for it."
            )
        return zarr.open_group(str(path), mode="r")

    def _clean_staging(self) -> None:
        staging = self.path / ".staging"
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)

    def _check_writable(self) -> None:
        if self.mode == "r":
            raise PermissionError(f"Patch store {str(self.path)!r} is open read-only; open it with mode='a'.")
