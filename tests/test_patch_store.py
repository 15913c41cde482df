import os

import numpy as np
import pytest

from gemmgan_sc.data import PatchStore, validate_slide_id


def test_add_read_roundtrip(tmp_path, rng):
    store = PatchStore(tmp_path / "p.zarr", mode="w")
    feats = rng.normal(size=(5, 12)).astype(np.float32)
    coords = np.arange(10).reshape(5, 2) * 256
    store.add("TCGA-01.svs", feats, coords=coords)
    store.update_attrs(encoder="hed-texture", tile_size=256)
    again = PatchStore(tmp_path / "p.zarr", mode="r")
    assert again.slide_ids == ["TCGA-01.svs"]
    assert again.dim == 12
    assert again.features("TCGA-01.svs").dtype == np.float16
    np.testing.assert_allclose(again.features("TCGA-01.svs"), feats, atol=1e-2)
    np.testing.assert_array_equal(again.coords("TCGA-01.svs"), coords)
    assert again.attrs["encoder"] == "hed-texture"


def test_coords_then_features_keeps_coords(tmp_path):
    store = PatchStore(tmp_path / "p.zarr", mode="w")
    store.add("s1", coords=np.array([[0, 0], [256, 0]]))
    assert store.slide_ids == ["s1"] and store.embedded_slide_ids == []
    with pytest.raises(KeyError, match="embed_tiles"):
        store.features("s1")
    store.add("s1", np.ones((2, 4)))
    assert store.embedded_slide_ids == ["s1"]
    np.testing.assert_array_equal(store.coords("s1"), [[0, 0], [256, 0]])


def test_bank_is_contiguous_with_offsets(tmp_path):
    store = PatchStore(tmp_path / "p.zarr", mode="w")
    store.add("a", np.full((2, 3), 1.0))
    store.add("b", np.full((4, 3), 2.0))
    feats, offsets, counts = store.bank(["b", "a", "b"])
    assert feats.shape == (6, 3)
    np.testing.assert_array_equal(counts, [4, 2, 4])
    assert (feats[offsets[0] : offsets[0] + 4] == 2).all()
    assert (feats[offsets[1] : offsets[1] + 2] == 1).all()
    assert offsets[0] == offsets[2]
    with pytest.raises(KeyError, match="no features"):
        store.bank(["missing"])


@pytest.mark.parametrize("bad", ["../x", "a/b", "/abs", "..", "", ".hidden", "a\\b", "x" * 300])
def test_slide_id_validation(bad):
    with pytest.raises(ValueError, match="Invalid slide id"):
        validate_slide_id(bad)


def test_bad_features_rejected(tmp_path):
    store = PatchStore(tmp_path / "p.zarr", mode="w")
    with pytest.raises(ValueError, match="NaN"):
        store.add("a", np.array([[np.nan, 1.0]]))
    store.add("a", np.ones((1, 2)))
    with pytest.raises(ValueError, match="width 3"):
        store.add("b", np.ones((1, 3)))
    with pytest.raises(ValueError, match="must match"):
        store.add("c", np.ones((2, 2)), coords=np.zeros((3, 2)))
    with pytest.raises(FileExistsError):
        store.add("a", np.ones((1, 2)), overwrite=False)


def test_interrupted_write_is_invisible_and_cleaned(tmp_path, monkeypatch):
    store = PatchStore(tmp_path / "p.zarr", mode="w")
    store.add("a", np.ones((2, 2)))

    def crash(src, dst):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        store.add("b", np.ones((2, 2)))
    monkeypatch.undo()
    # a crash between staging and rename leaves nothing that reads as a slide
    assert PatchStore(tmp_path / "p.zarr").slide_ids == ["a"]
    PatchStore(tmp_path / "p.zarr", mode="a")
    assert not (tmp_path / "p.zarr" / ".staging").exists() or not any((tmp_path / "p.zarr" / ".staging").iterdir())


def test_read_only_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="tile_slides"):
        PatchStore(tmp_path / "nope.zarr")
    PatchStore(tmp_path / "p.zarr", mode="w").add("a", np.ones((1, 2)))
    with pytest.raises(PermissionError):
        PatchStore(tmp_path / "p.zarr").add("b", np.ones((1, 2)))


def test_slides_without_tissue_have_zero_count_in_the_bank(tmp_path):
    store = PatchStore(tmp_path / "p.zarr", mode="w")
    store.add("a", np.ones((2, 3)))
    store.add("empty", coords=np.zeros((0, 2)))
    feats, offsets, counts = store.bank(["a", "empty"])
    np.testing.assert_array_equal(counts, [2, 0])
    store.add("tiled-not-embedded", coords=np.zeros((4, 2)))
    with pytest.raises(KeyError, match="tiled-not-embedded"):
        store.bank(["tiled-not-embedded"])


def test_features_of_a_slide_without_tissue_are_empty(tmp_path):
    store = PatchStore(tmp_path / "p.zarr", mode="w")
    store.add("empty", coords=np.zeros((0, 2)))
    assert store.features("empty").shape == (0, 0)  # no features anywhere yet: width unknown
    store.add("a", np.ones((3, 5)))
    out = PatchStore(tmp_path / "p.zarr").features("empty")
    assert out.shape == (0, 5) and out.dtype == np.float16
    with pytest.raises(KeyError, match="no tissue"):
        store.features_array("empty")
    store.add("tiled", coords=np.zeros((2, 2)))
    with pytest.raises(KeyError, match="2 tiles but no features.*embed_tiles"):
        store.features("tiled")


def _bank_with_empty_rows(tmp_path):
    store = PatchStore(tmp_path / "p.zarr", mode="w")
    store.add("a", np.random.default_rng(0).normal(size=(6, 4)))
    store.add("empty", coords=np.zeros((0, 2)))
    return store


@pytest.mark.parametrize("streamed", [False, True])
def test_condition_bank_draws_for_zero_tile_rows_are_fully_masked(tmp_path, streamed):
    import torch

    from gemmgan_sc.train import ConditionBank

    store = _bank_with_empty_rows(tmp_path)
    ids = ["empty", "a", "empty"]
    if streamed:
        bank = ConditionBank(n_patches=4, stream_from=(store, ids), read_threads=1)
    else:
        patches, offsets, counts = store.bank(ids)
        bank = ConditionBank(patches=patches, offsets=offsets, counts=counts, n_patches=4)
    assert not bank.patches_always_full
    cond = bank.conditions(torch.arange(3), generator=torch.Generator().manual_seed(0))
    mask, feats = cond["patch_mask"], cond["patches"]
    assert feats.shape == (3, 4, 4) and torch.isfinite(feats.float()).all()
    assert not mask[0].any() and not mask[2].any() and mask[1].all()
    assert (feats[0] == 0).all() and (feats[2] == 0).all()


def test_condition_bank_of_only_zero_tile_rows(tmp_path):
    import torch

    from gemmgan_sc.train import ConditionBank

    store = _bank_with_empty_rows(tmp_path)
    patches, offsets, counts = store.bank(["empty", "empty"])
    assert patches.shape == (0, 4)
    feats, mask = ConditionBank(patches=patches, offsets=offsets, counts=counts, n_patches=3).draw_patches(torch.arange(2))
    assert feats.shape == (2, 3, 4) and not mask.any() and (feats == 0).all()


@pytest.mark.parametrize("variant", ["paper", "authors_code"])
@pytest.mark.parametrize("mode", ["full", "mean_image", "patch_transformer", "film", "cross_attention"])
def test_fusion_of_a_fully_masked_patch_set_is_finite(mode, variant):
    import torch

    from gemmgan_sc.nn import ConditionFusion

    torch.manual_seed(0)
    fusion = ConditionFusion(patch_dim=6, text_dim=5, d_model=8, n_heads=2, d_ff=16, dropout=0.0,
                             conditioning=mode, variant=variant).eval()
    mask = torch.tensor([[False] * 4, [True, True, False, False]])
    patches = torch.randn(2, 4, 6).masked_fill(~mask.unsqueeze(-1), 0.0)
    text, text_mask = torch.randn(2, 3, 5), torch.ones(2, 3, dtype=torch.bool)
    out = fusion(patches, mask, text, text_mask)
    assert out.shape == (2, 8) and torch.isfinite(out).all(), f"{mode}/{variant}: NaN for a slide without tiles"
