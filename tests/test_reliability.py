"""Faults: interrupted embedding is repaired by a re-run; damaged model folders are refused with clear errors;
failed writes leave the old file; seeding has no process-wide side effect."""

import json

import numpy as np
import pandas as pd
import pytest

import gemmgan_sc as gg
from cohorts import SMALL, make_cohort
from gemmgan_sc.data import PatchStore


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    adata = gg.datasets.demo(n_samples=3, n_genes=50, cache_dir=tmp / "cache")
    gg.pp.tile_slides(adata, tile_size=64, store=str(tmp / "p.zarr"))
    return adata


def test_interrupted_embed_tiles_is_repaired_by_a_rerun(tiled, monkeypatch):
    adata = tiled.copy()
    store_path = adata.uns["gemmgan"]["patch_store"]
    real_add = PatchStore.add
    calls = {"n": 0}

    def add_then_die(self, slide_id, features=None, coords=None, overwrite=True):
        if features is not None:
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("killed while writing the second slide")
        return real_add(self, slide_id, features, coords, overwrite)

    monkeypatch.setattr(PatchStore, "add", add_then_die)
    with pytest.raises(KeyboardInterrupt):
        gg.pp.embed_tiles(adata, encoder="hed-texture", num_workers=0)
    monkeypatch.undo()
    store = PatchStore(store_path)
    assert len(store.embedded_slide_ids) == 1  # only complete slides read as embedded
    with pytest.raises(KeyError):
        gg.GeMMGAN.setup_anndata(adata, patch_store=store_path)
    gg.pp.embed_tiles(adata, encoder="hed-texture", num_workers=0)  # resumes: the missing slides are written
    assert len(PatchStore(store_path).embedded_slide_ids) == adata.n_obs
    gg.GeMMGAN.setup_anndata(adata, patch_store=store_path, text_key=None, layer="log1p")


@pytest.mark.parametrize("damage", ["drop_registry", "drop_scaler", "drop_weight", "bad_json"])
def test_damaged_model_folders_are_refused(tmp_path, damage):
    from safetensors.numpy import load_file, save_file

    adata, store = make_cohort(tmp_path, n=20, decided_by="image")
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    model = gg.GeMMGAN(adata, **SMALL).train(max_epochs=1, batch_size=10, n_critic=1)
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "model.json").read_text())
    tensors = load_file(str(path / "model.safetensors"))
    if damage == "drop_registry":
        del meta["registry"]
        (path / "model.json").write_text(json.dumps(meta))
        match = "registry"
    elif damage == "bad_json":
        (path / "model.json").write_text("{not json")
        match = "not valid JSON"
    else:
        prefix = "scaler." if damage == "drop_scaler" else "net.generator"
        victim = next(k for k in tensors if k.startswith(prefix))
        del tensors[victim]
        save_file(tensors, str(path / "model.safetensors"))
        match = "Normalisation statistics" if damage == "drop_scaler" else "missing"
    with pytest.raises(ValueError, match=match):
        gg.GeMMGAN.load(path, adata=adata)


# ----------------------------------------------------------------------------- settings: seed vs determinism
def test_seed_does_not_switch_deterministic_algorithms_on():
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        gg.settings.seed = 3
        assert not torch.are_deterministic_algorithms_enabled()  # seeding has no process-wide side effect
        assert not gg.settings.deterministic
        gg.settings.deterministic = True
        assert torch.are_deterministic_algorithms_enabled() and gg.settings.deterministic
        assert "deterministic=True" in repr(gg.settings)
        gg.settings.deterministic = False
        assert not torch.are_deterministic_algorithms_enabled()
        with pytest.raises(ValueError, match="deterministic"):
            gg.settings.deterministic = 1
    finally:
        gg.settings.seed = None
        gg.settings.deterministic = False
        torch.use_deterministic_algorithms(before)


# ----------------------------------------------------------------------------- shared writers and checks
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    from gemmgan_sc._io import atomic_write, atomic_write_text

    target = atomic_write_text(tmp_path / "a.txt", "old")

    def fail(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # the temporary file is gone
    seen = []
    atomic_write(tmp_path / "sub" / "b.h5ad", lambda p: seen.append(p) or p.write_text("x"))
    assert (tmp_path / "sub" / "b.h5ad").read_text() == "x" and not seen[0].exists()
    assert seen[0].name.startswith(".b.h5ad.") and seen[0].suffix == ".tmp"  # no "*.h5ad" glob sees it


def test_json_safe_for_json_and_for_uns(tmp_path):
    from pathlib import Path

    from gemmgan_sc._io import json_safe, uns_safe

    value = {"a": np.float32(1.5), "b": (np.int64(2), None), "c": None, "d": Path("/x"), "e": float("nan"),
             "f": np.arange(2)}
    assert json_safe(value) == {"a": 1.5, "b": [2, None], "c": None, "d": "/x", "e": None, "f": [0, 1]}
    safe = uns_safe(value)
    assert set(safe) == {"a", "b", "d", "e", "f"} and safe["b"] == [2] and np.isnan(safe["e"])
    import anndata as ad

    adata = ad.AnnData(np.zeros((1, 1), np.float32))
    adata.uns["p"] = safe
    adata.write_h5ad(tmp_path / "u.h5ad")  # h5ad stores what uns_safe gives
    assert ad.read_h5ad(tmp_path / "u.h5ad").uns["p"]["d"] == "/x"


def test_check_anndata_and_synthetic_uns():
    import anndata as ad

    from gemmgan_sc._io import check_anndata, synthetic_uns

    with pytest.raises(TypeError, match="Expected an AnnData"):
        check_anndata(np.zeros((2, 2)))
    no_genes = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]))
    check_anndata(no_genes, genes=False)  # slides need rows only
    with pytest.raises(ValueError, match="empty"):
        check_anndata(no_genes)
    dup = ad.AnnData(np.zeros((2, 2), np.float32))
    dup.var_names = ["g", "g"]
    with pytest.raises(ValueError, match="Duplicated var_names"):
        check_anndata(dup)
    assert synthetic_uns("GeMMGAN", 10, 2) == {"model": "GeMMGAN", "n_samples": 10, "n_samples_per_row": 2}
    assert synthetic_uns("WGANGP", 7)["n_samples_per_row"] == 0
    with pytest.raises(ValueError, match="n_rows"):
        synthetic_uns("WGANGP", -1)
