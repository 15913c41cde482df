"""Tiling speed: gg.pp.tile_slides (tissue mask from a low-resolution level, read in blocks) against the naive way
(Otsu mask computed on the whole level 0), on the real CMU slide and on a generated pyramidal TIFF. Run:

    python benchmarks/tiling.py [--slide PATH] [--big 20000] [--naive-max-gb 6] [--out PATH]

Prints a table and writes benchmarks/results/tiling.json (with machine details).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

import gemmgan_sc as gg
from gemmgan_sc.data import PatchStore
from gemmgan_sc.pp._tiles import open_slide, tile_grid, tissue_fraction
from gemmgan_sc.pp._tissue import channel_image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info  # noqa: E402

SLIDES = HERE.parents[1] / "shared" / "data" / "slides"
DEFAULT_SLIDE = SLIDES / "CMU-1-Small-Region.svs"


#: Measured peak of the naive way per level-0 pixel (RGBA read + RGB copy + float32 temporaries + mask):
#: 10,000 px TIFF -> ~2.5 GB above the baseline, i.e. ~25 B/px; 28 leaves a margin.
NAIVE_BYTES_PER_PX = 28


def naive_tiling(path: str, tile_size: int = 256, min_tissue: float = 0.2,
                 region: tuple[int, int, int, int] | None = None) -> int:
    """Mask from the whole level 0 (Otsu on saturation), then the same grid and fractions.

    ``region`` = (x0, y0, w, h) restricts the naive way to a level-0 crop (used when the whole level 0
    would not fit the memory budget); the work per pixel is the same, so its time scales with the area.
    """
    from skimage.filters import threshold_otsu

    r = open_slide(path)
    x0, y0, w, h = region if region is not None else (0, 0, *r.dimensions)
    rgb = r.read_region((x0, y0), 0, (w, h))
    sat = channel_image(rgb, "saturation")
    del rgb
    mask = sat > max(threshold_otsu(sat), 8)
    del sat
    coords = tile_grid(w, h, tile_size)
    frac = tissue_fraction(mask, (1.0, 1.0), coords, tile_size)
    return int((frac >= min_tissue).sum())


def naive_region(edge: int, budget_gb: float, tile_size: int = 256) -> tuple[int, int, int, int] | None:
    """None when the whole ``edge`` x ``edge`` level 0 fits ``budget_gb``; else the centred square crop
    (a multiple of ``tile_size``) that does."""
    if edge * edge * NAIVE_BYTES_PER_PX <= budget_gb * 1e9:
        return None
    side = int((budget_gb * 1e9 / NAIVE_BYTES_PER_PX) ** 0.5) // tile_size * tile_size
    off = (edge - side) // 2 // tile_size * tile_size
    return (off, off, side, side)



def write_big_tiff(path: str, size: int, seed: int = 0) -> None:
    """Pyramidal tiled TIFF (zlib), tissue blobs on white, written strip by strip (low memory)."""
    import tifffile

    rng = np.random.default_rng(seed)
    blobs = [(rng.uniform(0.1, 0.9) * size, rng.uniform(0.1, 0.9) * size, rng.uniform(0.05, 0.15) * size) for _ in range(6)]

    def level(ds: int):
        n = size // ds
        for y0 in range(0, n, 256):
            rows = min(256, n - y0)
            yy, xx = np.mgrid[y0 : y0 + rows, 0:n] * ds
            m = np.zeros((rows, n), bool)
            for cx, cy, r in blobs:
                m |= (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            block = np.empty((rows, n, 3), np.uint8)
            block[:] = (240, 238, 242)
            block[m] = (170, 80, 150)
            noise = rng.integers(0, 12, size=(rows, n, 1), dtype=np.uint8)
            block -= noise
            yield block

    def tiles(ds: int):
        n = size // ds
        for strip in level(ds):
            for x0 in range(0, n, 256):
                t = np.full((256, 256, 3), 255, np.uint8)
                part = strip[:, x0 : x0 + 256]
                t[: part.shape[0], : part.shape[1]] = part
                yield t

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        n = size
        tw.write(tiles(1), shape=(n, n, 3), dtype=np.uint8, tile=(256, 256), subifds=3, photometric="rgb",
                 compression="zlib", resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
        for ds in (4, 16, 64):
            tw.write(tiles(ds), shape=(n // ds, n // ds, 3), dtype=np.uint8, tile=(256, 256), subfiletype=1,
                     photometric="rgb", compression="zlib")



def tile(path: str, store: Path) -> tuple[ad.AnnData, float]:
    adata = ad.AnnData(np.zeros((1, 1), np.float32), obs=pd.DataFrame({"slide_path": [path]}, index=["r0"]))
    t = time.perf_counter()
    gg.pp.tile_slides(adata, store=store, overwrite=True)
    return adata, time.perf_counter() - t


def real_slide(path: str, tmp: Path) -> dict:
    adata, t_tile = tile(path, tmp / "p.zarr")
    t = time.perf_counter()
    n_naive = naive_tiling(path)
    t_naive = time.perf_counter() - t
    return {"n_tiles": int(adata.obs["n_tiles"].iloc[0]), "tile_slides_s": t_tile, "naive_level0_mask_s": t_naive,
            "n_tiles_naive": n_naive, "speedup": t_naive / t_tile}


def generated_tiff(edge: int, budget_gb: float, tmp: Path) -> dict:
    big = str(tmp / "big.tif")
    t = time.perf_counter()
    write_big_tiff(big, edge)
    entry = {"edge_px": edge, "write_s": time.perf_counter() - t}
    _, t_big = tile(big, tmp / "big.zarr")
    nb = PatchStore(tmp / "big.zarr").n_tiles("big")
    entry.update(n_tiles=nb, tile_slides_s=t_big, tiles_per_s=nb / t_big,
                 peak_rss_mb_after_tiling=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    region = naive_region(edge, budget_gb)
    t = time.perf_counter()
    entry["n_tiles_naive"] = naive_tiling(big, region=region)
    t_naive = time.perf_counter() - t
    frac = 1.0 if region is None else region[2] * region[3] / edge**2
    if region is not None:
        entry["naive_capped"] = (f"whole level 0 would need ~{edge**2 * NAIVE_BYTES_PER_PX / 1e9:.1f} GB (> "
                                 f"--naive-max-gb {budget_gb:g}); the naive way ran on the centred crop {list(region)} "
                                 f"({frac:.1%} of the area), its full-slide time is that time / area fraction")
    entry["naive_level0_mask_s"] = t_naive / frac
    entry["speedup"] = t_naive / frac / t_big
    return entry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slide", default=str(DEFAULT_SLIDE))
    ap.add_argument("--big", type=int, default=20000, help="edge of the generated pyramidal TIFF (0 = skip)")
    ap.add_argument("--naive-max-gb", type=float, default=6.0,
                    help="memory budget of the naive level-0 mask; above it the naive way runs on a centred crop and "
                         "its time is extrapolated by area")
    ap.add_argument("--out", default=str(HERE / "results" / "tiling.json"))
    args = ap.parse_args()
    gg.settings.progress_bar = False
    tmp = Path(tempfile.mkdtemp())
    results = {"machine": machine_info(), "load_average_at_start": os.getloadavg(), "slide": args.slide,
               "cmu": real_slide(args.slide, tmp)}
    print("real slide:", results["cmu"], flush=True)
    if args.big:
        results["generated_tiff"] = generated_tiff(args.big, args.naive_max_gb, tmp)
        print("generated TIFF:", results["generated_tiff"], flush=True)
    results["load_average_at_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json.tmp").write_text(json.dumps(results, indent=2))
    os.replace(out.with_suffix(".json.tmp"), out)


if __name__ == "__main__":
    main()
