"""Descriptions per second embedded with MiniLM at max_length 300: batched (gg) vs a naive loop.

Run:  python benchmarks/text_embedding.py [--device cpu] [--n 512] [--n-full 128] [--naive-n 32] [--repeats 3]

Texts: descriptions written by ``gg.pp.clinical_to_text`` from the real TCGA LUAD+BLCA tables in
../shared/data/tcga_mcat (about 21 words, ~35 tokens), else from built-in GDC-style records. A second
set ("full") repeats each description until it passes 300 tokens, so every input is truncated to
exactly 300 tokens: the cost of descriptions as long as the paper's (~200 words).
Writes benchmarks/results/text_embedding.json (atomically) with the machine details.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "tcga_mcat"


def _machine() -> dict:
    sys.path.insert(0, str(HERE))
    try:
        from _machine import machine_info

        return machine_info()
    except ImportError:
        import platform

        import torch

        return {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }


def _descriptions(n: int) -> tuple[list[str], str]:
    import pandas as pd

    import gemmgan_sc as gg

    if SHARED.is_dir():
        keep = ["case_id", "is_female", "oncotree_code", "age", "survival_months", "censorship"]
        table = pd.concat(
            [pd.read_csv(SHARED / f"tcga_{c}_all_clean.csv.gz", usecols=keep) for c in ("luad", "blca")],
            ignore_index=True,
        )
        texts = gg.pp.clinical_to_text(table).tolist()
        source = "TCGA LUAD+BLCA tables (MCAT), clinical_to_text template"
    else:
        base = [
            {"primary_site": "Bronchus and lung", "demographic": {"gender": g, "vital_status": v},
             "diagnoses": [{"primary_diagnosis": d, "age_at_diagnosis": a, "ajcc_pathologic_stage": s}]}
            for g, v, d, a, s in [
                ("male", "Alive", "Adenocarcinoma, NOS", 24000, "Stage IB"),
                ("female", "Dead", "Squamous cell carcinoma, NOS", 26000, "Stage IIIA"),
                ("female", "Alive", "Transitional cell carcinoma", 22000, "Stage II"),
            ]
        ]
        texts = gg.pp.clinical_to_text(base)
        source = "built-in GDC-style records (shared data absent)"
    reps = -(-n // len(texts))
    return (texts * reps)[:n], source


def _naive(enc, texts: list[str], max_length: int) -> float:
    """One text at a time, padded to max_length, as a first attempt would do."""
    import torch

    out = np.zeros((len(texts), max_length, enc.dim), dtype=np.float16)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i, t in enumerate(texts):
            b = enc.tokenizer(t, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
            h = enc.model(**{k: v.to(enc.device) for k, v in b.items()}).last_hidden_state
            out[i] = h[0].float().cpu().numpy().astype(np.float16)
    return time.perf_counter() - t0


def _batched(enc, texts: list[str], max_length: int, batch_size: int) -> float:
    t0 = time.perf_counter()
    enc.encode(texts, max_length=max_length, batch_size=batch_size, progress=False)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="template descriptions for the batched run")
    ap.add_argument("--n-full", type=int, default=128, help="300-token descriptions for the batched run")
    ap.add_argument("--naive-n", type=int, default=32, help="descriptions for the one-at-a-time loop")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(HERE / "results" / "text_embedding.json"))
    args = ap.parse_args(argv)

    import transformers

    import gemmgan_sc as gg
    from gemmgan_sc.encoders import get_text_encoder

    gg.settings.progress_bar = False
    enc = get_text_encoder("minilm", device=args.device)
    short, source = _descriptions(args.n)
    n_tok = enc.token_lengths(short)
    full = []
    for t in short[: args.n_full]:
        r = t
        while enc.token_lengths([r])[0] <= args.max_length:
            r = r + " " + t
        full.append(r)
    _batched(enc, short[: args.batch_size], args.max_length, args.batch_size)  # warm-up
    _naive(enc, short[:4], args.max_length)

    results = {}
    load_before = os.getloadavg()
    for name, texts in (("template", short), ("full", full[: args.n_full])):
        m = min(args.naive_n, len(texts))
        # best of --repeats, interleaved: robust to other processes sharing the CPU
        tb, tn = float("inf"), float("inf")
        for _ in range(args.repeats):
            tb = min(tb, _batched(enc, texts, args.max_length, args.batch_size))
            tn = min(tn, _naive(enc, texts[:m], args.max_length))
        results[name] = {
            "n_batched": len(texts),
            "batched_s": round(tb, 3),
            "batched_texts_per_s": round(len(texts) / tb, 1),
            "n_naive": m,
            "naive_s": round(tn, 3),
            "naive_texts_per_s": round(m / tn, 1),
            "speedup": round((len(texts) / tb) / (m / tn), 2),
            "mean_tokens": float(np.mean(enc.token_lengths(texts).clip(max=args.max_length))),
            "mean_words": float(np.mean([len(t.split()) for t in texts])),
        }
    report = {
        "benchmark": "text_embedding",
        "what": "descriptions per second embedded by gg (TextEncoder.encode, length-sorted batches, inference mode) "
        "vs a naive loop (one text at a time, padded to max_length)",
        "encoder": "minilm (sentence-transformers/all-MiniLM-L6-v2, 384-d)",
        "device": str(enc.device),
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "text_source": source,
        "template_mean_raw_tokens": float(n_tok.mean()),
        "results": results,
        "repeats": args.repeats,
        "timing": "best of the repeats (the CPU may be shared with other processes)",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "transformers": transformers.__version__,
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(json.dumps(report, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(report, fh, indent=2)
    os.replace(tmp, out)
    return report


if __name__ == "__main__":
    main()
