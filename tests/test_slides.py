"""Slides: readers, Otsu tissue detection, tiling and embedding into the patch store."""

from __future__ import annotations

import anndata as ad
import numpy as np
import torch
import pandas as pd
import pytest

import gemmgan_sc as gg
from gemmgan_sc.data import AnnDataRegistry, PatchStore
from gemmgan_sc.pp._tiles import SlideReadError, open_slide, tile_grid, tissue_fraction

BG = (242, 240, 244)
TISSUE = (170, 80, 150)  # haematoxylin/eosin-like purple
# tissue rectangles (x0, y0, x1, y1) in level-0 px; edges are multiples of 4 (the mask downsample) but not of
# the 256 px tile grid, so tiles see fractional tissue
RECTS = [(100, 60, 900, 700), (1204, 812, 1900, 1400), (300, 1000, 520, 1180)]
W0, H0 = 2048, 1536
NO_CLEANUP = {"max_size": 512, "blur": 0, "close_radius": 0, "open_radius": 0, "min_object_size": 0, "fill_holes": 0}


def _truth() -> np.ndarray:
    m = np.zeros((H0, W0), bool)
    for x0, y0, x1, y1 in RECTS:
        m[y0:y1, x0:x1] = True
    return m


def _image(rng=None) -> np.ndarray:
    img = np.empty((H0, W0, 3), np.uint8)
    img[:] = BG
    img[_truth()] = TISSUE
    return img


def _write(path, kind: str, img: np.ndarray, mpp: float | None = 0.5) -> str:
    import tifffile
    from PIL import Image

    path = str(path)
    res = {} if mpp is None else {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    if kind == "tiff_subifd":
        with tifffile.TiffWriter(path) as tw:
            tw.write(img, tile=(256, 256), subifds=2, photometric="rgb", compression="zlib", **res)
            tw.write(img[::2, ::2], tile=(256, 256), subfiletype=1, photometric="rgb", compression="zlib")
            tw.write(img[::4, ::4], tile=(256, 256), subfiletype=1, photometric="rgb", compression="zlib")
    elif kind == "tiff_pages":  # pyramid as a chain of reduced pages (no SubIFDs)
        with tifffile.TiffWriter(path) as tw:
            tw.write(img, tile=(256, 256), photometric="rgb", **res)
            tw.write(img[::2, ::2], tile=(256, 256), photometric="rgb", subfiletype=1)
            tw.write(img[::4, ::4], tile=(256, 256), photometric="rgb", subfiletype=1)
    elif kind == "tiff_plain":  # single level, strips, uncompressed (memory-mapped)
        tifffile.imwrite(path, img, photometric="rgb", **res)
    elif kind == "png":
        Image.fromarray(img).save(path)
    else:  # pragma: no cover
        raise ValueError(kind)
    return path


def _expected(min_tissue: float = 0.2, size: int = 256) -> np.ndarray:
    truth = _truth()
    coords = tile_grid(W0, H0, size)
    frac = np.array([truth[y : y + size, x : x + size].mean() for x, y in coords])
    return coords[frac >= min_tissue]


def _adata(paths, **cols) -> ad.AnnData:
    obs = pd.DataFrame({"slide_path": [str(p) for p in paths], **cols}, index=[f"s{i}" for i in range(len(paths))])
    return ad.AnnData(np.ones((len(paths), 3), np.float32), obs=obs)


# --------------------------------------------------------------------------- pieces
def test_tissue_fraction_is_exact_for_unaligned_tiles(rng):
    mask = rng.random((40, 30)) > 0.5
    scale = (8.0, 8.0)
    fine = np.kron(mask, np.ones((8, 8), bool))  # the mask at level 0
    coords = rng.integers(0, 200, size=(50, 2))
    size = 37
    got = tissue_fraction(mask, scale, coords, size)
    want = [fine[y : y + size, x : x + size].mean() for x, y in coords]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_tile_grid_non_overlapping():
    g = tile_grid(1000, 600, 256)
    assert len(g) == 3 * 2 and g.max(0).tolist() == [512, 256]
    assert len(tile_grid(100, 600, 256)) == 0


@pytest.mark.parametrize("kind", ["tiff_subifd", "tiff_pages", "tiff_plain", "png"])
def test_reader_levels_and_regions(tmp_path, kind):
    img = _image()
    path = _write(tmp_path / f"a.{'png' if kind == 'png' else 'tif'}", kind, img)
    with open_slide(path) as r:
        assert r.dimensions == (W0, H0)
        if kind in ("tiff_subifd", "tiff_pages"):
            assert r.level_dimensions == [(W0, H0), (W0 // 2, H0 // 2), (W0 // 4, H0 // 4)]
            np.testing.assert_array_equal(r.read_region((400, 800), 1, (64, 32)), img[::2, ::2][400:432, 200:264])
        assert r.mpp == (None if kind == "png" else pytest.approx(0.5))
        np.testing.assert_array_equal(r.read_region((1000, 700), 0, (300, 200)), img[700:900, 1000:1300])
        # outside the image reads as white background
        edge = r.read_region((W0 - 10, 0), 0, (20, 5))
        assert (edge[:, 10:] == 255).all() and (edge[:, :10] == img[:5, -10:]).all()


def test_detect_tissue_uses_low_level_and_finds_layout(tmp_path):
    path = _write(tmp_path / "a.tif", "tiff_subifd", _image())
    tm = gg.pp.detect_tissue(path, **NO_CLEANUP)
    assert tm.level == 2 and tm.downsample == pytest.approx(4.0) and tm.mask.shape == (H0 // 4, W0 // 4)
    np.testing.assert_array_equal(tm.mask, _truth()[::4, ::4])
    assert 0 < tm.threshold < 255
    # with the default clean-up the mask is still nearly the layout
    assert (gg.pp.detect_tissue(path, max_size=512).mask == _truth()[::4, ::4]).mean() > 0.99
    gray = gg.pp.detect_tissue(path, channel="gray", **NO_CLEANUP)
    np.testing.assert_array_equal(gray.mask, _truth()[::4, ::4])
    with pytest.raises(ValueError, match="channel"):
        gg.pp.detect_tissue(path, channel="hue")
    with pytest.raises(ValueError, match="level"):
        gg.pp.detect_tissue(path, level=7)


def test_detect_tissue_never_reads_level0_whole(tmp_path, monkeypatch):
    from gemmgan_sc.pp import _tiles

    path = _write(tmp_path / "a.tif", "tiff_subifd", _image())
    seen = []
    orig = _tiles.TiffSlide.read_region

    def spy(self, location, level, size):
        seen.append((level, size))
        return orig(self, location, level, size)

    monkeypatch.setattr(_tiles.TiffSlide, "read_region", spy)
    gg.pp.detect_tissue(path, max_size=512)
    assert seen and all(level == 2 for level, _ in seen)
    # a single-level slide is read in blocks of at most 4096 px
    monkeypatch.setattr(_tiles, "_BLOCK", 512)
    seen.clear()
    plain = _write(tmp_path / "p.tif", "tiff_plain", _image())
    gg.pp.detect_tissue(plain, max_size=512)
    assert len(seen) > 1 and max(max(s) for _, s in seen) <= 512


# --------------------------------------------------------------------------- tile_slides
@pytest.mark.parametrize("kind", ["tiff_subifd", "tiff_pages", "tiff_plain", "png"])
def test_tile_slides_keeps_exactly_the_tissue_tiles(tmp_path, kind):
    path = _write(tmp_path / f"slide-A.{'png' if kind == 'png' else 'tif'}", kind, _image())
    adata = _adata([path, path])  # two rows share one slide
    store = tmp_path / "p.zarr"
    gg.pp.tile_slides(adata, store=store, tissue_kwargs=NO_CLEANUP)
    ps = PatchStore(store)
    assert adata.obs["slide_id"].tolist() == ["slide-A", "slide-A"]
    want = _expected(0.2)
    np.testing.assert_array_equal(ps.coords("slide-A"), want)
    # every kept tile really holds >= 20 % tissue in the ground truth, every dropped one less
    truth = _truth()
    fr = [truth[y : y + 256, x : x + 256].mean() for x, y in ps.coords("slide-A")]
    assert min(fr) >= 0.2
    assert adata.obs["n_tiles"].tolist() == [len(want)] * 2
    uns = adata.uns["gemmgan"]
    assert uns["patch_store"] == str(store.absolute()) and uns["tile_slides"]["id_key_created"] is True
    assert uns["tile_slides"]["params"]["min_tissue"] == 0.2
    attrs = ps.attrs
    assert attrs["tile_size"] == 256 and attrs["min_tissue"] == 0.2 and attrs["tile_size_level0"] == 256
    assert attrs["slides"]["slide-A"]["n_tiles"] == len(want)


def test_min_tissue_and_max_tiles(tmp_path):
    path = _write(tmp_path / "a.tif", "tiff_subifd", _image())
    adata = _adata([path])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", min_tissue=0.9, tissue_kwargs=NO_CLEANUP)
    np.testing.assert_array_equal(PatchStore(tmp_path / "p.zarr").coords("a"), _expected(0.9))
    adata = _adata([path])
    gg.pp.tile_slides(adata, store=tmp_path / "q.zarr", max_tiles=3, tissue_kwargs=NO_CLEANUP)
    got = PatchStore(tmp_path / "q.zarr").coords("a")
    assert len(got) == 3 and {tuple(c) for c in got} <= {tuple(c) for c in _expected(0.2)}


def test_mpp_picks_level_and_scales_tiles(tmp_path):
    path = _write(tmp_path / "a.tif", "tiff_subifd", _image(), mpp=0.25)
    adata = _adata([path])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", mpp=0.5, tile_size=128, tissue_kwargs=NO_CLEANUP)
    info = PatchStore(tmp_path / "p.zarr").attrs["slides"]["a"]
    assert info["level"] == 1 and info["read_size"] == 128 and info["tile_size_level0"] == 256
    np.testing.assert_array_equal(PatchStore(tmp_path / "p.zarr").coords("a"), _expected(0.2))
    # no mpp metadata: warning, level 0
    nompp = _write(tmp_path / "b.tif", "tiff_subifd", _image(), mpp=None)
    with pytest.warns(UserWarning, match="microns-per-pixel"):
        gg.pp.tile_slides(_adata([nompp]), store=tmp_path / "q.zarr", mpp=0.5, tissue_kwargs=NO_CLEANUP)
    assert PatchStore(tmp_path / "q.zarr").attrs["slides"]["b"]["level"] == 0


def test_ids_validation_and_existing_id_column(tmp_path):
    a = _write(tmp_path / "a.tif", "tiff_plain", _image())
    b = _write(tmp_path / "b b.png", "png", _image())
    adata = _adata([a, b, a], slide_id=["X1", "Y2", "X1"])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", tissue_kwargs=NO_CLEANUP)
    assert sorted(PatchStore(tmp_path / "p.zarr").slide_ids) == ["X1", "Y2"]
    assert adata.uns["gemmgan"]["tile_slides"]["id_key_created"] is False
    adata2 = _adata([b])
    gg.pp.tile_slides(adata2, store=tmp_path / "q.zarr", tissue_kwargs=NO_CLEANUP)
    assert adata2.obs["slide_id"].tolist() == ["b_b"]
    with pytest.raises(ValueError, match="two different files"):
        gg.pp.tile_slides(_adata([a, b], slide_id=["X", "X"]), store=tmp_path / "r.zarr")
    with pytest.raises(ValueError, match="Invalid slide id"):
        gg.pp.tile_slides(_adata([a], slide_id=["../evil"]), store=tmp_path / "r.zarr")
    with pytest.raises(KeyError, match="slide_path"):
        gg.pp.tile_slides(_adata([a]), slide_key="nope", store=tmp_path / "r.zarr")
    with pytest.raises(ValueError, match="min_tissue"):
        gg.pp.tile_slides(_adata([a]), min_tissue=2, store=tmp_path / "r.zarr")
    with pytest.raises(ValueError, match="tissue_kwargs"):
        gg.pp.tile_slides(_adata([a]), tissue_kwargs={"bogus": 1}, store=tmp_path / "r.zarr")


def test_bad_slides_raise_naming_the_file_or_warn(tmp_path):
    good = _write(tmp_path / "good.tif", "tiff_subifd", _image())
    missing = str(tmp_path / "missing.svs")
    corrupt = tmp_path / "corrupt.svs"
    corrupt.write_bytes(b"II*\x00" + b"\x00garbage" * 50)
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.fromarray(np.full((600, 600, 3), 245, np.uint8)).save(blank)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((100, 100, 3), TISSUE, np.uint8)).save(tiny)
    for bad, match in ((missing, "missing.svs"), (corrupt, "corrupt.svs")):
        with pytest.raises(SlideReadError, match=match):
            gg.pp.tile_slides(_adata([good, bad]), store=tmp_path / "p.zarr", overwrite=True)
    # no tissue / smaller than a tile: never an error, even with errors="raise" (the default)
    for bad, match in ((blank, "(?i)no tissue.*blank.png.*0 tiles recorded"),
                       (tiny, "tiny.png.*smaller than one tile.*0 tiles recorded")):
        ad_ = _adata([good, bad])
        with pytest.warns(UserWarning, match=match):
            gg.pp.tile_slides(ad_, store=tmp_path / "p.zarr", overwrite=True, tissue_kwargs=NO_CLEANUP)
        rec = ad_.uns["gemmgan"]["tile_slides"]
        assert rec["failed"] == {} and list(rec["no_tissue"]) == [bad.stem]
        assert ad_.obs["n_tiles"].iloc[1] == 0 and PatchStore(tmp_path / "p.zarr").coords(bad.stem).shape == (0, 2)
    adata = _adata([good, missing, corrupt, blank, tiny])
    with pytest.warns(UserWarning):
        gg.pp.tile_slides(adata, store=tmp_path / "w.zarr", errors="warn", max_tiles=3, tissue_kwargs=NO_CLEANUP)
    rec = adata.uns["gemmgan"]["tile_slides"]
    assert set(rec["failed"]) == {"missing", "corrupt"}
    assert set(rec["no_tissue"]) == {"blank", "tiny"}
    assert adata.obs["n_tiles"].tolist() == [3, 0, 0, 0, 0]
    ps = PatchStore(tmp_path / "w.zarr")
    assert ps.n_tiles("blank") == 0 and ps.n_tiles("tiny") == 0 and "missing" not in ps
    # a resumed run keeps the no-tissue record
    gg.pp.tile_slides(adata, store=tmp_path / "w.zarr", errors="warn", max_tiles=3, tissue_kwargs=NO_CLEANUP)
    assert set(adata.uns["gemmgan"]["tile_slides"]["no_tissue"]) == {"blank", "tiny"}
    # embedding skips the slides without tiles, with a warning
    with pytest.warns(UserWarning, match="0 tiles"):
        gg.pp.embed_tiles(adata)
    assert ps.embedded_slide_ids == ["good"]


@pytest.mark.parametrize("where", ["middle", "last"])
def test_blank_slide_gets_zero_tiles_and_is_masked_by_the_model(tmp_path, where):
    """Point 5 of issue 3 end to end: warning, 0 tiles, embedding skips it, the model trains and samples."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        img = _image()
        img[_truth()] = rng.integers(60, 200, (int(_truth().sum()), 3)).astype(np.uint8)
        paths.append(_write(tmp_path / f"good{i}.png", "png", img[:, ::-1].copy() if i % 2 else img))
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((700, 700, 3), 245, np.uint8)).save(blank)
    b = str(blank)
    rows = [paths[0], b, paths[1], paths[2]] if where == "middle" else [*paths, b]
    adata = _adata(rows * 2)  # 8 samples, 2 of them on the blank slide
    adata.X = rng.gamma(2.0, 1.0, size=adata.shape).astype(np.float32)
    with pytest.warns(UserWarning, match="(?i)no tissue.*blank.png.*0 tiles recorded"):
        gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", max_tiles=5, tissue_kwargs=NO_CLEANUP)
    assert adata.obs["n_tiles"].tolist() == ([5, 0, 5, 5] if where == "middle" else [5, 5, 5, 0]) * 2
    assert list(adata.uns["gemmgan"]["tile_slides"]["no_tissue"]) == ["blank"]
    gg.pp.embed_tiles(adata, encoder="hed-texture", batch_size=8, num_workers=0)  # no error for the blank slide
    ps = PatchStore(adata.uns["gemmgan"]["patch_store"])
    assert ps.embedded_slide_ids == ["good0", "good1", "good2"] and not ps.has_features("blank")
    assert adata.uns["gemmgan"]["embed_tiles"]["empty_slides"] == ["blank"]

    gg.GeMMGAN.setup_anndata(adata, patch_store=adata.uns["gemmgan"]["patch_store"])
    tiny = dict(d_model=16, n_latent=8, n_patches=8, hidden=(32, 32), n_heads=2, d_ff=32)
    model = gg.GeMMGAN(adata, **tiny).train(max_epochs=1, batch_size=4, n_critic=1, seed=0)
    assert np.isfinite(model.history["critic_loss"]).all()
    synth = model.sample(seed=0)
    assert synth.n_obs == adata.n_obs and np.isfinite(synth.X).all()


def test_store_reuse_and_changed_params(tmp_path):
    path = _write(tmp_path / "a.tif", "tiff_subifd", _image())
    adata = _adata([path])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", tissue_kwargs=NO_CLEANUP)
    with pytest.raises(ValueError, match="was tiled with tile_size=256"):
        gg.pp.tile_slides(adata, tile_size=128, tissue_kwargs=NO_CLEANUP)  # store taken from uns
    gg.pp.tile_slides(adata, tile_size=128, overwrite=True, tissue_kwargs=NO_CLEANUP)
    assert PatchStore(tmp_path / "p.zarr").attrs["tile_size"] == 128
    np.testing.assert_array_equal(PatchStore(tmp_path / "p.zarr").coords("a"), _expected(0.2, 128))


def test_default_store_is_one_per_cohort_and_parameters(tmp_path, monkeypatch):
    """Without store=, two unrelated analyses in one folder do not share a store; a re-run finds its own."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    a = _write(tmp_path / "a.tif", "tiff_subifd", _image())
    b = _write(tmp_path / "b.png", "png", _image())
    one, two = _adata([a]), _adata([a, b])
    gg.pp.tile_slides(one, tissue_kwargs=NO_CLEANUP)
    gg.pp.tile_slides(two, tile_size=128, tissue_kwargs=NO_CLEANUP)  # another cohort, other parameters
    s1, s2 = (Path(x.uns["gemmgan"]["patch_store"]) for x in (one, two))
    assert s1 != s2 and s1.parent == s2.parent == tmp_path and s1.name.startswith("gemmgan_patches-")
    np.testing.assert_array_equal(PatchStore(s1).coords("a"), _expected(0.2))
    np.testing.assert_array_equal(PatchStore(s2).coords("a"), _expected(0.2, 128))
    gg.pp.embed_tiles(one, num_workers=0)
    gg.pp.embed_tiles(two, num_workers=0)
    assert PatchStore(s1).features("a").shape == (len(_expected(0.2)), 113)
    assert PatchStore(s2).features("b").shape == (len(_expected(0.2, 128)), 113)
    # the first cohort again, in a fresh AnnData: the same store, resumed (nothing re-tiled, features kept)
    again = _adata([a])
    gg.pp.tile_slides(again, tissue_kwargs=NO_CLEANUP)
    assert again.uns["gemmgan"]["patch_store"] == str(s1) and PatchStore(s1).has_features("a")
    assert sorted(p.name for p in tmp_path.glob("gemmgan_patches*")) == sorted([s1.name, s2.name])


# --------------------------------------------------------------------------- embed_tiles
def test_embed_tiles_writes_features_resumes_and_feeds_setup(tmp_path, monkeypatch):
    img = _image()
    img[_truth()] = (np.random.default_rng(0).integers(60, 200, (int(_truth().sum()), 3))).astype(np.uint8)
    a = _write(tmp_path / "a.tif", "tiff_subifd", img)
    b = _write(tmp_path / "b.png", "png", img[:, ::-1].copy())
    adata = _adata([a, b, a])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", max_tiles=6, tissue_kwargs=NO_CLEANUP)
    gg.pp.embed_tiles(adata, encoder="hed-texture", batch_size=4, num_workers=0)
    ps = PatchStore(tmp_path / "p.zarr")
    f = ps.features("a")
    assert f.dtype == np.float16 and f.shape == (6, 113) and np.isfinite(f).all()
    assert ps.attrs["encoder"] == "hed-texture" and ps.attrs["dim"] == 113
    assert len(ps.coords("a")) == 6  # coords kept
    # rows match the tiles: recompute one tile by hand
    enc = gg.encoders.get_image_encoder("hed-texture")
    x, y = ps.coords("a")[2]
    tile = img[y : y + 256, x : x + 256]
    want = enc(enc.preprocess(tile[None])).numpy()[0].astype(np.float16)
    np.testing.assert_array_equal(f[2], want)
    uns = adata.uns["gemmgan"]
    assert uns["image_encoder"] == "hed-texture" and uns["embed_tiles"]["params"]["batch_size"] == 4

    # resumable: complete slides are skipped
    calls = []
    monkeypatch.setattr(PatchStore, "add", lambda self, *a, **k: calls.append(a[0]))
    gg.pp.embed_tiles(adata)
    assert calls == []
    gg.pp.embed_tiles(adata, overwrite=True)
    assert sorted(calls) == ["a", "b"]
    monkeypatch.undo()

    # worker processes give the same features
    gg.pp.embed_tiles(adata, overwrite=True, num_workers=2, batch_size=5)
    np.testing.assert_array_equal(PatchStore(tmp_path / "p.zarr").features("a"), f)

    # the AnnData contract: setup with the store path from uns works
    reg = AnnDataRegistry.setup(adata, patch_store=adata.uns["gemmgan"]["patch_store"], slide_key="slide_id",
                                use_text=False)
    assert reg.patch_dim == 113

    # round trip through h5ad keeps the record
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert back.uns["gemmgan"]["patch_store"] == str((tmp_path / "p.zarr").absolute())


class _ColourStats(torch.nn.Module):
    """Per-tile colour means and spreads: any mix-up of rows changes them."""

    def forward(self, x):
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def test_embed_tiles_rebatching_of_worker_chunks_keeps_every_row(tmp_path):
    """Workers hand over chunks of 8 tiles; batches of 5 or 12 straddle chunks (and the last is partial):
    every tile's features must land in its own row, equal to encoding it alone."""
    img = _image()
    img[_truth()] = (np.random.default_rng(1).integers(40, 220, (int(_truth().sum()), 3))).astype(np.uint8)
    a = _write(tmp_path / "a.tif", "tiff_subifd", img)
    b = _write(tmp_path / "b.png", "png", img[::-1].copy())
    adata = _adata([a, b])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", tile_size=64, tissue_kwargs=NO_CLEANUP)
    ps = PatchStore(tmp_path / "p.zarr")
    assert ps.n_tiles("a") > 24  # several chunks per slide

    enc = gg.encoders.get_image_encoder(_ColourStats(), dim=6, input_size=None, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    gg.pp.embed_tiles(adata, encoder=enc, batch_size=1, num_workers=0)
    want = {s: ps.features(s) for s in ("a", "b")}
    for batch_size, workers in ((5, 2), (12, 1), (64, 2)):
        gg.pp.embed_tiles(adata, encoder=enc, batch_size=batch_size, num_workers=workers, overwrite=True)
        for s in ("a", "b"):
            np.testing.assert_allclose(ps.features(s), want[s], rtol=2e-3, atol=1e-3, err_msg=f"{batch_size=} {s=}")
    # and by hand for one tile
    x, y = ps.coords("a")[7]
    tile = torch.from_numpy(np.ascontiguousarray(img[y : y + 64, x : x + 64]))[None].permute(0, 3, 1, 2)
    np.testing.assert_allclose(ps.features("a")[7], enc(enc.preprocess(tile))[0].numpy(), rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize(("encoder", "workers"), [("hed-texture", 0), ("hed-texture", 1), ("torch", 1)])
def test_embed_tiles_error_while_reading_is_raised_and_nothing_half_written(tmp_path, monkeypatch, encoder, workers):
    import multiprocessing as mp

    from gemmgan_sc.pp import _tile_reader

    img = _image()
    a = _write(tmp_path / "a.tif", "tiff_subifd", img)
    adata = _adata([a])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", tile_size=64, tissue_kwargs=NO_CLEANUP)
    assert adata.obs["n_tiles"].iloc[0] > 13
    read = _tile_reader.TileDataset.read

    def broken(self, i):  # inherited by the forked workers
        if i == 13:
            raise SlideReadError(f"Cannot decode a region of {a!r} at tile 13")
        return read(self, i)

    monkeypatch.setattr(_tile_reader.TileDataset, "read", broken)
    if encoder == "torch":
        encoder = gg.encoders.get_image_encoder(_ColourStats(), dim=6, input_size=None)
    with pytest.raises(SlideReadError, match="a.tif' at tile 13") as excinfo:
        gg.pp.embed_tiles(adata, encoder=encoder, batch_size=4, num_workers=workers)
    assert not PatchStore(tmp_path / "p.zarr").has_features("a")
    if workers:  # the error names the worker, and the workers are gone although the traceback is kept
        assert "DataLoader worker process" in str(excinfo.value)
        assert excinfo.traceback is not None and mp.active_children() == []


def test_embed_tiles_encoder_error_stops_the_workers_at_once(tmp_path):
    import multiprocessing as mp

    img = _image()
    adata = _adata([_write(tmp_path / "a.tif", "tiff_subifd", img)])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", tile_size=64, tissue_kwargs=NO_CLEANUP)

    class Failing(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("encoder failed on purpose")

    enc = gg.encoders.get_image_encoder(Failing(), dim=3, input_size=None)
    with pytest.raises(RuntimeError, match="on purpose") as excinfo:
        gg.pp.embed_tiles(adata, encoder=enc, batch_size=4, num_workers=2)
    # the traceback (kept by excinfo, as by a notebook) still holds embed_tiles' frame: the workers must be gone
    assert excinfo.traceback is not None
    assert mp.active_children() == []


@pytest.mark.slow
def test_embed_tiles_workers_under_spawn(tmp_path, monkeypatch):
    """macOS and Windows start workers by spawning (everything pickled: the dataset, the CPU encoder)."""
    from gemmgan_sc.pp import _tile_reader

    img = _image()
    img[_truth()] = (np.random.default_rng(2).integers(40, 220, (int(_truth().sum()), 3))).astype(np.uint8)
    adata = _adata([_write(tmp_path / "a.tif", "tiff_subifd", img)])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", tile_size=64, max_tiles=20, tissue_kwargs=NO_CLEANUP)
    ps = PatchStore(tmp_path / "p.zarr")
    torch_enc = gg.encoders.get_image_encoder(_ColourStats(), dim=6, input_size=None)
    want = {}
    for enc in (torch_enc, "hed-texture"):
        gg.pp.embed_tiles(adata, encoder=enc, batch_size=6, num_workers=0, overwrite=True)
        want[str(enc)] = ps.features("a")
    monkeypatch.setattr(_tile_reader, "START_METHOD", "spawn")
    for enc in (torch_enc, "hed-texture"):  # the CPU encoder runs in the spawned workers
        gg.pp.embed_tiles(adata, encoder=enc, batch_size=6, num_workers=2, overwrite=True)
        np.testing.assert_array_equal(ps.features("a"), want[str(enc)])


def test_embed_tiles_other_encoder_needs_new_store_or_overwrite(tmp_path):
    import torch

    path = _write(tmp_path / "a.tif", "tiff_subifd", _image())
    adata = _adata([path])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", max_tiles=2, tissue_kwargs=NO_CLEANUP)
    gg.pp.embed_tiles(adata)

    class Tiny(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    with pytest.raises(ValueError, match="hed-texture"):
        gg.pp.embed_tiles(adata, encoder=Tiny())
    gg.pp.embed_tiles(adata, encoder=Tiny(), overwrite=True, precision="bfloat16")
    ps = PatchStore(tmp_path / "p.zarr")
    assert ps.dim == 3 and ps.features("a").shape == (2, 3) and ps.attrs["encoder"] == "custom:Tiny"
    with pytest.raises(ValueError, match="tile_slides"):
        gg.pp.embed_tiles(_adata([path]))
    with pytest.raises(ValueError, match="precision"):
        gg.pp.embed_tiles(adata, precision="int8")


# --------------------------------------------------------------------------- real slides
def test_real_svs_slides(shared_data, tmp_path):
    svs = [shared_data / "slides" / "CMU-1-Small-Region.svs", shared_data / "slides" / "TCGA-CR-7395-01A-01-TS1.svs"]
    adata = _adata(svs)
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", max_tiles=8)
    ps = PatchStore(tmp_path / "p.zarr")
    ids = adata.obs["slide_id"].tolist()
    assert ids == ["CMU-1-Small-Region", "TCGA-CR-7395-01A-01-TS1"]
    info = ps.attrs["slides"]
    assert info[ids[0]]["mpp_level0"] == pytest.approx(0.499, abs=1e-3)
    assert "mpp_level0" not in info[ids[1]]  # no mpp metadata in that file
    for sid, (w, h) in zip(ids, [(2220, 2967), (4443, 3567)]):
        c = ps.coords(sid)
        assert len(c) == 8 and (c[:, 0] + 256 <= w).all() and (c[:, 1] + 256 <= h).all()
    # the tissue mask of the two-level JPEG 2000 slide is computed on level 1
    tm = gg.pp.detect_tissue(svs[1], max_size=1024)
    assert tm.level == 1 and 0.05 < tm.mask.mean() < 0.95
    gg.pp.embed_tiles(adata, num_workers=0)
    assert ps.features(ids[1]).shape == (8, 113)
    # every row is the encoder's output on the tile OpenSlide reads at its coordinates, with or without workers
    import openslide

    enc = gg.encoders.get_image_encoder("hed-texture")
    for sid, path in zip(ids, svs):
        with openslide.OpenSlide(str(path)) as slide:
            tiles = np.stack([np.asarray(slide.read_region((int(x), int(y)), 0, (256, 256)).convert("RGB"))
                              for x, y in ps.coords(sid)])
        np.testing.assert_array_equal(ps.features(sid), enc(enc.preprocess(tiles)).numpy().astype(np.float16))
    want = {sid: ps.features(sid) for sid in ids}
    gg.pp.embed_tiles(adata, num_workers=2, batch_size=5, overwrite=True)
    for sid in ids:
        np.testing.assert_array_equal(ps.features(sid), want[sid])


def test_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = _write(tmp_path / "a.tif", "tiff_subifd", _image())
    adata = _adata([path])
    gg.pp.tile_slides(adata, store=tmp_path / "p.zarr", tissue_kwargs=NO_CLEANUP)
    ax = gg.pl.tiles(adata, "a", show=False)
    assert len(ax.collections[0].get_paths()) == len(_expected())
    ax2 = gg.pl.tissue(path, show=False)
    assert len(ax2.images) == 2
    with pytest.raises(KeyError, match="not tiled"):
        gg.pl.tiles(adata, "zzz", show=False)
    plt.close("all")
