"""Streaming patch bank: seconds per batch draw from zarr against the in-memory gather (issue 8, point 4).

When the float16 patch bank exceeds ``gg.settings.max_bank_bytes`` the model builds a streaming
:class:`gemmgan_sc.train.ConditionBank` that reads only the drawn tiles of each row from the zarr patch store at
every step. This script writes a real store (``--slides`` x ``--tiles`` x ``--dim`` float16), then times
``draw_patches`` for batches of ``--batch`` rows x ``--n-patches`` tiles: in memory (the gather), streamed with
``--read-threads`` 1 (one row after another) and with the default thread pool, each from the page cache and, when
the OS allows it (root on Linux), after dropping the page cache (cold disk reads). The draw must be identical in
both modes (checked). The figures are to be read against a training step (8.4 s at paper size on 2 CPU cores:
``train_throughput.py``).

    python benchmarks/stream_bank.py [--slides 200] [--tiles 2000] [--dim 1024] [--batches 5] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import gemmgan_sc as gg  # noqa: E402
from _machine import machine_info  # noqa: E402
from gemmgan_sc.train import ConditionBank  # noqa: E402


def drop_page_cache() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def time_draws(bank: ConditionBank, batches: list[torch.Tensor], cold: bool) -> dict:
    times = []
    out = []
    for idx in batches:
        if cold and not drop_page_cache():
            return {"skipped": "cannot drop the page cache (needs root on Linux)"}
        gen = torch.Generator().manual_seed(int(idx.sum()))
        t0 = time.perf_counter()
        feats, mask = bank.draw_patches(idx, gen)
        times.append(time.perf_counter() - t0)
        out.append(feats)
    return {"seconds": [round(t, 4) for t in times], "mean_s": float(np.mean(times)), "features": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slides", type=int, default=200)
    parser.add_argument("--tiles", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n-patches", type=int, default=256)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "stream_bank.json"))
    args = parser.parse_args()
    gg.settings.progress_bar = False
    rng = np.random.default_rng(0)
    result = {"benchmark": "stream_bank", "slides": args.slides, "tiles": args.tiles, "dim": args.dim,
              "batch": args.batch, "n_patches": args.n_patches, "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        store = gg.data.PatchStore(Path(tmp) / "bank.zarr", mode="w")
        ids = [f"slide-{i}" for i in range(args.slides)]
        t0 = time.perf_counter()
        for sid in ids:
            store.add(sid, rng.normal(size=(args.tiles, args.dim)).astype(np.float16))
        write_s = time.perf_counter() - t0
        gb = args.slides * args.tiles * args.dim * 2 / 1e9
        result["store_gb"] = gb
        result["write_s"] = write_s
        result["write_mb_per_s"] = gb * 1e3 / write_s
        t0 = time.perf_counter()
        patches, offsets, counts = store.bank(ids)
        result["bank_build_s"] = time.perf_counter() - t0
        memory = ConditionBank(patches=patches, offsets=offsets, counts=counts, n_patches=args.n_patches)
        gen = torch.Generator().manual_seed(0)
        batches = [torch.randperm(args.slides, generator=gen)[: args.batch] for _ in range(args.batches)]
        ref = time_draws(memory, batches, cold=False)
        result["in_memory"] = {k: v for k, v in ref.items() if k != "features"}
        print(f"in memory: {ref['mean_s'] * 1e3:.1f} ms per draw", flush=True)
        for threads in (1, None):
            label = "streamed_1_thread" if threads == 1 else "streamed_threads"
            bank = ConditionBank(stream_from=(store, ids), n_patches=args.n_patches, read_threads=threads)
            for cold in (False, True):
                got = time_draws(bank, batches, cold)
                key = f"{label}_{'cold' if cold else 'page_cache'}"
                if "features" in got:
                    same = all(torch.equal(a, b) for a, b in zip(got["features"], ref["features"]))
                    if not same:
                        raise SystemExit(f"{key}: streamed draw differs from the in-memory draw")
                    got = {k: v for k, v in got.items() if k != "features"}
                    got["same_tiles_as_memory"] = same
                    got["read_mb_per_s"] = args.batch * args.n_patches * args.dim * 2 / 1e6 / got["mean_s"]
                    print(f"{key}: {got['mean_s'] * 1e3:.1f} ms per draw ({got['read_mb_per_s']:.0f} MB/s of tiles)",
                          flush=True)
                result[key] = got
            result[f"{label}_threads_used"] = bank.read_threads
    result["machine"] = machine_info()
    result["load_average_after"] = os.getloadavg()
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result["command"] = " ".join([os.path.basename(sys.executable), *sys.argv])
    result["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                          cwd=Path(__file__).parent).stdout.strip()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=1, default=str))
    os.replace(tmp_out, out)
    summary = {k: result[k]["mean_s"] for k in result if isinstance(result[k], dict) and "mean_s" in result[k]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
