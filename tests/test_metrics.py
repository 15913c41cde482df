"""gg.metrics: fidelity (k-NN), correlation, detectability, utility, privacy; checked against definitions."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist

import gemmgan_sc as gg
from gemmgan_sc.metrics._distances import knn_scores
from gemmgan_sc.metrics._fidelity import fidelity_arrays

M = gg.metrics


# ----------------------------------------------------------------------------- brute-force reference
def reference(real, synth, k, metric):
    """The definitions, written out with full scipy distance matrices."""
    name = {"euclidean": "euclidean", "l1": "cityblock"}[metric]

    def radii(x):
        d = cdist(x, x, name)
        np.fill_diagonal(d, np.inf)  # k-th nearest OTHER point
        return np.sort(d, axis=1)[:, k - 1]

    def radii_prdc(x):
        d = cdist(x, x, name)  # (k+1)-th smallest counting the point itself
        return np.sort(d, axis=1)[:, k]

    rr, rs = radii(real), radii(synth)
    d = cdist(synth, real, name)
    assert np.array_equal(radii_prdc(real), rr)
    return {
        "precision_kynkaanniemi": (d <= rr[None]).any(1).mean(),
        "recall_kynkaanniemi": (d.T <= rs[None]).any(1).mean(),
        "precision_prdc": (d < rr[None]).any(1).mean(),
        "recall_prdc": (d.T < rs[None]).any(1).mean(),
        "density": (d < rr[None]).sum() / (k * len(synth)),
        "coverage": (d.min(0) < rr).mean(),
    }


@pytest.mark.parametrize("metric", ["euclidean", "l1"])
@pytest.mark.parametrize("block_bytes", [64, 2**30])
def test_fidelity_equals_bruteforce_with_ties(metric, block_bytes):
    rng = np.random.default_rng(3)
    # small integers: many exact ties at the radius, all arithmetic exact
    real = rng.integers(0, 3, size=(45, 4)).astype(float)
    synth = rng.integers(0, 3, size=(37, 4)).astype(float)
    for k in (1, 3, 7):
        got = M.fidelity(real, synth, k=k, metric=metric, block_bytes=block_bytes)
        assert got == pytest.approx(reference(real, synth, k, metric), abs=0)


@pytest.mark.parametrize("metric", ["euclidean", "l1"])
def test_fidelity_continuous_data_and_float32(metric):
    rng = np.random.default_rng(4)
    real, synth = rng.normal(size=(120, 30)), rng.normal(0.3, 1.2, size=(90, 30))
    ref = reference(real, synth, 5, metric)
    assert M.fidelity(real, synth, k=5, metric=metric) == pytest.approx(ref, abs=0)
    got32 = M.fidelity(real, synth, k=5, metric=metric, dtype="float32")
    assert got32 == pytest.approx(ref, abs=1.5 / 90)  # at most one point flips near a radius


def test_knn_scores_match_cdist_and_exclude_self_by_position():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 6))
    x[10] = x[3]  # a duplicate: its neighbour at distance 0 counts, itself does not
    d = cdist(x, x, "sqeuclidean")
    np.fill_diagonal(d, np.inf)
    for block in (100, 2**30):
        got = knn_scores(x, None, 4, "euclidean", block_bytes=block)
        np.testing.assert_allclose(got, np.sort(d, 1)[:, :4], atol=1e-12)
        assert got[3, 0] == 0 and got[10, 0] == 0 and got[0, 0] > 0


def test_identical_and_far_apart_sets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 8))
    for method in ("kynkaanniemi", "prdc"):
        assert M.precision_recall(x, x, k=5, method=method) == {"precision": 1.0, "recall": 1.0}
        assert M.precision_recall(x, x + 100.0, k=5, method=method) == {"precision": 0.0, "recall": 0.0}
    assert M.density_coverage(x, x + 100.0, k=5) == {"density": 0.0, "coverage": 0.0}
    assert M.density_coverage(x, x, k=5)["coverage"] == 1.0


def test_hand_computed_one_dimensional():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    # radii with k=1: all real radii 1; synthetic 1.5 and 10 have radius 8.5
    synth = np.array([[1.5], [10.0]])
    assert M.precision_recall(real, synth, k=1) == {"precision": 0.5, "recall": 1.0}
    assert M.precision_recall(real, synth, k=1, method="prdc") == {"precision": 0.5, "recall": 1.0}
    # density: 1.5 lies in the balls of 1 and 2 (2 hits), 10 in none -> 2 / (k * 2); coverage: 1 and 2 covered
    assert M.density_coverage(real, synth, k=1) == {"density": 1.0, "coverage": 0.5}
    # a tie at the radius: 4 is exactly 1 from 3 (radius 1) -> inside for Kynkaanniemi (<=), outside for prdc (<)
    synth = np.array([[4.0], [20.0]])
    assert M.precision_recall(real, synth, k=1) == {"precision": 0.5, "recall": 1.0}
    assert M.precision_recall(real, synth, k=1, method="prdc") == {"precision": 0.0, "recall": 1.0}
    assert M.density_coverage(real, synth, k=1) == {"density": 0.0, "coverage": 0.0}


def test_hand_computed_l1_versus_euclidean():
    real = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # k=1 radius 1 under both metrics
    synth = np.array([[1.5, 1.5], [5.0, 5.0]])
    # (1.5, 1.5) is 0.707 from (1, 1) in L2 (inside) but exactly 1 in L1 (on the radius)
    assert M.precision_recall(real, synth, k=1, method="prdc")["precision"] == 0.5
    assert M.precision_recall(real, synth, k=1, method="prdc", metric="l1")["precision"] == 0.0
    assert M.precision_recall(real, synth, k=1, metric="l1")["precision"] == 0.5


def test_duplicates_give_zero_radius():
    real = np.array([[0.0], [0.0], [5.0], [5.0]])  # k=1 radii are 0
    synth = np.array([[0.0], [2.0], [9.0]])
    assert M.precision_recall(real, synth, k=1)["precision"] == pytest.approx(1 / 3)
    assert M.precision_recall(real, synth, k=1, method="prdc")["precision"] == 0.0


@settings(max_examples=60, deadline=None)
@given(
    real=arrays(np.int8, st.tuples(st.integers(4, 14), st.just(3)), elements=st.integers(-3, 3)),
    synth=arrays(np.int8, st.tuples(st.integers(4, 14), st.just(3)), elements=st.integers(-3, 3)),
    k=st.integers(1, 3),
    metric=st.sampled_from(["euclidean", "l1"]),
    seed=st.integers(0, 2**16),
)
def test_properties_bounds_symmetry_and_row_order(real, synth, k, metric, seed):
    real, synth = real.astype(float), synth.astype(float)
    out = fidelity_arrays(real, synth, k, metric)
    for key, v in out.items():
        assert v >= 0 and (key == "density" or v <= 1)
    swapped = fidelity_arrays(synth, real, k, metric)
    for method in ("kynkaanniemi", "prdc"):
        assert out[f"precision_{method}"] == swapped[f"recall_{method}"]
        assert out[f"recall_{method}"] == swapped[f"precision_{method}"]
    rng = np.random.default_rng(seed)
    shuffled = fidelity_arrays(real[rng.permutation(len(real))], synth[rng.permutation(len(synth))], k, metric)
    assert shuffled == out
    assert out == pytest.approx(reference(real, synth, k, metric), abs=0)


def test_anndata_inputs_aligned_by_gene_name_and_layer():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(30, 6))
    genes = [f"g{i}" for i in range(6)]
    a = ad.AnnData(np.zeros_like(x), var=pd.DataFrame(index=genes))
    a.layers["log"] = x
    order = [5, 3, 1, 0, 2, 4]
    b = ad.AnnData(y[:, order], var=pd.DataFrame(index=[genes[i] for i in order]))
    b.layers["log"] = y[:, order]
    expected = M.fidelity(x, y, k=3)
    assert M.fidelity(a, b, k=3, layer="log") == expected
    assert M.correlation_mse(a, b, layer="log") == pytest.approx(M.correlation_mse(x, y), abs=1e-15)
    with pytest.raises(KeyError, match="layer 'nope'"):
        M.fidelity(a, b, layer="nope")
    c = b[:, :4].copy()
    with pytest.raises(ValueError, match="lacks 2 of the genes"):
        M.fidelity(a, c, layer="log")


def test_input_validation_messages():
    x = np.zeros((5, 3))
    x[0, 0] = 1
    with pytest.raises(ValueError, match="k=5 needs more than k samples"):
        M.precision_recall(x, x, k=5)
    with pytest.raises(ValueError, match="method must be one of"):
        M.precision_recall(x, x, k=1, method="fid")
    with pytest.raises(ValueError, match="metric must be one of"):
        M.precision_recall(x, x, k=1, metric="cosine")
    bad = x.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        M.precision_recall(bad, x, k=1)
    with pytest.raises(ValueError, match="different numbers of genes"):
        M.precision_recall(x, np.zeros((5, 4)), k=1)
    with pytest.raises(TypeError, match="must be an AnnData"):
        M.privacy("a", x, x)
    with pytest.raises(ValueError, match="dtype must be one of"):
        M.fidelity(x, x, k=1, dtype="float16")


# ----------------------------------------------------------------------------- fast paths of the k-NN scores
# The distance code reuses one block buffer across chunks, accumulates float64 products over gene slabs of
# float32 data, completes the symmetric (syrk) block tile by tile and finishes each tile in place. Small
# block, slab and tile sizes force every one of those paths; all must give the numbers of the plain path.
def small_ints(rng, n, genes):
    x = rng.integers(-3, 4, size=(n, genes)).astype(np.float32)  # every product and sum exact in float64
    x[7] = x[2]  # a duplicate: neighbour at exactly 0
    return x


@pytest.fixture
def tiny_buffers(monkeypatch):
    from gemmgan_sc.metrics import _distances

    monkeypatch.setattr(_distances, "SLAB_BYTES", 1)  # 64-gene slabs (the minimum width)
    monkeypatch.setattr(_distances, "TILE_BYTES", 1)  # one row per tile
    return _distances


@pytest.mark.parametrize("tiles", ["one-row", "default"])
def test_knn_scores_exact_through_slabs_chunks_and_tiles(tiles, monkeypatch):
    from gemmgan_sc.metrics import _distances

    if tiles == "one-row":
        monkeypatch.setattr(_distances, "TILE_BYTES", 1)
    monkeypatch.setattr(_distances, "SLAB_BYTES", 1)
    rng = np.random.default_rng(11)
    a32, b32 = small_ints(rng, 29, 150), small_ints(rng, 23, 150)  # 150 genes: slabs of 64, 64, 22
    a64, b64 = a32.astype(np.float64), b32.astype(np.float64)
    self_d = cdist(a64, a64, "sqeuclidean")
    np.fill_diagonal(self_d, np.inf)
    want_self = np.sort(self_d, axis=1)[:, :5]
    want_cross = np.sort(cdist(a64, b64, "sqeuclidean"), axis=1)[:, :5]
    assert want_self[2, 0] == 0 and want_self[7, 0] == 0
    # block sizes: one symmetric block; 3 rows per chunk (many chunks, buffer reused); one row per chunk
    for block in (2**30, 3 * 29 * 8, 1):
        for a, b in ((a64, b64), (a32, b32)):  # float64 data (one BLAS call) and float32 data (slabs)
            work = _distances.Workspace()
            got = knn_scores(a, None, 5, block_bytes=block, dtype=np.float64, work=work)
            assert got.dtype == np.float64 and np.array_equal(got, want_self)
            # the same workspace again, now a x b: the block buffer is reused, the norms of a are cached
            got = knn_scores(a, b, 5, block_bytes=block, dtype=np.float64, work=work)
            assert np.array_equal(got, want_cross)


def test_symmetric_block_and_row_chunks_agree_on_continuous_data(tiny_buffers):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(41, 130)).astype(np.float32)
    x[30] = x[4]
    x64 = x.astype(np.float64)
    ref = cdist(x64, x64, "sqeuclidean")
    np.fill_diagonal(ref, np.inf)
    ref = np.sort(ref, axis=1)[:, :6]
    for data in (x, x64):
        one = knn_scores(data, None, 6, dtype=np.float64)  # symmetric block, one-row tiles, 64-gene slabs
        chunked = knn_scores(data, None, 6, block_bytes=5 * 41 * 8, dtype=np.float64)
        np.testing.assert_allclose(one, ref, rtol=1e-12)
        np.testing.assert_allclose(chunked, ref, rtol=1e-12)
        assert one[4, 0] == 0 and one[30, 0] == 0 and chunked[4, 0] == 0 and chunked[30, 0] == 0
    full = tiny_buffers.Scorer(x, x, "euclidean", exclude_self=True, dtype=np.float64).full_self()
    assert np.array_equal(np.isinf(full), np.eye(41, dtype=bool))  # self excluded by position, only there
    off = ~np.eye(41, dtype=bool)
    np.testing.assert_allclose(full[off], cdist(x64, x64, "sqeuclidean")[off], rtol=1e-12)
    # the mirrored triangle holds the same products (the norms are added in another order: rounding only)
    np.testing.assert_allclose(full[off], full.T[off], rtol=1e-13)


@pytest.mark.parametrize("metric", ["euclidean", "l1"])
def test_fidelity_float32_data_float64_work_equals_float64_data(metric, tiny_buffers):
    rng = np.random.default_rng(13)
    real = rng.normal(size=(60, 140)).astype(np.float32)
    synth = (rng.normal(size=(50, 140)) * 1.05).astype(np.float32)
    # (no copies here: a copy of a real point sits exactly on the radii of that point's neighbours, a tie that
    # the rounding of each path decides; exact ties are checked on small integers below)
    want = M.fidelity(real.astype(np.float64), synth.astype(np.float64), k=4, metric=metric)
    for block in (2**30, 7 * 60 * 8):
        assert M.fidelity(real, synth, k=4, metric=metric, block_bytes=block) == want
    ints_r, ints_s = small_ints(rng, 40, 130), small_ints(rng, 33, 130)
    got = M.fidelity(ints_r, ints_s, k=3, metric=metric, block_bytes=5 * 40 * 8)
    assert got == pytest.approx(reference(ints_r.astype(float), ints_s.astype(float), 3, metric), abs=0)


def test_float32_data_are_not_copied_to_float64(monkeypatch):
    import tracemalloc

    from gemmgan_sc.metrics import _distances, _fidelity

    monkeypatch.setattr(_distances, "SLAB_BYTES", 2**20)
    allocations = []

    class CountingWorkspace(_distances.Workspace):
        def reserve(self, name, size, dtype):
            before = self._bufs.get(name)
            super().reserve(name, size, dtype)
            if self._bufs[name] is not before:
                allocations.append(name)

    monkeypatch.setattr(_fidelity, "Workspace", CountingWorkspace)
    rng = np.random.default_rng(14)
    real = rng.normal(size=(300, 3000)).astype(np.float32)
    synth = rng.normal(size=(300, 3000)).astype(np.float32)
    tracemalloc.start()
    try:
        M.fidelity(real, synth, k=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * real.size * 8  # well under one float64 copy of one input (7.2 MB)
    # one distance block for the three distance sets, one of each slab buffer
    assert allocations.count("block") == 1 and allocations.count("slab_a") == 1
    assert allocations.count("slab_b") == 1


def test_workspace_hands_out_views_of_one_buffer():
    from gemmgan_sc.metrics._distances import Workspace

    work = Workspace()
    big = work.get("block", (6, 5), np.float64)
    small = work.get("block", (4, 3), np.float64)
    assert small.flags.c_contiguous and np.shares_memory(big, small)
    grown = work.get("block", (8, 8), np.float64)
    assert grown.shape == (8, 8) and not np.shares_memory(big, grown)
    x = np.arange(12.0).reshape(3, 4)
    assert work.norms(x, np.float64) is work.norms(x, np.float64)
    np.testing.assert_array_equal(work.norms(x, np.float64), (x**2).sum(1))


def test_non_finite_float32_data_are_rejected():
    x = np.ones((6, 3), dtype=np.float32)
    x[0, 0] = 2
    for bad_value in (np.nan, np.inf, -np.inf):
        bad = x.copy()
        bad[2, 1] = bad_value
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            M.fidelity(bad, x, k=1)
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            M.fidelity(x, bad, k=1, dtype="float32")


def test_privacy_float32_data_match_float64():
    rng = np.random.default_rng(15)
    train, test = rng.normal(size=(120, 90)).astype(np.float32), rng.normal(size=(80, 90)).astype(np.float32)
    synth = np.concatenate([train[:10], rng.normal(size=(60, 90)).astype(np.float32)])
    want = M.privacy(synth.astype(np.float64), train.astype(np.float64), test.astype(np.float64))
    got = M.privacy(synth, train, test)
    assert got == pytest.approx(want, rel=1e-12, abs=0)


# ----------------------------------------------------------------------------- correlation
@pytest.mark.parametrize("method", ["gram", "direct", "auto"])
@pytest.mark.parametrize("shape", [(15, 40), (80, 12)])
def test_correlation_mse_and_gamma_against_numpy(method, shape):
    rng = np.random.default_rng(2)
    n, g = shape
    real = rng.normal(size=(n, g))
    synth = rng.normal(size=(n + 7, g))
    synth[:, 1] += 2 * synth[:, 0]
    cr, cs = np.corrcoef(real.T), np.corrcoef(synth.T)
    assert M.correlation_mse(real, synth, method=method) == pytest.approx(np.mean((cr - cs) ** 2), rel=1e-10)
    iu = np.triu_indices(g, 1)
    gamma = np.corrcoef(1 - cr[iu], 1 - cs[iu])[0, 1]
    assert M.correlation_gamma(real, synth, method=method) == pytest.approx(gamma, rel=1e-9, abs=1e-12)
    assert M.correlation_mse(real, real, method=method) == pytest.approx(0, abs=1e-14)
    assert M.correlation_gamma(real, 3 * real + 1, method=method) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("method", ["gram", "direct"])
def test_correlation_constant_genes(method):
    rng = np.random.default_rng(6)
    real, synth = rng.normal(size=(30, 8)), rng.normal(size=(25, 8))
    real[:, 2] = 4.0  # constant in real only
    keep = [i for i in range(8) if i != 2]
    cr, cs = np.corrcoef(real[:, keep].T), np.corrcoef(synth[:, keep].T)
    assert M.correlation_mse(real, synth, method=method) == pytest.approx(np.mean((cr - cs) ** 2), rel=1e-10)
    # "zero": the constant gene's row, column and diagonal count as 0 in BOTH matrices
    cr0, cs0 = np.zeros((8, 8)), np.corrcoef(synth.T)
    cr0[np.ix_(keep, keep)] = cr
    cs0[2, :] = cs0[:, 2] = 0
    got = M.correlation_mse(real, synth, method=method, constant_genes="zero")
    assert got == pytest.approx(np.mean((cr0 - cs0) ** 2), rel=1e-10)
    iu = np.triu_indices(8, 1)
    got_g = M.correlation_gamma(real, synth, method=method, constant_genes="zero")
    assert got_g == pytest.approx(np.corrcoef(cr0[iu], cs0[iu])[0, 1], rel=1e-9)
    with pytest.raises(ValueError, match="constant_genes must be one of"):
        M.correlation_mse(real, synth, constant_genes="nan")
    with pytest.raises(ValueError, match="fewer than 2 genes vary"):
        M.correlation_mse(np.ones((5, 3)), synth[:5, :3])


# ----------------------------------------------------------------------------- classifiers
@pytest.mark.parametrize("classifier", ["logreg", "mlp", "rf"])
def test_detectability_same_distribution_is_chance_and_shifted_is_detected(classifier):
    rng = np.random.default_rng(7)
    a, b, c, d = (rng.normal(size=(250, 10)) for _ in range(4))
    same = M.detectability(a, b, c, d, classifier=classifier, seed=0)
    assert abs(same["accuracy"] - 0.5) < 0.1 and abs(same["auc"] - 0.5) < 0.1
    shifted = M.detectability(a, b + 1.5, c, d + 1.5, classifier=classifier, seed=0)
    assert shifted["accuracy"] > 0.85 and shifted["auc"] > 0.9
    assert M.detectability(a, b, c, d, classifier=classifier, seed=0) == same  # seeded


@pytest.mark.parametrize("classifier", ["rf", "mlp", "logreg"])
def test_utility_separable_labels(classifier):
    rng = np.random.default_rng(8)

    def make(n):
        y = rng.choice(["LUAD", "BLCA", "HNSC"], size=n)
        x = rng.normal(size=(n, 12))
        x[:, :3] += 6 * (y[:, None] == np.array(["LUAD", "BLCA", "HNSC"])[None, :])
        a = ad.AnnData(x, obs=pd.DataFrame({"disease": pd.Categorical(y)}, index=[f"c{i}" for i in range(n)]))
        return a

    synth, test, train = make(150), make(100), make(150)
    out = M.utility(synth, test, "disease", classifier=classifier, real_train=train)
    assert out["accuracy"] > 0.95 and out["f1_macro"] > 0.95 and out["real_accuracy"] > 0.95
    assert {"augmented_f1_weighted", "real_f1_macro"} <= set(out)
    # synthetic with shuffled labels carries no utility
    bad = synth.copy()
    bad.obs["disease"] = rng.permutation(bad.obs["disease"].to_numpy())
    assert M.utility(bad, test, "disease", classifier=classifier)["accuracy"] < 0.6
    with pytest.raises(KeyError, match="'stage' is not a column"):
        M.utility(synth, test, "stage")
    with pytest.raises(ValueError, match="labels for synth are missing"):
        M.utility(synth.X, test.X)
    with pytest.raises(ValueError, match="classifier must be one of"):
        M.utility(synth, test, "disease", classifier="svm")


def test_privacy_copy_versus_fresh_samples():
    rng = np.random.default_rng(9)
    train, test = rng.normal(size=(200, 10)), rng.normal(size=(100, 10))
    copy = M.privacy(train.copy(), train, test)
    assert copy["closer_to_train"] == 1.0 and copy["nndr_mean"] == 0.0 and copy["dcr_synth_median"] == 0.0
    assert copy["closer_to_train_expected"] == pytest.approx(2 / 3)
    fresh = M.privacy(rng.normal(size=(400, 10)), train, test)
    assert abs(fresh["closer_to_train"] - 2 / 3) < 0.08
    assert 0.5 < fresh["nndr_mean"] <= 1.0
    assert fresh["dcr_synth_median"] > 1.0
    equal = M.privacy(rng.normal(size=(400, 10)), train[:100], test)
    assert equal["closer_to_train_expected"] == 0.5 and abs(equal["closer_to_train"] - 0.5) < 0.08
    # hand-computed: synthetic 0.4 is nearer train 0 (0.4) than test 1 (0.6); 0.9 nearer test 1
    tr, te = np.array([[0.0], [3.0]]), np.array([[1.0], [5.0]])
    out = M.privacy(np.array([[0.4], [0.9], [2.0]]), tr, te, metric="l1")
    assert out["closer_to_train"] == pytest.approx((1 + 0 + 0.5) / 3)  # 2.0 is a tie: 1 from 3 and 1 from 1
    # distance ratios to train {0, 3}: 0.4/2.6, 0.9/2.1, 1/2
    assert out["nndr_median"] == pytest.approx(0.9 / 2.1)
    assert out["nndr_mean"] == pytest.approx((0.4 / 2.6 + 0.9 / 2.1 + 0.5) / 3)
    assert out["dcr_synth_median"] == pytest.approx(0.9) and out["dcr_test_median"] == pytest.approx(1.5)
