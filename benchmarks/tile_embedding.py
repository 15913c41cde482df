"""Tiles per second of gg.pp.embed_tiles: the code of two source trees (before / after a change) in one run,
alternating, against the naive loop (one process, OpenSlide ``read_region`` per tile, one tile per encoder call).

Encoders: a near-free one (mean colour, so its row measures tile reading) and ``"hed-texture"``; each with 0 and
``--workers`` worker processes. Slides: copies of the real slides of ../shared/data (distinct files, a job of a
few hundred tiles), and a generated 0.5 um/px pyramid embedded at a coarser mpp (the library reads the level
nearest the target, the naive loop reads level 0 and shrinks). Run:

    python benchmarks/tile_embedding.py --tree after=src --tree before=/tmp/old/src [--rounds 2] [--copies 4]

Each tree is timed in its own process (``PYTHONPATH`` = the tree); rounds alternate the order of the trees.
Writes benchmarks/results/tile_embedding.json (with machine details and the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SLIDES = HERE.parents[1] / "shared" / "data" / "slides"
REAL_SLIDES = [SLIDES / "CMU-1-Small-Region.svs", SLIDES / "TCGA-CR-7395-01A-01-TS1.svs"]
ENCODERS = {"read-only (mean RGB)": 64, "hed-texture": 32}  # label -> batch size


def encoder(label: str):
    """The encoder of a row, built by the gemmgan_sc on the path."""
    import torch

    from gemmgan_sc.encoders import get_image_encoder

    class MeanRGB(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    if label == "hed-texture":
        return get_image_encoder("hed-texture")
    return get_image_encoder(MeanRGB(), dim=3, input_size=None, device="cpu")


# ----------------------------------------------------------------------------- one tree, in a child process
def child(config: dict) -> dict:
    """Tile ``config["slides"]`` (not timed), then time embed_tiles per encoder and number of workers."""
    import anndata as ad
    import pandas as pd

    import gemmgan_sc as gg

    gg.settings.progress_bar = False
    slides = config["slides"]
    adata = ad.AnnData(np.zeros((len(slides), 1), np.float32),
                       obs=pd.DataFrame({"slide_path": slides}, index=[f"r{i}" for i in range(len(slides))]))
    gg.pp.tile_slides(adata, store=config["store"], overwrite=True, **config["tile_kwargs"])
    out = {"n_tiles": int(adata.obs.drop_duplicates("slide_id")["n_tiles"].sum()), "seconds": {}}
    for label, batch in ENCODERS.items():
        enc = encoder(label)
        for w in config["workers"]:
            t = time.perf_counter()
            gg.pp.embed_tiles(adata, encoder=enc, batch_size=batch, num_workers=w, overwrite=True, device="cpu")
            out["seconds"][f"{label}|{w}"] = time.perf_counter() - t
    return out


def run_tree(tree: str, config: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"benchmark child for {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- naive ways, in this process
def naive_embed(jobs: list[tuple[str, np.ndarray]], enc, read_size: int = 256, out_size: int = 256) -> float:
    """One process, one OpenSlide/tiffslide read per tile at level 0 (shrunk to ``out_size``), one encoder call per tile."""
    import torch
    from PIL import Image

    from gemmgan_sc.pp._tiles import open_slide

    t = time.perf_counter()
    for path, coords in jobs:
        with open_slide(path) as reader:
            for x, y in coords:
                tile = reader.read_region((int(x), int(y)), 0, (read_size, read_size))
                if read_size != out_size:
                    tile = np.asarray(Image.fromarray(tile).resize((out_size, out_size), Image.Resampling.BILINEAR))
                enc(enc.preprocess(torch.from_numpy(np.ascontiguousarray(tile)).permute(2, 0, 1)[None]))
    return time.perf_counter() - t


def _decode_only(items: list[tuple[str, int, int]]) -> int:
    import openslide

    slides: dict[str, object] = {}
    for path, x, y in items:
        slides.setdefault(path, openslide.OpenSlide(path))
        np.asarray(slides[path].read_region((x, y), 0, (256, 256)).convert("RGB"))
    return len(items)


def parallel_read_ceiling(jobs: list[tuple[str, np.ndarray]], workers: int) -> float:
    """Seconds for ``workers`` processes that only decode the tiles (interleaved split, nothing sent back, process
    start-up not timed): about the most any pipeline of ``workers`` readers can do on this machine."""
    import multiprocessing as mp

    items = [(path, int(x), int(y)) for path, coords in jobs for x, y in coords]
    with mp.get_context().Pool(workers) as pool:
        pool.apply(int, (0,))
        t = time.perf_counter()
        pool.map(_decode_only, [items[k::workers] for k in range(workers)])
        return time.perf_counter() - t


def coords_of(config: dict) -> tuple[dict, list[tuple[str, np.ndarray]]]:
    """The tiles the library tiles for ``config`` (tiled once more here, by the tree on this process's path)."""
    result = child(dict(config, workers=[]))
    from gemmgan_sc.data import PatchStore

    store = PatchStore(config["store"])
    info = store.attrs["slides"]
    return result, [(p, store.coords(sid)) for sid, p in ((s, info[s]["path"]) for s in store.slide_ids)]


# ----------------------------------------------------------------------------- the run
def measure_case(name: str, config: dict, trees: dict[str, str], rounds: int, workers: int, read_size: int) -> dict:
    from gemmgan_sc.data import PatchStore

    tiled, jobs = coords_of(config)
    info = PatchStore(config["store"]).attrs["slides"]
    times: dict[str, dict[str, list[float]]] = {t: {} for t in [*trees, "naive"]}
    for r in range(rounds):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for tree in order:
            store = Path(config["store"]).with_name(f"{name}-{tree}-round{r}.zarr")  # a fresh store per child
            got = run_tree(trees[tree], dict(config, store=str(store)))
            for key, sec in got["seconds"].items():
                times[tree].setdefault(key, []).append(sec)
        for label in ENCODERS:
            times["naive"].setdefault(label, []).append(naive_embed(jobs, encoder(label), read_size=read_size))
        print(f"{name}: round {r + 1}/{rounds} done", flush=True)
    n = tiled["n_tiles"]
    row: dict = {"n_tiles": n, "all_times_s": times, "reads": {s: f"level {v['level']} at {v['read_size']} px"
                                                              for s, v in list(info.items())[:1]}}
    for label in ENCODERS:
        entry = {"naive_tiles_per_s": n / min(times["naive"][label])}
        for tree in trees:
            for w in sorted({0, workers}):
                entry[f"{tree}_workers{w}_tiles_per_s"] = n / min(times[tree][f"{label}|{w}"])
        for w in sorted({0, workers}):
            a, b = list(trees)[:2] if len(trees) > 1 else (list(trees)[0],) * 2
            entry[f"ratio_{a}_over_{b}_workers{w}"] = entry[f"{a}_workers{w}_tiles_per_s"] / entry[f"{b}_workers{w}_tiles_per_s"]
        row[label] = entry
        print(f"{name} / {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in entry.items()), flush=True)
    if name == "real_slides":
        t_ceil = min(parallel_read_ceiling(jobs, max(1, workers)) for _ in range(rounds))
        row["parallel_read_ceiling_tiles_per_s"] = n / t_ceil
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tree", action="append", default=None,
                    help="NAME=PATH of a source tree to time (repeatable; the first is the 'after' one). "
                         "Default: after=<this repository's src>")
    ap.add_argument("--slides", nargs="*", default=[str(p) for p in REAL_SLIDES], help="real slides to embed")
    ap.add_argument("--copies", type=int, default=4, help="copies of each real slide (distinct files)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds (trees alternate); best time of each")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mpp-edge", type=int, default=8192, help="edge of the generated pyramid (0 = skip)")
    ap.add_argument("--coarse-mpp", type=float, default=2.0)
    ap.add_argument("--out", default=str(HERE / "results" / "tile_embedding.json"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    from _machine import machine_info

    trees = dict(t.split("=", 1) for t in (args.tree or [f"after={HERE.parent / 'src'}"]))
    tmp = Path(tempfile.mkdtemp())
    slides = [str(shutil.copy(p, tmp / f"{p.stem}-copy{k}{p.suffix}")) for k in range(args.copies)
              for p in map(Path, args.slides)]
    workers = sorted({0, args.workers})
    results = {"machine": machine_info(), "load_average_at_start": os.getloadavg(), "trees": trees,
               "rounds": args.rounds, "copies_of_each_slide": args.copies}
    base = {"workers": workers, "tile_kwargs": {}}
    results["real_slides"] = measure_case("real_slides", dict(base, slides=slides, store=str(tmp / "real.zarr")),
                                          trees, args.rounds, args.workers, read_size=256)
    if args.mpp_edge:
        from tiling import write_big_tiff

        path = str(tmp / "pyramid.tif")
        write_big_tiff(path, args.mpp_edge)  # 0.5 um/px at level 0, levels downsampled 4, 16, 64
        size0 = int(round(256 * args.coarse_mpp / 0.5))
        config = dict(base, slides=[path], store=str(tmp / "coarse.zarr"), tile_kwargs={"mpp": args.coarse_mpp})
        results["coarse_mpp"] = dict(measure_case("coarse_mpp", config, trees, args.rounds, args.workers,
                                                  read_size=size0), edge_px=args.mpp_edge, mpp=args.coarse_mpp,
                                     naive_reads=f"level 0 at {size0} px, resized to 256 px")
    results["load_average_at_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json.tmp").write_text(json.dumps(results, indent=2))
    os.replace(out.with_suffix(".json.tmp"), out)


if __name__ == "__main__":
    main()
