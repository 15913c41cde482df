"""Slides into the patch store: tissue detection and tiling (coordinates); embedding is in ``_embedding``."""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..data import PatchStore, validate_slide_id
from ._embedding import embed_tiles
from ._slide_common import (  # noqa: F401 - _check_adata ... _versions are used by pp/_spatial.py too
    _ERRORS,
    _check_adata,
    _int_param,
    _logger,
    _open_store,
    _progress,
    _uns_safe,
    _versions,
    check_key_and_tissue_kwargs,
    default_store,
)
from ._tiles import SlideReadError, open_slide, tile_grid, tissue_fraction
from ._tissue import TissueMask, detect_tissue

__all__ = ["detect_tissue", "tile_slides", "embed_tiles", "TissueMask", "SlideReadError"]

_TILE_ATTRS = ("tile_size", "mpp", "min_tissue")


# ----------------------------------------------------------------------------- helpers
def _slide_id_from_path(path: str) -> str:
    name = Path(str(path)).name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = Path(name).stem or name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).replace("..", "_").strip("._-") or "slide"
    if not name[0].isalnum():
        name = "s" + name
    return name[:200]


def _ids_from_paths(paths: pd.Series) -> pd.Categorical:
    """Slide ids from file names; two files with one name get a short hash of their path appended."""
    ids_by_path: dict[str, str] = {}
    taken: dict[str, str] = {}
    for p in dict.fromkeys(paths):
        sid = _slide_id_from_path(p)
        if sid in taken and taken[sid] != p:
            sid = f"{sid}-{hashlib.sha1(p.encode()).hexdigest()[:8]}"
        taken[sid] = p
        ids_by_path[p] = validate_slide_id(sid)
    return pd.Categorical(paths.map(ids_by_path).to_numpy())


def _slide_paths(adata, slide_key: str) -> pd.Series:
    if slide_key not in adata.obs:
        raise KeyError(
            f"adata.obs[{slide_key!r}] (slide file paths) is missing; pass slide_key=... naming the column of "
            f"paths. obs has: {list(adata.obs.columns)}."
        )
    paths = adata.obs[slide_key]
    empty = (paths.isna() | (paths.astype(str).str.strip() == "")).to_numpy()
    if empty.any():
        raise ValueError(f"adata.obs[{slide_key!r}] has no slide path for rows {adata.obs_names[empty][:5].tolist()}; "
                         "fill or drop them.")
    return paths.astype(str)


def _resolve_slides(adata, slide_key: str, id_key: str) -> tuple[dict[str, str], bool]:
    """{slide_id: path} for the rows of adata; creates ``obs[id_key]`` from file names when absent."""
    paths = _slide_paths(adata, slide_key)
    created = id_key not in adata.obs
    if created:
        adata.obs[id_key] = _ids_from_paths(paths)
    ids = adata.obs[id_key]
    if ids.isna().any():
        bad = adata.obs_names[ids.isna().to_numpy()][:5].tolist()
        raise ValueError(f"adata.obs[{id_key!r}] (slide ids) is missing for rows {bad}.")
    mapping: dict[str, str] = {}
    for sid, p in zip(ids.astype(str), paths):
        validate_slide_id(sid)
        if mapping.setdefault(sid, p) != p:
            raise ValueError(
                f"Slide id {sid!r} (adata.obs[{id_key!r}]) names two different files: {mapping[sid]!r} and {p!r}. "
                "Give each file its own id."
            )
    return mapping, created


# ----------------------------------------------------------------------------- tiling
def _plan_level(reader, tile_size: int, mpp: float | None, path: str) -> dict[str, Any]:
    """Level to read, tile edge at that level and in level-0 px, for the requested ``mpp``."""
    if mpp is None:
        return {"level": 0, "read_size": tile_size, "size0": tile_size, "mpp0": reader.mpp, "downsample": 1.0}
    if reader.mpp is None:
        warnings.warn(
            f"Slide {path!r} has no microns-per-pixel metadata; mpp={mpp} cannot be honoured, tiling at level 0 with "
            f"{tile_size} px tiles.",
            UserWarning,
            stacklevel=3,
        )
        return {"level": 0, "read_size": tile_size, "size0": tile_size, "mpp0": None, "downsample": 1.0}
    target = mpp / reader.mpp  # level-0 px per output px
    if target < 0.95:
        warnings.warn(
            f"Slide {path!r} is scanned at {reader.mpp:.3f} um/px, coarser than mpp={mpp}; tiles are upsampled.",
            UserWarning,
            stacklevel=3,
        )
    downs = reader.level_downsamples
    level = max((i for i, d in enumerate(downs) if d <= target * 1.01), key=lambda i: downs[i], default=0)
    size0 = int(round(tile_size * target))
    read_size = max(1, int(round(size0 / downs[level])))
    return {"level": level, "read_size": read_size, "size0": size0, "mpp0": reader.mpp, "downsample": float(target)}


def _tile_one(path: str, tile_size: int, mpp, min_tissue: float, max_tiles, seed: int, tissue_kwargs) -> dict[str, Any]:
    with open_slide(path) as reader:
        plan = _plan_level(reader, tile_size, mpp, path)
        w0, h0 = reader.dimensions
        if w0 < plan["size0"] or h0 < plan["size0"]:
            return dict(plan, coords=np.zeros((0, 2), np.int64), reason=(
                f"slide {path!r} ({w0} x {h0} px) is smaller than one tile ({plan['size0']} px at level 0)"
            ), fractions=np.zeros(0), threshold=float("nan"))
        tm = detect_tissue(reader, **tissue_kwargs)
    coords = tile_grid(w0, h0, plan["size0"])
    frac = tissue_fraction(tm.mask, tm.scale, coords, plan["size0"])
    keep = frac >= min_tissue - 1e-12
    coords, frac = coords[keep], frac[keep]
    if max_tiles is not None and len(coords) > max_tiles:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(coords), size=max_tiles, replace=False))
        coords, frac = coords[pick], frac[pick]
    reason = None if len(coords) else (
        f"no tissue found in slide {path!r} (no tile has >= {min_tissue:.0%} tissue; tissue covers "
        f"{tm.mask.mean():.1%} of the thumbnail, threshold {tm.threshold:.1f})"
    )
    return dict(plan, coords=coords, fractions=frac, reason=reason, threshold=tm.threshold, tissue=float(tm.mask.mean()))


@dataclass
class _Tiling:
    """What one tile_slides run found, slide by slide."""

    slides: dict[str, Any]  # store attrs["slides"]: per-slide tiling record
    counts: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    no_tissue: dict[str, str] = field(default_factory=dict)


def _tiling_params(tile_size, mpp, min_tissue, max_tiles, seed, errors, key_added, tissue_kwargs) -> dict[str, Any]:
    """Validated tiling parameters (the ones recorded and hashed)."""
    tile_size = _int_param("tile_size", tile_size, 8)
    max_tiles = _int_param("max_tiles", max_tiles, 1, allow_none=True)
    if isinstance(min_tissue, bool) or not isinstance(min_tissue, (int, float, np.floating)) or not 0 <= min_tissue <= 1:
        raise ValueError(f"min_tissue must be a fraction in [0, 1], got {min_tissue!r}.")
    if mpp is not None and (isinstance(mpp, bool) or not isinstance(mpp, (int, float, np.floating)) or not mpp > 0):
        raise ValueError(f"mpp must be a positive number (micrometres per pixel) or None, got {mpp!r}.")
    if errors not in _ERRORS:
        raise ValueError(f"errors must be one of {_ERRORS}, got {errors!r}.")
    tissue_kwargs = check_key_and_tissue_kwargs(key_added, tissue_kwargs)
    return {"tile_size": tile_size, "mpp": mpp, "min_tissue": float(min_tissue), "max_tiles": max_tiles,
            "seed": seed, "tissue_kwargs": tissue_kwargs}


def _same_tiling(ps: PatchStore, params: dict[str, Any], overwrite: bool) -> bool:
    """Whether the store was tiled with ``params``; a store tiled otherwise needs ``overwrite``."""
    old = ps.attrs
    same = all(old.get(k) == params[k] for k in _TILE_ATTRS) and old.get("max_tiles") == params["max_tiles"]
    if ps.slide_ids and "tile_size" in old and not same and not overwrite:
        asked = {k: v for k, v in params.items() if k != "tissue_kwargs"}
        raise ValueError(
            f"The patch store {str(ps.path)!r} was tiled with tile_size={old.get('tile_size')}, mpp={old.get('mpp')}, "
            f"min_tissue={old.get('min_tissue')}, max_tiles={old.get('max_tiles')}; you asked for {asked}. Use a new "
            "store or overwrite=True (re-tiles and drops these slides' features)."
        )
    return same


def _keep_tiled(ps: PatchStore, run: _Tiling, sid: str, path: str) -> bool:
    """Record a slide already in the store as it is (a resumed run); False when it must be tiled."""
    info = run.slides.get(sid)
    if sid not in ps or info is None or info.get("path") != path:
        return False
    run.counts[sid] = ps.n_tiles(sid)
    if info.get("no_tissue"):
        run.no_tissue[sid] = info["no_tissue"]
    return True


def _tile_into(ps: PatchStore, run: _Tiling, sid: str, path: str, params: dict[str, Any], errors: str) -> None:
    """Tile one slide and write its coordinates (or record why it has none)."""
    try:
        res = _tile_one(path, params["tile_size"], params["mpp"], params["min_tissue"], params["max_tiles"],
                        params["seed"], params["tissue_kwargs"])
    except SlideReadError as err:
        if errors == "raise":
            raise
        warnings.warn(f"Skipping slide {sid!r}: {err}", UserWarning, stacklevel=3)
        run.failed[sid], run.counts[sid] = str(err), 0
        if sid in ps:
            ps.remove(sid)
        run.slides.pop(sid, None)
        return
    if res["reason"] is not None:  # not an error whatever ``errors`` says: 0 tiles, the model masks the slide
        warnings.warn(
            f"Slide {sid!r}: {res['reason']}; 0 tiles recorded (the model masks this slide). If tissue is "
            "expected, lower min_tissue or change tissue_kwargs (e.g. channel='gray').",
            UserWarning, stacklevel=3,
        )
        run.no_tissue[sid] = res["reason"]
    ps.add(sid, coords=res["coords"])
    run.counts[sid] = int(len(res["coords"]))
    run.slides[sid] = _uns_safe({
        "path": str(Path(path).expanduser().absolute()),
        "level": res["level"], "read_size": res["read_size"], "tile_size_level0": res["size0"],
        "mpp_level0": res["mpp0"], "n_tiles": run.counts[sid], "threshold": res["threshold"],
        "tissue": res.get("tissue"), "no_tissue": res["reason"],
    })


def _write_tiling_attrs(ps: PatchStore, params: dict[str, Any], slides: dict[str, Any]) -> None:
    sizes0 = {v.get("tile_size_level0") for v in slides.values()}
    levels = {v.get("level") for v in slides.values()}
    ps.update_attrs(
        **params,
        tile_size_level0=sizes0.pop() if len(sizes0) == 1 else None,
        level=levels.pop() if len(levels) == 1 else None,
        tissue_method="otsu", slides=slides,
    )


def _record_tiling(adata, ps: PatchStore, run: _Tiling, key_added: str, record: dict[str, Any], created: bool) -> None:
    """``obs["n_tiles"]`` and ``uns[key_added]``: store path, the call's parameters (``record``), failures."""
    id_key = record["id_key"]
    adata.obs["n_tiles"] = adata.obs[id_key].astype(str).map(run.counts).fillna(0).astype(np.int64).to_numpy()
    uns = adata.uns.setdefault(key_added, {})
    uns["patch_store"] = str(ps.path)
    uns["tile_size"] = record["tile_size"]
    uns["min_tissue"] = record["min_tissue"]
    if record["mpp"] is not None:
        uns["mpp"] = float(record["mpp"])
    uns["tile_slides"] = _uns_safe({
        "params": record,
        "failed": run.failed,
        "no_tissue": run.no_tissue,
        "id_key_created": bool(created),
        "n_slides": len(set(adata.obs[id_key].astype(str))),
        "n_tiles_total": int(sum(run.counts.values())),
        "versions": _versions(),
    })
    if created:
        _logger().info("created adata.obs[%r] from the slide file names", id_key)


def tile_slides(
    adata,
    slide_key: str = "slide_path",
    id_key: str = "slide_id",
    tile_size: int = 256,
    mpp: float | None = None,
    min_tissue: float = 0.2,
    max_tiles: int | None = None,
    store: str | os.PathLike | PatchStore | None = None,
    key_added: str = "gemmgan",
    *,
    overwrite: bool = False,
    errors: Literal["raise", "warn"] = "raise",
    seed: int = 0,
    tissue_kwargs: dict[str, Any] | None = None,
) -> None:
    """Tile the tissue of every slide into the patch store (coordinates only).

    For each distinct slide of ``adata.obs[slide_key]`` (rows sharing a slide are tiled once): the tissue
    mask is found on a low-resolution image (:func:`detect_tissue`), a grid of non-overlapping tiles is laid
    at level 0 (or, with ``mpp``, at the level and size that give ``mpp`` micrometres per output pixel), and
    tiles whose tissue fraction is >= ``min_tissue`` are kept. Their level-0 (x, y) top-left corners go to
    the :class:`~gemmgan_sc.data.PatchStore`.

    Formats: everything OpenSlide reads (SVS, NDPI, MRXS, SCN, ...); plain and pyramidal TIFF that OpenSlide
    does not read through tiffslide; PNG/JPEG as single-level slides.

    Parameters
    ----------
    adata
        AnnData with one row per sample.
    slide_key
        ``obs`` column of slide file paths.
    id_key
        ``obs`` column of slide ids. When absent it is CREATED from the file names (recorded in
        ``uns[key_added]["tile_slides"]["id_key_created"]``).
    tile_size
        Tile edge in px of the output tiles (256 in GeMM-GAN).
    mpp
        Micrometres per pixel of the tiles (e.g. 0.5 for 20x). None: level 0 as scanned. Slides without mpp
        metadata are tiled at level 0 with a warning.
    min_tissue
        Keep tiles with at least this tissue fraction (0-1).
    max_tiles
        Keep at most this many tiles per slide (a seeded random subset, in grid order).
    store
        Patch-store folder or :class:`~gemmgan_sc.data.PatchStore`. Default: the store already named in
        ``uns[key_added]["patch_store"]`` (this AnnData tiled before), else
        ``./gemmgan_patches-<hash>.zarr`` in the working directory, the hash taken over the slides (ids and
        absolute paths) and the tiling parameters: the same cohort tiled the same way finds its store again,
        another cohort or other parameters get a store of their own. The path is logged and recorded in
        ``uns[key_added]["patch_store"]``; pass ``store=`` to choose it.
    key_added
        ``uns`` key for the parameters and the store path.
    overwrite
        Re-tile slides already in the store (their features are dropped). Otherwise slides in the store are
        kept as they are (resumable) when the store was tiled with the same parameters.
    errors
        What to do with a missing, unreadable or corrupt slide file. ``"raise"``: raise an error naming the
        file. ``"warn"``: warn, record it in ``uns[key_added]["tile_slides"]["failed"]`` (slide id -> reason),
        give it 0 tiles (it is not written to the store), and go on with the other slides.

        A readable slide without tissue (no tile reaches ``min_tissue``) or smaller than one tile is NOT an
        error, whatever ``errors`` says: it is warned about, recorded in
        ``uns[key_added]["tile_slides"]["no_tissue"]`` (slide id -> reason) and written to the store with 0
        tiles (coords of shape (0, 2)); :func:`embed_tiles` skips it and the model masks its image input.
    seed
        Seed of the ``max_tiles`` subset.
    tissue_kwargs
        Keyword arguments of :func:`detect_tissue` (``channel``, ``max_size``, ``close_radius``, ...).

    Returns
    -------
    None. Writes ``obs["n_tiles"]`` (tiles per row's slide), ``obs[id_key]`` when absent,
    ``uns[key_added]["patch_store"]`` (str), ``uns[key_added]["tile_slides"]`` (``params``, ``failed``,
    ``no_tissue``, ``id_key_created``) and the store attrs ``tile_size``, ``level``, ``mpp``, ``min_tissue``
    and per-slide ``slides[id]`` (path, level, read size, level-0 tile size, mpp, ``no_tissue`` reason).

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> adata = gg.datasets.demo()  # doctest: +SKIP
    >>> gg.pp.tile_slides(adata, slide_key="slide_path", store="patches.zarr")  # doctest: +SKIP
    >>> adata.obs["n_tiles"].describe()  # doctest: +SKIP
    """
    _check_adata(adata)
    params = _tiling_params(tile_size, mpp, min_tissue, max_tiles, seed, errors, key_added, tissue_kwargs)
    mapping, created = _resolve_slides(adata, slide_key, id_key)
    ps = _open_store(adata, store, key_added, default=default_store(mapping, params))
    _logger().info("tiling %d slide(s) into the patch store %s", len(mapping), ps.path)
    same = _same_tiling(ps, params, overwrite)
    run = _Tiling(slides=dict(ps.attrs.get("slides") or {}))
    for sid, path in _progress(list(mapping.items()), desc="tiling slides", unit="slide"):
        if overwrite or not same or not _keep_tiled(ps, run, sid, path):
            _tile_into(ps, run, sid, path, params, errors)
    _write_tiling_attrs(ps, params, run.slides)
    record = {"slide_key": slide_key, "id_key": id_key, **params, "overwrite": overwrite, "errors": errors}
    _record_tiling(adata, ps, run, key_added, record, created)
