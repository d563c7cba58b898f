"""Metric functions checked against their definitions (docs/science.md, "Similarity measures"), written out here in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xling_probe.errors import MetricError
from xling_probe.measures.metrics import (
    anc,
    anc_batched,
    cosine_similarity_matrix,
    linear_cka,
    linear_cka_batched,
    mexa_alignment,
    mexa_alignment_batched,
    mexa_from_similarity,
    mutual_knn,
    retrieval_precision,
    retrieval_precision_batched,
)


def rng(seed=0):
    return np.random.default_rng(seed)


def related(n=60, dx=20, dy=30, noise=1.0, seed=0):
    """Two views of the same latent sentences: X [n, dx], Y [n, dy] (Y a noisy linear map of X)."""
    g = rng(seed)
    x = g.normal(size=(n, dx)) * g.uniform(0.5, 3, size=dx) + g.normal(size=dx)
    y = x @ g.normal(size=(dx, dy)) + noise * g.normal(size=(n, dy)) + 5.0
    return x, y


def aligned(n=50, d=16, noise=1.0, seed=0):
    """Y = X + noise: neuron d of Y follows neuron d of X (for ANC, retrieval and MEXA)."""
    g = rng(seed)
    x = g.normal(size=(n, d))
    return x, x + noise * g.normal(size=(n, d))


# ------------------------------------------------------------------ references from the formulas
def cka_feature_reference(x, y):
    """CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) with centered columns."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def unbiased_hsic_reference(K, L):
    """Song et al. (2012): zero the diagonals, then
    [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))."""
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0)
    np.fill_diagonal(Lt, 0)
    one = np.ones(n)
    return (np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ Kt @ Lt @ one)) / (n * (n - 3))


def debiased_cka_reference(x, y):
    K, L = x @ x.T, y @ y.T  # uncentered on purpose: the unbiased HSIC does not depend on a shift
    return unbiased_hsic_reference(K, L) / math.sqrt(unbiased_hsic_reference(K, K) * unbiased_hsic_reference(L, L))


# ------------------------------------------------------------------ CKA
@pytest.mark.parametrize("n,dx,dy", [(60, 20, 30), (25, 40, 70)])
def test_cka_feature_form_equals_gram_form(n, dx, dy):
    x, y = related(n, dx, dy)
    for debiased in (False, True):
        feat = linear_cka(x, y, debiased=debiased, form="feature")
        gram = linear_cka(x, y, debiased=debiased, form="gram")
        assert feat == pytest.approx(gram, abs=1e-12)
        assert linear_cka(x, y, debiased=debiased) == pytest.approx(gram, abs=1e-12)
    assert linear_cka(x, y) == pytest.approx(cka_feature_reference(x, y), abs=1e-12)


def test_debiased_cka_equals_direct_unbiased_hsic():
    x, y = related(40, 15, 25, noise=3.0, seed=3)
    expected = debiased_cka_reference(x, y)
    assert linear_cka(x, y, debiased=True, form="gram") == pytest.approx(expected, abs=1e-12)
    assert linear_cka(x, y, debiased=True, form="feature") == pytest.approx(expected, abs=1e-12)
    assert abs(expected - cka_feature_reference(x, y)) > 0.01  # the two estimators really differ here


def test_cka_is_one_for_identical_inputs():
    x, _ = related(30, 50, 10)
    for debiased in (False, True):
        for form in ("feature", "gram"):
            assert linear_cka(x, x, debiased=debiased, form=form) == pytest.approx(1.0, abs=1e-12)


def test_cka_invariant_to_orthogonal_transform_and_isotropic_scaling():
    x, y = related(50, 24, 24, noise=2.0)
    q, _ = np.linalg.qr(rng(7).normal(size=(24, 24)))
    for debiased in (False, True):
        base = linear_cka(x, y, debiased=debiased)
        assert linear_cka(x @ q, y, debiased=debiased) == pytest.approx(base, abs=1e-12)
        assert linear_cka(3.7 * x, 0.01 * y, debiased=debiased) == pytest.approx(base, abs=1e-12)
        # a non-isotropic scaling is not a symmetry: the invariance checks above can fail
        assert abs(linear_cka(x * np.linspace(0.1, 10, 24), y, debiased=debiased) - base) > 1e-3


def test_debiased_cka_of_independent_data_is_near_zero_while_biased_is_high():
    g = rng(11)
    x, y = g.normal(size=(50, 2000)), g.normal(size=(50, 2000))
    assert linear_cka(x, y) > 0.9
    assert abs(linear_cka(x, y, debiased=True)) < 0.05


def test_cka_batched_over_layers_equals_per_slice():
    g = rng(2)
    x = g.normal(size=(5, 30, 12))
    y = x + g.normal(size=(5, 30, 12)) * np.arange(1, 6)[:, None, None]
    for debiased in (False, True):
        batched = linear_cka_batched(x, y, debiased=debiased)
        assert batched.shape == (5,)
        np.testing.assert_allclose(batched, [linear_cka(x[i], y[i], debiased=debiased) for i in range(5)], atol=1e-12)
    assert np.all(np.diff(linear_cka_batched(x, y)) < 0)  # more noise, lower CKA


def test_cka_accepts_float32_torch_and_accumulates_in_float64():
    x, y = related(80, 16, 16)
    t = linear_cka(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    ref = cka_feature_reference(x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64))
    assert t == pytest.approx(ref, abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_metrics_run_on_the_gpu_with_the_same_numbers():
    x, y = related(64, 32, 32)
    xc, yc = torch.tensor(x, device="cuda"), torch.tensor(y, device="cuda")
    assert linear_cka(xc, yc, debiased=True) == pytest.approx(linear_cka(x, y, debiased=True), abs=1e-10)
    assert anc(xc, yc) == pytest.approx(anc(x, y), abs=1e-10)
    assert retrieval_precision(xc, yc) == retrieval_precision(x, y)
    assert mexa_alignment(xc, yc) == mexa_alignment(x, y)


# ------------------------------------------------------------------ ANC
def anc_reference(x, y, absolute=False):
    """Per-neuron numpy.corrcoef loop; zero-variance neurons skipped and counted."""
    rs, skipped = [], 0
    for d in range(x.shape[1]):
        if np.ptp(x[:, d]) == 0 or np.ptp(y[:, d]) == 0:
            skipped += 1
            continue
        r = np.corrcoef(x[:, d], y[:, d])[0, 1]
        rs.append(abs(r) if absolute else r)
    return float(np.mean(rs)), skipped


def test_anc_equals_per_neuron_corrcoef_loop_and_reports_excluded_neurons():
    x, y = related(40, 25, 25, noise=2.0)
    y = y - 2 * x  # mix of positive and negative correlations
    x[:, 3] = 1.5  # constant neurons: excluded, never NaN
    y[:, 7] = -2.0
    for absolute in (False, True):
        expected, skipped = anc_reference(x, y, absolute)
        value, excluded = anc(x, y, absolute=absolute, return_excluded=True)
        assert skipped == excluded == 2
        assert value == pytest.approx(expected, abs=1e-12)
    assert anc(x, y) != pytest.approx(anc(x, y, absolute=True), abs=1e-3)  # signed and absolute differ here


def test_anc_invariant_to_per_neuron_affine_change_but_not_to_rotation():
    g = rng(5)
    x = g.normal(size=(60, 16)) * g.uniform(0.5, 3, size=16)
    y = x + g.normal(size=(60, 16))  # neuron d of y follows neuron d of x
    scale, shift = g.uniform(0.1, 10, size=16), g.normal(size=16) * 100
    base = anc(x, y)
    assert anc(x * scale + shift, y) == pytest.approx(base, abs=1e-12)
    signs = np.where(np.arange(16) % 2 == 0, -1.0, 1.0)  # negative scales flip r_d but keep |r_d|
    assert anc(x * scale * signs + shift, y, absolute=True) == pytest.approx(anc(x, y, absolute=True), abs=1e-12)
    q, _ = np.linalg.qr(g.normal(size=(16, 16)))
    assert base > 0.6 and abs(anc(x, y @ q) - base) > 0.3  # ANC sees the rotation...
    assert linear_cka(x, y @ q) == pytest.approx(linear_cka(x, y), abs=1e-12)  # ...CKA does not


def test_absolute_anc_of_independent_data_sits_at_chance():
    g = rng(13)
    n = 200
    x, y = g.normal(size=(n, 3000)), g.normal(size=(n, 3000))
    assert anc(x, y, absolute=True) == pytest.approx(math.sqrt(2 / (math.pi * n)), abs=0.003)
    assert abs(anc(x, y)) < 0.005


def test_anc_batched_returns_values_and_excluded_counts():
    g = rng(3)
    x, y = g.normal(size=(3, 20, 6)), g.normal(size=(3, 20, 6))
    x[1, :, 0] = 0.0
    values, excluded = anc_batched(x, y)
    assert excluded.tolist() == [0, 1, 0]
    np.testing.assert_allclose(values, [anc_reference(x[i], y[i])[0] for i in range(3)], atol=1e-12)


# ------------------------------------------------------------------ retrieval and MEXA
def cosine_reference(x, y):
    s = np.empty((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            s[i, j] = x[i] @ y[j] / (np.linalg.norm(x[i]) * np.linalg.norm(y[j]))
    return s


def precision_at_k_reference(x, y, k):
    """Brute force: i counts when fewer than k candidates rank before y_i (ties go to the lower index)."""
    s = cosine_reference(x, y)

    def one_way(s):
        hits = 0
        for i in range(len(s)):
            before = sum(1 for j in range(len(s)) if s[i, j] > s[i, i] or (s[i, j] == s[i, i] and j < i))
            hits += before < k
        return hits / len(s)

    return one_way(s), one_way(s.T)


def test_retrieval_p_at_1_matches_brute_force_loop():
    x, y = aligned(50, 16, noise=1.2, seed=4)
    s = cosine_reference(x, y)
    fwd = np.mean([int(np.argmax(s[i])) == i for i in range(50)])
    bwd = np.mean([int(np.argmax(s[:, j])) == j for j in range(50)])
    assert 0.1 < fwd < 0.9  # an informative case, neither trivial nor hopeless
    assert retrieval_precision(x, y) == (pytest.approx(fwd, abs=1e-15), pytest.approx(bwd, abs=1e-15))
    assert retrieval_precision(x, y, k=5) == pytest.approx(precision_at_k_reference(x, y, 5), abs=1e-15)
    np.testing.assert_allclose(cosine_similarity_matrix(x, y).numpy(), s, atol=1e-12)


def test_retrieval_batched_equals_per_slice():
    g = rng(8)
    x = g.normal(size=(4, 30, 10))
    y = x + g.normal(size=(4, 30, 10)) * 1.5
    a, b = retrieval_precision_batched(x, y, k=2)
    for i in range(4):
        assert (a[i], b[i]) == pytest.approx(precision_at_k_reference(x[i], y[i], 2), abs=1e-15)


def mexa_reference(s):
    """MEXA's published scoring style: nested loops, row i counts when S[i, i] is strictly greater
    than every other entry of its row AND of its column."""
    n, count = len(s), 0
    for i in range(n):
        ok = True
        for j in range(n):
            if j != i and (s[i, j] >= s[i, i] or s[j, i] >= s[i, i]):
                ok = False
                break
        count += ok
    return count / n


def test_mexa_is_one_for_identical_sets():
    x, _ = related(40, 12, 12)
    assert mexa_alignment(x, x) == 1.0


def test_mexa_matches_literal_double_loop_with_ties():
    g = rng(9)
    s = g.integers(0, 4, size=(30, 30)).astype(float)  # small integers: many exact ties
    np.fill_diagonal(s, g.integers(2, 5, size=30))
    assert 0 < mexa_reference(s) < 1
    assert mexa_from_similarity(s) == pytest.approx(mexa_reference(s), abs=0)
    # random vectors whose duplicated rows tie exactly in the cosine matrix
    x, y = aligned(40, 10, noise=0.8, seed=10)
    x[5], y[6] = x[4], y[3]
    ref = mexa_reference(cosine_reference(x, y))
    assert 0 < ref < 1
    assert mexa_alignment(x, y) == pytest.approx(ref, abs=0)
    # x repeats a sentence, so even x against itself has two tied rows: 38 / 40, not 1
    np.testing.assert_array_equal(mexa_alignment_batched(np.stack([x, x]), np.stack([y, x])), [ref, 38 / 40])


def test_mutual_knn_matches_loop_reference():
    x, y = related(30, 8, 12, noise=2.0)
    k = 4

    def knn(m):
        s = cosine_reference(m, m)
        return [set(sorted((j for j in range(len(m)) if j != i), key=lambda j: (-s[i, j], j))[:k]) for i in range(len(m))]

    nx, ny = knn(x), knn(y)
    expected = np.mean([len(nx[i] & ny[i]) / k for i in range(len(x))])
    assert mutual_knn(x, y, k=k) == pytest.approx(expected, abs=1e-15)
    assert mutual_knn(x, x, k=k) == 1.0


# ------------------------------------------------------------------ bad input
def test_different_numbers_of_sentences_are_refused():
    g = rng()
    with pytest.raises(MetricError, match="100 sentences but y has 90"):
        linear_cka(g.normal(size=(100, 8)), g.normal(size=(90, 8)))
    for fn in (anc, retrieval_precision, mexa_alignment):
        with pytest.raises(MetricError, match="same sentences"):
            fn(g.normal(size=(10, 8)), g.normal(size=(9, 8)))


def test_debiased_cka_needs_four_sentences():
    g = rng()
    with pytest.raises(MetricError, match="at least 4"):
        linear_cka(g.normal(size=(3, 5)), g.normal(size=(3, 5)), debiased=True)
    assert np.isfinite(linear_cka(g.normal(size=(3, 5)), g.normal(size=(3, 5))))  # biased CKA is defined


def test_nan_and_inf_are_refused():
    x, y = related(10, 4, 4)
    x[2, 1] = np.nan
    for fn in (linear_cka, anc, retrieval_precision, mexa_alignment):
        with pytest.raises(MetricError, match="NaN or inf"):
            fn(x, y)
    y[0, 0] = np.inf
    with pytest.raises(MetricError, match="y contains NaN or inf"):
        anc(np.ones((10, 4)) + np.arange(10)[:, None], y)


def test_other_bad_inputs_have_clear_errors():
    g = rng()
    x = g.normal(size=(10, 4))
    with pytest.raises(MetricError, match=r"shape \[N, D\]"):
        anc(np.arange(5.0), np.arange(5.0))
    with pytest.raises(MetricError, match="same width"):
        anc(x, g.normal(size=(10, 5)))
    with pytest.raises(MetricError, match="zero variance"):
        anc(np.ones((10, 4)), x)
    with pytest.raises(MetricError, match="zero variance"):
        linear_cka(np.ones((10, 4)), x)
    with pytest.raises(MetricError, match="zero norm"):
        retrieval_precision(np.vstack([np.zeros(4), x[1:]]), x)
    with pytest.raises(MetricError, match="k must be"):
        retrieval_precision(x, x, k=11)
    with pytest.raises(MetricError, match="square"):
        mexa_from_similarity(np.ones((3, 4)))
    with pytest.raises(MetricError, match="form must be"):
        linear_cka(x, x, form="fast")
    with pytest.raises(MetricError, match="numeric"):
        anc([["a", "b"], ["c", "d"]], x[:2, :2])
