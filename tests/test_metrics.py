"""gg.metrics: fidelity (k-NN), correlation, detectability, utility, privacy; checked against definitions."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
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


# ----------------------------------------------------------------------------- paths of the k-NN scores
# The distance code converts float32 data gene slab by gene slab (the scores accumulating over the slabs),
# scores a set against itself in row chunks (each pair once) grouped under the block size, and refines tiny
# Euclidean scores. Small slab, chunk and block sizes force every one of those paths; all must give the
# numbers of scipy's cdist.
def small_ints(rng, n, genes):
    x = rng.integers(-3, 4, size=(n, genes)).astype(np.float32)  # every product and sum exact in float64
    x[7] = x[2]  # a duplicate: neighbour at exactly 0
    return x


@pytest.fixture
def tiny_slabs(monkeypatch):
    from gemmgan_sc.metrics import _distances

    monkeypatch.setattr(_distances, "SLAB_BYTES", 1)  # 64-gene slabs (the minimum width)
    return _distances


def sorted_cdist(a, b, k, name="sqeuclidean"):
    d = cdist(a.astype(np.float64), (a if b is None else b).astype(np.float64), name)
    if b is None:
        np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, :k]


@pytest.mark.parametrize("chunks", [1, 8, 100])
@pytest.mark.parametrize("metric", ["euclidean", "l1"])
def test_knn_scores_exact_through_slabs_chunks_and_groups(chunks, metric, tiny_slabs, monkeypatch):
    monkeypatch.setattr(tiny_slabs, "SELF_CHUNKS", chunks)
    name = {"euclidean": "sqeuclidean", "l1": "cityblock"}[metric]
    rng = np.random.default_rng(11)
    a32, b32 = small_ints(rng, 29, 150), small_ints(rng, 23, 150)  # 150 genes: slabs of 64, 64, 22
    want_self, want_cross = sorted_cdist(a32, None, 5, name), sorted_cdist(a32, b32, 5, name)
    assert want_self[2, 0] == 0 and want_self[7, 0] == 0
    # block sizes: everything in one group; several chunks per group; one row per chunk and group
    for block in (2**30, 3 * 29 * 8, 1):
        for a, b in ((a32.astype(np.float64), b32.astype(np.float64)), (a32, b32)):  # native, slabs
            got = knn_scores(a, None, 5, metric, block_bytes=block, dtype=np.float64)
            assert got.dtype == np.float64 and np.array_equal(got, want_self)
            assert np.array_equal(knn_scores(a, b, 5, metric, block_bytes=block, dtype=np.float64), want_cross)


def test_chunked_self_search_agrees_with_cdist_on_continuous_data(tiny_slabs):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(41, 130)).astype(np.float32)
    x[30] = x[4]
    ref = sorted_cdist(x, None, 6)
    for data in (x, x.astype(np.float64)):
        for block in (2**30, 5 * 41 * 8, 1):
            got = knn_scores(data, None, 6, block_bytes=block, dtype=np.float64)
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-9)
            assert got[4, 0] == 0 and got[30, 0] == 0  # the copies, refined to exactly 0
    pair = tiny_slabs.Pairwise(tiny_slabs.Points(x, np.float64))
    full = pair.blocks([(slice(0, 41), slice(0, 41))])[0].numpy()
    assert np.array_equal(np.isinf(full), np.eye(41, dtype=bool))  # self excluded by position, only there
    off = ~np.eye(41, dtype=bool)
    np.testing.assert_allclose(full[off], cdist(x.astype(np.float64), x.astype(np.float64), "sqeuclidean")[off],
                               rtol=1e-12)
    # blocks computed together equal the same blocks computed alone (up to the rounding of other BLAS shapes)
    spans = [(slice(0, 10), slice(0, 41)), (slice(10, 41), slice(10, 41))]
    for (rows, cols), d in zip(spans, pair.blocks(spans)):
        np.testing.assert_allclose(d.numpy(), full[rows, cols], rtol=1e-13)


def test_groups_of_spans_stay_under_the_block_size():
    from gemmgan_sc.metrics._distances import _groups

    spans = [(slice(i, i + 10), slice(i, 40)) for i in range(0, 40, 10)]  # blocks of 400, 300, 200, 100 items
    assert _groups(spans, 1, 10**6) == [spans]
    assert _groups(spans, 1, 500) == [spans[:1], spans[1:3], spans[3:]]
    assert _groups(spans, 1, 1) == [[s] for s in spans]  # one block larger than the limit still gets its group


@pytest.mark.parametrize("metric", ["euclidean", "l1"])
def test_fidelity_float32_data_float64_work_equals_float64_data(metric, tiny_slabs):
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


def test_float32_data_are_converted_by_slab_not_whole(monkeypatch):
    from gemmgan_sc.metrics import _distances

    converted = []
    real_convert = _distances._convert

    def spy(x, dtype):
        converted.append((x.dtype, x.numel()))
        return real_convert(x, dtype)

    monkeypatch.setattr(_distances, "SLAB_BYTES", 2**20)
    monkeypatch.setattr(_distances, "_convert", spy)
    rng = np.random.default_rng(14)
    real = rng.normal(size=(300, 3000)).astype(np.float32)
    synth = rng.normal(size=(300, 3000)).astype(np.float32)
    M.fidelity(real, synth, k=5)
    M.privacy(synth, real[:150], real[150:])
    largest = max(n for dt, n in converted if dt == torch.float32)
    assert largest * 8 <= 2**20  # every float64 conversion is one slab, never a whole input (7.2 MB)


def test_mixed_storage_dtypes_are_converted_by_slab(tiny_slabs, monkeypatch):
    widths = []
    real_convert = tiny_slabs._convert
    def spy(x, dtype):
        if x.dtype != dtype:  # a real conversion (not the no-op of float64 data)
            widths.append(x.shape[-1])
        return real_convert(x, dtype)

    monkeypatch.setattr(tiny_slabs, "_convert", spy)
    rng = np.random.default_rng(17)
    a, b = small_ints(rng, 30, 200), small_ints(rng, 25, 200).astype(np.float64)
    for x, y in ((a, b), (b, a)):  # one float32 and one float64 set: both sides by 64-gene slab
        assert np.array_equal(knn_scores(x, y, 3, dtype=np.float64), sorted_cdist(x, y, 3))
    assert widths and max(widths) == 64


def test_each_set_norms_once_and_device_checked():
    from gemmgan_sc.metrics._distances import Points

    x = np.arange(12.0).reshape(3, 4)
    p = Points(x)
    assert p.sq_norms is p.sq_norms and p.x.data_ptr() == x.ctypes.data  # cached; numpy memory shared
    np.testing.assert_array_equal(p.sq_norms.numpy(), (x**2).sum(1))
    with pytest.raises(ValueError, match="device must be a torch device"):
        M.fidelity(x, x, k=1, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs CUDA"):
            M.privacy(x, x, x, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu():
    rng = np.random.default_rng(16)
    real, synth = small_ints(rng, 80, 200), small_ints(rng, 70, 200)
    for metric in ("euclidean", "l1"):
        cpu = M.fidelity(real, synth, k=4, metric=metric)
        assert M.fidelity(real, synth, k=4, metric=metric, device="cuda") == cpu
    train, test = rng.normal(size=(90, 50)), rng.normal(size=(60, 50))
    assert M.privacy(train[:30], train, test, device="cuda") == pytest.approx(M.privacy(train[:30], train, test),
                                                                                rel=1e-12)


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
