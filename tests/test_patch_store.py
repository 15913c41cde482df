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
