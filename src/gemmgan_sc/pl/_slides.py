"""Slide QC plots: the tissue mask over the thumbnail, and the kept tiles outlined on it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._utils import finish


def _slide_record(adata, slide_id: str, key: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
    from ..data import PatchStore

    uns = adata.uns.get(key)
    if not isinstance(uns, dict) or "patch_store" not in uns:
        raise ValueError(f"adata.uns[{key!r}] has no patch store: run gg.pp.tile_slides(adata, ...) first.")
    store = PatchStore(uns["patch_store"], mode="r")
    attrs = store.attrs
    slides = attrs.get("slides") or {}
    if slide_id not in slides:
        raise KeyError(f"Slide {slide_id!r} was not tiled into {uns['patch_store']!r}; tiled slides: {sorted(slides)[:10]}.")
    return slides[slide_id], attrs, store


def tissue(
    slide: str | os.PathLike,
    *,
    ax=None,
    show: bool | None = None,
    save: bool | str | os.PathLike | None = None,
    alpha: float = 0.4,
    color: str = "tab:green",
    **tissue_kwargs: Any,
):
    """Thumbnail of a slide with its tissue mask (from :func:`gemmgan_sc.pp.detect_tissue`) overlaid.

    Parameters
    ----------
    slide
        Slide file path.
    ax
        Matplotlib axes (a new figure when None).
    show
        Call ``plt.show()`` after drawing; ``None`` (default) follows ``gg.settings.autoshow``.
    save
        Write the figure (atomically): a file path (``.png`` unless it names another format), or ``True``
        for ``gg.settings.figdir / "tissue.png"``.
    alpha, color
        Mask overlay opacity and colour.
    **tissue_kwargs
        Passed to :func:`gemmgan_sc.pp.detect_tissue`.

    Returns
    -------
    The axes.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> ax = gg.pl.tissue("slide.svs", show=False)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from ..pp._tissue import detect_tissue

    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}.")
    tm = detect_tissue(slide, **tissue_kwargs)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6 * tm.mask.shape[0] / max(tm.mask.shape[1], 1)))
    h, w = tm.mask.shape
    extent = (0, w * tm.scale[0], h * tm.scale[1], 0)
    ax.imshow(tm.thumbnail, extent=extent)
    overlay = np.zeros((h, w, 4))
    overlay[tm.mask] = to_rgba(color, alpha)
    ax.imshow(overlay, extent=extent)
    ax.set_title(f"{os.path.basename(str(slide))}: tissue {tm.mask.mean():.1%} (threshold {tm.threshold:.0f})")
    ax.set_xlabel("x (level-0 px)")
    ax.set_ylabel("y (level-0 px)")
    return finish(ax, show, save, "tissue")


def tiles(
    adata,
    slide_id: str,
    key: str = "gemmgan",
    *,
    ax=None,
    show: bool | None = None,
    save: bool | str | os.PathLike | None = None,
    show_mask: bool = True,
    color: str = "tab:blue",
    linewidth: float = 0.6,
    max_size: int = 1024,
):
    """Thumbnail of one tiled slide with the tissue mask and every kept tile outlined.

    Parameters
    ----------
    adata
        AnnData tiled by :func:`gemmgan_sc.pp.tile_slides`.
    slide_id
        Slide id (a value of the id column).
    key
        ``uns`` key used by ``tile_slides`` (its ``key_added``).
    ax
        Matplotlib axes (a new figure when None).
    show
        Call ``plt.show()`` after drawing; ``None`` (default) follows ``gg.settings.autoshow``.
    save
        Write the figure (atomically): a file path (``.png`` unless it names another format), or ``True``
        for ``gg.settings.figdir / "tiles.png"``.
    show_mask
        Overlay the tissue mask (recomputed with the recorded tissue options).
    color, linewidth
        Tile outlines.
    max_size
        Longest side of the thumbnail in px.

    Returns
    -------
    The axes.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> gg.pp.tile_slides(adata, slide_key="slide_path")  # doctest: +SKIP
    >>> ax = gg.pl.tiles(adata, adata.obs["slide_id"].iloc[0], show=False)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    from ..pp._tissue import detect_tissue

    slide_id = str(slide_id)
    info, attrs, store = _slide_record(adata, slide_id, key)
    tissue_kwargs = dict(attrs.get("tissue_kwargs") or {})
    tissue_kwargs["max_size"] = int(max_size)
    tm = detect_tissue(info["path"], **tissue_kwargs)
    coords = store.coords(slide_id)
    size0 = float(info["tile_size_level0"])
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6 * tm.mask.shape[0] / max(tm.mask.shape[1], 1)))
    h, w = tm.mask.shape
    extent = (0, w * tm.scale[0], h * tm.scale[1], 0)
    ax.imshow(tm.thumbnail, extent=extent)
    if show_mask:
        overlay = np.zeros((h, w, 4))
        overlay[tm.mask] = (0.2, 0.7, 0.2, 0.3)
        ax.imshow(overlay, extent=extent)
    rects = [Rectangle((float(x), float(y)), size0, size0) for x, y in (coords if coords is not None else [])]
    ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor=color, linewidth=linewidth))
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_title(f"{slide_id}: {len(rects)} tiles of {int(size0)} px (level 0)")
    ax.set_xlabel("x (level-0 px)")
    ax.set_ylabel("y (level-0 px)")
    return finish(ax, show, save, "tiles")
