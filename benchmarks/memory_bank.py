"""Peak memory and time of training with a big device-resident patch bank (issue 8, point 4).

Default: 2,000 slides x 2,000 tiles x 1024-d float16 (8.2 GB bank) + 300 x 768 float16 text tokens per sample
(0.9 GB), the paper networks, a few real training steps through ``WGANGPPlan`` on a Lightning ``Trainer``.

Measured:
* ``PatchStore.bank`` read speed on a slice of the cohort written to a real zarr store (MB/s), and the build time
  of the full bank extrapolated from it (the full 8 GB store is not written: it would take the disk and minutes
  of a shared machine; say ``--write-full-store`` to do it);
* the in-memory bank: allocation + fill time, resident memory after ``ConditionBank`` (which shares the numpy
  buffer: no copy), the time of one ``draw_patches`` (B = 64, N = 256), peak RSS during ``--steps`` training steps
  and the seconds per step.

    python benchmarks/memory_bank.py [--slides 2000] [--tiles 2000] [--steps 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import gemmgan_sc as gg  # noqa: E402
from _machine import machine_info  # noqa: E402
from gemmgan_sc.nn import ConditionFusion, Critic, Generator  # noqa: E402
from gemmgan_sc.train import ConditionBank  # noqa: E402


def rss_gb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


class PeakRSS:
    """Samples VmRSS every 50 ms in a thread (ru_maxrss covers the whole process life, this covers a phase)."""

    def __enter__(self):
        self.peak, self._stop = rss_gb(), False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, rss_gb())
            time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, rss_gb())


def store_read_speed(tmp: Path, n_slides: int, tiles: int, dim: int) -> dict:
    rng = np.random.default_rng(0)
    block = rng.normal(size=(tiles, dim)).astype(np.float16)
    store = gg.data.PatchStore(tmp / "slice.zarr", mode="w")
    t0 = time.perf_counter()
    for i in range(n_slides):
        store.add(f"slide-{i}", block + np.float16(i % 7))
    write_s = time.perf_counter() - t0
    store = gg.data.PatchStore(tmp / "slice.zarr", mode="r")
    t0 = time.perf_counter()
    feats, _, _ = store.bank([f"slide-{i}" for i in range(n_slides)])
    read_s = time.perf_counter() - t0
    mb = feats.nbytes / 1e6
    return {"slides": n_slides, "tiles_per_slide": tiles, "dim": dim, "megabytes": mb, "write_s": write_s,
            "read_s": read_s, "read_mb_per_s": mb / read_s, "write_mb_per_s": mb / write_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slides", type=int, default=2000)
    parser.add_argument("--tiles", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--text-dim", type=int, default=768)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2, help="training steps run on the big bank")
    parser.add_argument("--store-slides", type=int, default=100, help="slides written to zarr to time PatchStore.bank")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="200 slides and small networks")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.slides, args.store_slides = 200, 20
    hp = dict(d_model=256, n_heads=4, n_layers=2, d_ff=512, n_latent=256, n_patches=256, hidden=(256, 256))
    if args.quick:
        hp.update(d_model=64, d_ff=128, n_latent=64, n_patches=64, hidden=(128, 128))
    gg.settings.progress_bar = False
    result: dict = {"benchmark": "memory_bank", "load_average_before": [round(x, 2) for x in os.getloadavg()],
                    "torch_threads": torch.get_num_threads(), "hyperparameters": hp}
    bank_gb = args.slides * args.tiles * args.dim * 2 / 1e9
    text_gb = args.slides * args.tokens * args.text_dim * 2 / 1e9
    result["sizes_gb"] = {"patch_bank": bank_gb, "text_tokens": text_gb}
    print(f"bank {bank_gb:.2f} GB + text {text_gb:.2f} GB; RSS at start {rss_gb():.2f} GB", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        speed = store_read_speed(Path(tmp), args.store_slides, args.tiles, args.dim)
    speed["extrapolated_full_bank_build_s"] = bank_gb * 1e3 / speed["read_mb_per_s"]
    result["patch_store_bank"] = speed
    print(f"PatchStore.bank: {speed['read_mb_per_s']:.0f} MB/s -> full bank build ~"
          f"{speed['extrapolated_full_bank_build_s']:.0f} s", flush=True)

    rng = np.random.default_rng(0)
    rss0 = rss_gb()
    t0 = time.perf_counter()
    with PeakRSS() as peak_alloc:
        patches = np.empty((args.slides * args.tiles, args.dim), dtype=np.float16)
        block = rng.normal(size=(args.tiles, args.dim)).astype(np.float16)
        for i in range(args.slides):
            patches[i * args.tiles : (i + 1) * args.tiles] = block
            patches[i * args.tiles, 0] = i  # slides differ
        text = np.empty((args.slides, args.tokens, args.text_dim), dtype=np.float16)
        text[:] = rng.normal(size=(1, args.tokens, args.text_dim)).astype(np.float16)
        x = rng.normal(size=(args.slides, args.genes)).astype(np.float32)
        offsets = np.arange(args.slides, dtype=np.int64) * args.tiles
        counts = np.full(args.slides, args.tiles, dtype=np.int64)
        fill_s = time.perf_counter() - t0
        rss_arrays = rss_gb()
        bank = ConditionBank(x=x, text=text, text_mask=np.ones((args.slides, args.tokens), bool), patches=patches,
                             offsets=offsets, counts=counts, n_patches=hp["n_patches"])
        rss_bank = rss_gb()
    result["in_memory_bank"] = {
        "allocate_and_fill_s": fill_s, "rss_before_gb": rss0, "rss_arrays_gb": rss_arrays,
        "rss_after_condition_bank_gb": rss_bank, "peak_rss_gb": peak_alloc.peak,
        "condition_bank_copies": bool(rss_bank - rss_arrays > 0.5),
        "shares_numpy_buffer": bool(bank.patches.data_ptr() == patches.ctypes.data),
    }
    print(f"arrays in {fill_s:.1f} s; RSS {rss_arrays:.2f} GB, after ConditionBank {rss_bank:.2f} GB", flush=True)

    idx = torch.randint(0, args.slides, (64,))
    bank.draw_patches(idx)
    t0 = time.perf_counter()
    for _ in range(5):
        feats, mask = bank.draw_patches(torch.randint(0, args.slides, (64,)))
    draw_ms = (time.perf_counter() - t0) / 5 * 1e3
    result["draw_patches_ms"] = draw_ms
    print(f"draw_patches (B=64, N={hp['n_patches']}, {args.tiles} tiles/slide): {draw_ms:.1f} ms", flush=True)

    import lightning.pytorch as pl

    from gemmgan_sc.train._wgan import WGANGPNetworks, WGANGPPlan

    def fusion():
        return ConditionFusion(args.dim, args.text_dim, d_model=hp["d_model"], n_heads=hp["n_heads"],
                               n_layers=hp["n_layers"], d_ff=hp["d_ff"])

    nets = WGANGPNetworks(Generator(hp["n_latent"], hp["d_model"], args.genes, hp["hidden"]),
                          Critic(args.genes, hp["d_model"], hp["hidden"]), fusion(), fusion())
    plan = WGANGPPlan(nets, bank, None)
    times: list[float] = []

    class Timer(pl.Callback):
        def on_train_batch_start(self, *a):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, *a):
            times.append(time.perf_counter() - self.t0)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(args.slides)), batch_size=64,
                                         shuffle=True)
    trainer = pl.Trainer(max_steps=args.steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         limit_val_batches=0, callbacks=[Timer()])
    with PeakRSS() as peak_train:
        trainer.fit(plan, train_dataloaders=loader)
    result["training"] = {"steps": len(times), "step_seconds": times, "peak_rss_gb": peak_train.peak,
                          "activation_and_model_gb": peak_train.peak - rss_bank}
    result["ru_maxrss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["machine"] = machine_info()
    result["machine"]["mem_total_gb"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result["command"] = " ".join(["python", *sys.argv])
    print(f"training: {len(times)} steps, {np.mean(times):.1f} s/step, peak RSS {peak_train.peak:.2f} GB", flush=True)
    out = Path(args.out or Path(__file__).parent / "results" / f"train_memory_bank{'_quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(result, indent=1, default=str))
    os.replace(tmp_path, out)
    print(json.dumps({"bank_gb": round(bank_gb, 2), "peak_rss_gb": round(peak_train.peak, 2),
                      "draw_patches_ms": round(draw_ms, 1), "seconds_per_step": round(float(np.mean(times)), 2)}))


if __name__ == "__main__":
    main()
