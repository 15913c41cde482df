"""Issue 17: tiles from expression (gg.TileGAN) on the her2st sections, against the same model unconditioned.

Data: the three adjacent her2st sections (C2, C3, C4) read by ``gg.datasets.read_her2st``; spot neighbourhoods
(256 px) cut into 64 px tiles by ``gg.pp.tile_spots`` (as ``benchmarks/spatial_her2st.py`` does; only the tile
coordinates are needed, no tile embedding); counts -> log1p CPM; the 200 genes of highest variance on the two
training sections (``spatial_her2st.rotations``). TileGAN trains on C2 + C3 (every spot with tiles, no validation
split) and generates one tile per spot of C4 from the spot's expression. The baseline is the same class with the
condition switched off (``conditioning="none"``: an unconditional DCGAN-style WGAN-GP) under the same wall-clock
budget (Lightning's ``max_time``), one torch thread each.

Scores on the held-out section, in the ``"hed-texture"`` feature space: Frechet distance and KID between one real
tile per spot and one generated tile per spot (the ceiling row: a second, different real tile per spot), and
conditional retrieval (top-1 / top-5: the generated tile's own spot among the spots nearest to it, references the
mean features of each spot's real tiles; four generated tiles per spot, each counted; the ceiling row: a real tile
of the spot left out of its references).

Run (one process per mode, one after the other, so each has the same CPU; about 14 minutes each)::

    python benchmarks/tilegan_her2st.py prepare
    python benchmarks/tilegan_her2st.py run --mode conditional --minutes 13     # also writes the docs figure
    python benchmarks/tilegan_her2st.py run --mode unconditional --minutes 13
    python benchmarks/tilegan_her2st.py report     # -> benchmarks/results/tilegan_her2st.json

``rescore --mode M`` scores a saved model again (evaluation only, same tiles and seeds). Settings are chosen without
C4: ``prepare --validation --work V`` trains on C2 and scores on C3; ``run --work V1 --train-kwargs
'{"mismatch_weight": 0.25}'`` (each setting in its own work folder holding V's files) and ``report --extra
name=V1 ...`` adds those runs to the result file (``extra_runs``), as the ablation on C4 with ``mismatch_weight=0``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gemmgan_sc as gg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "her2st"
RESULTS = ROOT / "benchmarks" / "results"
FIGURE = ROOT / "docs" / "figures" / "tilegan_her2st.png"
WORK = Path(tempfile.gettempdir()) / "gemmgan_tilegan_her2st"
HELD_OUT = "C4"
MODEL = {"image_size": 64, "channels": 16, "max_channels": 256, "n_latent": 128, "embed_dim": 128,
         "vae_latent": 200, "vae_hidden": (1024, 512), "max_tiles_per_slide": 16}
N_REAL_PER_SPOT = 16  # real tiles read per held-out spot (a 256 px neighbourhood holds at most 16)
N_GENERATED_PER_SPOT = 4  # generated tiles per held-out spot scored by retrieval (Frechet / KID: the first one)


def prepare(data: Path, work: Path, validation: bool = False) -> dict:
    """Tile the sections, write the training and held-out AnnData (200 genes, log1p CPM in ``X``).

    ``validation``: C4 is left out altogether; train on C2, score on C3 (to choose settings without the test
    section)."""
    from spatial_her2st import LAYER, SECTIONS, rotations

    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    sections = [s for s in SECTIONS if s != HELD_OUT] if validation else list(SECTIONS)
    held_out = sections[-1] if validation else HELD_OUT
    adata = gg.datasets.read_her2st(data, sections=sections)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # spots without tissue are listed in uns
        gg.pp.tile_spots(adata, library_key="library_id", tile_size=64, neighbourhood_px=256,
                         store=work / "her2st_t64_n256.zarr")
    counts = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    adata.layers[LAYER] = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e6).astype(np.float32)
    rot = next(r for r in rotations(adata) if r.name == f"test={held_out}")
    facts = {"sections_train": [s for s in sections if s != held_out], "section_test": held_out,
             "n_spots": int(adata.n_obs), "n_tiles": int(adata.obs["n_tiles"].sum()),
             "n_spots_without_tiles": int((adata.obs["n_tiles"] == 0).sum()), "n_genes": int(rot.train.n_vars)}
    for name, part in (("train", rot.train), ("test", rot.test)):
        part = part[part.obs["n_tiles"].to_numpy() > 0].copy()
        for key in list(part.obsm):
            del part.obsm[key]
        part.write_h5ad(work / f"{name}.h5ad")
        facts[f"n_{name}_spots"] = int(part.n_obs)
    facts["prepare_seconds"] = round(time.perf_counter() - t0, 1)
    (work / "prepare.json").write_text(json.dumps(facts, indent=1))
    return facts


def _scores(model, test, seed: int = 0) -> dict:
    """Frechet / KID / retrieval of one generated tile per held-out spot, and the real-tile ceiling rows."""
    enc = gg.encoders.get_image_encoder("hed-texture")
    real = model.real_tiles(test, n_per_row=N_REAL_PER_SPOT, seed=seed)
    feats = gg.metrics.image_features(real.tiles, enc)
    first = np.r_[True, real.rows[1:] != real.rows[:-1]]  # the first real tile of each spot
    second = np.r_[False, first[:-1]] & ~first  # its second tile (spots with >= 2 tiles)
    fake = model.sample(test, n_per_row=N_GENERATED_PER_SPOT, seed=seed)
    fake_feats = gg.metrics.image_features(fake.tiles, enc)
    one = slice(None, None, N_GENERATED_PER_SPOT)  # the first generated tile of each spot
    out = {
        "frechet": gg.metrics.image_frechet(feats[first], fake_feats[one], encoder=enc.name).to_dict(),
        "kid": gg.metrics.image_kid(feats[first], fake_feats[one], encoder=enc.name, seed=seed).to_dict(),
        # every generated tile counts (4 per spot: the same expectation as one, a quarter of the variance)
        "retrieval": gg.metrics.tile_retrieval(fake_feats, fake.rows, feats, real.rows, encoder=enc.name),
        "retrieval_first_tile_only": gg.metrics.tile_retrieval(fake_feats[one], fake.rows[one], feats, real.rows,
                                                               encoder=enc.name),
        "retrieval_pooled": gg.metrics.tile_retrieval(fake_feats, fake.rows, feats, real.rows, encoder=enc.name,
                                                      standardize="pooled"),
    }
    two = np.isin(real.rows, real.rows[second])
    ceiling = {
        "frechet": gg.metrics.image_frechet(feats[first & two], feats[second], encoder=enc.name).to_dict(),
        "kid": gg.metrics.image_kid(feats[first & two], feats[second], encoder=enc.name, seed=seed).to_dict(),
        # a real tile of each spot, its spot's references made of the spot's other tiles
        "retrieval": gg.metrics.tile_retrieval(feats[first & two], real.rows[first & two], feats[two & ~first],
                                               real.rows[two & ~first], encoder=enc.name),
    }
    return {"model": out, "real_ceiling": ceiling, "n_real_tiles": int(len(real)), "n_generated": int(len(fake))}


def run(mode: str, minutes: float, work: Path, seed: int = 0, max_steps: int = 100_000,
        train_kwargs: dict | None = None) -> dict:
    import torch

    torch.set_num_threads(1)
    gg.settings.progress_bar = False
    import anndata as ad

    import gemmgan_sc.metrics._image  # noqa: F401  (everything the run uses, imported now: no lazy import later)
    import gemmgan_sc.pl._generated_tiles  # noqa: F401

    train, test = ad.read_h5ad(work / "train.h5ad"), ad.read_h5ad(work / "test.h5ad")
    gg.TileGAN.setup_anndata(train, slide_key="slide_id")
    conditioning = {"conditional": "expression", "unconditional": "none"}[mode]
    model = gg.TileGAN(train, conditioning=conditioning, **MODEL)
    t0 = time.perf_counter()
    model.train(max_steps=max_steps, preset="cpu", train_size=1.0, seed=seed, accelerator="cpu",
                max_time={"seconds": int(minutes * 60)}, **(train_kwargs or {}))
    train_seconds = time.perf_counter() - t0
    model.save(work / f"model_{mode}", overwrite=True)
    t1 = time.perf_counter()
    scores = _scores(model, test, seed=seed)
    hist = model.history
    out = {"mode": mode, "conditioning": conditioning, "hparams": model.hparams, "train_params": model.train_params,
           "steps": int(hist["step"].iloc[-1]), "epochs": int(len(hist)), "train_seconds": round(train_seconds, 1),
           "eval_seconds": round(time.perf_counter() - t1, 1), "last_losses": {
               k: float(hist[k].dropna().iloc[-1]) for k in ("critic_loss", "gradient_penalty", "generator_loss",
                                                             "wasserstein_train", "vae_loss") if k in hist},
           "scores": scores}
    (work / f"result_{mode}.json").write_text(json.dumps(out, indent=1, default=str))
    if mode == "conditional":
        figure(model, test, FIGURE)
    return out


def rescore(mode: str, work: Path, seed: int = 0) -> dict:
    """Score a saved model again (the same held-out tiles and seeds), keeping its training record."""
    import anndata as ad
    import torch

    torch.set_num_threads(1)
    gg.settings.progress_bar = False
    train, test = ad.read_h5ad(work / "train.h5ad"), ad.read_h5ad(work / "test.h5ad")
    model = gg.TileGAN.load(work / f"model_{mode}", adata=train)
    record = json.loads((work / f"result_{mode}.json").read_text())
    t0 = time.perf_counter()
    record["scores"] = _scores(model, test, seed=seed)
    record["eval_seconds"] = round(time.perf_counter() - t0, 1)
    (work / f"result_{mode}.json").write_text(json.dumps(record, indent=1, default=str))
    return record


def figure(model, test, path: Path, n: int = 8, seed: int = 0) -> None:
    """Real vs generated tiles of ``n`` held-out spots spread over the section (evenly spaced rows)."""
    import matplotlib

    matplotlib.use("Agg")
    rows = np.linspace(0, test.n_obs - 1, n).round().astype(int)
    path.parent.mkdir(parents=True, exist_ok=True)
    gg.pl.generated_tiles(model, test, rows=rows, n_per_row=2, seed=seed, show=False, save=path)


def _run_summary(work: Path, mode: str = "conditional") -> dict:
    """The settings and held-out scores of one saved run (a validation or ablation work folder)."""
    record = json.loads((work / f"result_{mode}.json").read_text())
    facts = json.loads((work / "prepare.json").read_text())
    scores = record["scores"]["model"]
    return {"sections_train": facts["sections_train"], "section_test": facts["section_test"], "mode": mode,
            "mismatch_weight": record["train_params"].get("mismatch_weight"), "steps": record["steps"],
            "train_seconds": record["train_seconds"], "frechet": scores["frechet"]["value"],
            "kid": scores["kid"]["value"], **{f"retrieval_{k}": scores["retrieval"][k]
                                              for k in ("top1", "top5", "ratio_top5", "mean_rank", "n_rows")}}


def report(work: Path, out: Path, extra: dict[str, Path] | None = None) -> dict:
    """Write the result file from the two runs in ``work`` (and the runs of ``extra``: name -> work folder)."""
    from _machine import machine_info

    facts = json.loads((work / "prepare.json").read_text())
    modes = {m: json.loads((work / f"result_{m}.json").read_text()) for m in ("conditional", "unconditional")}
    cond, unc = (modes[m]["scores"]["model"] for m in ("conditional", "unconditional"))
    summary = {
        "frechet_conditional": cond["frechet"]["value"], "frechet_unconditional": unc["frechet"]["value"],
        "frechet_real_ceiling": modes["conditional"]["scores"]["real_ceiling"]["frechet"]["value"],
        "kid_conditional": cond["kid"]["value"], "kid_unconditional": unc["kid"]["value"],
        "retrieval_top1_conditional": cond["retrieval"]["top1"], "retrieval_top5_conditional": cond["retrieval"]["top5"],
        "retrieval_top1_unconditional": unc["retrieval"]["top1"],
        "retrieval_top5_unconditional": unc["retrieval"]["top5"],
        "retrieval_top5_real_ceiling": modes["conditional"]["scores"]["real_ceiling"]["retrieval"]["top5"],
        "retrieval_top5_conditional_pooled": cond["retrieval_pooled"]["top5"],
        "retrieval_top5_unconditional_pooled": unc["retrieval_pooled"]["top5"],
        "retrieval_top5_conditional_first_tile_only": cond["retrieval_first_tile_only"]["top5"],
        "chance_top1": cond["retrieval"]["chance_top1"], "chance_top5": cond["retrieval"]["chance_top5"],
        "targets": {"frechet_below_unconditional": cond["frechet"]["value"] < unc["frechet"]["value"],
                    "top5_above_2x_chance": cond["retrieval"]["top5"] > 2 * cond["retrieval"]["chance_top5"]},
    }
    result = {"issue": 17, "data": facts, "summary": summary, "runs": modes,
              "extra_runs": {name: _run_summary(path) for name, path in (extra or {}).items()},
              "figure": str(FIGURE.relative_to(ROOT)), "machine": machine_info(),
              "python": platform.python_version()}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmp.replace(out)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "run", "rescore", "report"))
    parser.add_argument("--mode", choices=("conditional", "unconditional"), default="conditional")
    parser.add_argument("--minutes", type=float, default=12.0, help="training wall-clock budget per mode (12).")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra", nargs="*", default=[], metavar="NAME=WORK",
                        help="report: also summarise the conditional run of these work folders (ablations, "
                             "validation runs).")
    parser.add_argument("--validation", action="store_true",
                        help="prepare: train on C2, hold out C3, leave C4 out (to choose settings).")
    parser.add_argument("--train-kwargs", type=json.loads, default={},
                        help='extra TileGAN.train arguments as JSON, e.g. \'{"mismatch_weight": 0}\' (an ablation).')
    parser.add_argument("--out", type=Path, default=RESULTS / "tilegan_her2st.json")
    args = parser.parse_args(argv)
    if args.step == "prepare":
        print(json.dumps(prepare(args.data, args.work, args.validation), indent=1))
    elif args.step in ("run", "rescore"):
        res = run(args.mode, args.minutes, args.work, args.seed, train_kwargs=args.train_kwargs) if (
            args.step == "run") else rescore(
            args.mode, args.work, args.seed)
        print(json.dumps({k: res[k] for k in ("mode", "steps", "train_seconds")} | {
            "frechet": res["scores"]["model"]["frechet"]["value"],
            "retrieval": res["scores"]["model"]["retrieval"]}, indent=1))
    else:
        extra = dict(item.split("=", 1) for item in args.extra)
        print(json.dumps(report(args.work, args.out, {k: Path(v) for k, v in extra.items()})["summary"], indent=1))


if __name__ == "__main__":
    main()
