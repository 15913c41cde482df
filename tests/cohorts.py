"""Small synthetic cohorts for model tests, where one modality decides the group mean of some genes."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from gemmgan_sc.data import PatchStore


def make_cohort(
    tmp_path,
    n: int = 120,
    n_genes: int = 40,
    n_marker: int = 20,
    n_groups: int = 2,
    patch_dim: int = 16,
    text_dim: int = 12,
    n_tokens: int = 6,
    tiles: tuple[int, int] = (3, 12),
    decided_by: str = "image",
    with_text: bool = True,
    with_image: bool = True,
    seed: int = 0,
):
    """AnnData + patch store; ``decided_by`` ("image" or "text") carries the group, the other modality is noise.

    Marker genes have group mean ``2 + 3 * group`` (log scale, non-negative); the others are noise around 3.
    """
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_groups, size=n)
    x = rng.normal(3.0, 0.3, size=(n, n_genes))
    x[:, :n_marker] = 2.0 + 3.0 * group[:, None] + rng.normal(0, 0.3, size=(n, n_marker))
    x = np.clip(x, 0, None).astype(np.float32)
    obs = pd.DataFrame(
        {"group": pd.Categorical([f"g{g}" for g in group]), "slide_id": [f"slide-{i:04d}" for i in range(n)]},
        index=[f"cell{i}" for i in range(n)],
    )
    adata = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)]))
    store_path = None
    if with_image:
        store_path = str(tmp_path / "patches.zarr")
        store = PatchStore(store_path, mode="w")
        centres = rng.normal(0, 1, size=(n_groups, patch_dim)) * 2
        for i in range(n):
            k = int(rng.integers(tiles[0], tiles[1] + 1))
            base = centres[group[i]] if decided_by == "image" else np.zeros(patch_dim)
            store.add(obs["slide_id"].iloc[i], base + rng.normal(0, 0.5, size=(k, patch_dim)))
        store.update_attrs(encoder="test")
    if with_text:
        tok = rng.normal(0, 1, size=(n, n_tokens, text_dim)).astype(np.float32)
        if decided_by == "text":
            centres = rng.normal(0, 1, size=(n_groups, text_dim)) * 2
            tok[:, 0] = centres[group] + rng.normal(0, 0.3, size=(n, text_dim))
        mask = np.ones((n, n_tokens), dtype=bool)
        lengths = rng.integers(2, n_tokens + 1, size=n)
        mask[np.arange(n_tokens)[None, :] >= lengths[:, None]] = False
        adata.obsm["X_text_tokens"] = tok.astype(np.float16)
        adata.obsm["text_mask"] = mask
    return adata, store_path


SMALL = dict(d_model=16, n_latent=8, n_patches=8, hidden=(32, 32), n_heads=2, d_ff=32, dropout=0.0)
