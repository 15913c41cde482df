"""gg.datasets.demo: the simulated paired cohort and its slides."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gemmgan_sc as gg
from gemmgan_sc.datasets._slide_sim import SlideParams, render_slide


@pytest.fixture(scope="module")
def cohort():
    return gg.datasets.demo(n_samples=150, n_genes=300, seed=3, slides=False)


def test_demo_is_labelled_simulated_and_well_formed(cohort):
    a = cohort
    assert a.shape == (150, 300)
    assert a.X.dtype == np.float32 and a.X.min() >= 0 and 5 < a.X.max() < 20
    assert 0.02 < (a.X == 0).mean() < 0.5  # low genes drop out, most do not
    np.testing.assert_array_equal(a.layers["log1p"], a.X)
    info = a.uns["gemmgan_demo"]
    assert info["simulated"] is True and "SIMULATED" in info["description"]
    assert info["params"]["n_samples"] == 150 and info["params"]["seed"] == 3
    assert "simulated" in gg.datasets.demo.__doc__.lower()
    for col in ("disease_type", "primary_site", "sex", "stage", "grade", "smoking_status"):
        assert a.obs[col].dtype == "category", col
    assert a.obs["disease_type"].nunique() == 5 and a.obs["primary_site"].nunique() == 4
    assert a.obs["disease_type"].value_counts().min() == 30  # balanced
    assert a.obs["age"].between(25, 90).all()
    assert (a.obs.loc[a.obs["smoking_status"] == "never", "pack_years"] == 0).all()
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", s) for s in a.obs["slide_id"])
    assert a.obs["slide_id"].is_unique and "slide_path" not in a.obs
    first = a.obs.iloc[0]
    assert f"{first['age']}-year-old" in first["text"] and first["disease_type"].lower() in first["text"]
    assert a.obsm["demo_latent"].shape == (150, 7)


def test_demo_structure_types_modules_and_latents(cohort):
    a = cohort
    X = a.X
    lat = a.obsm["demo_latent"]
    # type effects: between-type variance is a real share of the total for many genes
    types = a.obs["disease_type"].cat.codes.to_numpy()
    means = np.stack([X[types == t].mean(0) for t in range(5)])
    share = means.var(0) / (X.var(0) + 1e-9)
    assert np.median(share) > 0.05 and (share > 0.3).mean() > 0.05
    # co-expression modules follow their latent factor
    for factor in ("proliferation", "immune", "hypoxia"):
        genes = np.nonzero((a.var["module"] == factor).to_numpy())[0]
        expressed = genes[X[:, genes].mean(0) > 2]
        assert len(expressed) >= 2
        r = [abs(np.corrcoef(X[:, g], lat[factor])[0, 1]) for g in expressed]
        assert np.median(r) > 0.3, (factor, r)
    # the sex module separates women and men; the record and expression agree
    sex_genes = np.nonzero((a.var["module"] == "sex").to_numpy())[0]
    female = (a.obs["sex"] == "female").to_numpy()
    diff = np.abs(X[female][:, sex_genes].mean(0) - X[~female][:, sex_genes].mean(0))
    assert diff.max() > 1.0
    # grade follows atypia (redundant with the image), smoking is complementary
    g = a.obs["grade"].cat.codes.to_numpy()
    assert np.corrcoef(g, lat["atypia"])[0, 1] > 0.4


def test_demo_is_deterministic_and_prefix_stable(cohort):
    again = gg.datasets.demo(n_samples=150, n_genes=300, seed=3, slides=False)
    np.testing.assert_array_equal(again.X, cohort.X)
    assert list(again.obs["text"]) == list(cohort.obs["text"])
    small = gg.datasets.demo(n_samples=20, n_genes=300, seed=3, slides=False)
    np.testing.assert_array_equal(small.X, cohort.X[:20])
    assert list(small.obs["text"]) == list(cohort.obs["text"][:20])
    other = gg.datasets.demo(n_samples=20, n_genes=300, seed=4, slides=False)
    assert not np.array_equal(other.X, small.X)


def test_demo_text_is_written_by_clinical_to_text(cohort):
    obs = cohort.obs
    # the one writer of descriptions: gg.pp.clinical_to_text, wording varied by the demo seed
    head = obs.iloc[:10]
    facts = pd.DataFrame({
        "age": head["age"], "sex": head["sex"].astype(str), "primary_diagnosis": head["disease_type"].astype(str),
        "primary_site": head["primary_site"].astype(str), "stage": head["stage"].astype(str),
        "tumor_size_cm": head["tumor_size_cm"], "grade": head["grade"].astype(str),
        "tobacco_smoking_status": head["smoking_status"].astype(str).map(
            {"never": "lifelong non-smoker", "former": "former smoker", "current": "current smoker"}),
        "pack_years_smoked": head["pack_years"].where(head["smoking_status"] != "never"),
    })
    assert gg.pp.clinical_to_text(facts, wording_seed=3).tolist() == list(head["text"])
    # every text holds the record: redundant with the image (stage, size, grade), complementary (smoking, sex, age)
    for _, r in obs.iterrows():
        t = r["text"]
        assert t.startswith(f"A {r['age']}-year-old " if str(r["age"])[0] != "8" else f"An {r['age']}-year-old ")
        assert ("woman" if r["sex"] == "female" else "man") in t
        assert r["disease_type"].lower() in t and r["stage"].lower() in t.lower() and f"{r['tumor_size_cm']:.1f} cm" in t
        assert f"{r['grade']}." in t
        if r["smoking_status"] == "never":
            assert "lifelong non-smoker" in t and "pack-years" not in t
        else:
            assert f"{r['smoking_status']} smoker, {r['pack_years']:g} pack-years" in t
        assert "TSS-" not in t  # the staining batch is not a clinical fact
    # the wording varies between patients and with the seed, the facts do not
    assert len({t.split(".")[1] for t in obs["text"]}) >= 3
    reworded = gg.pp.clinical_to_text(facts, wording_seed=4).tolist()
    assert reworded != list(head["text"])
    fixed = gg.pp.clinical_to_text(facts).tolist()  # default: one fixed wording
    assert all(t.split(".")[1] == " Primary site: " + s.lower() for t, s in zip(fixed, head["primary_site"].astype(str)))


def test_demo_slides_are_pyramidal_tiffs_with_tissue(tmp_path):
    import openslide
    from PIL import Image
    from scipy.ndimage import median_filter
    from skimage.color import rgb2hed, rgb2hsv
    from skimage.filters import threshold_otsu

    a = gg.datasets.demo(n_samples=5, n_genes=50, seed=0, cache_dir=tmp_path)
    paths = [Path(p) for p in a.obs["slide_path"]]
    assert all(p.is_absolute() and p.is_file() and tmp_path in p.parents for p in paths)
    for p in paths:
        s = openslide.OpenSlide(str(p))
        assert s.level_count == 3 and 512 <= min(s.dimensions) and max(s.dimensions) <= 1500
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(2.0)
        rgb = np.asarray(s.read_region((0, 0), 1, s.level_dimensions[1]).convert("RGB"))
        sat = median_filter(rgb2hsv(rgb)[..., 1] * 255, size=3)  # as gg.pp's tissue detection does
        tissue = sat > threshold_otsu(sat)
        assert 0.1 < tissue.mean() < 0.8, p  # tissue on a white background
        assert rgb[~tissue].mean() > 225
        assert abs(tissue.mean() - (rgb.mean(-1) < 235).mean()) < 0.1
        hed = rgb2hed(rgb)
        back = hed[~tissue].mean(0)
        assert hed[tissue][:, 0].mean() > 3 * back[0]  # hematoxylin (nuclei) in the tissue
        assert hed[tissue][:, 1].mean() > 0.01 > back[1]  # eosin in the tissue only
        red, green = rgb[tissue][:, 0].mean(), rgb[tissue][:, 1].mean()
        assert red > green + 20  # pink / purple, not grey
        with Image.open(p) as im:
            assert im.size == s.dimensions
    # cached: not rewritten; regenerated identically when missing
    mtimes = [p.stat().st_mtime_ns for p in paths]
    content = paths[2].read_bytes()
    gg.datasets.demo(n_samples=5, n_genes=50, seed=0, cache_dir=tmp_path)
    assert [p.stat().st_mtime_ns for p in paths] == mtimes
    paths[2].unlink()
    gg.datasets.demo(n_samples=5, n_genes=50, seed=0, cache_dir=tmp_path)
    assert paths[2].read_bytes() == content
    assert not list(tmp_path.rglob("*.tmp"))


def test_demo_round_trips_h5ad(cohort, tmp_path):
    import anndata as ad

    cohort.write_h5ad(tmp_path / "demo.h5ad")
    back = ad.read_h5ad(tmp_path / "demo.h5ad")
    np.testing.assert_array_equal(back.X, cohort.X)
    assert back.uns["gemmgan_demo"]["simulated"]
    assert list(back.obs["text"]) == list(cohort.obs["text"])
    assert list(back.obsm["demo_latent"].columns) == list(cohort.obsm["demo_latent"].columns)


def test_demo_cache_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMMGAN_SC_CACHE", str(tmp_path / "envcache"))
    a = gg.datasets.demo(n_samples=1, n_genes=30, seed=1)
    assert Path(a.obs["slide_path"].iloc[0]).is_relative_to(tmp_path / "envcache")


def _nuclei(img: np.ndarray) -> tuple[float, float]:
    from skimage.color import rgb2hed
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    h = rgb2hed(img)[..., 0]
    mask = h > threshold_otsu(h)
    regions = regionprops(label(mask))
    return mask.mean(), float(np.median([r.area for r in regions]))


def test_slide_texture_follows_parameters():
    base = dict(height=384, width=384, tissue_scale=0.45, stroma_frac=0.0, immune_frac=0.0, pleomorphism=0.05)
    sparse = render_slide(SlideParams(**base, cell_px=18, occupancy=0.5), np.random.default_rng(0))
    dense = render_slide(SlideParams(**base, cell_px=11, occupancy=0.95), np.random.default_rng(0))
    big = render_slide(SlideParams(**base, cell_px=18, occupancy=0.5, nuc_radius=6.0), np.random.default_rng(0))
    (f_sparse, a_sparse), (f_dense, _), (_, a_big) = _nuclei(sparse), _nuclei(dense), _nuclei(big)
    assert f_dense > 1.8 * f_sparse  # nuclear density
    assert a_big > 1.6 * a_sparse  # nuclear size


def test_demo_image_shares_latent_factors_with_expression(tmp_path):
    """Slides of high-proliferation patients hold more nuclei (a factor the labels do not give)."""
    from gemmgan_sc.datasets._demo import _sample_case, _slide_params

    cases = [_sample_case(0, i) for i in range(40)]
    params = [_slide_params(c, 0, i) for i, c in enumerate(cases)]
    prolif = np.array([c["z"]["proliferation"] for c in cases])
    density = np.array([p.occupancy / p.cell_px**2 for p in params])
    assert np.corrcoef(prolif, density)[0, 1] > 0.5
    imm = np.array([c["z"]["immune"] for c in cases])
    assert np.corrcoef(imm, [p.immune_frac for p in params])[0, 1] > 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 2.5}, "n_samples"),
        ({"n_genes": 5}, "n_genes"),
        ({"seed": -1}, "seed"),
        ({"slides": "yes"}, "slides"),
        ({"cache_dir": 3}, "cache_dir"),
    ],
)
def test_demo_validates_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gg.datasets.demo(**{"n_samples": 2, "n_genes": 30, **kwargs})


def _digest(adata) -> str:
    """sha256 of what demo() writes, except the cache path: obs (values and dtypes), var, X, obsm, uns."""
    import hashlib
    import json

    obs = adata.obs.drop(columns=[c for c in ("slide_path",) if c in adata.obs])
    uns = dict(adata.uns["gemmgan_demo"])
    uns["params"] = {k: v for k, v in uns["params"].items() if k != "cache_dir"}
    h = hashlib.sha256()
    for part in (obs.to_csv(), str(obs.dtypes.to_dict()), adata.var.to_csv(), str(adata.var.dtypes.to_dict()),
                 adata.X.tobytes(), adata.obsm["demo_latent"].to_csv(), json.dumps(uns, sort_keys=True, default=str)):
        h.update(part if isinstance(part, bytes) else part.encode())
    return h.hexdigest()


# recorded before demo() and render_slide were split into steps (issue 15); the output must not change
GOLDEN_DEMO = "4b47ae63031e2abe0c20a59a376632e553db24bd49730bd58e21eef20509fefb"
GOLDEN_SLIDE = "86ab0218b7dc247ce948b75bb6139ab3d8205b785d1393441dfa7033dd99d9a2"


def test_demo_and_slide_match_the_golden_digests():
    import hashlib

    assert _digest(gg.datasets.demo(n_samples=12, n_genes=40, seed=2, slides=False)) == GOLDEN_DEMO
    h = hashlib.sha256()
    for k, kw in enumerate([dict(n_fragments=2, elongation=1.8, lumen_frac=0.25), dict(stroma_frac=0.0, immune_frac=0.3),
                            dict(height=300, width=517, cell_px=9.0, pleomorphism=0.4)]):
        kw = {"height": 256, "width": 320, **kw}
        h.update(render_slide(SlideParams(**kw), np.random.default_rng(k)).tobytes())
    assert h.hexdigest() == GOLDEN_SLIDE
