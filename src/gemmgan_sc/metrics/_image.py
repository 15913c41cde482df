"""Image metrics of generated tiles: Frechet distance and KID in an image encoder's feature space, and retrieval.

Tiles (n x H x W x 3 uint8, e.g. what :meth:`gemmgan_sc.TileGAN.sample` returns) are embedded by any registered
image encoder (:func:`gemmgan_sc.encoders.get_image_encoder`; default the offline ``"hed-texture"``), and the name
of the encoder is recorded in every result: distances in different feature spaces are not comparable. Every
function also takes precomputed features (n x D) instead of tiles.

* :func:`image_frechet`: the Frechet distance of Gaussian fits (FID's formula, :func:`frechet_gaussians`), by
  default after standardising each feature with the real tiles' mean and sd (``"hed-texture"`` mixes histogram
  fractions with GLCM contrasts hundreds of times larger, which would otherwise dominate the distance). The
  scale is pooled over both sets, so a feature that is constant in one set cannot blow the distance up.
* :func:`image_kid`: the kernel inception distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic
  polynomial kernel ``(x.y / D + 1)^3``, mean and sd over random subsets.
* :func:`tile_retrieval`: conditional retrieval. For every generated tile, the rows are ranked by the distance
  between the tile and the mean features of each row's real tiles; top-k accuracy is how often the tile's own
  row is among the k nearest, beside chance (k / rows). Generated and real features are standardised separately
  by default, so the marginal mismatch the Frechet distance measures does not decide the ranking.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._frechet import frechet_gaussians


@dataclasses.dataclass(frozen=True)
class ImageScore:
    """One image metric with the feature space it was computed in.

    ``float(score)`` is the value; :meth:`to_dict` gives a JSON-ready record.
    """

    metric: str
    value: float
    encoder: str
    n_real: int
    n_generated: int
    std: float | None = None

    def __float__(self) -> float:
        return float(self.value)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _encoder(encoder):
    from ..encoders import get_image_encoder
    from ..encoders._image import ImageEncoder

    return encoder if isinstance(encoder, ImageEncoder) else get_image_encoder(encoder, device="cpu")


def _encoder_name(encoder) -> str:
    from ..encoders._image import ImageEncoder

    return encoder.name if isinstance(encoder, ImageEncoder) else str(encoder)


def image_features(tiles, encoder="hed-texture", batch_size: int = 256) -> np.ndarray:
    """Features (n x D, float64) of uint8 tiles (n x H x W x 3) in the space of ``encoder``.

    Parameters
    ----------
    tiles
        n x H x W x 3 uint8 array (or anything ``np.asarray`` turns into one, such as generated tiles).
    encoder
        A name of :func:`gemmgan_sc.encoders.get_image_encoder` or an :class:`~gemmgan_sc.encoders._image.ImageEncoder`.
    batch_size
        Tiles per encoder call.

    Examples
    --------
    >>> import numpy as np
    >>> image_features(np.full((2, 32, 32, 3), 200, np.uint8)).shape
    (2, 113)
    """
    arr = np.asarray(tiles)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"tiles must be n x H x W x 3 (uint8 RGB), got shape {arr.shape}.")
    if arr.dtype != np.uint8:
        raise ValueError(f"tiles must be uint8 RGB (0-255), got dtype {arr.dtype}; convert them first.")
    enc = _encoder(encoder)
    out = [enc(enc.preprocess(arr[i : i + batch_size])).float().cpu().numpy() for i in range(0, len(arr), batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, enc.dim))


def _as_features(x, encoder, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 2:
        feats = arr.astype(np.float64)
    elif arr.ndim == 4:
        feats = image_features(arr, encoder)
    else:
        raise ValueError(f"{what} must be tiles (n x H x W x 3 uint8) or features (n x D), got shape {arr.shape}.")
    if len(feats) < 2:
        raise ValueError(f"{what} has {len(feats)} tile(s); the metric needs at least 2.")
    if not np.isfinite(feats).all():
        raise ValueError(f"{what} has NaN/inf features.")
    return feats


def _standardizer(*sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of each feature over the union of ``sets`` (sd 0 -> 1)."""
    pooled = np.concatenate(sets)
    mean, sd = pooled.mean(0), pooled.std(0)
    return mean, np.where(sd > 1e-12, sd, 1.0)


def standardized_frechet(real: np.ndarray, generated: np.ndarray, standardize: bool = True) -> float:
    """Frechet distance of Gaussian fits of two feature matrices (optionally standardised with their pooled moments)."""
    if standardize:
        mean, sd = _standardizer(real, generated)
        real, generated = (real - mean) / sd, (generated - mean) / sd
    cov = lambda a: np.atleast_2d(np.cov(a, rowvar=False))  # noqa: E731
    return frechet_gaussians(real.mean(0), cov(real), generated.mean(0), cov(generated))


def image_frechet(real, generated, encoder="hed-texture", standardize: bool = True) -> ImageScore:
    """Frechet distance between real and generated tiles in the feature space of ``encoder``.

    Parameters
    ----------
    real, generated
        Tiles (n x H x W x 3 uint8) or their features (n x D) in the space of ``encoder``.
    encoder
        Image encoder name (recorded in the result) or instance.
    standardize
        Standardise every feature with the mean and sd of both sets pooled first.

    Returns
    -------
    :class:`ImageScore` (``metric="frechet"``; 0 for identical Gaussian fits).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> real = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    >>> score = image_frechet(real, real)
    >>> round(float(score), 6), score.encoder
    (0.0, 'hed-texture')
    """
    a, b = _as_features(real, encoder, "real"), _as_features(generated, encoder, "generated")
    _same_width(a, b)
    return ImageScore("frechet", standardized_frechet(a, b, standardize), _encoder_name(encoder), len(a), len(b))


def _same_width(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"real and generated features have widths {a.shape[1]} and {b.shape[1]}: embed both with "
                         "the same encoder.")


def _mmd2_poly(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def image_kid(real, generated, encoder="hed-texture", n_subsets: int = 50, subset_size: int = 100,
              seed: int = 0, standardize: bool = True) -> ImageScore:
    """Kernel inception distance between real and generated tiles in the feature space of ``encoder``.

    The unbiased MMD^2 estimate with the kernel ``k(x, y) = (x.y / D + 1)^3``, averaged over ``n_subsets`` random
    subsets of ``min(subset_size, n_real, n_generated)`` tiles of each set (``std`` of the result: its sd over the
    subsets). Unbiased, so it can be slightly negative when the sets match.

    Parameters
    ----------
    real, generated, encoder, standardize
        As in :func:`image_frechet`.
    n_subsets, subset_size, seed
        Subsets drawn (with a seeded generator).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(200, 8)), rng.normal(1.0, size=(200, 8))
    >>> image_kid(a, a[::-1], encoder="features").value < 0.05 < image_kid(a, b, encoder="features").value
    True
    """
    if isinstance(n_subsets, bool) or not isinstance(n_subsets, (int, np.integer)) or n_subsets < 1:
        raise ValueError(f"n_subsets must be a positive int, got {n_subsets!r}.")
    if isinstance(subset_size, bool) or not isinstance(subset_size, (int, np.integer)) or subset_size < 2:
        raise ValueError(f"subset_size must be an int >= 2, got {subset_size!r}.")
    a, b = _as_features(real, encoder, "real"), _as_features(generated, encoder, "generated")
    _same_width(a, b)
    if standardize:
        mean, sd = _standardizer(a, b)
        a, b = (a - mean) / sd, (b - mean) / sd
    m = min(int(subset_size), len(a), len(b))
    rng = np.random.default_rng(seed)
    values = [_mmd2_poly(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)])
              for _ in range(int(n_subsets))]
    return ImageScore("kid", float(np.mean(values)), _encoder_name(encoder), len(a), len(b), float(np.std(values)))


RETRIEVAL_STANDARDIZE = ("separate", "pooled", None)


def tile_retrieval(generated, generated_rows, real, real_rows, encoder="hed-texture",
                   k: Sequence[int] = (1, 5), standardize: str | None = "separate") -> dict[str, Any]:
    """Conditional retrieval: how often a generated tile is nearest to its own row's real tiles among all rows.

    Each row's reference is the mean feature of its real tiles; for every generated tile the rows are ranked by
    the Euclidean distance (standardised features) between the tile and each reference. With
    ``standardize="separate"`` (default) the generated and the real features are each standardised with their own
    set's mean and sd, so a shift of the whole generated set away from the real one (which :func:`image_frechet`
    measures) does not make the rows that lie in the shift's direction nearest to every generated tile: the score
    then asks whether a tile's deviation from the generated tiles matches its row's deviation from the real ones.
    ``"pooled"`` standardises both with their pooled moments, None not at all. ``top{k}`` is the
    fraction of generated tiles whose own row ranks among the k nearest; ``chance_top{k}`` = k / rows is what a
    generator that ignores its condition scores on average.

    Parameters
    ----------
    generated, real
        Tiles (n x H x W x 3 uint8) or features (n x D).
    generated_rows, real_rows
        The row (any hashable id: obs name or position) of each generated and each real tile; every row of
        ``generated_rows`` needs real tiles.
    encoder
        Image encoder name (recorded) or instance.
    k
        The ranks reported.
    standardize
        ``"separate"``, ``"pooled"`` or None (see above).

    Returns
    -------
    dict with ``top{k}``, ``chance_top{k}`` and ``ratio_top{k}`` (top-k / chance) for each k, ``mean_rank`` (1 =
    own row nearest), ``n_rows``, ``n_generated`` and ``encoder``.

    Examples
    --------
    >>> import numpy as np
    >>> real = np.repeat(np.eye(4) * 10, 3, axis=0)  # 4 rows, 3 real tiles each (as features)
    >>> out = tile_retrieval(np.eye(4) * 10, [0, 1, 2, 3], real, np.repeat(np.arange(4), 3), encoder="features")
    >>> out["top1"], out["chance_top1"]
    (1.0, 0.25)
    """
    if standardize not in RETRIEVAL_STANDARDIZE:
        raise ValueError(f"standardize must be one of {RETRIEVAL_STANDARDIZE}, got {standardize!r}.")
    ks = sorted({int(v) for v in k})
    if not ks or ks[0] < 1:
        raise ValueError(f"k must hold positive ints, got {k!r}.")
    g, r = _as_features(generated, encoder, "generated"), _as_features(real, encoder, "real")
    _same_width(g, r)
    g_rows, r_rows = np.asarray(generated_rows), np.asarray(real_rows)
    if len(g_rows) != len(g) or len(r_rows) != len(r):
        raise ValueError(f"generated_rows ({len(g_rows)}) and real_rows ({len(r_rows)}) must give one row per tile "
                         f"({len(g)} generated, {len(r)} real).")
    rows, inverse = np.unique(r_rows, return_inverse=True)
    where = {v: i for i, v in enumerate(rows.tolist())}
    missing = [v for v in dict.fromkeys(g_rows.tolist()) if v not in where]
    if missing:
        raise ValueError(f"{len(missing)} row(s) of generated_rows have no real tiles, e.g. {missing[:5]}: give real "
                         "tiles of every row that was generated from.")
    if standardize == "pooled":
        mean, sd = _standardizer(r, g)
        g, r = (g - mean) / sd, (r - mean) / sd
    elif standardize == "separate":
        (gm, gs), (rm, rs) = _standardizer(g), _standardizer(r)
        g, r = (g - gm) / gs, (r - rm) / rs
    refs = np.zeros((len(rows), r.shape[1]))
    np.add.at(refs, inverse, r)
    refs /= np.bincount(inverse, minlength=len(rows))[:, None]
    dist = ((g**2).sum(1)[:, None] - 2 * g @ refs.T + (refs**2).sum(1)[None, :])
    own = np.array([where[v] for v in g_rows.tolist()])
    rank = (dist < dist[np.arange(len(g)), own][:, None]).sum(1)  # rows strictly nearer than the own row
    out: dict[str, Any] = {}
    for kk in ks:
        hit, chance = float(np.mean(rank < kk)), min(1.0, kk / len(rows))
        out[f"top{kk}"], out[f"chance_top{kk}"], out[f"ratio_top{kk}"] = hit, chance, hit / chance
    out.update(mean_rank=float(rank.mean() + 1), n_rows=int(len(rows)), n_generated=int(len(g)),
               encoder=_encoder_name(encoder), standardize=standardize)
    return out
