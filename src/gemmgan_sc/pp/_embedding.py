"""Tiles of the patch store through a frozen image encoder: float16 features per slide."""

from __future__ import annotations

import os
import warnings
from typing import Any, Literal

import numpy as np

from ..data import PatchStore
from ._slide_common import _ERRORS, _check_adata, _int_param, _logger, _open_store, _progress, _uns_safe, _versions
from ._tiles import SlideReadError, open_slide

__all__ = ["embed_tiles"]

_PRECISIONS = (None, "float32", "bfloat16", "float16")


def _tiling_record(adata, key_added: str, id_key: str | None) -> tuple[dict[str, Any], str]:
    """``uns[key_added]`` written by tile_slides and the ``obs`` column of slide ids."""
    uns = adata.uns.get(key_added)
    if not isinstance(uns, dict) or "tile_slides" not in uns:
        raise ValueError(f"adata.uns[{key_added!r}] has no tiling record: run gg.pp.tile_slides(adata, ...) first.")
    id_key = id_key or uns["tile_slides"]["params"].get("id_key", "slide_id")
    if id_key not in adata.obs:
        raise KeyError(f"adata.obs[{id_key!r}] (slide ids) is missing; run gg.pp.tile_slides first.")
    return uns, id_key


def _embedded_slides(ps: PatchStore, enc, ids: list[str], overwrite: bool) -> set[str]:
    """Slides that already have features of ``enc`` (skipped unless ``overwrite``); features of another
    encoder need ``overwrite`` and are then dropped from the store's record."""
    attrs, embedded = ps.attrs, set(ps.embedded_slide_ids)
    if embedded and attrs.get("encoder") not in (None, enc.name):
        others = embedded - set(ids)
        if not overwrite or others:
            raise ValueError(
                f"The patch store {str(ps.path)!r} holds {attrs.get('dim')}-d features of encoder "
                f"{attrs.get('encoder')!r}; you asked for {enc.name!r}. Use a new store (tile_slides(store=...)) "
                + ("or overwrite=True." if not others else f"(slides {sorted(others)[:5]} outside this AnnData use it).")
            )
        ps.update_attrs(dim=None)
        return set()
    if embedded and attrs.get("dim") not in (None, enc.dim):
        raise ValueError(f"The store holds {attrs.get('dim')}-d features, encoder {enc.name!r} gives {enc.dim}-d.")
    return embedded


def _plan_jobs(ps: PatchStore, ids: list[str], tiling: dict[str, Any], skip: set[str]) -> tuple[list[dict], list[str]]:
    """One reading job per slide to embed, and the slides without tiles (they get no features)."""
    slides_attr = ps.attrs.get("slides") or {}
    tiling_failed = set(tiling.get("failed") or {})
    jobs, empty = [], []
    for sid in ids:
        if sid in tiling_failed and (sid not in ps or ps.n_tiles(sid) == 0):
            empty.append(sid)
            continue
        if sid not in ps:
            raise KeyError(f"Slide {sid!r} is not in the patch store {str(ps.path)!r}: run gg.pp.tile_slides for it.")
        if sid in skip:
            continue
        coords = ps.coords(sid)
        if coords is None or len(coords) == 0:
            empty.append(sid)
            continue
        info = slides_attr.get(sid)
        if info is None:
            raise KeyError(f"The store has no tiling record for slide {sid!r}; re-run gg.pp.tile_slides(overwrite=True).")
        jobs.append({"sid": sid, "path": info["path"], "level": int(info["level"]), "read_size": int(info["read_size"]),
                     "coords": coords})
    return jobs, empty


def _warn_empty(empty: list[str], tiling: dict[str, Any]) -> None:
    no_tissue = set(tiling.get("no_tissue") or {})
    unexpected = [s for s in empty if s not in no_tissue]
    if unexpected:
        warnings.warn(f"{len(unexpected)} slide(s) have 0 tiles and get no features: {unexpected[:5]}.",
                      UserWarning, stacklevel=3)
    if len(unexpected) < len(empty):  # already warned about by tile_slides; the model masks these slides
        _logger().info("skipping %d slide(s) without tissue (0 tiles)", len(empty) - len(unexpected))


def _drop_unreadable(jobs: list[dict], errors: str) -> dict[str, str]:
    """Open every file before the long run; unreadable ones raise, or (``errors="warn"``) leave ``jobs``."""
    failed: dict[str, str] = {}
    for job in list(jobs):
        try:
            open_slide(job["path"]).close()
        except SlideReadError as err:
            if errors == "raise":
                raise
            warnings.warn(f"Skipping slide {job['sid']!r}: {err}", UserWarning, stacklevel=3)
            failed[job["sid"]] = str(err)
            jobs.remove(job)
    return failed


class _FeatureSink:
    """Takes feature rows in dataset order and writes each slide to the store once all its rows are in."""

    def __init__(self, ps: PatchStore, jobs: list[dict]) -> None:
        self.ps, self.jobs = ps, jobs
        self.slide, self.rows, self.pending = 0, 0, []

    def add(self, feats: np.ndarray) -> None:
        while len(feats):
            need = len(self.jobs[self.slide]["coords"]) - self.rows
            self.pending.append(feats[:need])
            self.rows += len(self.pending[-1])
            feats = feats[need:]
            if self.rows == len(self.jobs[self.slide]["coords"]):
                _write_slide(self.ps, self.jobs[self.slide]["sid"], np.concatenate(self.pending))
                self.slide, self.rows, self.pending = self.slide + 1, 0, []


def _write_slide(ps: PatchStore, sid: str, feats: np.ndarray) -> None:
    if not np.isfinite(feats).all():
        raise ValueError(f"The encoder gave NaN/inf features for slide {sid!r}; try precision=None (float32).")
    big = np.abs(feats).max(initial=0)
    if big > np.finfo(np.float16).max:
        raise ValueError(f"Features of slide {sid!r} exceed the float16 range (max |x| = {big:.3g}).")
    ps.add(sid, feats, coords=None)


def _encode(enc, tiles, dev, precision: str | None) -> np.ndarray:
    """Features of a B x H x W x 3 uint8 batch, computed on ``dev`` (autocast to ``precision`` for torch encoders)."""
    import torch

    x = enc.preprocess(tiles.to(dev, non_blocking=True).permute(0, 3, 1, 2))
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision or "")
    with torch.autocast(device_type=dev.type, dtype=dtype, enabled=dtype is not None and enc.is_torch):
        feats = enc(x)
    return feats.float().cpu().numpy()


def _embed_jobs(ps: PatchStore, jobs: list[dict], enc, *, out_size: int, batch_size: int, num_workers: int, dev,
                precision: str | None) -> int:
    """Read, encode and write the tiles of ``jobs``; returns the number of tiles embedded."""
    from ._tile_reader import TileDataset, next_batch, tile_loader

    in_workers = not enc.is_torch and num_workers > 0  # a CPU encoder runs where the tiles are read
    dataset = TileDataset(jobs, out_size)
    if not len(dataset):
        return 0
    loader = tile_loader(dataset, batch_size, num_workers, encoder=enc if in_workers else None,
                         pin_memory=dev.type == "cuda")
    sink = _FeatureSink(ps, jobs)
    bar = _progress(total=len(dataset), desc=f"embedding tiles ({enc.name})", unit="tile")
    batches = iter(loader)
    try:
        while (batch := next_batch(batches)) is not None:
            feats = batch.numpy() if in_workers else _encode(enc, batch, dev, precision)
            sink.add(feats)
            bar.update(len(feats))
    finally:
        del batches  # the worker processes stop now, also on an error
        bar.close()
        dataset.close()
    return len(dataset)


def _record_embedding(adata, ps: PatchStore, enc, key_added: str, params: dict[str, Any], **facts: Any) -> None:
    desc = enc.describe()
    ps.update_attrs(desc)
    if ps.dim is None and facts["n_tiles_embedded"]:
        ps.update_attrs(dim=enc.dim)
    uns = adata.uns.setdefault(key_added, {})
    uns["patch_store"] = str(ps.path)
    uns["image_encoder"] = enc.name
    uns["image_dim"] = enc.dim
    uns["embed_tiles"] = _uns_safe({"params": params, "encoder": desc, **facts, "versions": _versions()})


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
    have features are skipped unless ``overwrite``. Tiles are read by a torch ``DataLoader`` with
    ``num_workers`` worker processes that overlap the encoder (for a CPU encoder that is not a torch module,
    such as ``"hed-texture"``, the workers also compute the features). An error in a worker (e.g. a tile that
    cannot be decoded) stops the reading and is raised, naming the worker and the original error; a slide is
    written only once all its tiles are embedded. Slides recorded with 0 tiles (no tissue, see
    :func:`tile_slides`) are skipped: they get no features and the model masks their image input.

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
        Tile-reading worker processes (default ``gg.settings.num_workers``; 0 reads in this process). Scripts
        using workers on macOS or Windows (processes started by spawning) need the
        ``if __name__ == "__main__":`` guard, as for any torch ``DataLoader``.
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
    from .._settings import settings
    from ..encoders import get_image_encoder

    _check_adata(adata)
    batch_size = _int_param("batch_size", batch_size, 1)
    num_workers = settings.num_workers if num_workers is None else _int_param("num_workers", num_workers, 0)
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be None, 'float32', 'bfloat16' or 'float16', got {precision!r}.")
    if errors not in _ERRORS:
        raise ValueError(f"errors must be one of {_ERRORS}, got {errors!r}.")
    uns, id_key = _tiling_record(adata, key_added, id_key)
    ps = _open_store(adata, store, key_added)
    dev = settings.resolve_device(device)
    enc = get_image_encoder(encoder, checkpoint=checkpoint, token=token, device=str(dev))
    ids = list(dict.fromkeys(adata.obs[id_key].astype(str)))
    embedded = _embedded_slides(ps, enc, ids, overwrite)
    jobs, empty = _plan_jobs(ps, ids, uns["tile_slides"], skip=set() if overwrite else embedded)
    _warn_empty(empty, uns["tile_slides"])
    failed = _drop_unreadable(jobs, errors)
    n = _embed_jobs(ps, jobs, enc, out_size=enc.input_size or int(ps.attrs.get("tile_size", 256)),
                    batch_size=batch_size, num_workers=num_workers, dev=dev, precision=precision)
    params = {"encoder": enc.name, "batch_size": batch_size, "device": str(dev), "num_workers": num_workers,
              "precision": precision, "overwrite": overwrite,
              "checkpoint": None if checkpoint is None else str(checkpoint), "id_key": id_key, "errors": errors}
    _record_embedding(adata, ps, enc, key_added, params, n_tiles_embedded=int(n), empty_slides=empty, failed=failed)
