"""Tissue detection: Otsu threshold on a low-resolution image of the slide, then morphological clean-up."""

from __future__ import annotations

import os
from typing import Literal, NamedTuple

import numpy as np

from ._tiles import SlideReader, open_slide

CHANNELS = ("saturation", "gray")
METHODS = ("otsu", "fixed")


class TissueMask(NamedTuple):
    """Result of :func:`detect_tissue`.

    Attributes
    ----------
    mask
        (h, w) boolean tissue mask.
    downsample
        Level-0 px per mask px (mean of x and y; see ``scale`` for each axis).
    threshold
        Threshold applied to the channel image (0-255 scale).
    level
        Slide level the low-resolution image was read from.
    scale
        (sx, sy): level-0 px per mask px along x and y.
    thumbnail
        The (h, w, 3) uint8 RGB image the mask was computed on.
    """

    mask: np.ndarray
    downsample: float
    threshold: float
    level: int
    scale: tuple[float, float]
    thumbnail: np.ndarray


def _pick_level(reader: SlideReader, max_size: int) -> int:
    """Coarsest level whose longest side is still >= ``max_size / 2`` (or the coarsest level when all are smaller)."""
    sides = [max(w, h) for w, h in reader.level_dimensions]
    ok = [i for i, s in enumerate(sides) if s >= max_size / 2]
    return max(ok, key=lambda i: reader.level_downsamples[i]) if ok else int(np.argmax(reader.level_downsamples))


def channel_image(rgb: np.ndarray, channel: str) -> np.ndarray:
    """uint8 image where tissue is high: HSV saturation, or darkness (255 - grey)."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if channel == "saturation":
        mx = np.maximum(np.maximum(r, g), b).astype(np.float32)
        mn = np.minimum(np.minimum(r, g), b).astype(np.float32)
        out = np.zeros_like(mx)
        np.divide((mx - mn) * 255.0, mx, out=out, where=mx > 0)
    else:
        out = 255.0 - (r * np.float32(0.2125) + g * np.float32(0.7154) + b * np.float32(0.0721))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _binary(op: str, mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing/opening with a disk; the image is padded by edge values so borders are not eroded."""
    from scipy import ndimage as ndi
    from skimage.morphology import disk

    padded = np.pad(mask, radius + 1, mode="edge")
    fn = ndi.binary_closing if op == "close" else ndi.binary_opening
    out = fn(padded, structure=disk(radius).astype(bool))
    return out[radius + 1 : -radius - 1, radius + 1 : -radius - 1]


def detect_tissue(
    slide: str | os.PathLike | SlideReader,
    level: int | Literal["auto"] = "auto",
    method: Literal["otsu", "fixed"] = "otsu",
    channel: Literal["saturation", "gray"] = "saturation",
    *,
    max_size: int = 1024,
    threshold: float | None = None,
    min_threshold: float = 8.0,
    blur: int = 3,
    close_radius: int = 2,
    open_radius: int = 1,
    min_object_size: int = 64,
    fill_holes: int = 64,
) -> TissueMask:
    """Find tissue on a low-resolution image of a slide.

    The slide is read at a coarse pyramid level (block by block, reduced so its longest side is at most
    ``max_size`` px); a huge level 0 is never read whole. Steps: channel image (HSV saturation, or darkness
    = 255 - grey), median blur, Otsu threshold (floored at ``min_threshold`` so a blank slide gives no
    tissue), binary closing then opening with disks, removal of objects and holes smaller than the given
    sizes (in mask pixels).

    Parameters
    ----------
    slide
        Path of a slide (any format :func:`gemmgan_sc.pp.tile_slides` reads) or an open reader.
    level
        Pyramid level to read, or ``"auto"`` (the coarsest level with longest side >= ``max_size / 2``).
    method
        ``"otsu"`` (automatic threshold) or ``"fixed"`` (use ``threshold``).
    channel
        ``"saturation"`` (robust for H&E on white glass) or ``"gray"``.
    max_size
        Longest side of the mask in pixels (the level is reduced by an integer factor to fit).
    threshold
        Threshold on the 0-255 channel image for ``method="fixed"``.
    min_threshold
        Lower bound of the Otsu threshold (0-255), so near-uniform background is not split in two.
    blur
        Median filter size (odd, px of the mask; 0 or 1 = none).
    close_radius, open_radius
        Disk radii (mask px) of the morphological closing and opening; 0 skips the step.
    min_object_size, fill_holes
        Tissue objects smaller than ``min_object_size`` mask px are dropped, holes smaller than
        ``fill_holes`` mask px are filled; 0 skips the step.

    Returns
    -------
    :class:`TissueMask` with ``mask``, ``downsample``, ``threshold``, ``level``, ``scale``, ``thumbnail``.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> tm = gg.pp.detect_tissue("slide.svs")  # doctest: +SKIP
    >>> tm.mask.mean(), tm.downsample, tm.threshold  # doctest: +SKIP
    """
    _check_args(method, channel, threshold, max_size, blur=blur, close_radius=close_radius,
                open_radius=open_radius, min_object_size=min_object_size, fill_holes=fill_holes)
    own = not isinstance(slide, SlideReader)
    reader = open_slide(slide) if own else slide
    try:
        lvl, thumb = _thumbnail(reader, level, max_size)
    finally:
        if own:
            reader.close()
    w0, h0 = reader.level_dimensions[0]
    scale = (w0 / thumb.shape[1], h0 / thumb.shape[0])
    img = channel_image(thumb, channel)
    if blur > 1:
        from scipy.ndimage import median_filter

        img = median_filter(img, size=int(blur) | 1)
    thr = _threshold(img, min_threshold) if method == "otsu" else float(threshold)
    mask = _clean(img > thr, close_radius, open_radius, min_object_size, fill_holes)
    return TissueMask(mask.astype(bool), float(np.mean(scale)), thr, lvl, scale, thumb)


def _check_args(method, channel, threshold, max_size, **sizes) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}.")
    if method == "fixed" and (threshold is None or not 0 <= float(threshold) <= 255):
        raise ValueError(f"method='fixed' needs threshold between 0 and 255, got {threshold!r}.")
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 16:
        raise ValueError(f"max_size must be an int >= 16 (px), got {max_size!r}.")
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}.")


def _thumbnail(reader: SlideReader, level, max_size: int) -> tuple[int, np.ndarray]:
    """The level read and its image reduced by an integer factor to a longest side <= ``max_size``."""
    if level == "auto":
        lvl = _pick_level(reader, max_size)
    elif isinstance(level, (int, np.integer)) and not isinstance(level, bool) and 0 <= level < reader.level_count:
        lvl = int(level)
    else:
        raise ValueError(
            f"level must be 'auto' or an int in [0, {reader.level_count - 1}] for {str(reader.path)!r}, got {level!r}."
        )
    w, h = reader.level_dimensions[lvl]
    return lvl, reader.read_level_downsampled(lvl, max(1, int(np.ceil(max(w, h) / max_size))))


def _threshold(img: np.ndarray, min_threshold: float) -> float:
    """Otsu's threshold, floored at ``min_threshold`` (a uniform image: its value)."""
    from skimage import filters

    thr = float(filters.threshold_otsu(img)) if int(img.max()) > int(img.min()) else float(img.max())
    return max(thr, float(min_threshold))


def _clean(mask: np.ndarray, close_radius: int, open_radius: int, min_object_size: int, fill_holes: int) -> np.ndarray:
    """Closing, opening, then small objects dropped and small holes filled (0 skips a step)."""
    from skimage import morphology

    if close_radius:
        mask = _binary("close", mask, int(close_radius))
    if open_radius:
        mask = _binary("open", mask, int(open_radius))
    if min_object_size and mask.any():
        mask = morphology.remove_small_objects(mask, max_size=int(min_object_size) - 1) if _new_skimage() else \
            morphology.remove_small_objects(mask, min_size=int(min_object_size))
    if fill_holes and mask.any():
        mask = morphology.remove_small_holes(mask, max_size=int(fill_holes) - 1) if _new_skimage() else \
            morphology.remove_small_holes(mask, area_threshold=int(fill_holes))
    return mask


def _new_skimage() -> bool:
    import inspect

    from skimage import morphology

    return "max_size" in inspect.signature(morphology.remove_small_objects).parameters
