"""gg.metrics.frechet_distance and gg.metrics.sd_ratio against hand-computed values."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.linalg

import gemmgan_sc as gg
from gemmgan_sc.metrics._frechet import frechet_gaussians


def test_identical_sets_give_zero():
    x = np.random.default_rng(0).normal(size=(80, 30))
    assert gg.metrics.frechet_distance(x, x, n_components=10) == pytest.approx(0.0, abs=1e-9)
    # a permutation of the rows is the same set
    assert gg.metrics.frechet_distance(x, x[::-1], n_components=30) == pytest.approx(0.0, abs=1e-9)


def test_one_gene_closed_form():
    rng = np.random.default_rng(1)
    a, b = rng.normal(2.0, 1.0, size=(50, 1)), rng.normal(-1.0, 3.0, size=(70, 1))
    # 1-D: (m_a - m_b)^2 + (s_a - s_b)^2 with sample standard deviations (ddof=1)
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert gg.metrics.frechet_distance(a, b, n_components=1) == pytest.approx(expected, rel=1e-12)


def test_diagonal_covariances_closed_form():
    # centred columns are orthogonal: covariance diag(2/3, 2/3); the synthetic set is 2 x it, shifted by (3, -4)
    real = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    synth = 2.0 * real + np.array([3.0, -4.0])
    # |shift|^2 + sum_i (sqrt(2/3) - sqrt(8/3))^2 = 25 + 2 * 2/3
    assert gg.metrics.frechet_distance(real, synth, n_components=2) == pytest.approx(25.0 + 4.0 / 3.0, rel=1e-12)


def test_full_rank_matches_scipy_sqrtm_in_gene_space():
    # with every principal axis kept the projection is a rotation, so the distance is that of the genes themselves
    rng = np.random.default_rng(2)
    mix = rng.normal(size=(6, 6))
    real = rng.normal(size=(200, 6)) @ mix
    synth = rng.normal(size=(150, 6)) @ (mix + 0.3 * rng.normal(size=(6, 6))) + 0.5
    m1, m2 = real.mean(0), synth.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(synth, rowvar=False)
    root = np.real(scipy.linalg.sqrtm(s1 @ s2))
    expected = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * root)
    assert gg.metrics.frechet_distance(real, synth, n_components=6) == pytest.approx(expected, rel=1e-8)
    # symmetric in the two sets when the PCA space is the same (full rank: any reference)
    assert gg.metrics.frechet_distance(synth, real, n_components=6) == pytest.approx(expected, rel=1e-8)


def test_shift_gives_squared_norm_of_projected_shift():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(120, 40)) * np.linspace(0.5, 3.0, 40)
    shift = rng.normal(size=40)
    centred = real - real.mean(0)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:7]  # top 7 principal axes, by hand
    expected = float(np.sum((axes @ shift) ** 2))
    assert gg.metrics.frechet_distance(real, real + shift, n_components=7) == pytest.approx(expected, rel=1e-8)
    assert expected < float(shift @ shift)  # the part of the shift outside the 7 axes does not count


def test_reference_defines_the_space():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(100, 5))
    shift = np.array([0.0, 0.0, 0.0, 0.0, 2.0])
    # the reference varies only along gene 0 (plus tiny noise): one axis = gene 0, which the shift misses
    reference = np.zeros((60, 5))
    reference[:, 0] = rng.normal(size=60) * 10
    reference[:, 1:] = 1e-6 * rng.normal(size=(60, 4))
    d_ref = gg.metrics.frechet_distance(real, real + shift, reference=reference, n_components=1)
    assert d_ref == pytest.approx(0.0, abs=1e-6)
    assert gg.metrics.frechet_distance(real, real + shift, n_components=5) == pytest.approx(4.0, rel=1e-9)


def test_frechet_gaussians_singular_covariances_stay_real():
    s1 = np.diag([1.0, 0.0, 0.0])
    s2 = np.diag([0.0, 4.0, 0.0])
    # sqrt(S1) S2 sqrt(S1) = 0: distance = tr S1 + tr S2
    assert frechet_gaussians(np.zeros(3), s1, np.zeros(3), s2) == pytest.approx(5.0)


def test_anndata_inputs_align_genes_and_layer():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(30, 6)) + 1
    genes = [f"g{i}" for i in range(6)]
    a = ad.AnnData(np.zeros_like(x), var=pd.DataFrame(index=genes))
    a.layers["z"] = x
    b = ad.AnnData(np.zeros_like(y[:, ::-1]), var=pd.DataFrame(index=genes[::-1]))
    b.layers["z"] = y[:, ::-1]
    expected = gg.metrics.frechet_distance(x, y, n_components=4)
    assert gg.metrics.frechet_distance(a, b, n_components=4, layer="z") == pytest.approx(expected, rel=1e-12)


def test_frechet_validates():
    x = np.random.default_rng(6).normal(size=(10, 4))
    with pytest.raises(ValueError, match=r"n_components=5 exceeds min\(rows, genes\) of real \(10 x 4\)"):
        gg.metrics.frechet_distance(x, x, n_components=5)
    with pytest.raises(ValueError, match="of reference"):
        gg.metrics.frechet_distance(x, x, reference=x[:2], n_components=3)
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="n_components must be a positive int"):
            gg.metrics.frechet_distance(x, x, n_components=bad)
    nan = x.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="synthetic has 1 NaN or infinite values"):
        gg.metrics.frechet_distance(x, nan, n_components=2)
    with pytest.raises(ValueError, match="synthetic needs at least 2 samples"):
        gg.metrics.frechet_distance(x, x[:1], n_components=2)
    with pytest.raises(ValueError, match="different numbers of genes"):
        gg.metrics.frechet_distance(x, x[:, :3], n_components=2)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        gg.metrics.frechet_distance(x, x, n_components=2, seed=-1)


def test_sd_ratio():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(50, 8)) * np.arange(1, 9)
    assert gg.metrics.sd_ratio(real, 0.25 * real + 3) == pytest.approx(0.25)
    other = rng.normal(size=(60, 8))
    expected = other.std(axis=0).mean() / real.std(axis=0).mean()
    assert gg.metrics.sd_ratio(real, other) == pytest.approx(expected)
    assert np.isnan(gg.metrics.sd_ratio(np.ones((5, 3)), other[:, :3]))
    with pytest.raises(ValueError, match="real needs at least 2 samples"):
        gg.metrics.sd_ratio(real[:1], other)
