"""Real and generated tiles side by side (TileGAN)."""

from __future__ import annotations

import os

import numpy as np

from ._utils import finish


def tile_mosaic(blocks: list[np.ndarray], pad: int = 2, fill: int = 255) -> np.ndarray:
    """One image of a grid of tiles: ``blocks[i]`` (n_cols x S x S x 3 uint8) is grid row i; ``pad`` px between.

    Examples
    --------
    >>> import numpy as np
    >>> tile_mosaic([np.zeros((3, 8, 8, 3), np.uint8)] * 2, pad=1).shape
    (17, 26, 3)
    """
    n_rows, (n_cols, s) = len(blocks), blocks[0].shape[:2]
    out = np.full((n_rows * s + (n_rows - 1) * pad, n_cols * s + (n_cols - 1) * pad, 3), fill, np.uint8)
    for i, block in enumerate(blocks):
        for j, tile in enumerate(block):
            out[i * (s + pad) : i * (s + pad) + s, j * (s + pad) : j * (s + pad) + s] = tile
    return out


def generated_tiles(
    model,
    adata=None,
    rows=None,
    n_per_row: int = 1,
    seed: int | None = 0,
    *,
    ax=None,
    show: bool | None = None,
    save: bool | str | os.PathLike | None = None,
    pad: int = 2,
):
    """Real tiles of some rows beside the tiles a :class:`~gemmgan_sc.TileGAN` generates from their expression.

    One column per row of ``adata``: on top a real tile of the row's slide or spot (read at the patch store's
    coordinates), below it ``n_per_row`` tiles generated from the row's expression (different noise).

    Parameters
    ----------
    model
        A trained :class:`~gemmgan_sc.TileGAN`.
    adata
        Rows to show (default: the model's training AnnData); held-out rows show what the model generalises.
    rows
        Row positions, obs names or a boolean mask (default: the first 8 rows).
    n_per_row
        Generated tiles per row.
    seed
        Seed of the generation and of the real tile picked per row.
    ax
        Matplotlib axes (a new figure when None).
    show
        Call ``plt.show()``; ``None`` follows ``gg.settings.autoshow``.
    save
        A file path, or ``True`` for ``gg.settings.figdir / "generated_tiles.png"``.
    pad
        White px between tiles.

    Returns
    -------
    The axes.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> ax = gg.pl.generated_tiles(model, adata_test, rows=range(8), show=False)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    if adata is None:
        adata = model.adata
    if rows is None:
        rows = np.arange(min(8, adata.n_obs))
    rows = np.asarray(list(rows) if isinstance(rows, range) else rows)
    if rows.size == 0:
        raise ValueError("rows is empty: name at least one row to show.")
    real = model.real_tiles(adata, rows, n_per_row=1, seed=seed)
    fake = model.sample(adata, rows, n_per_row=n_per_row, seed=seed)
    n = len(real)
    blocks = [real.tiles] + [fake.tiles[k::n_per_row] for k in range(n_per_row)]
    image = tile_mosaic(blocks, pad=pad)
    s = real.tiles.shape[1]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(3.0, 1.1 * n), max(1.6, 1.1 * (1 + n_per_row))))
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([j * (s + pad) + s / 2 for j in range(n)])
    ax.set_xticklabels([str(v) for v in real.obs_names], rotation=60, ha="right", fontsize=7)
    ax.set_yticks([i * (s + pad) + s / 2 for i in range(1 + n_per_row)])
    ax.set_yticklabels(["real"] + [f"generated {k + 1}" if n_per_row > 1 else "generated" for k in range(n_per_row)],
                       fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"{type(model).__name__} ({model.hparams['conditioning']}): real vs generated, {s} px", fontsize=9)
    return finish(ax, show, save, "generated_tiles")
