"""Spatial transcriptomics spots as slides: each spot's neighbourhood of the section image, cut into tiles.

A spot is one sample and the H&E around it is its slide. :func:`tile_spots` writes, per spot, a small PNG of
the neighbourhood (inside the patch store, ``<store>/spot_images/``) and the tiles of it that hold tissue, as
:func:`~gemmgan_sc.pp.tile_slides` does for whole slides, so :func:`~gemmgan_sc.pp.embed_tiles` and every model
read spots exactly as they read slides.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import PatchStore, validate_slide_id
from ._slide_common import check_key_and_tissue_kwargs
from ._slides import _check_adata, _int_param, _progress, _uns_safe, _versions
from ._tiles import PILSlide, SlideReader, _to_rgb, open_slide, tile_grid, tissue_fraction
from ._tissue import detect_tissue

__all__ = ["tile_spots"]

SPOT_IMAGES = "spot_images"  # folder inside the patch store: one PNG per spot neighbourhood
DEFAULT_SPOT_STORE = "gemmgan_spots.zarr"
_IMAGE_ORDER = ("hires", "lowres")  # images of uns["spatial"][lib]["images"] tried when img_key is None


class ArraySlide(PILSlide):
    """An in-memory (H, W[, C]) image as a single-level slide (the image is converted to RGB uint8 once)."""

    format = "array"

    def __init__(self, image: np.ndarray, name: str = "array") -> None:  # noqa: D107 - no file to open
        image = np.asarray(image)
        channels_ok = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 2, 3, 4))
        if not channels_ok or min(image.shape[:2]) < 1:
            raise ValueError(f"image must be an (H, W), (H, W, 3) or (H, W, 4) array, got shape {image.shape}.")
        if not np.issubdtype(image.dtype, np.number) and image.dtype != bool:
            raise TypeError(f"image must be numeric, got dtype {image.dtype}.")
        self.path = Path(name)
        self._arr = _to_rgb(image)
        self.level_dimensions = [(self._arr.shape[1], self._arr.shape[0])]
        self.mpp = None


@contextmanager
def trusted_image_size():
    """Let PIL open section images above its decompression-bomb limit (~89 Mpx warns, ~179 Mpx raises) while the
    block runs: H&E sections are local files of the user and commonly ~100 Mpx."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _open_image(path) -> SlideReader:
    with trusted_image_size():
        return open_slide(path)


# ----------------------------------------------------------------------------- inputs
def _spot_centres(adata, spatial_key: str) -> np.ndarray:
    if spatial_key not in adata.obsm:
        raise KeyError(
            f"adata.obsm[{spatial_key!r}] (spot pixel coordinates) is missing; pass spatial_key=... naming them. "
            f"obsm has: {list(adata.obsm.keys())}."
        )
    xy = np.asarray(adata.obsm[spatial_key])
    if xy.ndim != 2 or xy.shape[1] < 2 or not np.issubdtype(xy.dtype, np.number):
        raise ValueError(
            f"adata.obsm[{spatial_key!r}] must be n_obs x 2 numbers (x, y in px), got {xy.shape} {xy.dtype}."
        )
    xy = xy[:, :2].astype(np.float64)
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise ValueError(
            f"adata.obsm[{spatial_key!r}] has NaN/inf coordinates for spots {adata.obs_names[bad][:5].tolist()}; "
            "drop those spots first."
        )
    return xy


def _spot_ids(adata, id_key: str) -> list[str]:
    names = adata.obs_names.astype(str)
    if not names.is_unique:
        raise ValueError("Duplicated obs_names: call adata.obs_names_make_unique() first (each spot is a slide id).")
    bad = []
    for name in names:
        try:
            validate_slide_id(name)
        except ValueError:
            bad.append(name)
    if bad:
        raise ValueError(
            f"{len(bad)} obs names are not valid slide ids (letters, digits, '.', '_', '-'), e.g. {bad[:5]}: rename "
            "the spots, e.g. adata.obs_names = adata.obs_names.str.replace(r'[^A-Za-z0-9._-]', '_', regex=True)."
        )
    if id_key in adata.obs and not (adata.obs[id_key].astype(str).to_numpy() == names.to_numpy()).all():
        raise ValueError(
            f"adata.obs[{id_key!r}] exists and is not the obs names; tile_spots uses each spot's obs name as its slide "
            "id and will not overwrite that column: pass id_key=... naming a new column."
        )
    return names.tolist()


def _libraries(adata, image, library_id, library_key) -> dict[Any, np.ndarray]:
    """{library id (None when image= is given and no uns["spatial"] is named): row positions}."""
    if library_key is not None:
        if library_id is not None:
            raise ValueError("Give library_id (one section) or library_key (an obs column of sections), not both.")
        if library_key not in adata.obs:
            raise KeyError(
                f"adata.obs[{library_key!r}] (library of each spot) is missing; obs has {list(adata.obs.columns)}."
            )
        labels = adata.obs[library_key]
        if labels.isna().any():
            bad = adata.obs_names[labels.isna().to_numpy()][:5].tolist()
            raise ValueError(f"adata.obs[{library_key!r}] is missing for spots {bad}.")
        labels = labels.astype(str).to_numpy()
        groups = {lib: np.flatnonzero(labels == lib) for lib in pd.unique(labels)}
        if image is not None and len(groups) > 1:
            raise ValueError(
                f"image= is one section's image but adata.obs[{library_key!r}] names {len(groups)} libraries; tile "
                "each library's spots separately or put the images in adata.uns['spatial']."
            )
        return groups
    if library_id is None and image is None:
        libs = list((adata.uns.get("spatial") or {}).keys())
        if len(libs) != 1:
            raise ValueError(
                f"adata.uns['spatial'] holds {len(libs)} libraries {libs[:5]}: pass library_id=... (all spots in one "
                "section), library_key=... (an obs column naming each spot's section) or image=... ."
            )
        library_id = libs[0]
    return {library_id: np.arange(adata.n_obs)}


def _uns_library(adata, library_id) -> dict:
    spatial = adata.uns.get("spatial")
    if not isinstance(spatial, dict) or str(library_id) not in spatial:
        have = list(spatial.keys()) if isinstance(spatial, dict) else []
        raise KeyError(
            f"adata.uns['spatial'][{library_id!r}] is missing (libraries there: {have[:10]}); give image=... (a path "
            "or an array) and its scale_factor, or read the data with a scverse reader (sc.read_visium, "
            "gg.datasets.read_her2st)."
        )
    return spatial[str(library_id)]


def _section_image(adata, library_id, image, img_key, scale_factor) -> tuple[SlideReader, float, dict]:
    """The image to cut, image px per unit of ``obsm[spatial_key]``, and a description of the source."""
    if image is not None:
        scale = 1.0 if scale_factor is None else scale_factor
        if isinstance(image, (str, os.PathLike)):
            return _open_image(image), scale, {"image": str(Path(image).expanduser().absolute()), "scale": scale}
        return ArraySlide(image), scale, {"image": "array", "scale": scale}
    lib = _uns_library(adata, library_id)
    images, factors = lib.get("images") or {}, lib.get("scalefactors") or {}
    source = (lib.get("metadata") or {}).get("source_image_path")
    if img_key in (None, "fullres") and source and Path(str(source)).is_file():
        scale = 1.0 if scale_factor is None else scale_factor
        return _open_image(str(source)), scale, {"image": "fullres", "path": str(source), "scale": scale}
    if img_key == "fullres":
        raise FileNotFoundError(
            f"img_key='fullres' needs adata.uns['spatial'][{library_id!r}]['metadata']['source_image_path'] to name an "
            f"existing file, got {source!r}."
        )
    keys = [img_key] if img_key is not None else [k for k in _IMAGE_ORDER if k in images]
    if not keys or keys[0] not in images:
        raise KeyError(
            f"adata.uns['spatial'][{library_id!r}]['images'] has no {img_key or 'hires/lowres'} image (it has "
            f"{list(images)}) and no readable metadata['source_image_path']; pass image=... or img_key=... ."
        )
    key = keys[0]
    scale = scale_factor if scale_factor is not None else factors.get(f"tissue_{key}_scalef")
    if scale is None:
        raise KeyError(
            f"adata.uns['spatial'][{library_id!r}]['scalefactors'] has no 'tissue_{key}_scalef' for the {key!r} image; "
            "pass scale_factor=... (image px per unit of the spot coordinates)."
        )
    return ArraySlide(images[key], name=f"{library_id}-{key}"), float(scale), {"image": key, "scale": float(scale)}


# ----------------------------------------------------------------------------- tiling
def _plan(tile_size: int, neighbourhood_px: int, scale: float) -> tuple[int, np.ndarray, int]:
    """Tile edge in image px, the tiles' top-left corners inside a neighbourhood, and its edge in image px."""
    read_size = max(1, int(round(tile_size * scale)))
    side = (neighbourhood_px // tile_size) * read_size
    return read_size, tile_grid(side, side, read_size), side


def _neighbourhoods(centres: np.ndarray, scale: float, plan, mask) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corner (image px) of each spot's neighbourhood, and the tissue fraction of each of its tiles
    (n_spots x n_tiles; one summed-area table of the mask serves every spot)."""
    read_size, local, side = plan
    origins = np.round(centres * scale - side / 2).astype(np.int64)
    corners = (origins[:, None, :] + local[None, :, :]).reshape(-1, 2)
    frac = tissue_fraction(mask.mask, mask.scale, corners, read_size)
    return origins, frac.reshape(len(centres), len(local))


def _write_png(path: Path, rgb: np.ndarray) -> None:
    """Write ``rgb`` as a lossless PNG; a crash leaves the old file or none, never half a file."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(rgb).save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _tile_library(reader, scale, source, rows, ids, centres, ps, cfg, slides_attr) -> tuple[dict, dict]:
    """Tile the spots ``rows`` of one section; returns {spot: n_tiles} and {spot: no-tissue reason}."""
    plan = _plan(cfg["tile_size"], cfg["neighbourhood_px"], scale)
    read_size, _, side = plan
    tm = detect_tissue(reader, **cfg["tissue_kwargs"])
    w, h = reader.dimensions
    counts, no_tissue = {}, {}
    folder = ps.path / SPOT_IMAGES
    origins, fractions = _neighbourhoods(centres[rows], scale, plan, tm)
    keep = fractions >= cfg["min_tissue"] - 1e-12
    for i, r in enumerate(_progress(rows.tolist(), desc=f"tiling spots ({source.get('library_id', 'image')})",
                                    unit="spot")):
        sid, (x0, y0), frac = ids[r], origins[i].tolist(), fractions[i]
        coords = plan[1][keep[i]]
        crop = folder / f"{sid}.png"
        record = {"library_id": source.get("library_id"), "image": source.get("image"), "scale": scale,
                  "origin": [x0, y0], "neighbourhood": side, "read_size": read_size}
        old = slides_attr.get(sid) or {}
        if not cfg["overwrite"] and sid in ps and old.get("spot") == _uns_safe(record) and (
                old.get("n_tiles") == 0 or crop.is_file()):
            counts[sid] = ps.n_tiles(sid)  # unchanged since the last run: keep it (and its features)
            if old.get("no_tissue"):
                no_tissue[sid] = old["no_tissue"]
            continue
        reason = None
        if len(coords):
            _write_png(crop, reader.read_region((x0, y0), 0, (side, side)))
        elif x0 + side <= 0 or y0 + side <= 0 or x0 >= w or y0 >= h:
            reason = f"its {side}-px neighbourhood at ({x0}, {y0}) lies outside the {w} x {h} px image"
        else:
            reason = (f"no tile of its {side}-px neighbourhood has >= {cfg['min_tissue']:.0%} tissue (mean tissue "
                      f"fraction {frac.mean():.1%}, threshold {tm.threshold:.1f})")
        if reason is not None:
            no_tissue[sid] = reason
            crop.unlink(missing_ok=True)
        ps.add(sid, coords=coords)
        counts[sid] = int(len(coords))
        slides_attr[sid] = _uns_safe({
            "path": str(crop) if len(coords) else None, "level": 0, "read_size": read_size,
            "tile_size_level0": read_size, "mpp_level0": None, "n_tiles": counts[sid], "threshold": tm.threshold,
            "tissue": float(frac.mean()) if len(frac) else 0.0, "no_tissue": reason, "spot": record,
        })
    return counts, no_tissue


def _spot_store(adata, store, key_added: str) -> PatchStore:
    """The store passed, else the one ``uns[key_added]`` names, else ``./gemmgan_spots.zarr`` (created)."""
    if store is None:
        record = adata.uns.get(key_added)
        store = (record.get("patch_store") if isinstance(record, dict) else None) or DEFAULT_SPOT_STORE
    if isinstance(store, PatchStore):
        return store if store.mode != "r" else PatchStore(store.path, mode="a")
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a path or a PatchStore, got {type(store).__name__}.")
    return PatchStore(store, mode="a")


def _check_store_params(ps: PatchStore, tile_size: int, min_tissue: float, overwrite: bool) -> None:
    old = ps.attrs
    same = old.get("tile_size") == tile_size and old.get("min_tissue") == min_tissue and old.get("mpp") is None \
        and old.get("max_tiles") is None
    if ps.slide_ids and "tile_size" in old and not same and not overwrite:
        raise ValueError(
            f"The patch store {str(ps.path)!r} was tiled with tile_size={old.get('tile_size')}, mpp={old.get('mpp')}, "
            f"min_tissue={old.get('min_tissue')}, max_tiles={old.get('max_tiles')}; you asked for "
            f"tile_size={tile_size}, min_tissue={min_tissue}. Use a new store or overwrite=True (re-tiles and drops these spots' features)."
        )


def _check_options(tile_size, neighbourhood_px, min_tissue, scale_factor, key_added, tissue_kwargs) -> dict:
    tile_size = _int_param("tile_size", tile_size, 8)
    neighbourhood_px = _int_param("neighbourhood_px", neighbourhood_px, 1)
    if neighbourhood_px % tile_size:
        raise ValueError(
            f"neighbourhood_px={neighbourhood_px} must be a multiple of tile_size={tile_size}, so the tiles cover the "
            f"neighbourhood exactly (e.g. neighbourhood_px={max(1, round(neighbourhood_px / tile_size)) * tile_size})."
        )
    def number(value) -> bool:
        return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))

    if not number(min_tissue) or not 0 <= min_tissue <= 1:
        raise ValueError(f"min_tissue must be a fraction in [0, 1], got {min_tissue!r}.")
    if scale_factor is not None and (not number(scale_factor) or not np.isfinite(scale_factor) or scale_factor <= 0):
        raise ValueError(
            f"scale_factor must be a positive number (image px per coordinate unit) or None, got {scale_factor!r}."
        )
    tissue_kwargs = check_key_and_tissue_kwargs(key_added, tissue_kwargs)
    return {"tile_size": tile_size, "neighbourhood_px": neighbourhood_px, "min_tissue": float(min_tissue),
            "tissue_kwargs": tissue_kwargs}


def tile_spots(
    adata,
    image: str | os.PathLike | np.ndarray | None = None,
    spatial_key: str = "spatial",
    library_id: str | None = None,
    tile_size: int = 64,
    neighbourhood_px: int = 256,
    store: str | os.PathLike | PatchStore | None = None,
    key_added: str = "gemmgan",
    *,
    library_key: str | None = None,
    img_key: str | None = None,
    scale_factor: float | None = None,
    min_tissue: float = 0.2,
    id_key: str = "slide_id",
    overwrite: bool = False,
    tissue_kwargs: dict[str, Any] | None = None,
) -> None:
    """Cut each spot's neighbourhood of the section image into tiles, with the spot as slide id in the patch store.

    For spatial transcriptomics (Visium, ST, ...): each spot (row) is a sample and the square of
    ``neighbourhood_px`` around its centre is its slide. The neighbourhood is cut into a grid of
    ``(neighbourhood_px / tile_size)**2`` tiles; as in :func:`tile_slides`, the tissue fraction of each tile is read
    from an Otsu tissue mask of the whole section (:func:`detect_tissue`) and tiles with at least ``min_tissue``
    are kept. The neighbourhood is written as a PNG inside the store (``<store>/spot_images/<spot>.png``) and its
    tiles' corners to the :class:`~gemmgan_sc.data.PatchStore`, so :func:`embed_tiles` and every model then read
    spots exactly as slides.

    Images follow the scverse conventions: spot centres in ``obsm[spatial_key]`` (full-resolution px), section
    images and scale factors in ``uns["spatial"][library_id]``. Without ``image``, the full-resolution image
    named in ``metadata["source_image_path"]`` is used when that file exists (most detail), else the ``"hires"``
    then ``"lowres"`` image with its ``tissue_<img_key>_scalef``. ``image=`` gives a path (any format
    :func:`tile_slides` reads) or an (H, W, 3) array instead, at ``scale_factor`` image px per coordinate unit.

    Parameters
    ----------
    adata
        AnnData with one row per spot; the obs names become slide ids.
    image
        Section image path or array (one library); None reads ``uns["spatial"]``.
    spatial_key
        ``obsm`` key of the spot centres (x, y).
    library_id
        Library of ``uns["spatial"]`` that all spots belong to (default: the only one there).
    tile_size
        Tile edge in coordinate units (full-resolution px); also the output tile size :func:`embed_tiles`
        resizes to for encoders without a fixed input size. On a scaled image a tile is
        ``round(tile_size * scale)`` image px.
    neighbourhood_px
        Edge of the square neighbourhood around each spot centre, in coordinate units; a multiple of ``tile_size``.
    store
        Patch-store folder or :class:`~gemmgan_sc.data.PatchStore` (default: ``uns[key_added]["patch_store"]``,
        else ``./gemmgan_spots.zarr``).
    key_added
        ``uns`` key for the parameters and the store path (the one :func:`embed_tiles` and the models read).
    library_key
        ``obs`` column naming each spot's library, for an AnnData of several sections.
    img_key
        ``"fullres"``, ``"hires"``, ``"lowres"`` or another key of ``uns["spatial"][lib]["images"]``; None picks as
        described above.
    scale_factor
        Image px per coordinate unit; overrides the scale factor of ``uns`` (default 1.0 for ``image=``).
    min_tissue
        Keep tiles with at least this tissue fraction (0-1).
    id_key
        ``obs`` column created with the slide ids (the obs names), as :func:`tile_slides` does.
    overwrite
        Re-tile spots already in the store (their features are dropped). Otherwise a spot tiled before with the
        same image, position and sizes is kept as it is, with its features (resumable).
    tissue_kwargs
        Keyword arguments of :func:`detect_tissue` (``channel``, ``max_size``, ...).

    Returns
    -------
    None. A spot without tissue in its neighbourhood (e.g. at a section's edge) is warned about, written to the
    store with 0 tiles and listed in ``uns[key_added]["tile_spots"]["no_tissue"]`` (spot -> reason); the models
    mask its image input. Writes ``obs[id_key]``, ``obs["n_tiles"]``, ``uns[key_added]["patch_store"]``,
    ``uns[key_added]["tile_spots"]`` (``params``, ``no_tissue``, ``libraries`` with each section's image and
    scale) and the tiling record ``uns[key_added]["tile_slides"]`` :func:`embed_tiles` reads. Per spot the store
    attrs ``slides[spot]["spot"]`` give the neighbourhood's ``origin`` and the image ``scale``: a tile at local
    corner ``c`` lies at ``(origin + c) / scale`` in full-resolution coordinates.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> adata = gg.datasets.read_her2st("her2st", sections=["C2"])  # doctest: +SKIP
    >>> gg.pp.tile_spots(adata, tile_size=64, neighbourhood_px=256, store="spots.zarr")  # doctest: +SKIP
    >>> gg.pp.embed_tiles(adata, encoder="hed-texture")  # doctest: +SKIP
    >>> adata.obs["n_tiles"].value_counts()  # doctest: +SKIP
    """
    _check_adata(adata)
    cfg = _check_options(tile_size, neighbourhood_px, min_tissue, scale_factor, key_added, tissue_kwargs)
    cfg["overwrite"] = bool(overwrite)
    centres = _spot_centres(adata, spatial_key)
    ids = _spot_ids(adata, id_key)
    groups = _libraries(adata, image, library_id, library_key)
    ps = _spot_store(adata, store, key_added)
    _check_store_params(ps, cfg["tile_size"], cfg["min_tissue"], overwrite)
    slides_attr: dict[str, Any] = dict(ps.attrs.get("slides") or {})
    counts: dict[str, int] = {}
    no_tissue: dict[str, str] = {}
    libraries: dict[str, Any] = {}
    for lib, rows in groups.items():
        reader, scale, source = _section_image(adata, lib, image, img_key, scale_factor)
        if lib is not None:
            source["library_id"] = lib
        with reader:
            n, empty = _tile_library(reader, scale, source, rows, ids, centres, ps, cfg, slides_attr)
        counts.update(n)
        no_tissue.update(empty)
        libraries["image" if lib is None else str(lib)] = dict(source, n_spots=len(rows), n_no_tissue=len(empty))
        if empty:
            warnings.warn(
                f"{len(empty)} of {len(rows)} spots of library {lib!r} have no tissue in their neighbourhood, e.g. "
                f"{list(empty)[:3]}: 0 tiles recorded (listed in adata.uns[{key_added!r}]['tile_spots']['no_tissue']; "
                "the model masks their image input). If tissue is expected, lower min_tissue or change tissue_kwargs.",
                UserWarning, stacklevel=2,
            )
    _record(adata, ps, cfg, slides_attr, counts, no_tissue, libraries,
            {"image": None if image is None else ("array" if isinstance(image, np.ndarray) else str(image)),
             "spatial_key": spatial_key, "library_id": library_id, "library_key": library_key, "img_key": img_key,
             "scale_factor": scale_factor, "id_key": id_key, "key_added": key_added})


def _record(adata, ps, cfg, slides_attr, counts, no_tissue, libraries, inputs) -> None:
    """Store attrs, ``obs[id_key]``, ``obs["n_tiles"]`` and the ``uns`` records."""
    params = {"tile_size": cfg["tile_size"], "mpp": None, "min_tissue": cfg["min_tissue"], "max_tiles": None, "seed": 0}
    sizes0 = {v.get("tile_size_level0") for v in slides_attr.values() if v.get("n_tiles")}
    ps.update_attrs(params, tile_size_level0=sizes0.pop() if len(sizes0) == 1 else None, level=0,
                    tissue_method="otsu", tissue_kwargs=cfg["tissue_kwargs"], slides=slides_attr)
    id_key, key_added = inputs["id_key"], inputs["key_added"]
    adata.obs[id_key] = pd.Categorical(adata.obs_names.astype(str).to_numpy())
    adata.obs["n_tiles"] = adata.obs[id_key].astype(str).map(counts).fillna(0).astype(np.int64).to_numpy()
    uns = adata.uns.setdefault(key_added, {})
    uns["patch_store"] = str(ps.path)
    uns["tile_size"] = cfg["tile_size"]
    uns["min_tissue"] = cfg["min_tissue"]
    all_params = {**inputs, "tile_size": cfg["tile_size"], "neighbourhood_px": cfg["neighbourhood_px"],
                  "min_tissue": cfg["min_tissue"], "overwrite": cfg["overwrite"], "tissue_kwargs": cfg["tissue_kwargs"]}
    record = {"params": all_params, "no_tissue": no_tissue, "libraries": libraries, "n_spots": len(counts),
              "n_tiles_total": int(sum(counts.values())), "versions": _versions()}
    uns["tile_spots"] = _uns_safe(record)
    # the tiling record embed_tiles reads (the same fields tile_slides writes)
    uns["tile_slides"] = _uns_safe({"params": {"id_key": id_key, **params, "function": "tile_spots"},
                                    "failed": {}, "no_tissue": no_tissue, "id_key_created": True,
                                    "n_slides": len(counts), "n_tiles_total": record["n_tiles_total"]})
