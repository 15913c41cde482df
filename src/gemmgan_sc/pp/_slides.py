"""Slides into the patch store: tissue detection, tiling (coords) and frozen-encoder embedding (features)."""

from __future__ import annotations

import os
import re
import warnings
from contextlib import closing
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..data import PatchStore, validate_slide_id
from ._tile_batches import TileDataset, feature_chunks, tile_batches
from ._tiles import SlideReadError, open_slide, tile_grid, tissue_fraction
from ._tissue import TissueMask, detect_tissue

__all__ = ["detect_tissue", "tile_slides", "embed_tiles", "TissueMask", "SlideReadError"]

DEFAULT_STORE = "gemmgan_patches.zarr"
_ERRORS = ("raise", "warn")
_TILE_ATTRS = ("tile_size", "mpp", "min_tissue")


# ----------------------------------------------------------------------------- helpers
def _logger():
    from .._settings import logger

    return logger


def _check_adata(adata) -> None:
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData, got {type(adata).__name__}.")
    if adata.n_obs == 0:
        raise ValueError("AnnData has no rows (0 obs); nothing to tile.")


def _int_param(name: str, value, minimum: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{' or None' if allow_none else ''}, got {value!r}.")
    return int(value)


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


def _uns_safe(value: Any) -> Any:
    """h5ad/zarr-safe copy: drop None, paths to str, numpy scalars to Python."""
    if isinstance(value, dict):
        return {str(k): _uns_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_uns_safe(v) for v in value if v is not None]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _resolve_slides(adata, slide_key: str, id_key: str) -> tuple[dict[str, str], bool]:
    """{slide_id: path} for the rows of adata; creates ``obs[id_key]`` from file names when absent."""
    if slide_key not in adata.obs:
        raise KeyError(
            f"adata.obs[{slide_key!r}] (slide file paths) is missing; pass slide_key=... naming the column of "
            f"paths. obs has: {list(adata.obs.columns)}."
        )
    paths = adata.obs[slide_key]
    if paths.isna().any() or (paths.astype(str).str.strip() == "").any():
        bad = adata.obs_names[(paths.isna() | (paths.astype(str).str.strip() == "")).to_numpy()][:5].tolist()
        raise ValueError(f"adata.obs[{slide_key!r}] has no slide path for rows {bad}; fill or drop them.")
    paths = paths.astype(str)
    created = id_key not in adata.obs
    if created:
        ids_by_path: dict[str, str] = {}
        taken: dict[str, str] = {}
        for p in dict.fromkeys(paths):
            sid = _slide_id_from_path(p)
            if sid in taken and taken[sid] != p:
                import hashlib

                sid = f"{sid}-{hashlib.sha1(p.encode()).hexdigest()[:8]}"
            taken[sid] = p
            ids_by_path[p] = validate_slide_id(sid)
        ids = paths.map(ids_by_path)
        adata.obs[id_key] = pd.Categorical(ids.to_numpy())
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


def _open_store(adata, store, key_added: str, create: bool) -> PatchStore:
    if isinstance(store, PatchStore):
        if store.mode == "r":
            store = PatchStore(store.path, mode="a")
        return store
    if store is None:
        prev = adata.uns.get(key_added, {}).get("patch_store") if isinstance(adata.uns.get(key_added), dict) else None
        if prev:
            store = prev
        elif create:
            store = DEFAULT_STORE
        else:
            raise ValueError(
                f"No patch store: adata.uns[{key_added!r}]['patch_store'] is missing. Run gg.pp.tile_slides first or "
                "pass store=..."
            )
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a path or a PatchStore, got {type(store).__name__}.")
    if not create and not (Path(store).expanduser() / "zarr.json").is_file():
        raise FileNotFoundError(f"No patch store at {str(store)!r}: run gg.pp.tile_slides first.")
    return PatchStore(store, mode="a")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("gemmgan-sc", "openslide-python", "openslide-bin", "tifffile", "scikit-image", "timm", "torch"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def _progress(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    from .._settings import settings

    return tqdm(iterable, disable=not settings.progress_bar, **kwargs)


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

    Formats: everything OpenSlide reads (SVS, NDPI, MRXS, SCN, ...), plain and pyramidal TIFF (tifffile),
    PNG/JPEG as single-level slides.

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
        ``uns[key_added]["patch_store"]``, else ``./gemmgan_patches.zarr``.
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
    tile_size = _int_param("tile_size", tile_size, 8)
    max_tiles = _int_param("max_tiles", max_tiles, 1, allow_none=True)
    if isinstance(min_tissue, bool) or not isinstance(min_tissue, (int, float, np.floating)) or not 0 <= min_tissue <= 1:
        raise ValueError(f"min_tissue must be a fraction in [0, 1], got {min_tissue!r}.")
    if mpp is not None and (isinstance(mpp, bool) or not isinstance(mpp, (int, float, np.floating)) or not mpp > 0):
        raise ValueError(f"mpp must be a positive number (micrometres per pixel) or None, got {mpp!r}.")
    if errors not in _ERRORS:
        raise ValueError(f"errors must be one of {_ERRORS}, got {errors!r}.")
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty str, got {key_added!r}.")
    tissue_kwargs = dict(tissue_kwargs or {})
    import inspect

    bad = set(tissue_kwargs) - (set(inspect.signature(detect_tissue).parameters) - {"slide"})
    if bad:
        raise ValueError(f"Unknown tissue_kwargs {sorted(bad)}; see gg.pp.detect_tissue for the options.")

    mapping, created = _resolve_slides(adata, slide_key, id_key)
    ps = _open_store(adata, store, key_added, create=True)
    params = {"tile_size": tile_size, "mpp": mpp, "min_tissue": float(min_tissue), "max_tiles": max_tiles, "seed": seed}
    old = ps.attrs
    same = all(old.get(k) == params[k] for k in _TILE_ATTRS) and old.get("max_tiles") == max_tiles
    if ps.slide_ids and "tile_size" in old and not same and not overwrite:
        raise ValueError(
            f"The patch store {str(ps.path)!r} was tiled with tile_size={old.get('tile_size')}, mpp={old.get('mpp')}, "
            f"min_tissue={old.get('min_tissue')}, max_tiles={old.get('max_tiles')}; you asked for {params}. Use a new "
            "store or overwrite=True (re-tiles and drops these slides' features)."
        )
    slides_attr: dict[str, Any] = dict(old.get("slides") or {})
    failed: dict[str, str] = {}
    no_tissue: dict[str, str] = {}
    counts: dict[str, int] = {}
    for sid, path in _progress(list(mapping.items()), desc="tiling slides", unit="slide"):
        if not overwrite and sid in ps and sid in slides_attr and same and slides_attr[sid].get("path") == path:
            counts[sid] = ps.n_tiles(sid)
            if slides_attr[sid].get("no_tissue"):
                no_tissue[sid] = slides_attr[sid]["no_tissue"]
            continue
        try:
            res = _tile_one(path, tile_size, mpp, float(min_tissue), max_tiles, seed, tissue_kwargs)
        except SlideReadError as err:
            if errors == "raise":
                raise
            warnings.warn(f"Skipping slide {sid!r}: {err}", UserWarning, stacklevel=2)
            failed[sid] = str(err)
            counts[sid] = 0
            if sid in ps:
                ps.remove(sid)
            slides_attr.pop(sid, None)
            continue
        if res["reason"] is not None:
            # not an error whatever ``errors`` says: the slide gets 0 tiles and the model masks it
            warnings.warn(
                f"Slide {sid!r}: {res['reason']}; 0 tiles recorded (the model masks this slide). If tissue is "
                "expected, lower min_tissue or change tissue_kwargs (e.g. channel='gray').",
                UserWarning, stacklevel=2,
            )
            no_tissue[sid] = res["reason"]
        ps.add(sid, coords=res["coords"])
        counts[sid] = int(len(res["coords"]))
        slides_attr[sid] = _uns_safe({
            "path": str(Path(path).expanduser().absolute()),
            "level": res["level"], "read_size": res["read_size"], "tile_size_level0": res["size0"],
            "mpp_level0": res["mpp0"], "n_tiles": counts[sid], "threshold": res["threshold"],
            "tissue": res.get("tissue"), "no_tissue": res["reason"],
        })
    sizes0 = {v.get("tile_size_level0") for v in slides_attr.values()}
    levels = {v.get("level") for v in slides_attr.values()}
    ps.update_attrs(
        tile_size=tile_size, mpp=mpp, min_tissue=float(min_tissue), max_tiles=max_tiles, seed=seed,
        tile_size_level0=sizes0.pop() if len(sizes0) == 1 else None,
        level=levels.pop() if len(levels) == 1 else None,
        tissue_method="otsu", tissue_kwargs=tissue_kwargs, slides=slides_attr,
    )

    ids = adata.obs[id_key].astype(str)
    adata.obs["n_tiles"] = ids.map(counts).fillna(0).astype(np.int64).to_numpy()
    uns = adata.uns.setdefault(key_added, {})
    uns["patch_store"] = str(ps.path)
    uns["tile_size"] = tile_size
    uns["min_tissue"] = float(min_tissue)
    if mpp is not None:
        uns["mpp"] = float(mpp)
    uns["tile_slides"] = _uns_safe({
        "params": {"slide_key": slide_key, "id_key": id_key, **params, "overwrite": overwrite, "errors": errors,
                   "tissue_kwargs": tissue_kwargs},
        "failed": failed,
        "no_tissue": no_tissue,
        "id_key_created": bool(created),
        "n_slides": len(mapping),
        "n_tiles_total": int(sum(counts.values())),
        "versions": _versions(),
    })
    if created:
        _logger().info("created adata.obs[%r] from the slide file names", id_key)


# ----------------------------------------------------------------------------- embedding
def embed_tiles(
    adata,
    encoder: Any = "hed-texture",
    batch_size: int = 64,
    device: str | None = None,
    num_workers: int | None = None,
    precision: Literal["float32", "bfloat16", "float16"] | None = None,
    token: str | None = None,
    overwrite: bool = False,
    *,
    checkpoint: str | os.PathLike | None = None,
    store: str | os.PathLike | PatchStore | None = None,
    key_added: str = "gemmgan",
    id_key: str | None = None,
    errors: Literal["raise", "warn"] = "raise",
) -> None:
    """Embed every tile with a frozen image encoder; float16 features per slide go to the patch store.

    Reads the tiles :func:`tile_slides` recorded, resizes and normalises them as the encoder needs and
    writes ``features`` per slide (rows aligned with the stored coordinates). Resumable: slides that already
    have features are skipped unless ``overwrite``. Tiles are read in ``num_workers`` worker processes that
    overlap the encoder (for the CPU encoder ``"hed-texture"`` the workers also compute the features).
    Slides recorded with 0 tiles (no tissue, see :func:`tile_slides`) are skipped: they get no features and
    the model masks their image input.

    Parameters
    ----------
    adata
        AnnData tiled by :func:`tile_slides`.
    encoder
        ``"hed-texture"`` (offline default), ``"uni"``, ``"uni2"``, ``"timm:<name>"``, a checkpoint path, a
        ``torch.nn.Module``, a callable or an :class:`~gemmgan_sc.encoders._image.ImageEncoder`; see
        :func:`gemmgan_sc.encoders.get_image_encoder`.
    batch_size
        Tiles per encoder call.
    device
        Torch device (default ``gg.settings.device``).
    num_workers
        Tile-reading worker processes (default ``gg.settings.num_workers``; 0 reads in this process).
    precision
        Autocast dtype for torch encoders (None: float32).
    token
        Hugging Face token for gated hub models.
    overwrite
        Re-embed slides that already have features.
    checkpoint
        Local weights file for ``"uni"``, ``"uni2"``, ``"timm:<name>"`` (no network then).
    store
        Patch store (default ``uns[key_added]["patch_store"]``).
    key_added
        ``uns`` key written by :func:`tile_slides`; ``uns[key_added]["embed_tiles"]`` gets the parameters.
    id_key
        ``obs`` column of slide ids (default: the one :func:`tile_slides` used).
    errors
        ``"raise"`` or ``"warn"`` (record unreadable slides in ``uns[key_added]["embed_tiles"]["failed"]``).

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> gg.pp.tile_slides(adata, slide_key="slide_path")  # doctest: +SKIP
    >>> gg.pp.embed_tiles(adata, encoder="hed-texture", num_workers=2)  # doctest: +SKIP
    >>> gg.pp.embed_tiles(adata, encoder="uni", checkpoint="uni/pytorch_model.bin", device="cuda")  # doctest: +SKIP
    """
    import torch

    from .._settings import settings
    from ..encoders import get_image_encoder

    _check_adata(adata)
    batch_size = _int_param("batch_size", batch_size, 1)
    num_workers = settings.num_workers if num_workers is None else _int_param("num_workers", num_workers, 0)
    if precision not in (None, "float32", "bfloat16", "float16"):
        raise ValueError(f"precision must be None, 'float32', 'bfloat16' or 'float16', got {precision!r}.")
    if errors not in _ERRORS:
        raise ValueError(f"errors must be one of {_ERRORS}, got {errors!r}.")
    uns = adata.uns.get(key_added)
    if not isinstance(uns, dict) or "tile_slides" not in uns:
        raise ValueError(f"adata.uns[{key_added!r}] has no tiling record: run gg.pp.tile_slides(adata, ...) first.")
    id_key = id_key or uns["tile_slides"]["params"].get("id_key", "slide_id")
    if id_key not in adata.obs:
        raise KeyError(f"adata.obs[{id_key!r}] (slide ids) is missing; run gg.pp.tile_slides first.")
    ps = _open_store(adata, store, key_added, create=False)
    attrs = ps.attrs
    slides_attr = attrs.get("slides") or {}

    dev = settings.resolve_device(device)
    enc = get_image_encoder(encoder, checkpoint=checkpoint, token=token, device=str(dev))
    desc = enc.describe()
    ids = list(dict.fromkeys(adata.obs[id_key].astype(str)))
    embedded = set(ps.embedded_slide_ids)
    if embedded and attrs.get("encoder") not in (None, enc.name):
        others = embedded - set(ids)
        if not overwrite or others:
            raise ValueError(
                f"The patch store {str(ps.path)!r} holds {attrs.get('dim')}-d features of encoder "
                f"{attrs.get('encoder')!r}; you asked for {enc.name!r}. Use a new store (tile_slides(store=...)) "
                + ("or overwrite=True." if not others else f"(slides {sorted(others)[:5]} outside this AnnData use it).")
            )
        ps.update_attrs(dim=None)
        embedded = set()
    elif embedded and attrs.get("dim") not in (None, enc.dim):
        raise ValueError(f"The store holds {attrs.get('dim')}-d features, encoder {enc.name!r} gives {enc.dim}-d.")

    jobs, skipped_empty, failed = [], [], {}
    tiling_failed = set((uns["tile_slides"].get("failed") or {}).keys())
    for sid in ids:
        if sid in tiling_failed and (sid not in ps or ps.n_tiles(sid) == 0):
            skipped_empty.append(sid)
            continue
        if sid not in ps:
            raise KeyError(f"Slide {sid!r} is not in the patch store {str(ps.path)!r}: run gg.pp.tile_slides for it.")
        if sid in embedded and not overwrite:
            continue
        coords = ps.coords(sid)
        if coords is None or len(coords) == 0:
            skipped_empty.append(sid)
            continue
        info = slides_attr.get(sid)
        if info is None:
            raise KeyError(f"The store has no tiling record for slide {sid!r}; re-run gg.pp.tile_slides(overwrite=True).")
        jobs.append({"sid": sid, "path": info["path"], "level": int(info["level"]), "read_size": int(info["read_size"]),
                     "coords": coords})
    no_tissue = set((uns["tile_slides"].get("no_tissue") or {}).keys())
    unexpected = [s for s in skipped_empty if s not in no_tissue]
    if unexpected:
        warnings.warn(f"{len(unexpected)} slide(s) have 0 tiles and get no features: {unexpected[:5]}.",
                      UserWarning, stacklevel=2)
    if len(unexpected) < len(skipped_empty):
        # already warned about by tile_slides; the model masks these slides
        _logger().info("skipping %d slide(s) without tissue (0 tiles)", len(skipped_empty) - len(unexpected))
    out_size = enc.input_size or int(attrs.get("tile_size", 256))

    # check every file opens before the long run
    for job in list(jobs):
        try:
            open_slide(job["path"]).close()
        except SlideReadError as err:
            if errors == "raise":
                raise
            warnings.warn(f"Skipping slide {job['sid']!r}: {err}", UserWarning, stacklevel=2)
            failed[job["sid"]] = str(err)
            jobs.remove(job)

    cpu_in_workers = (not enc.is_torch) and num_workers > 0
    dataset = TileDataset(jobs, out_size, encoder=enc if cpu_in_workers else None)
    n_total = len(dataset)
    if n_total:
        bufs = {j: np.empty((len(job["coords"]), enc.dim), np.float32) for j, job in enumerate(jobs)}
        left = {j: len(job["coords"]) for j, job in enumerate(jobs)}
        autocast_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision or "")
        bar = _progress(total=n_total, desc=f"embedding tiles ({enc.name})", unit="tile")

        def store_features(idx: np.ndarray, feats: np.ndarray) -> None:
            for i, row in zip(idx.tolist(), feats):
                j, t = dataset.index[i]
                bufs[j][t] = row
                left[j] -= 1
                if left[j] == 0:
                    _write_slide(ps, jobs[j]["sid"], bufs.pop(j))
            bar.update(len(idx))

        # the float batch is allocated once and reused (a fresh 50 MB tensor per batch costs more than the
        # copy into it); for CUDA the shared uint8 batch goes through one pinned batch
        float_buf = staging = None

        def encode(tiles: torch.Tensor) -> np.ndarray:
            nonlocal float_buf, staging
            if dev.type == "cuda":
                if staging is None:
                    staging = torch.empty((batch_size, *tiles.shape[1:]), dtype=tiles.dtype, pin_memory=True)
                tiles = staging[: len(tiles)].copy_(tiles).to(dev, non_blocking=True)
            tiles = tiles.permute(0, 3, 1, 2)  # channels-last view
            if float_buf is None:
                float_buf = torch.empty(batch_size, *tiles.shape[2:], 3, device=dev).permute(0, 3, 1, 2)
            x = enc.preprocess(tiles, out=float_buf[: len(tiles)])
            if autocast_dtype is not None and enc.is_torch:
                with torch.autocast(device_type=dev.type, dtype=autocast_dtype):
                    feats = enc(x)
            else:
                feats = enc(x)
            return feats.float().cpu().numpy()  # waits for the device: the batches are free again

        try:
            # closing(): on an error the workers stop now, not when the traceback (which holds the generator) goes
            if cpu_in_workers:
                with closing(feature_chunks(dataset, num_workers)) as chunks:
                    for idx, feats in chunks:
                        store_features(idx, feats)
            else:
                with closing(tile_batches(dataset, batch_size, num_workers)) as batches:
                    for idx, tiles in batches:
                        store_features(idx, encode(tiles))
        finally:
            bar.close()
    ps.update_attrs(desc)
    if ps.dim is None and n_total:
        ps.update_attrs(dim=enc.dim)

    uns = adata.uns.setdefault(key_added, {})
    uns["patch_store"] = str(ps.path)
    uns["image_encoder"] = enc.name
    uns["image_dim"] = enc.dim
    uns["embed_tiles"] = _uns_safe({
        "params": {"encoder": enc.name, "batch_size": batch_size, "device": str(dev), "num_workers": num_workers,
                   "precision": precision, "overwrite": overwrite, "checkpoint": None if checkpoint is None else str(checkpoint),
                   "id_key": id_key, "errors": errors},
        "encoder": desc,
        "n_tiles_embedded": int(n_total),
        "empty_slides": skipped_empty,
        "failed": failed,
        "versions": _versions(),
    })


def _write_slide(ps: PatchStore, sid: str, feats: np.ndarray) -> None:
    if not np.isfinite(feats).all():
        raise ValueError(f"The encoder gave NaN/inf features for slide {sid!r}; try precision=None (float32).")
    big = np.abs(feats).max(initial=0)
    if big > np.finfo(np.float16).max:
        raise ValueError(f"Features of slide {sid!r} exceed the float16 range (max |x| = {big:.3g}).")
    ps.add(sid, feats, coords=None)
