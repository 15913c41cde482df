"""Speed and memory of gg.metrics on expression-sized data.

Measures, in one run on this machine:

1. numpy's float64 matmul throughput (the BLAS peak we can hope for), best of 3;
2. ``gg.metrics.fidelity`` (precision/recall of both definitions, density, coverage: one call) at
   n x n x 18,868 genes for n = 2,000 and 5,000, in float64 (the default) and ``dtype="float32"``, beside a
   naive full-matrix version built on ``sklearn.metrics.pairwise_distances`` (three full distance matrices,
   then the definitions; its float32 -> float64 conversion of the inputs is timed, as ours is), as a ratio,
   and the BLAS FLOP/s our float64 call achieves as a share of the measured peak (flops performed: syrk,
   n^2 g, for each set against itself, 2 n^2 g for the real x synthetic product);
3. seconds per metric (correlation MSE / gamma, privacy; detectability and utility with ``--classifiers``);
4. peak memory of ``fidelity`` at 20,000 x 20,000 with fewer genes (default 2,000: memory of the distance
   blocks does not depend on the number of genes; the inputs take 2 x 20,000 x genes x 8 bytes), measured with
   ``tracemalloc`` (numpy reports its allocations there) in a fresh subprocess, and the process peak RSS.

Random data (standard normal, float32 like AnnData) are fine for timing. Results are printed and written
atomically to ``benchmarks/results/metrics_speed.json``.

Memory state. On some VMs (this one) the first touch of fresh memory costs about 3 s per GB, and memory a
process freed is cheap to reuse only for a few seconds, until it is handed back to the host. A call timed
right after another one freed a lot of memory therefore runs on warm pages the first call paid for. Each
fidelity timing (ours in float64 and float32, and the sklearn version) is preceded by a pause of
``--settle`` seconds (default 10) so that all start from the same state: the freed memory handed back.

The peak RSS of the memory run is read from ``/proc/self/status`` (VmHWM) of the child. ``tracemalloc`` sees
numpy's allocations only, not torch's (the distance blocks since the torch implementation): compare peak RSS.

Before/after: ``--compare OLD_SRC`` (the ``src`` folder of a git worktree of the older code) times
``fidelity`` at ``--compare-n`` (5,000) x 18,868 genes in float64 and float32, the old and the current code
each in a fresh child process, alternating (the order flips every round), ``--rounds`` times, and the memory
run of both; it writes only those figures (and the machine) to the results file.

Usage: ``python benchmarks/metrics_speed.py [--quick] [--classifiers] [--big-genes 2000] [--memory-only]
[--settle 10] [--compare OLD_SRC [--compare-n 5000] [--rounds 2]]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GENES = 18_868
RESULTS = Path(__file__).resolve().parent / "results" / "metrics_speed.json"


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numpy": np.__version__,
        "load_average_at_start": os.getloadavg(),
    }
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - informative only
        info["blas"] = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu_model"] = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        info["mem_total_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return info


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``; CPU time shows contention from other jobs."""
    c, t = cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - t, cpu_seconds() - c


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_peak(n: int, g: int) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, g)), rng.standard_normal((n, g))
    t = best_of(lambda: a @ b.T, 3)
    return 2.0 * n * n * g / t


def naive_fidelity(real: np.ndarray, synth: np.ndarray, k: int) -> dict:
    """The definitions with three full distance matrices from scikit-learn."""
    from sklearn.metrics import pairwise_distances

    def radii(x):
        d = pairwise_distances(x, metric="euclidean", n_jobs=1)
        np.fill_diagonal(d, np.inf)
        return np.partition(d, k - 1, axis=1)[:, k - 1]

    rr, rs = radii(real), radii(synth)
    d = pairwise_distances(synth, real, metric="euclidean", n_jobs=1)
    return {
        "precision_kynkaanniemi": float((d <= rr[None]).any(1).mean()),
        "recall_kynkaanniemi": float((d.T <= rs[None]).any(1).mean()),
        "precision_prdc": float((d < rr[None]).any(1).mean()),
        "recall_prdc": float((d.T < rs[None]).any(1).mean()),
        "density": float((d < rr[None]).sum() / (k * len(synth))),
        "coverage": float((d.min(0) < rr).mean()),
    }


def speed(n: int, g: int, peak: float, classifiers: bool, settle: float) -> dict:
    import gemmgan_sc as gg
    import gemmgan_sc.metrics  # noqa: F401 - imported before timing

    gg.settings.progress_bar = False
    warm = np.random.default_rng(0).standard_normal((50, 20))
    gg.metrics.fidelity(warm, warm, k=3)  # first-call overheads out of the timings
    rng = np.random.default_rng(1)
    real = rng.standard_normal((n, g), dtype=np.float32)
    synth = (rng.standard_normal((n, g), dtype=np.float32) * 1.1 + 0.05).astype(np.float32)
    out: dict = {"n_real": n, "n_synth": n, "genes": g, "settle_s": settle}

    def settled(fn):  # same memory state for every fidelity timing (see the module notes)
        time.sleep(settle)
        return timed(fn)

    ours, ours32, ref = {}, {}, {}
    out["fidelity_s"], out["fidelity_cpu_s"] = settled(lambda: ours.update(gg.metrics.fidelity(real, synth, k=10)))
    # flops performed (both sizes fit one symmetric block): syrk n^2 g for each set, 2 n^2 g for synth x real
    flops = 4.0 * n * n * g
    out["fidelity_blas_gflops"] = flops / out["fidelity_s"] / 1e9
    out["fidelity_share_of_peak"] = flops / out["fidelity_s"] / peak
    out["fidelity_float32_s"], out["fidelity_float32_cpu_s"] = settled(
        lambda: ours32.update(gg.metrics.fidelity(real, synth, k=10, dtype="float32")))
    out["naive_sklearn_s"], out["naive_sklearn_cpu_s"] = settled(
        lambda: ref.update(naive_fidelity(real.astype(np.float64), synth.astype(np.float64), k=10))
    )
    out["speedup_vs_naive"] = out["naive_sklearn_s"] / out["fidelity_s"]
    out["speedup_float32_vs_naive"] = out["naive_sklearn_s"] / out["fidelity_float32_s"]
    out["naive_agrees"] = bool(all(abs(ours[key] - ref[key]) <= 1.0 / n for key in ref))
    out["float32_agrees"] = bool(all(abs(ours32[key] - ref[key]) <= 1.0 / n for key in ref))
    out["values"] = ours
    half = n // 2
    for name, fn in (
        ("correlation_mse_s", lambda: gg.metrics.correlation_mse(real, synth)),
        ("correlation_gamma_s", lambda: gg.metrics.correlation_gamma(real, synth)),
        ("privacy_s", lambda: gg.metrics.privacy(synth, real[:half], real[half:])),
    ):
        out[name], out[name.replace("_s", "_cpu_s")] = timed(fn)
    if classifiers:
        y = np.where(rng.random(n) < 0.5, "a", "b")
        for clf in ("logreg", "mlp", "rf"):
            out[f"detectability_{clf}_s"], _ = timed(lambda: gg.metrics.detectability(
                real[:half], synth[:half], real[half:], synth[half:], classifier=clf))
            out[f"utility_{clf}_s"], _ = timed(lambda: gg.metrics.utility(
                synth[:half], real[half:], classifier=clf, synth_labels=y[:half], test_labels=y[half:]))
    return out


MEMORY_CHILD = r"""
import json, resource, sys, time, tracemalloc
import numpy as np
import anndata  # noqa: F401 - imported lazily by the first metrics call: kept out of the timing
import torch  # noqa: F401 - mapped by the current code's import (about 0.7 GB of RSS); the same base for older code
import gemmgan_sc as gg
import gemmgan_sc.metrics
def rss(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field)) / 2**20
n, g = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(2)
real = rng.standard_normal((n, g), dtype=np.float32)
synth = rng.standard_normal((n, g), dtype=np.float32)
rss_before = rss("VmRSS")
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
t = time.perf_counter()
c = time.process_time()
out = gg.metrics.fidelity(real, synth, k=10)
sec = time.perf_counter() - t
cpu = time.process_time() - c
peak = tracemalloc.get_traced_memory()[1] - base
tracemalloc.stop()
# VmHWM (peak RSS of this process image); ru_maxrss would carry the parent's peak across exec on Linux
hwm = rss("VmHWM")
print(json.dumps({"n": n, "genes": g, "seconds": sec, "cpu_seconds": cpu, "tracemalloc_peak_gib": peak / 2**30,
                  "inputs_float32_gib": 2 * n * g * 4 / 2**30, "peak_rss_gib": hwm, "rss_before_call_gib": rss_before,
                  "peak_rss_above_start_gib": hwm - rss_before, "values": out}))
"""


FIDELITY_CHILD = r"""
import json, sys, time
import numpy as np
import gemmgan_sc as gg
import gemmgan_sc.metrics
n, g, dtype = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
warm = np.random.default_rng(0).standard_normal((50, 20))
gg.metrics.fidelity(warm, warm, k=3)  # first-call overheads out of the timing
rng = np.random.default_rng(1)  # the data of speed()
real = rng.standard_normal((n, g), dtype=np.float32)
synth = (rng.standard_normal((n, g), dtype=np.float32) * 1.1 + 0.05).astype(np.float32)
time.sleep(float(sys.argv[4]))
t, c = time.perf_counter(), time.process_time()
out = gg.metrics.fidelity(real, synth, k=10, dtype=dtype)
print(json.dumps({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "values": out,
                  "module": gg.__file__}))
"""


def child_env(src: Path | None) -> dict:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(src)
    return env


def compare(old_src: Path, n: int, rounds: int, settle: float) -> list[dict]:
    """Fidelity of the old and the current code in fresh child processes, alternating."""
    runs = []
    for r in range(rounds):
        for dtype in ("float64", "float32"):
            order = [("before", old_src), ("after", None)]
            for code, src in order if r % 2 == 0 else order[::-1]:
                res = subprocess.run([sys.executable, "-c", FIDELITY_CHILD, str(n), str(GENES), dtype, str(settle)],
                                     capture_output=True, text=True, check=True, env=child_env(src))
                row = {"round": r, "code": code, "dtype": dtype, "n": n, "genes": GENES,
                       "load_average": os.getloadavg(), **json.loads(res.stdout.strip().splitlines()[-1])}
                print(json.dumps({k: v for k, v in row.items() if k != "values"}), flush=True)
                runs.append(row)
    return runs


def summarize(runs: list[dict]) -> dict:
    """Median wall and CPU seconds per code and dtype, and the after/before ratios."""
    out = {}
    for dtype in ("float64", "float32"):
        med = {code: {key: float(np.median([r[key] for r in runs if r["code"] == code and r["dtype"] == dtype]))
                      for key in ("wall_s", "cpu_s")} for code in ("before", "after")}
        same = all(r["values"] == runs[0]["values"] for r in runs if r["dtype"] == dtype)
        out[dtype] = {**{f"{c}_{k}": v for c, m in med.items() for k, v in m.items()},
                      "ratio_wall": med["after"]["wall_s"] / med["before"]["wall_s"],
                      "ratio_cpu": med["after"]["cpu_s"] / med["before"]["cpu_s"], "values_identical": same}
    return out


def memory(n: int, g: int, src: Path | None = None) -> dict:
    res = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(n), str(g)], capture_output=True, text=True,
                         check=True, env=child_env(src))
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["naive_full_matrices_gib"] = 3 * n * n * 8 / 2**30  # what three float64 n x n matrices would take
    return out


def write_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, not the figures)")
    parser.add_argument("--classifiers", action="store_true", help="also time detectability and utility at the first size")
    parser.add_argument("--big-n", type=int, default=20_000)
    parser.add_argument("--big-genes", type=int, default=2_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--memory-only", action="store_true", help="redo only the memory part of an existing result")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds of pause before each fidelity timing, so freed memory is handed back first")
    parser.add_argument("--compare", type=Path, default=None, metavar="OLD_SRC",
                        help="time the older code's fidelity (its src folder) against the current, alternating")
    parser.add_argument("--compare-n", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.compare is not None:
        result = {"machine": machine(), "mode": "compare", "old_src": str(args.compare)}
        result["compare_runs"] = compare(args.compare, args.compare_n, args.rounds, args.settle)
        result["compare_summary"] = summarize(result["compare_runs"])
        print(json.dumps(result["compare_summary"], indent=1))
        result["memory_before"] = memory(args.big_n, args.big_genes, args.compare)
        result["memory"] = memory(args.big_n, args.big_genes)
        for key in ("memory_before", "memory"):
            print(key, json.dumps({k: v for k, v in result[key].items() if k != "values"}))
        result["load_average_at_end"] = os.getloadavg()
        write_atomic(args.out, result)
        print(f"written {args.out}")
        return
    if args.memory_only:
        result = json.loads(args.out.read_text())
        result["memory"] = memory(args.big_n, args.big_genes)
        result["memory"]["load_average_at_end"] = os.getloadavg()
        print(json.dumps({k: v for k, v in result["memory"].items() if k != "values"}))
        write_atomic(args.out, result)
        return
    sizes = [(300, 2000)] if args.quick else [(2000, GENES), (5000, GENES)]
    big = (2000, 500) if args.quick else (args.big_n, args.big_genes)
    result = {"machine": machine(), "quick": args.quick}
    peak = matmul_peak(sizes[0][0], sizes[0][1])
    result["numpy_matmul_peak_gflops"] = peak / 1e9
    print(f"numpy float64 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    result["speed"] = []
    for i, (n, g) in enumerate(sizes):
        row = speed(n, g, peak, classifiers=args.classifiers and i == 0, settle=0.0 if args.quick else args.settle)
        result["speed"].append(row)
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "values"}
        print(json.dumps(shown))
    result["memory"] = memory(*big)
    print(json.dumps({k: v for k, v in result["memory"].items() if k != "values"}))
    result["maxrss_parent_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result["load_average_at_end"] = os.getloadavg()
    write_atomic(args.out, result)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
