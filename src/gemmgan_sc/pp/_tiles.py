"""Slide readers (OpenSlide, tiffslide, PIL) behind one interface, and the tile grid.

A reader gives level sizes, downsamples, the level-0 micrometres per pixel (when the file says), and
``read_region`` of an RGB uint8 block; ``read_level_downsampled`` builds a low-resolution image of a
level block by block, so a 100,000 px level is never held in memory whole.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
_BLOCK = 4096  # px per side of the blocks read when downsampling a level


class SlideReadError(OSError):
    """A slide file that cannot be opened or decoded (missing, corrupt, unsupported)."""


def open_slide(path: str | os.PathLike) -> "SlideReader":
    """Open ``path`` with the reader that fits its format.

    Vendor formats OpenSlide knows (SVS, NDPI, MRXS, SCN, ...) go to OpenSlide; TIFF files that are not a
    vendor format (plain or pyramidal TIFF, e.g. written by tifffile) to tiffslide; PNG/JPEG/... to PIL as a
    single-level slide.
    """
    p = Path(path).expanduser()
    if re.match(r"^[a-z][a-z0-9+.-]*://", str(path)):
        raise SlideReadError(
            f"Slide {str(path)!r} is a URL; download it first (e.g. with pooch) and put the local path in obs."
        )
    if not p.is_file():
        raise SlideReadError(f"Slide file {str(p)!r} does not exist (or is not a file); check obs paths.")
    suffix = p.suffix.lower()
    try:
        if suffix in IMAGE_SUFFIXES:
            return PILSlide(p)
        fmt = _openslide_format(p)
        if fmt is not None and fmt != "generic-tiff":
            return OpenSlideSlide(p)
        if fmt == "generic-tiff" or suffix in TIFF_SUFFIXES or _is_tiff(p):
            return TiffSlide(p)
        if fmt is not None:
            return OpenSlideSlide(p)
    except SlideReadError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure is reported with the file name
        raise SlideReadError(f"Cannot read slide {str(p)!r}: {type(err).__name__}: {err}") from err
    raise SlideReadError(
        f"Slide {str(p)!r} is in no format OpenSlide, tiffslide or PIL reads (suffix {suffix!r}); convert it to "
        "pyramidal TIFF or SVS."
    )


def _openslide_format(p: Path) -> str | None:
    try:
        import openslide
    except ImportError:  # pragma: no cover - slides extra missing
        return None
    try:
        return openslide.OpenSlide.detect_format(str(p))
    except Exception:  # noqa: BLE001
        return None


def _is_tiff(p: Path) -> bool:
    with open(p, "rb") as fh:
        head = fh.read(4)
    return head[:2] in (b"II", b"MM")


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    """Any (H, W), (H, W, 1|2|3|4) array of uint8/uint16/float -> (H, W, 3) uint8."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint16:
        arr = (arr // 257).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        scale = 255.0 if np.nanmax(arr, initial=0) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr) * scale, 0, 255).astype(np.uint8)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] == 4:  # RGBA: transparent = outside the scanned area = background (white)
        rgb = arr[..., :3].copy()
        rgb[arr[..., 3] == 0] = 255
        return rgb
    if arr.shape[-1] == 2:  # grey + alpha
        arr = arr[..., :1]
    if arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


class SlideReader:
    """Common interface. Subclasses set ``level_dimensions`` ((w, h) per level) and ``mpp``."""

    path: Path
    level_dimensions: list[tuple[int, int]]
    mpp: float | None = None
    format: str = "unknown"

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def level_downsamples(self) -> list[float]:
        w0, h0 = self.level_dimensions[0]
        return [float(np.mean([w0 / w, h0 / h])) for w, h in self.level_dimensions]

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 (h, w, 3) block; ``location`` in level-0 px, ``size`` in px of ``level``."""
        raise NotImplementedError

    def read_level_downsampled(self, level: int, factor: int) -> np.ndarray:
        """Level ``level`` reduced by the integer ``factor`` (block means), read in blocks of <= 4096 px."""
        w, h = self.level_dimensions[level]
        factor = max(1, int(factor))
        ow, oh = max(1, w // factor), max(1, h // factor)
        out = np.empty((oh, ow, 3), dtype=np.uint8)
        ds = self.level_downsamples[level]
        step = max(factor, (_BLOCK // factor) * factor)
        for y in range(0, oh * factor, step):
            for x in range(0, ow * factor, step):
                bw, bh = min(step, ow * factor - x), min(step, oh * factor - y)
                block = self.read_region((int(round(x * ds)), int(round(y * ds))), level, (bw, bh))
                if factor > 1:
                    block = block.reshape(bh // factor, factor, bw // factor, factor, 3).mean(axis=(1, 3), dtype=np.float32)
                out[y // factor : (y + bh) // factor, x // factor : (x + bw) // factor] = np.round(block)
        return out

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, levels={self.level_dimensions}, mpp={self.mpp})"


class OpenSlideSlide(SlideReader):
    format = "openslide"

    def __init__(self, path: Path) -> None:
        import openslide

        self.path = Path(path)
        try:
            self._slide = openslide.OpenSlide(str(path))
        except Exception as err:  # noqa: BLE001
            raise SlideReadError(f"OpenSlide cannot open {str(path)!r}: {err}") from err
        self.format = self._slide.properties.get("openslide.vendor", "openslide")
        self.level_dimensions = [tuple(map(int, d)) for d in self._slide.level_dimensions]
        mpp = self._slide.properties.get("openslide.mpp-x")
        try:
            self.mpp = float(mpp) if mpp not in (None, "") and float(mpp) > 0 else None
        except ValueError:
            self.mpp = None

    @property
    def level_downsamples(self) -> list[float]:
        return [float(d) for d in self._slide.level_downsamples]

    def read_region(self, location, level, size):
        try:
            img = self._slide.read_region((int(location[0]), int(location[1])), int(level), (int(size[0]), int(size[1])))
        except Exception as err:  # noqa: BLE001
            raise SlideReadError(f"Cannot decode a region of {str(self.path)!r} at {location}: {err}") from err
        rgba = np.asarray(img)
        if img.mode == "RGBA" and rgba[..., 3].min() == 255:
            # fully opaque (the usual case): PIL drops alpha 4x faster than a strided numpy copy
            return np.array(img.convert("RGB"))
        return _to_rgb(rgba)

    def close(self) -> None:
        self._slide.close()


class TiffSlide(SlideReader):
    """TIFF files that are not a vendor format OpenSlide knows (plain or pyramidal TIFF, strips or tiles,
    levels as SubIFDs or as a chain of reduced pages) through `tiffslide <https://github.com/Bayer-Group/tiffslide>`_.

    tiffslide pads reads outside the image with black; here they read as white background, as OpenSlide's
    transparent pixels do.
    """

    format = "tiff"

    def __init__(self, path: Path) -> None:
        import tiffslide

        self.path = Path(path)
        try:
            self._slide = tiffslide.TiffSlide(str(path))
            self.level_dimensions = [tuple(map(int, d)) for d in self._slide.level_dimensions]
            self.mpp = _tiff_mpp(self._slide.ts_tifffile.pages[0])
        except Exception as err:  # noqa: BLE001
            raise SlideReadError(f"tiffslide cannot read {str(path)!r} as an image: {type(err).__name__}: {err}") from err

    def read_region(self, location, level, size):
        w, h = int(size[0]), int(size[1])
        W, H = self.level_dimensions[level]
        ds = self.level_downsamples[level]
        x0, y0 = int(int(location[0]) / ds), int(int(location[1]) / ds)  # tiffslide's own level coordinates
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
        if xa >= xb or ya >= yb:
            return out
        try:
            # a read clipped on the near side starts at 0; otherwise tiffslide maps ``location`` to (x0, y0) itself
            start = (int(location[0]) if x0 >= 0 else 0, int(location[1]) if y0 >= 0 else 0)
            block = self._slide.read_region(start, int(level), (xb - xa, yb - ya), as_array=True, padding=False)
        except Exception as err:  # noqa: BLE001
            raise SlideReadError(f"Cannot decode a region of {str(self.path)!r} at {location}: {err}") from err
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = _to_rgb(block)
        return out

    def close(self) -> None:
        self._slide.close()


def _tiff_mpp(page) -> float | None:
    """Micrometres per pixel from the TIFF resolution tags (or an Aperio-style ``MPP = x`` description)."""
    desc = page.tags.get("ImageDescription")
    if desc is not None and isinstance(desc.value, str):
        m = re.search(r"\bMPP\s*=\s*([0-9.eE+-]+)", desc.value, re.IGNORECASE)
        if m:
            try:
                value = float(m.group(1))
                if value > 0:
                    return value
            except ValueError:
                pass
    res, unit = page.tags.get("XResolution"), page.tags.get("ResolutionUnit")
    if res is None or unit is None:
        return None
    num, den = res.value if isinstance(res.value, tuple) else (res.value, 1)
    if not num or not den:
        return None
    per_unit = num / den  # pixels per unit
    unit = int(unit.value)
    if unit == 3:  # centimetre
        mpp = 1e4 / per_unit
    elif unit == 2:  # inch; 72 or 96 dpi defaults mean "unknown"
        if per_unit in (72, 96, 300):
            return None
        mpp = 25400 / per_unit
    else:
        return None
    return float(mpp) if 0.01 <= mpp <= 1000 else None


class PILSlide(SlideReader):
    """PNG/JPEG/BMP/... as a single-level slide (decoded once, whole: such files are not tiled)."""

    format = "image"

    def __init__(self, path: Path) -> None:
        from PIL import Image

        self.path = Path(path)
        try:
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode not in ("RGB", "RGBA", "L", "LA"):
                    img = img.convert("RGBA" if "A" in mode or "transparency" in img.info else "RGB")
                self._arr = _to_rgb(np.asarray(img))
                dpi = img.info.get("dpi")
        except Exception as err:  # noqa: BLE001
            raise SlideReadError(f"PIL cannot read image {str(path)!r}: {type(err).__name__}: {err}") from err
        self.level_dimensions = [(self._arr.shape[1], self._arr.shape[0])]
        self.mpp = None
        if dpi and dpi[0] and float(dpi[0]) not in (72.0, 96.0, 300.0):
            self.mpp = 25400.0 / float(dpi[0])

    def read_region(self, location, level, size):
        x0, y0 = int(location[0]), int(location[1])
        w, h = int(size[0]), int(size[1])
        H, W = self._arr.shape[:2]
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
        if xa < xb and ya < yb:
            out[ya - y0 : yb - y0, xa - x0 : xb - x0] = self._arr[ya:yb, xa:xb]
        return out


# --------------------------------------------------------------------------- tile grid
def tile_grid(width: int, height: int, size: int) -> np.ndarray:
    """Level-0 (x, y) top-left corners of the non-overlapping ``size`` px tiles that fit in the slide."""
    nx, ny = width // size, height // size
    if nx == 0 or ny == 0:
        return np.zeros((0, 2), dtype=np.int64)
    xs, ys = np.meshgrid(np.arange(nx, dtype=np.int64) * size, np.arange(ny, dtype=np.int64) * size)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def tissue_fraction(mask: np.ndarray, scale: tuple[float, float], coords: np.ndarray, size: float) -> np.ndarray:
    """Exact area fraction of tissue inside each tile.

    ``mask`` is the (h, w) boolean mask; ``scale`` = (sx, sy) level-0 px per mask px along x and y;
    ``coords`` the level-0 top-left corners and ``size`` the tile edge in level-0 px. The mask is taken as
    piecewise constant over its pixels, and the area integral is read from its summed-area table with
    bilinear interpolation (exact for a piecewise-constant image), so tiles need not align with mask pixels.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if len(coords) == 0:
        return np.zeros(0)
    m = np.asarray(mask, dtype=np.float64)
    h, w = m.shape
    sat = np.zeros((h + 1, w + 1))
    sat[1:, 1:] = m.cumsum(0).cumsum(1)
    sx, sy = float(scale[0]), float(scale[1])

    def integral(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0, w)
        y = np.clip(y, 0, h)
        i0 = np.minimum(np.floor(x).astype(np.int64), w - 1) if w else x.astype(np.int64)
        j0 = np.minimum(np.floor(y).astype(np.int64), h - 1) if h else y.astype(np.int64)
        fx, fy = x - i0, y - j0
        a, b = sat[j0, i0], sat[j0, i0 + 1]
        c, d = sat[j0 + 1, i0], sat[j0 + 1, i0 + 1]
        return a * (1 - fx) * (1 - fy) + b * fx * (1 - fy) + c * (1 - fx) * fy + d * fx * fy

    x0, y0 = coords[:, 0] / sx, coords[:, 1] / sy
    x1, y1 = (coords[:, 0] + size) / sx, (coords[:, 1] + size) / sy
    area = integral(x1, y1) - integral(x0, y1) - integral(x1, y0) + integral(x0, y0)
    return np.clip(area / ((x1 - x0) * (y1 - y0)), 0.0, 1.0)
