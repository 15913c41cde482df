"""gg.pp.tile_spots on a generated section with known spots, and on the real her2st sections (when present)."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import gemmgan_sc as gg
from cohorts import SMALL
from gemmgan_sc.data import PatchStore

TILE, NBH = 32, 64  # 2 x 2 tiles per spot
TISSUE = (96, 96, 416, 416)  # x0, y0, x1, y1 of the stained rectangle (px)
# spot centres and the local corners of the tiles expected to hold tissue
SPOTS = {
    "inside": ((256, 256), [[0, 0], [32, 0], [0, 32], [32, 32]]),
    "left-edge": ((96, 256), [[32, 0], [32, 32]]),  # left half of the neighbourhood is glass
    "glass": ((520, 520), []),  # on the slide, no tissue
    "off-image": ((-300, 40), []),  # neighbourhood outside the image
}


def _section(rng) -> np.ndarray:
    """A 600 x 600 white section with a textured purple rectangle of tissue."""
    img = np.full((600, 600, 3), 245, np.uint8)
    x0, y0, x1, y1 = TISSUE
    stain = np.array([150, 60, 160]) + rng.integers(-40, 40, size=(y1 - y0, x1 - x0, 3))
    img[y0:y1, x0:x1] = np.clip(stain, 0, 255)
    return img


def _spots_adata(image: np.ndarray | None = None, scale: float = 1.0) -> ad.AnnData:
    names = list(SPOTS)
    xy = np.array([SPOTS[n][0] for n in names], float)
    adata = ad.AnnData(np.ones((len(names), 3), np.float32), obs=pd.DataFrame(index=names))
    adata.obsm["spatial"] = xy
    if image is not None:
        adata.uns["spatial"] = {"sec1": {"images": {"hires": image},
                                         "scalefactors": {"tissue_hires_scalef": scale, "spot_diameter_fullres": 40.0}}}
    return adata


@pytest.fixture(scope="module")
def section():
    return _section(np.random.default_rng(0))


@pytest.fixture(scope="module")
def tiled(section, tmp_path_factory):
    adata = _spots_adata()
    store = tmp_path_factory.mktemp("spots") / "p.zarr"
    with pytest.warns(UserWarning, match="2 of 4 spots .* no tissue"):
        gg.pp.tile_spots(adata, image=section, tile_size=TILE, neighbourhood_px=NBH, store=store)
    return adata, store


def test_tiles_where_expected(tiled, section):
    adata, store = tiled
    ps = PatchStore(store)
    assert ps.slide_ids == sorted(SPOTS)
    for name, (centre, expected) in SPOTS.items():
        coords = ps.coords(name)
        np.testing.assert_array_equal(coords.reshape(-1, 2), np.array(expected, np.int64).reshape(-1, 2), err_msg=name)
        info = ps.attrs["slides"][name]
        assert info["spot"]["origin"] == [centre[0] - NBH // 2, centre[1] - NBH // 2]
        if expected:  # the neighbourhood PNG holds the section's pixels around the spot
            from PIL import Image

            crop = np.asarray(Image.open(info["path"]))
            x0, y0 = info["spot"]["origin"]
            np.testing.assert_array_equal(crop, section[y0 : y0 + NBH, x0 : x0 + NBH])
    np.testing.assert_array_equal(adata.obs["n_tiles"], [4, 2, 0, 0])
    assert (adata.obs["slide_id"].astype(str) == adata.obs_names).all()


def test_spots_without_tissue_are_listed(tiled):
    adata, _ = tiled
    rec = adata.uns["gemmgan"]["tile_spots"]
    assert set(rec["no_tissue"]) == {"glass", "off-image"}
    assert "outside" in rec["no_tissue"]["off-image"] and "tissue" in rec["no_tissue"]["glass"]
    assert rec["params"]["tile_size"] == TILE and rec["params"]["neighbourhood_px"] == NBH
    assert rec["libraries"] == {"image": {"image": "array", "scale": 1.0, "n_spots": 4, "n_no_tissue": 2}}
    assert adata.uns["gemmgan"]["tile_slides"]["no_tissue"] == rec["no_tissue"]


def test_embed_tiles_reads_spots_unchanged(tiled, section):
    adata, store = tiled
    adata = adata.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # spots without tissue were warned about once, by tile_spots
        gg.pp.embed_tiles(adata, encoder="hed-texture", num_workers=0)
    ps = PatchStore(store)
    enc = gg.encoders.get_image_encoder("hed-texture")
    assert ps.features("inside").shape == (4, enc.dim)
    assert ps.features("glass").shape == (0, enc.dim)  # 0-tile spot: empty, not an error
    # the stored features are those of the section's pixels at (origin + corner)
    import torch

    x0, y0 = ps.attrs["slides"]["left-edge"]["spot"]["origin"]
    tiles = np.stack([section[y0 + cy : y0 + cy + TILE, x0 + cx : x0 + cx + TILE] for cx, cy in SPOTS["left-edge"][1]])
    direct = enc(enc.preprocess(torch.from_numpy(tiles).permute(0, 3, 1, 2))).float().numpy()
    np.testing.assert_allclose(ps.features("left-edge").astype(np.float32), direct, rtol=2e-3, atol=2e-3)


@pytest.mark.slow
def test_model_trains_and_samples_on_spots(tiled):
    adata, store = tiled
    adata = adata.copy()
    gg.pp.embed_tiles(adata, encoder="hed-texture", num_workers=0)
    adata.X = np.random.default_rng(0).gamma(2.0, 1.0, size=adata.shape).astype(np.float32)
    gg.GeMMGAN.setup_anndata(adata, patch_store=adata.uns["gemmgan"]["patch_store"])
    model = gg.GeMMGAN(adata, **SMALL).train(max_epochs=2, batch_size=4, n_critic=1, seed=0)
    synth = model.sample(seed=0, n_samples=2)
    assert synth.n_obs == 8 and np.isfinite(synth.X).all()


def test_hires_image_in_uns_gives_the_same_tiles(section, tmp_path):
    # the hires image at half resolution: centres stay in full-resolution px, tiles are 16 image px
    half = section[::2, ::2]
    adata = _spots_adata(half, scale=0.5)
    with pytest.warns(UserWarning, match="no tissue"):
        gg.pp.tile_spots(adata, tile_size=TILE, neighbourhood_px=NBH, store=tmp_path / "p.zarr")
    ps = PatchStore(tmp_path / "p.zarr")
    np.testing.assert_array_equal(adata.obs["n_tiles"], [4, 2, 0, 0])
    info = ps.attrs["slides"]["left-edge"]
    assert info["read_size"] == 16 and info["spot"]["scale"] == 0.5
    np.testing.assert_array_equal(ps.coords("left-edge"), [[16, 0], [16, 16]])
    assert adata.uns["gemmgan"]["tile_spots"]["libraries"]["sec1"]["image"] == "hires"


def test_rerun_keeps_features_and_params_guard(tiled, tmp_path, section):
    adata, store = tiled
    adata = adata.copy()
    gg.pp.embed_tiles(adata, encoder="hed-texture", num_workers=0)
    before = PatchStore(store).features("inside")
    with pytest.warns(UserWarning, match="no tissue"):
        gg.pp.tile_spots(adata, image=section, tile_size=TILE, neighbourhood_px=NBH, store=store)
    np.testing.assert_array_equal(PatchStore(store).features("inside"), before)  # unchanged spots are kept
    with pytest.raises(ValueError, match="tiled with tile_size=32"):
        gg.pp.tile_spots(adata, image=section, tile_size=16, neighbourhood_px=NBH, store=store)


def test_library_key_and_image_path(section, tmp_path):
    from PIL import Image

    path = tmp_path / "section.png"
    Image.fromarray(section).save(path)
    adata = _spots_adata()
    with pytest.warns(UserWarning):
        gg.pp.tile_spots(adata, image=str(path), tile_size=TILE, neighbourhood_px=NBH, store=tmp_path / "a.zarr")
    np.testing.assert_array_equal(adata.obs["n_tiles"], [4, 2, 0, 0])
    # two sections in one AnnData, each with its own hires image
    one, two = _spots_adata(section), _spots_adata(section[:, ::-1].copy())
    both = ad.concat({"s1": one, "s2": two}, label="library_id", index_unique="-")
    both.uns["spatial"] = {"s1": one.uns["spatial"]["sec1"], "s2": two.uns["spatial"]["sec1"]}
    with pytest.warns(UserWarning):
        gg.pp.tile_spots(both, library_key="library_id", tile_size=TILE, neighbourhood_px=NBH, store=tmp_path / "b.zarr")
    assert both.obs["n_tiles"].tolist()[:4] == [4, 2, 0, 0]
    assert both.obs["n_tiles"].iloc[4] == 4  # mirrored image: the centre spot still sits in tissue
    assert set(both.uns["gemmgan"]["tile_spots"]["libraries"]) == {"s1", "s2"}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(tile_size=32, neighbourhood_px=48), ValueError, "multiple of tile_size"),
        (dict(spatial_key="nope"), KeyError, "obsm\\['nope'\\]"),
        (dict(min_tissue=2.0), ValueError, "min_tissue"),
        (dict(scale_factor=-1.0), ValueError, "scale_factor"),
        (dict(tissue_kwargs={"bogus": 1}), ValueError, "tissue_kwargs"),
    ],
)
def test_bad_arguments(section, tmp_path, kwargs, error, match):
    adata = _spots_adata()
    with pytest.raises(error, match=match):
        gg.pp.tile_spots(adata, image=section, store=tmp_path / "p.zarr", **kwargs)


def test_bad_inputs_name_what_to_do(section, tmp_path):
    adata = _spots_adata()
    with pytest.raises(ValueError, match="library_id"):
        gg.pp.tile_spots(adata, store=tmp_path / "p.zarr")  # no image, no uns["spatial"]
    adata.obs_names = ["a/b", "c", "d", "e"]
    with pytest.raises(ValueError, match="not valid slide ids"):
        gg.pp.tile_spots(adata, image=section, store=tmp_path / "p.zarr")
    adata = _spots_adata()
    adata.obs["slide_id"] = ["x", "y", "z", "w"]
    with pytest.raises(ValueError, match="will not overwrite"):
        gg.pp.tile_spots(adata, image=section, store=tmp_path / "p.zarr")
    adata = _spots_adata(section)
    del adata.uns["spatial"]["sec1"]["scalefactors"]["tissue_hires_scalef"]
    with pytest.raises(KeyError, match="tissue_hires_scalef"):
        gg.pp.tile_spots(adata, store=tmp_path / "p.zarr")


# ----------------------------------------------------------------------------- her2st reader
def _write_section(folder, name, genes, rng, layout="flat"):
    """A tiny section: a 3 x 2 spot array 100 px apart; spot 11x21 has no counts, 12x21 is not selected."""
    from PIL import Image

    xs, ys = np.meshgrid([10, 11, 12], [20, 21])
    spots = pd.DataFrame({"x": xs.ravel(), "y": ys.ravel()})
    spots["new_x"], spots["new_y"] = spots["x"] + 0.01, spots["y"] - 0.02
    spots["pixel_x"], spots["pixel_y"] = 50.0 + 100 * (spots["x"] - 10), 40.0 + 100 * (spots["y"] - 20)
    spots["selected"] = [1, 1, 1, 1, 1, 0]
    keys = [f"{x}x{y}" for x, y in zip(spots["x"], spots["y"])]
    counts = pd.DataFrame(rng.poisson(3, size=(5, len(genes))), index=keys[:4] + [keys[5]], columns=genes)
    image = Image.fromarray(rng.integers(0, 255, size=(300, 400, 3), dtype=np.uint8))
    if layout == "flat":
        paths = (folder / f"{name}.counts.tsv.gz", folder / f"{name}.spots.tsv", folder / f"{name}.jpg")
    else:
        paths = (folder / "data" / "ST-cnts" / f"{name}.tsv.gz", folder / "data" / "ST-spotfiles" / f"{name}_selection.tsv",
                 folder / "data" / "ST-imgs" / name[0] / name / f"HE_{name}.jpg")
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    counts.to_csv(paths[0], sep="\t")
    spots.to_csv(paths[1], sep="\t", index=False)
    image.save(paths[2], quality=95)
    return counts


def test_read_her2st_generated_sections(tmp_path, rng):
    a = _write_section(tmp_path, "C2", ["G1", "G2", "G3"], rng)
    b = _write_section(tmp_path, "C3", ["G2", "G3", "G4"], rng)
    adata = gg.datasets.read_her2st(tmp_path, hires_px=100)
    assert list(adata.obs["library_id"].cat.categories) == ["C2", "C3"]
    assert adata.n_obs == 8 and list(adata.var_names) == ["G2", "G3"]  # inner join
    assert adata.obs_names[0] == "C2_10x20" and "C2_11x21" not in adata.obs_names and "C2_12x21" not in adata.obs_names
    np.testing.assert_array_equal(adata["C3_10x21"].X.toarray()[0], b.loc["10x21", ["G2", "G3"]].to_numpy())
    np.testing.assert_array_equal(adata.obsm["spatial"][1], [150.0, 40.0])
    lib = adata.uns["spatial"]["C2"]
    assert lib["images"]["hires"].shape == (75, 100, 3) and lib["scalefactors"]["tissue_hires_scalef"] == 0.25
    assert lib["scalefactors"]["spot_diameter_fullres"] == pytest.approx(50.0, rel=1e-3)  # 100 px pitch / 2
    assert lib["metadata"]["n_spots_without_counts"] == 1 and lib["metadata"]["fullres_width"] == 400
    outer = gg.datasets.read_her2st(tmp_path, sections=["C3", "C2"], join="outer", hires_px=None)
    assert sorted(outer.var_names) == ["G1", "G2", "G3", "G4"] and outer.obs["library_id"].iloc[0] == "C3"
    assert outer["C2_10x20", "G4"].X.toarray()[0, 0] == 0 and outer.uns["spatial"]["C2"]["images"] == {}
    np.testing.assert_array_equal(outer["C2_10x20", ["G1"]].X.toarray()[0], a.loc["10x20", ["G1"]].to_numpy())


def test_read_her2st_repository_layout_and_tile_spots(tmp_path, rng):
    _write_section(tmp_path, "C4", ["G1", "G2"], rng, layout="repo")
    adata = gg.datasets.read_her2st(tmp_path, sections=["C4"])
    assert adata.n_obs == 4 and adata.uns["spatial"]["C4"]["metadata"]["source_image_path"].endswith("HE_C4.jpg")
    gg.pp.tile_spots(adata, tile_size=16, neighbourhood_px=32, store=tmp_path / "p.zarr", min_tissue=0.0)
    assert (adata.obs["n_tiles"] == 4).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(sections=["C9"]), FileNotFoundError, "C9"),
        (dict(sections="C2"), TypeError, "list of section names"),
        (dict(join="left"), ValueError, "join"),
        (dict(hires_px=3), ValueError, "hires_px"),
    ],
)
def test_read_her2st_bad_arguments(tmp_path, rng, kwargs, error, match):
    _write_section(tmp_path, "C2", ["G1"], rng)
    with pytest.raises(error, match=match):
        gg.datasets.read_her2st(tmp_path, **kwargs)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gg.datasets.read_her2st(tmp_path / "nope")


# ----------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_real_her2st_section(shared_data, tmp_path):
    folder = shared_data / "her2st"
    if not (folder / "C3.jpg").is_file():
        pytest.skip("her2st section C3 not found")
    from PIL import Image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adata = gg.datasets.read_her2st(folder, sections=["C3"])
        gg.pp.tile_spots(adata, tile_size=64, neighbourhood_px=256, store=tmp_path / "her2st.zarr")
    # the ~92 Mpx section is read without PIL's decompression-bomb warning, and PIL's limit is restored
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS is not None
    rec = adata.uns["gemmgan"]["tile_spots"]
    assert rec["libraries"]["C3"]["image"] == "fullres"  # the source JPEG, not the downscaled hires copy
    n = adata.obs["n_tiles"].to_numpy()
    # selected spots sit under tissue: nearly all have most of their 16 tiles
    assert n.max() == 16 and np.median(n) >= 12 and (n > 0).mean() > 0.95
    assert len(rec["no_tissue"]) == int((n == 0).sum())


@pytest.mark.slow
def test_real_her2st_reader(shared_data):
    folder = shared_data / "her2st"
    if not (folder / "C2.counts.tsv.gz").is_file():
        pytest.skip("her2st sections not found")
    adata = gg.datasets.read_her2st(folder, sections=["C2", "C3", "C4"])
    assert adata.obs["library_id"].value_counts().to_dict() == {"C2": 187, "C3": 180, "C4": 184}
    assert adata.n_vars == 14721  # genes counted in all three sections
    for lib, meta in adata.uns["spatial"].items():
        assert max(meta["images"]["hires"].shape[:2]) == 2000
        assert 0.6 < meta["metadata"]["microns_per_pixel"] < 0.8  # ~290 px per 200 um array pitch
        assert 130 < meta["scalefactors"]["spot_diameter_fullres"] < 160
    assert adata.X.sum() > 1e6 and float(adata.X.max()) == int(adata.X.max())
