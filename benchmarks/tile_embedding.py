"""Tiles per second of gg.pp.tile_slides / gg.pp.embed_tiles against the naive way, in the same run.

Naive = one process, OpenSlide ``read_region`` per tile, one tile per encoder call (and for tiling: the
tissue mask computed from the whole level 0). Run:

    python benchmarks/tiling.py [--slide PATH] [--big 20000] [--naive-max-gb 6] [--workers 2] [--repeat 1] [--device cpu]

(``benchmarks/tiling.py`` is the entry point the issue names; it runs :func:`main` of this module.)

Prints a table and writes benchmarks/results/tile_embedding.json (with machine details).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

import gemmgan_sc as gg
from gemmgan_sc.data import PatchStore
from gemmgan_sc.encoders import get_image_encoder
from gemmgan_sc.pp._tiles import open_slide, tile_grid, tissue_fraction
from gemmgan_sc.pp._tissue import channel_image

HERE = Path(__file__).resolve().parent
DEFAULT_SLIDE = HERE.parents[1] / "shared" / "data" / "slides" / "CMU-1-Small-Region.svs"
MORE_SLIDES = [HERE.parents[1] / "shared" / "data" / "slides" / "TCGA-CR-7395-01A-01-TS1.svs"]


def _mean_rgb():
    import torch

    class MeanRGB(torch.nn.Module):
        """A near-free encoder (mean colour), so that its row measures tile reading alone."""

        def forward(self, x):
            return x.mean(dim=(2, 3))

    return MeanRGB


MeanRGB = _mean_rgb()


def machine() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
        "uptime_at_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        info["cpu_model"] = names[0] if names else None
    except OSError:
        pass
    return info


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


def naive_embed(path: str, coords: np.ndarray, enc, tile_size: int = 256) -> float:
    import openslide
    import torch

    s = openslide.OpenSlide(path)
    t = time.perf_counter()
    for x, y in coords:
        tile = np.asarray(s.read_region((int(x), int(y)), 0, (tile_size, tile_size)).convert("RGB"))
        batch = torch.from_numpy(tile.copy()).permute(2, 0, 1)[None]
        enc(enc.preprocess(batch.to(enc.device)))
    return time.perf_counter() - t


def _bare_read(items: list[tuple[str, int, int]]) -> int:
    import openslide

    from gemmgan_sc.pp._tile_batches import keep_freed_memory

    keep_freed_memory()  # the same allocator setting as the library's workers
    slides: dict[str, object] = {}
    for path, x, y in items:
        if path not in slides:
            slides[path] = openslide.OpenSlide(path)
        np.asarray(slides[path].read_region((x, y), 0, (256, 256)).convert("RGB"))
    return len(items)


def parallel_read_ceiling(jobs: list, workers: int) -> float:
    """Seconds for ``workers`` processes to decode all tiles (the naive read, interleaved split, nothing sent
    back, no encoder, process start-up not timed, the library workers' allocator setting): about the most any
    pipeline of ``workers`` readers can do on this machine."""
    import multiprocessing as mp

    items = [(path, int(x), int(y)) for path, coords in jobs for x, y in coords]
    with mp.get_context().Pool(workers) as pool:
        pool.apply(int, (0,))  # processes started before the clock
        t = time.perf_counter()
        pool.map(_bare_read, [items[k::workers] for k in range(workers)])
        return time.perf_counter() - t


def naive_embed_level0(path: str, coords: np.ndarray, enc, size0: int, out_size: int = 256) -> float:
    """The naive way at a coarser mpp: read each tile at level 0 (``size0`` px) and shrink it to ``out_size``."""
    import torch
    from PIL import Image

    reader = open_slide(path)
    t = time.perf_counter()
    for x, y in coords:
        tile = reader.read_region((int(x), int(y)), 0, (size0, size0))
        tile = np.array(Image.fromarray(tile).resize((out_size, out_size), Image.Resampling.BILINEAR))
        batch = torch.from_numpy(tile).permute(2, 0, 1)[None]
        enc(enc.preprocess(batch.to(enc.device)))
    reader.close()
    return time.perf_counter() - t


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slide", default=str(DEFAULT_SLIDE))
    ap.add_argument("--more-slides", nargs="*", default=[str(p) for p in MORE_SLIDES],
                    help="further slides whose tiles are embedded too (default: the TCGA slide of ../shared/data)")
    ap.add_argument("--big", type=int, default=20000, help="edge of the generated pyramidal TIFF (0 = skip)")
    ap.add_argument("--naive-max-gb", type=float, default=6.0,
                    help="memory budget of the naive level-0 mask; above it the naive way runs on a centred "
                         "crop and its time is extrapolated by area (the machine is shared)")
    ap.add_argument("--no-embed", action="store_true", help="tiling only")
    ap.add_argument("--copies", type=int, default=4, help="copies of each real slide embedded (distinct files)")
    ap.add_argument("--coarse-only", action="store_true", help="only the coarse-mpp embedding run")
    ap.add_argument("--mpp-edge", type=int, default=8192,
                    help="edge of the generated 0.5 um/px pyramid embedded at --coarse-mpp (0 = skip)")
    ap.add_argument("--coarse-mpp", type=float, default=2.0, help="target um/px of the coarse-mpp embedding run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of the level-0 embedding runs (naive and library alternate); best time of each")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--vit", default="timm:vit_small_patch16_224")
    ap.add_argument("--out", default=str(HERE / "results" / "tile_embedding.json"))
    args = ap.parse_args()
    gg.settings.progress_bar = False
    tmp = Path(tempfile.mkdtemp())
    results = {"machine": machine(), "slide": args.slide, "tiling": {}, "embedding": {}}

    # ---------------------------------------------------------------- tiling
    def tile(path, store):
        adata = ad.AnnData(np.zeros((1, 1), np.float32), obs=pd.DataFrame({"slide_path": [path]}, index=["r0"]))
        t = time.perf_counter()
        gg.pp.tile_slides(adata, store=store, overwrite=True)
        return adata, time.perf_counter() - t

    adata, t_tile = tile(args.slide, tmp / "p.zarr")
    n_tiles = int(adata.obs["n_tiles"].iloc[0])
    t = time.perf_counter()
    n_naive = naive_tiling(args.slide)
    t_naive = time.perf_counter() - t
    results["tiling"]["cmu"] = {"n_tiles": n_tiles, "tile_slides_s": t_tile, "naive_level0_mask_s": t_naive,
                                "n_tiles_naive": n_naive, "speedup": t_naive / t_tile}
    if args.big:
        big = str(tmp / "big.tif")
        t = time.perf_counter()
        write_big_tiff(big, args.big)
        t_write = time.perf_counter() - t
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _, t_big = tile(big, tmp / "big.zarr")
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        nb = PatchStore(tmp / "big.zarr").n_tiles("big")
        entry = {"edge_px": args.big, "write_s": t_write, "n_tiles": nb, "tile_slides_s": t_big,
                 "tiles_per_s": nb / t_big, "peak_rss_mb_after": rss1 / 1024, "peak_rss_mb_before": rss0 / 1024}
        region = naive_region(args.big, args.naive_max_gb)
        entry["naive_estimated_full_gb"] = args.big**2 * NAIVE_BYTES_PER_PX / 1e9
        t = time.perf_counter()
        n_naive = naive_tiling(big, region=region)
        t_naive = time.perf_counter() - t
        entry["naive_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        entry["n_tiles_naive"] = n_naive
        entry["naive_tiles_per_s"] = n_naive / t_naive
        if region is None:
            entry["naive_level0_mask_s"] = t_naive
            entry["speedup"] = t_naive / t_big
        else:
            frac = region[2] * region[3] / args.big**2
            entry["naive_capped"] = (
                f"whole level 0 would need ~{entry['naive_estimated_full_gb']:.1f} GB (> --naive-max-gb "
                f"{args.naive_max_gb:g}); the naive way ran on the centred level-0 crop {region} "
                f"({frac:.1%} of the area) and its full-slide time is that time / area fraction"
            )
            entry["naive_crop_xywh"] = list(region)
            entry["naive_crop_area_fraction"] = frac
            entry["naive_crop_s"] = t_naive
            entry["naive_level0_mask_s_extrapolated"] = t_naive / frac
            entry["speedup_extrapolated"] = t_naive / frac / t_big
            entry["speedup_vs_crop_only"] = t_naive / t_big
        results["tiling"]["generated_tiff"] = entry

    # ------------------------------------------------------------- embedding
    # every tile of the real slides given (default: both slides of ../shared/data), one AnnData row per slide
    slides = [p for p in [args.slide, *args.more_slides] if Path(p).is_file()]
    # copies of the slide files (distinct slides for the pipeline) make a job of several hundred tiles, closer to
    # real work than two small slides, so that worker start-up is not the whole story
    slides = [str(shutil.copy(p, tmp / f"{Path(p).stem}-copy{k}{Path(p).suffix}"))
              for k in range(args.copies) for p in slides]
    emb = ad.AnnData(np.zeros((len(slides), 1), np.float32),
                     obs=pd.DataFrame({"slide_path": slides}, index=[f"r{i}" for i in range(len(slides))]))
    gg.pp.tile_slides(emb, store=tmp / "emb.zarr", overwrite=True)
    store = PatchStore(tmp / "emb.zarr")
    jobs = [(path, store.coords(sid)) for path, sid in zip(slides, emb.obs["slide_id"])]
    n_emb = int(sum(len(c) for _, c in jobs))
    results["embedding_slides"] = {Path(p).name: int(len(c)) for p, c in jobs}
    results["embedding_copies_of_each_slide"] = args.copies
    encoders = [("read-only (mean RGB)", MeanRGB(), 64), ("hed-texture", "hed-texture", 32), (args.vit, args.vit, 32)]
    for label, spec, batch in ([] if args.no_embed or args.coarse_only else encoders):
        enc = get_image_encoder(spec, device=args.device) if isinstance(spec, str) else get_image_encoder(
            spec, dim=3, input_size=None, device=args.device)
        row = {"n_tiles": n_emb, "batch_size": batch, "device": args.device, "repeat": args.repeat}
        times: dict[str, list[float]] = {}
        for _ in range(args.repeat):  # rounds alternate the ways, so that a busy moment does not hit one way only
            times.setdefault("naive", []).append(sum(naive_embed(path, coords, enc) for path, coords in jobs))
            for w in sorted({0, args.workers}):
                t = time.perf_counter()
                gg.pp.embed_tiles(emb, encoder=enc, batch_size=batch, num_workers=w, overwrite=True,
                                  device=args.device)
                times.setdefault(f"workers{w}", []).append(time.perf_counter() - t)
        row["all_times_s"] = times
        t_naive = min(times["naive"])
        row["naive_s"] = t_naive
        row["naive_tiles_per_s"] = n_emb / t_naive
        for w in sorted({0, args.workers}):
            dt = min(times[f"workers{w}"])
            row[f"embed_tiles_workers{w}_s"] = dt
            row[f"embed_tiles_workers{w}_tiles_per_s"] = n_emb / dt
            row[f"speedup_workers{w}"] = t_naive / dt
        if label.startswith("read-only"):
            t_ceil = min(parallel_read_ceiling(jobs, max(1, args.workers)) for _ in range(args.repeat))
            row["parallel_read_ceiling_tiles_per_s"] = n_emb / t_ceil
            row["ceiling_speedup_over_naive"] = t_naive / t_ceil
            row[f"fraction_of_ceiling_workers{args.workers}"] = t_ceil / row[f"embed_tiles_workers{args.workers}_s"]
            print(f"  ceiling: {args.workers} processes decoding only: {n_emb / t_ceil:.1f} tiles/s "
                  f"({t_naive / t_ceil:.2f}x naive); embed_tiles reaches "
                  f"{row[f'fraction_of_ceiling_workers{args.workers}']:.0%} of it", flush=True)
        print(f"{label}: naive {row['naive_tiles_per_s']:.1f} tiles/s, embed_tiles "
              + ", ".join(f"{w} workers {row[f'embed_tiles_workers{w}_tiles_per_s']:.1f} tiles/s "
                          f"({row[f'speedup_workers{w}']:.2f}x)" for w in sorted({0, args.workers})), flush=True)
        results["embedding"][label] = row

    # -------------------------------------------- embedding at a coarser mpp (the level nearest the target)
    if args.mpp_edge and not args.no_embed:
        path = str(tmp / "pyramid.tif")
        write_big_tiff(path, args.mpp_edge)  # 0.5 um/px at level 0, levels downsampled 4, 16, 64
        coarse = ad.AnnData(np.zeros((1, 1), np.float32), obs=pd.DataFrame({"slide_path": [path]}, index=["r0"]))
        gg.pp.tile_slides(coarse, store=tmp / "coarse.zarr", overwrite=True, mpp=args.coarse_mpp)
        cstore = PatchStore(tmp / "coarse.zarr")
        sid = coarse.obs["slide_id"].iloc[0]
        coords = cstore.coords(sid)
        info = cstore.attrs["slides"][sid]
        entry = {"edge_px": args.mpp_edge, "mpp": args.coarse_mpp, "n_tiles": int(len(coords)),
                 "library_reads": f"level {info['level']} at {info['read_size']} px",
                 "naive_reads": f"level 0 at {info['tile_size_level0']} px, resized to 256 px"}
        for label, spec, batch in (("read-only (mean RGB)", MeanRGB(), 64), ("hed-texture", "hed-texture", 32)):
            enc = get_image_encoder(spec, device=args.device) if isinstance(spec, str) else get_image_encoder(
                spec, dim=3, input_size=None, device=args.device)
            t_naive = naive_embed_level0(path, coords, enc, int(info["tile_size_level0"]))
            row = {"naive_s": t_naive, "naive_tiles_per_s": len(coords) / t_naive}
            for w in sorted({0, args.workers}):
                t = time.perf_counter()
                gg.pp.embed_tiles(coarse, encoder=enc, batch_size=batch, num_workers=w, overwrite=True,
                                  device=args.device)
                dt = time.perf_counter() - t
                row[f"embed_tiles_workers{w}_tiles_per_s"] = len(coords) / dt
                row[f"speedup_workers{w}"] = t_naive / dt
            print(f"mpp {args.coarse_mpp}, {label}: naive {row['naive_tiles_per_s']:.1f} tiles/s, embed_tiles "
                  + ", ".join(f"{w} workers {row[f'embed_tiles_workers{w}_tiles_per_s']:.1f} tiles/s "
                              f"({row[f'speedup_workers{w}']:.2f}x)" for w in sorted({0, args.workers})), flush=True)
            entry[label] = row
        results["embedding_coarse_mpp"] = entry

    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["load_average_at_end"] = os.getloadavg()
    results["uptime_at_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(json.dumps(results, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(results, indent=2))
    os.replace(tmp_out, out)


if __name__ == "__main__":
    main()
