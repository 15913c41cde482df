"""Faults: interrupted embedding is repaired by a re-run; damaged model folders are refused with clear errors."""

import json

import numpy as np
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
