"""Simulated H&E slides: tissue layout, stain and nuclear texture from a few parameters.

The image is rendered in optical-density space (Beer-Lambert law): hematoxylin and eosin
concentration maps times their stain vectors (Ruifrok and Johnston 2001), so that colour
deconvolution (``skimage.color.rgb2hed``) recovers the concentrations. Everything is vectorised
NumPy; one 1,024 x 1,024 slide takes a few tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._cache import atomic_write

# Optical-density stain vectors (R, G, B), Ruifrok and Johnston (2001).
_H_VEC = np.array([0.65, 0.70, 0.29], dtype=np.float32)
_E_VEC = np.array([0.07, 0.99, 0.11], dtype=np.float32)

_H_MAX, _E_MAX = 3.0, 1.6  # optical-density ranges of the colour lookup table

SLIDE_MPP = 2.0
"""Declared resolution of the simulated slides in micrometres per pixel (a 5x scan)."""


@dataclass(frozen=True)
class SlideParams:
    """Parameters of one simulated slide (all in level-0 pixels)."""

    height: int
    width: int
    n_fragments: int = 1  # separate tissue pieces
    elongation: float = 1.0  # >= 1: aspect ratio of the pieces
    tissue_scale: float = 0.38  # piece radius relative to the slide size
    stroma_frac: float = 0.3  # fraction of tissue that is stroma (few nuclei, fibres)
    lumen_frac: float = 0.0  # fraction of tumour area that is white lumen / glands
    cell_px: float = 14.0  # side of the grid cell holding one nucleus (density^-1/2)
    occupancy: float = 0.8  # probability that a tumour cell shows a nucleus in section
    nuc_radius: float = 4.0  # mean nuclear radius
    pleomorphism: float = 0.15  # log-sd of the nuclear radius
    immune_frac: float = 0.1  # fraction of cells drawn as lymphocytes (small, dark, round)
    hema: float = 1.2  # hematoxylin optical density of nuclei
    eosin: float = 0.55  # eosin optical density of stroma
    cytoplasm: float = 0.6  # eosin of tumour cytoplasm relative to stroma (low: clear cells)
    stain_jitter: float = 0.03  # per-slide perturbation of the stain vectors


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth standard noise: a coarse Gaussian grid upsampled bilinearly to ``shape``."""
    from PIL import Image

    coarse = rng.standard_normal((max(cells[0], 2), max(cells[1], 2))).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    out = np.asarray(img, dtype=np.float32)
    return out / max(float(out.std()), 1e-6)


def _upsample(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(arr.astype(np.float32), mode="F").resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def _tissue_field(p: SlideParams, rng: np.random.Generator) -> np.ndarray:
    """Low-resolution field > 0 inside tissue: union of noisy rotated ellipses."""
    h8, w8 = max(p.height // 8, 8), max(p.width // 8, 8)
    yy, xx = np.mgrid[0:h8, 0:w8].astype(np.float32)
    yy /= h8
    xx /= w8
    field = np.full((h8, w8), -1.0, dtype=np.float32)
    n = max(int(p.n_fragments), 1)
    base = p.tissue_scale / np.sqrt(n)
    for _ in range(n):
        cy, cx = rng.uniform(0.3, 0.7) if n == 1 else rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        if n == 1:
            cx = rng.uniform(0.35, 0.65)
        angle = rng.uniform(0, np.pi)
        a = base * np.sqrt(p.elongation) * rng.uniform(0.85, 1.15)
        b = base / np.sqrt(p.elongation) * rng.uniform(0.85, 1.15)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        field = np.maximum(field, 1.0 - np.sqrt((u / a) ** 2 + (v / b) ** 2))
    wobble = _smooth_noise(rng, (h8, w8), (6, 6)) * 0.12 + _smooth_noise(rng, (h8, w8), (20, 20)) * 0.04
    return field + wobble


def render_slide(p: SlideParams, rng: np.random.Generator) -> np.ndarray:
    """Render one simulated H&E slide as an ``(height, width, 3)`` uint8 RGB array."""
    shape = (int(p.height), int(p.width))
    tissue = _upsample(_tissue_field(p, rng), shape) > 0
    stroma, tumour, lumen = _regions(p, rng, tissue)
    eos, grain = _eosin(p, rng, tissue, stroma, tumour)
    hem = _nuclei(p, rng, stroma, tumour)
    hem = hem * (0.85 + 0.15 * grain)
    hem *= tissue & ~lumen
    hem += 0.08 * p.hema * tumour  # faint basophilic cytoplasm
    return _colour(p, rng, hem, eos)


def _regions(p: SlideParams, rng: np.random.Generator, tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stroma, tumour, lumen) masks inside the tissue: stroma as low-frequency blobs, lumens in tumour only."""
    shape = tissue.shape
    H, W = shape
    region = _smooth_noise(rng, shape, (max(H // 160, 3), max(W // 160, 3)))
    stroma = region < np.quantile(region[::4, ::4], np.clip(p.stroma_frac, 0.0, 1.0)) if p.stroma_frac > 0 else np.zeros(shape, bool)
    stroma &= tissue
    tumour = tissue & ~stroma
    if p.lumen_frac > 0:
        lum = _smooth_noise(rng, shape, (max(H // 48, 3), max(W // 48, 3)))
        lumen = tumour & (lum > np.quantile(lum[::4, ::4], 1.0 - np.clip(p.lumen_frac, 0.0, 0.9)))
        tumour &= ~lumen
    else:
        lumen = np.zeros(shape, bool)
    return stroma, tumour, lumen


def _eosin(p: SlideParams, rng: np.random.Generator, tissue: np.ndarray, stroma: np.ndarray,
           tumour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eosin optical density: stroma fibres as streaks and tumour cytoplasm, the tiled grain noise)."""
    shape = tissue.shape
    H, W = shape
    fibres = _smooth_noise(rng, shape, (max(H // 6, 4), max(W // 64, 3)))
    reps = (-(-H // 256), -(-W // 256))
    grain = np.tile(rng.standard_normal((256, 256), dtype=np.float32), reps)[:H, :W]
    eos = np.zeros(shape, dtype=np.float32)
    eos[stroma] = p.eosin * (1.0 + 0.35 * fibres[stroma])
    eos[tumour] = p.eosin * p.cytoplasm * (1.0 + 0.15 * fibres[tumour])
    eos += 0.04 * grain * tissue
    np.clip(eos, 0.0, None, out=eos)
    return eos, grain


def _nuclei(p: SlideParams, rng: np.random.Generator, stroma: np.ndarray, tumour: np.ndarray) -> np.ndarray:
    """Hematoxylin of the nuclei: one candidate per square grid cell of c px, jittered, elliptical, variable size.

    The image is viewed as (gh, c, gw, c) blocks and only cells holding a nucleus are drawn.
    """
    H, W = tumour.shape
    c = int(round(max(p.cell_px, 6.0)))
    gh, gw = -(-H // c), -(-W // c)
    iy = np.minimum(np.arange(gh) * c + c // 2, H - 1)
    ix = np.minimum(np.arange(gw) * c + c // 2, W - 1)
    in_tumour = tumour[np.ix_(iy, ix)]
    in_stroma = stroma[np.ix_(iy, ix)]
    immune = (rng.random((gh, gw)) < p.immune_frac) & (in_tumour | in_stroma)
    present = (in_tumour & (rng.random((gh, gw)) < p.occupancy)) | (in_stroma & (rng.random((gh, gw)) < 0.25))
    py, px = np.nonzero(present | immune)
    edge = _nucleus_blocks(p, rng, c, immune[py, px], in_stroma[py, px] & ~immune[py, px])
    blocks = np.zeros((gh, gw, c, c), dtype=np.float32)
    blocks[py, px] = edge
    return blocks.transpose(0, 2, 1, 3).reshape(gh * c, gw * c)[:H, :W]


def _nucleus_blocks(p: SlideParams, rng: np.random.Generator, c: int, imm: np.ndarray, spindle: np.ndarray) -> np.ndarray:
    """(n, c, c) hematoxylin of n nuclei, one per c x c cell: lymphocytes small and round, fibroblasts spindles."""
    n = imm.size
    radius = (p.nuc_radius * np.exp(p.pleomorphism * rng.standard_normal(n))).astype(np.float32)
    aspect = np.exp(np.abs(0.25 * rng.standard_normal(n))).astype(np.float32)
    aspect[spindle] = 2.6  # spindle-shaped fibroblasts
    radius[imm] = max(2.2, 0.6 * p.nuc_radius)
    aspect[imm] = 1.0
    a = np.minimum(radius * np.sqrt(aspect), 0.48 * c)
    b = np.minimum(radius / np.sqrt(aspect), 0.48 * c)
    angle = rng.uniform(0, np.pi, n).astype(np.float32)
    slack = np.maximum(0.5 * c - a, 0.0)
    cy = 0.5 * c + rng.uniform(-1, 1, n).astype(np.float32) * slack
    cx = 0.5 * c + rng.uniform(-1, 1, n).astype(np.float32) * slack
    strength = np.where(imm, 1.35, 1.0).astype(np.float32) * p.hema
    strength *= np.exp(0.12 * rng.standard_normal(n)).astype(np.float32)
    local = np.arange(c, dtype=np.float32) + 0.5
    dy = local[None, :, None] - cy[:, None, None]  # (n, c, 1)
    dx = local[None, None, :] - cx[:, None, None]  # (n, 1, c)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = (dx * cos + dy * sin) / a[:, None, None]
    v = (dy * cos - dx * sin) / b[:, None, None]
    return np.clip(1.25 - (u * u + v * v), 0.0, 0.25) * (4.0 * strength[:, None, None])  # soft edge


def _colour(p: SlideParams, rng: np.random.Generator, hem: np.ndarray, eos: np.ndarray) -> np.ndarray:
    """RGB from the two optical densities, stain vectors perturbed per slide (scanner / staining batch).

    Colour comes from a lookup table over quantised optical densities (one gather instead of
    per-pixel exponentials).
    """
    hv = _H_VEC * np.exp(p.stain_jitter * rng.standard_normal(3)).astype(np.float32)
    ev = _E_VEC * np.exp(p.stain_jitter * rng.standard_normal(3)).astype(np.float32)
    hq = np.clip(hem * (255.0 / _H_MAX) + 0.5, 0, 255).astype(np.uint16)
    eq = np.clip(eos * (255.0 / _E_MAX) + 0.5, 0, 255).astype(np.uint16)
    levels_h = np.arange(256, dtype=np.float32) * (_H_MAX / 255.0)
    levels_e = np.arange(256, dtype=np.float32) * (_E_MAX / 255.0)
    od = levels_h[:, None, None] * hv + levels_e[None, :, None] * ev + 0.03  # (256, 256, 3), + glass
    lut = np.clip(255.0 * np.exp(-od), 0, 255).astype(np.uint8).reshape(-1, 3)
    return lut[(hq << 8) | eq]


def _halve(img: np.ndarray) -> np.ndarray:
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    x = img[:h, :w].astype(np.uint16)
    return ((x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2] + 2) // 4).astype(np.uint8)


def write_pyramid_tiff(path: Path, rgb: np.ndarray, n_levels: int = 3, mpp: float = SLIDE_MPP, tile: int = 256) -> None:
    """Write ``rgb`` as a tiled pyramidal TIFF (deflate) that OpenSlide, tifffile and PIL can read.

    Levels are separate pages marked as reduced-resolution images (``SubfileType = 1``), which is
    the layout OpenSlide's generic TIFF reader expects. Written atomically.
    """
    import tifffile

    levels = [rgb]
    while len(levels) < n_levels and min(levels[-1].shape[:2]) >= 2 * 64:
        levels.append(_halve(levels[-1]))
    res = 1e4 / mpp  # pixels per centimetre

    def _write(tmp: Path) -> None:
        with tifffile.TiffWriter(tmp) as tw:
            for i, level in enumerate(levels):
                f = 2**i
                tw.write(
                    level,
                    tile=(tile, tile),
                    photometric="rgb",
                    compression="zlib",
                    compressionargs={"level": 1},
                    subfiletype=1 if i else 0,
                    resolution=(res / f, res / f),
                    resolutionunit="CENTIMETER",
                    description="gemmgan-sc simulated H&E slide (not real tissue)" if i == 0 else None,
                    metadata=None,
                )

    atomic_write(Path(path), _write)
