"""Write the "legacy_v1" fixtures: tiny saved models of the format before the fusion network moved to torch's layers.

Run once, with the code of that format (commit a2e9f55, the fast CPU layers of ``gemmgan_sc.nn``)::

    git worktree add /tmp/old HEAD   # at a2e9f55
    PYTHONPATH=/tmp/old/src python tests/data/legacy_v1/make_fixture.py

It writes, next to this script:

``gemmgan/``, ``patches.zarr/``
    A GeMMGAN (image + text, paper variant) saved with ``save_anndata=True``, and its patch store. The registry
    in ``gemmgan/model.json`` holds the absolute store path of the machine that wrote it; the tests copy the
    fixture and point the registry at the copied store.
``gemmgan_expected.npy``, ``gemmgan_genes.txt``
    ``model.sample(seed=0).X`` and its gene names.
``gemmgan_fusion.npz``
    Fixed fusion inputs and the outputs of the saved generator and critic fusion networks on them (eval mode).
``fusion_authors_code.safetensors``, ``fusion_authors_code.npz``
    A ConditionFusion of the authors' variant (no training) and its outputs on fixed inputs.
``fusion_ablations.safetensors``, ``fusion_ablations.npz``
    One ConditionFusion per conditioning mode and variant (keys prefixed ``<mode>.<variant>.``) and its outputs.
``wgangp/``, ``wgangp_expected.npy``, ``wgangp_genes.txt``
    The same for an unconditional WGANGP.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/ for cohorts.py

import gemmgan_sc as gg  # noqa: E402
from cohorts import make_cohort  # noqa: E402

FUSION = dict(d_model=16, n_heads=2, n_layers=1, d_ff=32)
GEMMGAN = dict(FUSION, n_latent=8, n_patches=4, hidden=(16, 16))
TRAIN = dict(max_epochs=1, batch_size=8, seed=0, accelerator="cpu", devices=1)


def fusion_inputs(patch_dim: int, text_dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Fixed inputs with a padded tile and padded tokens (the masks must be honoured identically)."""
    rng = np.random.default_rng(seed)
    patch_mask = np.ones((3, 4), bool)
    patch_mask[0, 2:] = False
    text_mask = np.ones((3, 6), bool)
    text_mask[1, 3:] = False
    return {
        "patches": rng.normal(size=(3, 4, patch_dim)).astype(np.float32),
        "patch_mask": patch_mask,
        "text": rng.normal(size=(3, 6, text_dim)).astype(np.float32),
        "text_mask": text_mask,
    }


def fusion_outputs(fusions: dict[str, torch.nn.Module], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    cond = {k: torch.from_numpy(v) for k, v in inputs.items()}
    out = {}
    with torch.no_grad():
        for name, fusion in fusions.items():
            out[name] = fusion.eval().from_conditions(cond).numpy()
    return out


def save_expected(model, prefix: str) -> None:
    synth = model.sample(seed=0)
    np.save(HERE / f"{prefix}_expected.npy", np.asarray(synth.X, dtype=np.float32))
    (HERE / f"{prefix}_genes.txt").write_text("\n".join(map(str, synth.var_names)) + "\n")


def make_gemmgan(tmp: Path) -> None:
    tmp.mkdir(parents=True)
    adata, store = make_cohort(tmp, n=24, n_genes=30, n_marker=10, patch_dim=16, text_dim=12, tiles=(2, 6))
    shutil.copytree(store, HERE / "patches.zarr")
    gg.GeMMGAN.setup_anndata(adata, patch_store=str(HERE / "patches.zarr"))
    model = gg.GeMMGAN(adata, **GEMMGAN)
    model.train(**TRAIN)
    model.save(HERE / "gemmgan", save_anndata=True)
    save_expected(model, "gemmgan")
    inputs = fusion_inputs(16, 12)
    nets = model.networks
    outputs = fusion_outputs({"gen_condition": nets.gen_condition, "critic_condition": nets.critic_condition}, inputs)
    np.savez(HERE / "gemmgan_fusion.npz", **inputs, **outputs)


def make_authors_fusion() -> None:
    torch.manual_seed(0)
    fusion = gg.nn.ConditionFusion(16, 12, variant="authors_code", dropout=0.1, **FUSION)
    save_file({k: v.contiguous() for k, v in fusion.state_dict().items()}, str(HERE / "fusion_authors_code.safetensors"))
    inputs = fusion_inputs(16, 12, seed=1)
    np.savez(HERE / "fusion_authors_code.npz", **inputs, **fusion_outputs({"fusion": fusion}, inputs))


def make_ablations() -> None:
    inputs = fusion_inputs(16, 12, seed=2)
    tensors, outputs = {}, {}
    for mode in gg.nn.CONDITIONING_MODES:
        for variant in gg.nn.FUSION_VARIANTS:
            torch.manual_seed(0)
            fusion = gg.nn.ConditionFusion(16, 12, conditioning=mode, variant=variant, dropout=0.1, **FUSION)
            with torch.no_grad():  # move FiLM off the identity, so that where it is applied matters
                for p in fusion.parameters():
                    p.add_(0.1 * torch.randn_like(p))
            tensors.update({f"{mode}.{variant}.{k}": v.contiguous() for k, v in fusion.state_dict().items()})
            outputs[f"{mode}.{variant}"] = fusion_outputs({"f": fusion}, inputs)["f"]
    save_file(tensors, str(HERE / "fusion_ablations.safetensors"))
    np.savez(HERE / "fusion_ablations.npz", **inputs, **outputs)


def make_wgangp(tmp: Path) -> None:
    adata, _ = make_cohort(tmp, n=24, n_genes=30, n_marker=10, with_image=False, with_text=False)
    gg.WGANGP.setup_anndata(adata)
    model = gg.WGANGP(adata, n_latent=8, hidden=(16, 16))
    model.train(**TRAIN)
    model.save(HERE / "wgangp", save_anndata=True)
    save_expected(model, "wgangp")


def main() -> None:
    import tempfile

    gg.settings.progress_bar = False
    for name in ("gemmgan", "wgangp", "patches.zarr"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        make_gemmgan(Path(tmp) / "g")
        make_wgangp(Path(tmp) / "w")
    make_authors_fusion()
    make_ablations()
    print(f"fixtures written to {HERE} by gemmgan_sc {gg.__version__} from {gg.__file__}")


if __name__ == "__main__":
    main()
