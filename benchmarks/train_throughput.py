"""Training throughput of GeMM-GAN: the library vs a naive per-sample-file pipeline, and vs the matmul FLOP bound.

(a) ``library``: ``gg.GeMMGAN(adata, ...).train(...)`` (Lightning plan, device-resident float16 patch bank, one
    critic pass for real/fake/interpolated, generator condition computed once per batch). Step times come from a
    Lightning callback; the first step is a warm-up and is not timed.
(b) ``naive`` (unless ``--library-only``): what the authors' public code does, with the library's networks
    (``gemmgan_sc.nn.ConditionFusion``, built on ``torch.nn.TransformerEncoderLayer`` and
    ``torch.nn.MultiheadAttention`` as the authors' code): one ``.npy`` file of
    patch embeddings (float32, all tiles of the slide) and one of text tokens per sample; the random draw of
    ``n_patches`` tiles happens in ``Dataset.__getitem__`` (``np.random.choice`` without replacement) behind a
    ``DataLoader``; per critic step the generator (fusion + MLP) runs again and the critic (fusion + MLP) is called
    three times (fake, real, interpolated), each recomputing its fusion network; then one generator update.

FLOPs: ``step_flops()`` counts the matmuls of one library step and one naive step analytically (formula in its
docstring); a ``torch.utils.flop_counter.FlopCounterMode`` count of one real library step is recorded beside it as
a check. ``flop_fraction`` = (analytic library FLOPs per step / measured seconds per step) / (matmul FLOP/s measured
in the same run with ``torch.matmul`` on the step's own shapes, best of them).

    python benchmarks/train_throughput.py [--quick] [--device cpu|cuda] [--library-only] [--out PATH]

The result is written to ``benchmarks/results/train_throughput_<config>_<device>.json`` (one current file per
configuration; earlier figures are in the file's git history). ``--library-only`` times (a) alone, e.g. to compare
two versions of the library in one run: ``PYTHONPATH=<other checkout>/src python benchmarks/train_throughput.py
--library-only --out /tmp/other.json``. The last output line is JSON with ``samples_per_s``, ``naive_samples_per_s``, ``speedup``, ``flop_fraction``.
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

import anndata as ad
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import gemmgan_sc as gg  # noqa: E402
from _machine import machine_info  # noqa: E402
from gemmgan_sc.nn import ConditionFusion, Critic, Generator  # noqa: E402

# The paper configuration (GeMMGAN defaults, UNI 1024-d tiles, Clinical ModernBERT 300 x 768 tokens, batch 64,
# 5 critic steps) and a small one for a quick check on 2 CPU cores.
CONFIGS = {
    "paper": dict(d_model=256, n_latent=256, n_patches=256, hidden=(256, 256), n_heads=4, n_layers=2, d_ff=512,
                  patch_dim=1024, tiles=1000, tokens=300, text_dim=768, genes=2000, batch=64, n_critic=5, steps=2),
    "quick": dict(d_model=64, n_latent=64, n_patches=64, hidden=(128, 128), n_heads=4, n_layers=2, d_ff=128,
                  patch_dim=256, tiles=300, tokens=64, text_dim=128, genes=1000, batch=64, n_critic=5, steps=4),
}
HP_KEYS = ("d_model", "n_latent", "n_patches", "hidden", "n_heads", "n_layers", "d_ff")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------- analytic FLOPs
def fusion_flops(c: dict) -> dict[str, float]:
    """Matmul FLOPs of one forward of the paper fusion network ("full" mode), per sample.

    With N tiles of width Dp, M text tokens of width Dt, d = d_model, L = N + 1 (patch CLS), FFN width f:

    * patch projection ``P = 2 N Dp d``; text projection ``T = 2 M Dt d``; FiLM ``2 d (2d)``;
    * per Transformer layer: QKV and output projections ``2 L d (4d)``, scores and weighted sum ``2 (2 L^2 d)``,
      FFN ``2 (2 L d f)``;
    * cross attention text CLS -> patches: ``2 (2 d^2) + 2 N (2d) d + 2 (2 N d)``; patch CLS -> text tokens:
      ``2 (2 d^2) + 2 M (2d) d + 2 (2 M d)``.
    """
    n, m, d, f = c["n_patches"], c["tokens"], c["d_model"], c["d_ff"]
    L = n + 1
    proj = 2 * n * c["patch_dim"] * d + 2 * m * c["text_dim"] * d
    film = 2 * d * 2 * d
    layer = 2 * L * d * 4 * d + 2 * 2 * L * L * d + 2 * 2 * L * d * f
    cross = (4 * d * d + 2 * n * 2 * d * d + 4 * n * d) + (4 * d * d + 2 * m * 2 * d * d + 4 * m * d)
    return {"total": proj + film + c["n_layers"] * layer + cross, "first_projections": proj}


def mlp_flops(widths: list[int]) -> float:
    return float(sum(2 * a * b for a, b in zip(widths[:-1], widths[1:])))


def step_flops(c: dict) -> dict[str, float]:
    """Matmul FLOPs of one training step (``n_critic`` critic updates + one generator update) on a batch B.

    F = B x fusion forward, PT = B x (patch + text projections) (their backward needs no input gradient, so a
    fusion forward + backward costs ``3F - PT``), Gm/Cm = generator/critic MLP forward FLOPs per row.
    A critic update spends ``12 B Cm`` in the critic MLP: forward on 3B rows (3), input gradient for the penalty
    (1), backward of the loss through the 3B-row forward (6) and through the penalty's gradient graph (2).

    library = F  +  n_critic (B Gm + 3F - PT + 12 B Cm)  +  (3F - PT + 3 B Gm)  +  (F + 2 B Cm)
              gen cond once   critic updates (1 fusion pass)   generator update     critic score, frozen
    naive   = n_critic (F + B Gm + 3 (3F - PT) + 12 B Cm)  +  (3F - PT + 3 B Gm)  +  (F + 2 B Cm)
              generator re-run and 3 critic fusion passes per critic update
    """
    b = c["batch"]
    fu = fusion_flops(c)
    F, PT = b * fu["total"], b * fu["first_projections"]
    gm = mlp_flops([c["n_latent"] + c["d_model"], *c["hidden"], c["genes"]])
    cm = mlp_flops([c["genes"] + c["d_model"], *c["hidden"], 1])
    nc = c["n_critic"]
    gen_update = (3 * F - PT + 3 * b * gm) + (F + 2 * b * cm)
    library = F + nc * (b * gm + 3 * F - PT + 12 * b * cm) + gen_update
    naive = nc * (F + b * gm + 3 * (3 * F - PT) + 12 * b * cm) + gen_update
    return {"library": library, "naive": naive, "fusion_forward_batch": F}


def matmul_flops_per_s(c: dict, device: str, dtype: torch.dtype, seconds: float = 1.0) -> dict:
    """Best measured ``torch.matmul`` FLOP/s on the step's own shapes (a practical upper bound for the step)."""
    b, n, d = c["batch"], c["n_patches"], c["d_model"]
    shapes = {
        "patch_projection": (b * n, c["patch_dim"], d),
        "qkv_projection": (b * (n + 1), d, 3 * d),
        "ffn": (b * (n + 1), d, c["d_ff"]),
        "text_projection": (b * c["tokens"], c["text_dim"], d),
    }
    out = {}
    for name, (m, k, nn_) in shapes.items():
        a = torch.randn(m, k, device=device, dtype=dtype)
        w = torch.randn(k, nn_, device=device, dtype=dtype)
        for _ in range(3):
            torch.matmul(a, w)
        sync(device)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / len(shapes):
            torch.matmul(a, w)
            reps += 1
        sync(device)
        out[name] = 2.0 * m * k * nn_ * reps / (time.perf_counter() - start)
    return {"per_shape": out, "best": max(out.values())}


# ------------------------------------------------------------------- data
def make_cohort(tmp: Path, c: dict, n: int, seed: int = 0, with_npy: bool = True):
    """AnnData + patch store for the library, and (``with_npy``) the same data as per-sample .npy files for the
    naive loop."""
    rng = np.random.default_rng(seed)
    adata = ad.AnnData(np.abs(rng.normal(3, 1, size=(n, c["genes"]))).astype(np.float32))
    adata.obs_names = [f"s{i}" for i in range(n)]
    adata.var_names = [f"g{j}" for j in range(c["genes"])]
    adata.obs["slide_id"] = [f"slide-{i}" for i in range(n)]
    store = gg.data.PatchStore(tmp / "patches.zarr", mode="w")
    npy = tmp / "npy"
    npy.mkdir()
    tokens = rng.normal(size=(n, c["tokens"], c["text_dim"])).astype(np.float16)
    tmask = np.ones((n, c["tokens"]), bool)
    tmask[:, c["tokens"] // 2 :] = rng.random((n, 1)) < 0.5  # half the texts shorter than the maximum
    for i, sid in enumerate(adata.obs["slide_id"]):
        feats = rng.normal(size=(c["tiles"], c["patch_dim"])).astype(np.float16)
        store.add(sid, feats)
        if with_npy:
            np.save(npy / f"{sid}.npy", feats.astype(np.float32))  # the authors keep float32 encoder outputs
            np.save(npy / f"{sid}_tokens.npy", tokens[i].astype(np.float32))
            np.save(npy / f"{sid}_mask.npy", tmask[i])
    adata.obsm["X_text_tokens"] = tokens
    adata.obsm["text_mask"] = tmask
    return adata, str(store.path), npy


# ---------------------------------------------------------------- library
class StepTimer:
    """Lightning callback recording the wall time of every training step."""

    def __init__(self, device: str) -> None:
        import lightning.pytorch as pl

        outer = self
        self.times: list[float] = []
        self.device = device

        class _CB(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                sync(outer.device)
                outer._t0 = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                sync(outer.device)
                outer.times.append(time.perf_counter() - outer._t0)

        self.callback = _CB()


def run_library(adata, store: str, c: dict, device: str, precision, steps: int, seed: int | None = None,
                compile: bool = False) -> dict:
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    model = gg.GeMMGAN(adata, **{k: c[k] for k in HP_KEYS})
    timer = StepTimer(device)
    start = time.perf_counter()
    model.train(max_epochs=1, batch_size=c["batch"], train_size=1.0, accelerator="gpu" if device.startswith("cuda") else "cpu",
                devices=1, precision=precision, seed=seed, n_critic=c["n_critic"], callbacks=[timer.callback],
                compile=compile)
    wall = time.perf_counter() - start
    timed = timer.times[1:][:steps]
    per_step = float(np.mean(timed))
    model.sample(indices=np.arange(min(64, adata.n_obs)), seed=0, device=device)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    synth = model.sample(seed=0, device=device)  # one profile per row, fresh tile draw per row
    sample_s = time.perf_counter() - t0
    return {"step_seconds": [round(t, 4) for t in timer.times], "seconds_per_step": per_step,
            "samples_per_s": c["batch"] / per_step, "train_call_wall_s": wall, "steps_run": len(timer.times),
            "sample_rows": int(synth.n_obs), "sample_s": sample_s, "sample_profiles_per_s": synth.n_obs / sample_s}


def count_library_flops(adata, store: str, c: dict, device: str, precision) -> float | None:
    """FLOPs of one real library step counted by ``FlopCounterMode`` (a check of the analytic count)."""
    from torch.utils.flop_counter import FlopCounterMode

    sub = adata[: c["batch"]].copy()
    gg.GeMMGAN.setup_anndata(sub, patch_store=store)
    model = gg.GeMMGAN(sub, **{k: c[k] for k in HP_KEYS})
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            model.train(max_epochs=1, batch_size=c["batch"], train_size=1.0,
                        accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1, precision=precision,
                        seed=None, n_critic=c["n_critic"])
    except Exception as err:  # the counter is a check only; report why it could not run
        print(f"FlopCounterMode failed: {err!r}", flush=True)
        return None
    return float(counter.get_total_flops())


# ------------------------------------------------------------------ naive
class NaiveDataset(torch.utils.data.Dataset):
    """The authors' dataset: np.load of the whole slide file per sample, tile draw with np.random.choice."""

    def __init__(self, folder: Path, slide_ids, x: np.ndarray, n_patches: int) -> None:
        self.folder, self.slide_ids, self.x, self.n = folder, list(slide_ids), x, n_patches

    def __len__(self) -> int:
        return len(self.slide_ids)

    def __getitem__(self, i):
        sid = self.slide_ids[i]
        patches = np.load(self.folder / f"{sid}.npy")
        if patches.shape[0] > self.n:
            patches = patches[np.random.choice(patches.shape[0], self.n, replace=False)]
            pad = np.zeros(self.n, dtype=bool)
        else:
            k = patches.shape[0]
            patches = np.concatenate([patches, np.zeros((self.n - k, patches.shape[1]), np.float32)])
            pad = np.arange(self.n) >= k
        tokens = np.load(self.folder / f"{sid}_tokens.npy")
        tmask = np.load(self.folder / f"{sid}_mask.npy")
        return (torch.tensor(tokens, dtype=torch.float32), torch.tensor(~tmask), torch.tensor(self.x[i]),
                torch.tensor(patches, dtype=torch.float32), torch.tensor(pad))


class NaiveModel(torch.nn.Module):
    """Fusion + MLP as one callable, as in the authors' ``generator``/``discriminator`` classes."""

    def __init__(self, fusion: ConditionFusion, mlp: torch.nn.Module) -> None:
        super().__init__()
        self.fusion, self.mlp = fusion, mlp

    def forward(self, v, patches, patch_pad, tokens, token_pad):
        cond = self.fusion(patches, ~patch_pad, tokens, ~token_pad)
        return self.mlp(v, cond)


def run_naive(adata, npy: Path, c: dict, device: str, precision, steps: int, workers: int) -> dict:
    torch.manual_seed(0)
    np.random.seed(0)
    x = adata.X.astype(np.float32)
    x = (x - x.mean(0)) / x.std(0).clip(1e-6)
    kw = dict(d_model=c["d_model"], n_heads=c["n_heads"], n_layers=c["n_layers"], d_ff=c["d_ff"])
    gen = NaiveModel(ConditionFusion(c["patch_dim"], c["text_dim"], **kw),
                     Generator(c["n_latent"], c["d_model"], c["genes"], c["hidden"])).to(device)
    disc = NaiveModel(ConditionFusion(c["patch_dim"], c["text_dim"], **kw),
                      Critic(c["genes"], c["d_model"], c["hidden"])).to(device)
    opt_d = torch.optim.RMSprop(disc.parameters(), lr=5e-4)
    opt_g = torch.optim.RMSprop(gen.parameters(), lr=5e-4)
    loader = torch.utils.data.DataLoader(NaiveDataset(npy, adata.obs["slide_id"], x, c["n_patches"]),
                                         batch_size=c["batch"], shuffle=True, num_workers=workers,
                                         pin_memory=device.startswith("cuda"))
    amp = precision is not None and "bf16" in str(precision)
    autocast = torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16, enabled=amp)

    def set_grad(net, flag):
        for p in net.parameters():
            p.requires_grad = flag

    def critic_update(real, cond):
        set_grad(disc, True)
        set_grad(gen, False)
        opt_d.zero_grad()
        z = torch.randn(real.shape[0], c["n_latent"], device=device)
        with autocast:
            fake = gen(z, *cond).float()
            d_fake = disc(fake, *cond)
            d_real = disc(real, *cond)
            alpha = torch.rand(real.shape[0], 1, device=device)
            inter = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            d_inter = disc(inter, *cond)
        grad = torch.autograd.grad(d_inter, inter, torch.ones_like(d_inter), create_graph=True, retain_graph=True)[0]
        gp = ((grad.view(grad.shape[0], -1).norm(2, 1) - 1) ** 2).mean()
        loss = d_fake.float().mean() - d_real.float().mean() + 10.0 * gp
        loss.backward()
        torch.nn.utils.clip_grad_norm_(disc.parameters(), 10.0)
        opt_d.step()
        return loss.item()

    def generator_update(real, cond):
        set_grad(disc, False)
        set_grad(gen, True)
        opt_g.zero_grad()
        z = torch.randn(real.shape[0], c["n_latent"], device=device)
        with autocast:
            loss = -disc(gen(z, *cond).float(), *cond).float().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 2.0)
        opt_g.step()
        return loss.item()

    gen.train()
    disc.train()
    times = []
    start = time.perf_counter()
    it = iter(loader)
    for _ in range(steps + 1):
        sync(device)
        t0 = time.perf_counter()
        tokens, tpad, real, patches, ppad = next(it)
        tokens, tpad, real = tokens.to(device), tpad.to(device), real.to(device)
        patches, ppad = patches.to(device), ppad.to(device)
        cond = (patches, ppad, tokens, tpad)
        for _ in range(c["n_critic"]):
            critic_update(real, cond)
        generator_update(real, cond)
        sync(device)
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    per_step = float(np.mean(times[1:]))
    return {"step_seconds": [round(t, 4) for t in times], "seconds_per_step": per_step,
            "samples_per_s": c["batch"] / per_step, "loop_wall_s": wall, "dataloader_workers": workers}


# ------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small configuration (minutes on 2 CPU cores)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default=None, help="Lightning precision (default: 32 on CPU, bf16-mixed on CUDA)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per pipeline (after one warm-up step)")
    parser.add_argument("--tiles", type=int, default=None, help="tiles per slide")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default: the configuration's 64; smaller for a loaded machine)")
    parser.add_argument("--naive-workers", type=int, default=0, help="DataLoader workers of the naive pipeline")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the library's train() (default None, the library default; a seed on the CPU "
                             "turns on Lightning's deterministic mode)")
    parser.add_argument("--no-flop-counter", action="store_true", help="skip the FlopCounterMode check")
    parser.add_argument("--compile", action="store_true", help="also time the library with train(compile=True)")
    parser.add_argument("--library-only", action="store_true",
                        help="time the library alone (no naive pipeline, no FLOP counter, no .npy files)")
    parser.add_argument("--out", default=None, help="result JSON (default benchmarks/results/"
                                                    "train_throughput_<config>_<device>.json)")
    return parser.parse_args()


def measure(args, c: dict, device: str, precision) -> dict:
    """Write the cohort and time every pipeline asked for; the matmul rate is measured before and after."""
    steps = c["steps"]
    n = c["batch"] * (steps + 1)
    runs: dict = {"n": n, "library_compiled": None, "naive": None, "flop_counter": None}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        adata, store, npy = make_cohort(Path(tmp), c, n, with_npy=not args.library_only)
        print(f"cohort of {n} samples written in {time.perf_counter() - t0:.1f} s", flush=True)
        runs["mm_dtype"] = torch.bfloat16 if precision and "bf16" in str(precision) else torch.float32
        runs["mm_before"] = matmul_flops_per_s(c, device, runs["mm_dtype"])
        print(f"matmul {runs['mm_dtype']}: best {runs['mm_before']['best'] / 1e9:.1f} GFLOP/s", flush=True)
        lib = runs["library"] = run_library(adata, store, c, device, precision, steps, args.seed)
        print(f"library: {lib['seconds_per_step']:.3f} s/step, {lib['samples_per_s']:.2f} samples/s", flush=True)
        if args.compile:
            comp = runs["library_compiled"] = run_library(adata, store, c, device, precision, steps, args.seed,
                                                          compile=True)
            print(f"library, compile=True: {comp['seconds_per_step']:.3f} s/step (first step, with the "
                  f"compilation: {comp['step_seconds'][0]:.1f} s)", flush=True)
        if not args.library_only:
            naive = runs["naive"] = run_naive(adata, npy, c, device, precision, steps, args.naive_workers)
            print(f"naive:   {naive['seconds_per_step']:.3f} s/step, {naive['samples_per_s']:.2f} samples/s",
                  flush=True)
            if not args.no_flop_counter:
                runs["flop_counter"] = count_library_flops(adata, store, c, device, precision)
        runs["mm_after"] = matmul_flops_per_s(c, device, runs["mm_dtype"])
    return runs


def build_result(args, c: dict, device: str, precision, runs: dict, load_before: list[float]) -> dict:
    flops = step_flops(c)
    mm_before, mm_after = runs["mm_before"], runs["mm_after"]
    best_mm = max(mm_before["best"], mm_after["best"])
    lib, naive = runs["library"], runs["naive"]
    achieved = flops["library"] / lib["seconds_per_step"]
    naive_achieved = None if naive is None else flops["naive"] / naive["seconds_per_step"]
    result = {
        "benchmark": "train_throughput",
        "config": "quick" if args.quick else "paper",
        "hyperparameters": c,
        "device": device,
        "precision": precision or "32",
        "torch_threads": torch.get_num_threads(),
        "library_seed": args.seed,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cohort": f"{runs['n']} samples x {c['genes']} genes, {c['tiles']} tiles x {c['patch_dim']}-d per slide, "
                  f"{c['tokens']} tokens x {c['text_dim']}-d",
        "library": lib,
        "naive": naive,
        "library_compiled": runs["library_compiled"],
        "samples_per_s": lib["samples_per_s"],
        "naive_samples_per_s": None if naive is None else naive["samples_per_s"],
        "speedup": None if naive is None else lib["samples_per_s"] / naive["samples_per_s"],
        "analytic_flops_per_step": flops,
        "flop_counter_library_step": runs["flop_counter"],
        "matmul_flops_per_s": {"before": mm_before, "after": mm_after, "best": best_mm, "dtype": str(runs["mm_dtype"])},
        "achieved_flops_per_s": achieved,
        "naive_achieved_flops_per_s": naive_achieved,
        "flop_fraction": achieved / best_mm,
        "naive_flop_fraction": None if naive is None else naive_achieved / best_mm,
        "flop_bound_seconds_per_step": flops["library"] / best_mm,
        "library_source": str(Path(gg.__file__).parent),
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    try:
        result["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                               cwd=Path(gg.__file__).parent).stdout.strip()
    except OSError:
        pass
    return result


def write_json(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(result, indent=1, default=str))
    os.replace(tmp_path, path)


def main() -> None:
    args = parse_args()
    name = "quick" if args.quick else "paper"
    c = dict(CONFIGS[name])
    if args.steps:
        c["steps"] = args.steps
    if args.tiles:
        c["tiles"] = args.tiles
    if args.batch:
        c["batch"] = args.batch
    device = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch.")
    precision = args.precision or ("bf16-mixed" if device.startswith("cuda") else None)
    out_path = Path(args.out or Path(__file__).parent / "results" / f"train_throughput_{name}_{device.split(':')[0]}.json")
    gg.settings.progress_bar = False
    load_before = load_average()
    print(f"config {name}: {c}; device {device}; precision {precision}; torch threads {torch.get_num_threads()}; "
          f"load average {load_before}; library {Path(gg.__file__).parent}", flush=True)
    runs = measure(args, c, device, precision)
    result = build_result(args, c, device, precision, runs, load_before)
    write_json(out_path, result)
    flops = result["analytic_flops_per_step"]
    summary = {k: result[k] for k in ("config", "device", "samples_per_s", "naive_samples_per_s", "speedup",
                                      "flop_fraction", "naive_flop_fraction", "torch_threads")}
    summary["load_average"] = load_before
    summary["sample_profiles_per_s"] = result["library"]["sample_profiles_per_s"]
    summary["library_tflop_per_step"] = flops["library"] / 1e12
    summary["naive_tflop_per_step"] = flops["naive"] / 1e12
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()}))


if __name__ == "__main__":
    main()
