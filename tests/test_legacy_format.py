"""Saved models of format 1 (the fast CPU layers of gemmgan-sc 0.1.0, fixtures in tests/data/legacy_v1, written by
make_fixture.py there) still load and generate what they generated when they were saved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import gemmgan_sc as gg
from gemmgan_sc.nn import ConditionFusion, upgrade_state_dict

FIXTURE = Path(__file__).parent / "data" / "legacy_v1"
FUSION = dict(d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.1)


@pytest.fixture()
def fixture_copy(tmp_path):
    """The fixture copied to tmp_path, with the registry's patch-store path pointing at the copied store."""
    folder = tmp_path / "legacy_v1"
    shutil.copytree(FIXTURE, folder)
    meta_path = folder / "gemmgan" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["registry"]["patch_store"] = str(folder / "patches.zarr")
    meta_path.write_text(json.dumps(meta, indent=1))
    return folder


def _saved_adata(folder: Path, name: str) -> ad.AnnData:
    adata = ad.read_h5ad(folder / name / "adata.h5ad")
    setup = adata.uns.get("_gemmgan_setup")
    if setup is not None and setup.get("patch_store"):
        setup["patch_store"] = str(folder / "patches.zarr")
    return adata


def _assert_same_profiles(synth: ad.AnnData, name: str) -> None:
    expected = np.load(FIXTURE / f"{name}_expected.npy")
    genes = (FIXTURE / f"{name}_genes.txt").read_text().split()
    assert synth.n_obs == expected.shape[0]
    # compare only the genes the saved model generates (newer defaults may keep more genes of the AnnData)
    assert set(genes) <= set(map(str, synth.var_names))
    got = np.asarray(synth[:, genes].X, dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,cls", [("gemmgan", gg.GeMMGAN), ("wgangp", gg.WGANGP)])
def test_saved_model_of_format_1_samples_as_when_saved(fixture_copy, name, cls):
    model = cls.load(fixture_copy / name, adata=_saved_adata(fixture_copy, name))
    _assert_same_profiles(model.sample(seed=0), name)


def _fusion_state(folder: Path, prefix: str) -> dict[str, torch.Tensor]:
    tensors = load_file(str(folder / "gemmgan" / "model.safetensors"))
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _inputs(npz) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(npz[k]) for k in ("patches", "patch_mask", "text", "text_mask")}


@pytest.mark.parametrize("part", ["gen_condition", "critic_condition"])
def test_format_1_fusion_weights_load_strictly_and_give_the_saved_outputs(part):
    state = upgrade_state_dict(_fusion_state(FIXTURE, f"net.{part}."))
    fusion = ConditionFusion(16, 12, **FUSION)
    fusion.load_state_dict(state, strict=True)
    saved = np.load(FIXTURE / "gemmgan_fusion.npz")
    with torch.no_grad():
        out = fusion.eval().from_conditions(_inputs(saved))
    np.testing.assert_allclose(out.numpy(), saved[part], rtol=0, atol=1e-5)


def test_format_1_authors_variant_loads_strictly_and_gives_the_saved_outputs():
    fusion = ConditionFusion(16, 12, variant="authors_code", **FUSION)
    fusion.load_state_dict(upgrade_state_dict(load_file(str(FIXTURE / "fusion_authors_code.safetensors"))))
    saved = np.load(FIXTURE / "fusion_authors_code.npz")
    with torch.no_grad():
        out = fusion.eval().from_conditions(_inputs(saved))
    np.testing.assert_allclose(out.numpy(), saved["fusion"], rtol=0, atol=1e-5)


def test_upgrade_state_dict_returns_a_new_dict_and_keeps_current_ones():
    fusion = ConditionFusion(16, 12, **FUSION)
    state = fusion.state_dict()
    upgraded = upgrade_state_dict(state)
    assert upgraded is not state and upgraded.keys() == state.keys()
    assert all(torch.equal(upgraded[k], v) for k, v in state.items())


def test_upgrade_state_dict_rejects_what_is_not_a_state_dict():
    with pytest.raises(TypeError, match="mapping"):
        upgrade_state_dict([("a", torch.zeros(1))])
    with pytest.raises(TypeError, match="torch.from_numpy"):
        upgrade_state_dict({"a": np.zeros(1)})
    with pytest.raises(TypeError, match="keys must be str"):
        upgrade_state_dict({1: torch.zeros(1)})


@pytest.mark.parametrize("mode,variant", [(m, v) for m in gg.nn.CONDITIONING_MODES for v in gg.nn.FUSION_VARIANTS])
def test_format_1_fusion_of_every_ablation_gives_the_saved_outputs(mode, variant):
    prefix = f"{mode}.{variant}."
    tensors = load_file(str(FIXTURE / "fusion_ablations.safetensors"))
    state = upgrade_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    fusion = ConditionFusion(16, 12, conditioning=mode, variant=variant, **FUSION)
    fusion.load_state_dict(state, strict=True)
    saved = np.load(FIXTURE / "fusion_ablations.npz")
    with torch.no_grad():
        out = fusion.eval().from_conditions(_inputs(saved))
    np.testing.assert_allclose(out.numpy(), saved[f"{mode}.{variant}"], rtol=0, atol=1e-5)
