"""SVCCA, PWCCA, CKNNA, Procrustes, Procrustes-aligned and mean-centred retrieval, RSA: each against a
direct implementation of its published formula written here, against reference numbers
(tests/data/reference_measures.py -> .json), their invariances, and through the engine (values per
layer and pair, nulls, intervals)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from xling_probe import Activations, similarity
from xling_probe.errors import MetricError
from xling_probe.measures import pairwise as pw
from xling_probe.measures.engine import draws
from xling_probe.measures.registry import FAMILIES, KNOWN, METRICS, PAIR_METRICS, metric_spec, parse_metrics

DATA = Path(__file__).parent / "data" / "reference_measures.json"
NEW = ("svcca", "pwcca", "cknna@3", "procrustes", "p_procrustes@1", "p_cent@1", "rsa")


def rng(seed):
    return np.random.default_rng(seed)


def paired(n, d, seed=0, noise=0.5, dy=None, rank=None):
    """x [n, d] (of a decaying spectrum when ``rank`` is given) and y = a linear map of x plus noise."""
    g = rng(seed)
    x = g.normal(size=(n, d)) if rank is None else (
        g.normal(size=(n, rank)) * np.linspace(3, 1, rank)) @ g.normal(size=(rank, d)) + 0.05 * g.normal(size=(n, d))
    y = x @ g.normal(size=(d, dy or d)) + noise * g.normal(size=(n, dy or d))
    return x, y


def rotation(d, seed=0):
    q, _ = np.linalg.qr(rng(seed).normal(size=(d, d)))
    return q


def acts_of(x: np.ndarray, langs=("en", "fr")) -> Activations:
    """x [layer, language, N, D] -> Activations."""
    return Activations(data=np.asarray(x), layers=tuple(range(x.shape[0])), languages=langs,
                       ids=tuple(f"s{i}" for i in range(x.shape[2])), meta={"model": "synthetic"})


# ------------------------------------------------------------------ direct implementations of the formulas
def reduce_99(x, variance=0.99):
    """Raghu et al.: centred data projected on its top singular directions holding `variance` of the variance."""
    xc = x - x.mean(0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    share = np.cumsum(s ** 2) / np.sum(s ** 2)
    k = int(np.argmax(share >= variance - 1e-12)) + 1
    return xc @ vt[:k].T  # [N, k] coordinates in the kept directions


def cca_whitened(a, b):
    """CCA from covariances: singular values and left vectors of Lx^-1 Sxy Ly^-T (Cholesky whitening)."""
    sxx, syy, sxy = a.T @ a, b.T @ b, a.T @ b
    lx, ly = np.linalg.cholesky(sxx), np.linalg.cholesky(syy)
    m = scipy.linalg.solve_triangular(lx, sxy, lower=True)
    m = scipy.linalg.solve_triangular(ly, m.T, lower=True).T
    u, s, _ = np.linalg.svd(m)
    wx = scipy.linalg.solve_triangular(lx.T, u, lower=False)  # canonical weights: variates a @ wx
    return s[: min(a.shape[1], b.shape[1])], wx


def google_mean(s, threshold=0.98):
    for i in range(len(s)):
        if np.sum(s[:i]) / np.sum(s) >= threshold:
            return float(np.mean(s[:i]))
    return float(np.mean(s))


def svcca_direct(x, y, variance=0.99):
    s, _ = cca_whitened(reduce_99(x, variance), reduce_99(y, variance))
    return google_mean(s)


def pwcca_direct(x, y, variance=0.99):
    a, b = reduce_99(x, variance), reduce_99(y, variance)
    s, wx = cca_whitened(a, b)
    h = a @ wx[:, : len(s)]
    h = h / np.linalg.norm(h, axis=0)
    xc = x - x.mean(0)
    alpha = np.array([sum(abs(h[:, i] @ xc[:, j]) for j in range(xc.shape[1])) for i in range(len(s))])
    return float(np.sum(alpha / alpha.sum() * s))


def cknna_loops(x, y, k):
    """CKNNA by explicit loops: k-NN lists per row, masked kernels, the unbiased HSIC term by term."""
    n = len(x)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    v = y / np.linalg.norm(y, axis=1, keepdims=True)
    K = [[float(u[i] @ u[j]) for j in range(n)] for i in range(n)]
    L = [[float(v[i] @ v[j]) for j in range(n)] for i in range(n)]

    def knn(G, i):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -G[i][j])
        return set(others[:k])

    def hsic(A, B):  # Song et al. (2012), with the reference's tr(A~ B~) = sum_ij A~_ij B~_ji
        At = [[0.0 if i == j else A[i][j] for j in range(n)] for i in range(n)]
        Bt = [[0.0 if i == j else B[i][j] for j in range(n)] for i in range(n)]
        tr = sum(At[i][j] * Bt[j][i] for i in range(n) for j in range(n))
        sa, sb = sum(map(sum, At)), sum(map(sum, Bt))
        cross = sum(At[i][j] * Bt[j][l] for i in range(n) for j in range(n) for l in range(n))
        return (tr + sa * sb / ((n - 1) * (n - 2)) - 2 * cross / (n - 2)) / (n * (n - 3))

    def masked(G, H, gk, hk):
        nbr_g = [knn(G, i) for i in range(n)]
        nbr_h = [knn(H, i) for i in range(n)]
        m = [[1.0 if (j in nbr_g[i] and j in nbr_h[i]) else 0.0 for j in range(n)] for i in range(n)]
        return hsic([[m[i][j] * G[i][j] for j in range(n)] for i in range(n)],
                    [[m[i][j] * H[i][j] for j in range(n)] for i in range(n)])

    return masked(K, L, k, k) / np.sqrt(masked(K, K, k, k) * masked(L, L, k, k))


def procrustes_direct(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    r, _ = scipy.linalg.orthogonal_procrustes(xc, yc)
    return float(np.sum((xc @ r - yc) ** 2))


def retrieval_loops(q, c):
    """P@1 by loops: query i hits when its most cosine-similar candidate is candidate i."""
    n, hits_ab, hits_ba = len(q), 0, 0
    cos = lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))  # noqa: E731
    for i in range(n):
        hits_ab += max(range(n), key=lambda j: (cos(q[i], c[j]), -j)) == i
        hits_ba += max(range(n), key=lambda j: (cos(c[i], q[j]), -j)) == i
    return hits_ab / n, hits_ba / n


def p_procrustes_direct(x, y):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    v = y / np.linalg.norm(y, axis=1, keepdims=True)
    r, _ = scipy.linalg.orthogonal_procrustes(u, v)
    return retrieval_loops(u @ r, v)


def rsa_direct(x, y):
    n = len(x)
    cos = lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))  # noqa: E731
    dx = [1 - cos(x[i], x[j]) for i in range(n) for j in range(i + 1, n)]
    dy = [1 - cos(y[i], y[j]) for i in range(n) for j in range(i + 1, n)]
    rank = lambda v: np.argsort(np.argsort(v)).astype(float)  # noqa: E731 - no ties in random data
    return float(np.corrcoef(rank(dx), rank(dy))[0, 1])


# ------------------------------------------------------------------ formulas
@pytest.mark.parametrize("n, d, dy, rank", [(40, 6, 6, None), (40, 5, 8, None), (30, 60, 50, 5)])
def test_svcca_and_pwcca_equal_cca_of_whitened_covariances(n, d, dy, rank):
    # N < D: a decaying spectrum, so that the 99% step keeps few directions and the canonical
    # correlations are distinct (with many correlations at 1 the canonical variates, hence the
    # PWCCA weights, are not unique)
    x, y = paired(n, d, seed=n + d, dy=dy, rank=rank, noise=0.5 if rank is None else 0.02)
    assert pw.svcca(x, y) == pytest.approx(svcca_direct(x, y), abs=1e-10)
    assert pw.pwcca(x, y) == pytest.approx(pwcca_direct(x, y), abs=1e-10)
    assert pw.pwcca(y, x) == pytest.approx(pwcca_direct(y, x), abs=1e-10)


def test_pwcca_is_directional():
    x, y = paired(40, 6, seed=3)
    assert abs(pw.pwcca(x, y) - pw.pwcca(y, x)) > 1e-4
    assert metric_spec("pwcca").directional and not metric_spec("svcca").directional


@pytest.mark.parametrize("n, d, k", [(7, 4, 2), (9, 12, 3)])
def test_cknna_equals_explicit_loops(n, d, k):
    x, y = paired(n, d, seed=n, noise=1.0)
    assert pw.cknna(x, y, k) == pytest.approx(cknna_loops(x, y, k), abs=1e-12)
    assert pw.cknna(y, x, k) == pytest.approx(cknna_loops(y, x, k), abs=1e-12)
    assert pw.cknna(x, y, k) != pytest.approx(pw.cknna(y, x, k), abs=1e-9)  # not symmetric: directional


@pytest.mark.parametrize("n, d", [(20, 5), (10, 30)])
def test_procrustes_equals_scipy_orthogonal_procrustes(n, d):
    x, y = paired(n, d, seed=d, noise=1.0)
    assert pw.procrustes_distance(x, y) == pytest.approx(procrustes_direct(x, y), abs=1e-10)
    assert pw.procrustes_similarity(x, y) == pytest.approx(1 - procrustes_direct(x, y) / 2, abs=1e-10)


@pytest.mark.parametrize("n, d", [(20, 5), (10, 30)])
def test_retrieval_after_procrustes_and_after_centring_equal_loops(n, d):
    x, y = paired(n, d, seed=d + 1, noise=1.5)
    ab, ba = pw.procrustes_retrieval_hits(x, y, 1)
    assert (ab.mean(), ba.mean()) == pytest.approx(p_procrustes_direct(x, y), abs=1e-12)
    ab, ba = pw.centered_retrieval_hits(x, y, 1)
    assert (ab.mean(), ba.mean()) == pytest.approx(retrieval_loops(x - x.mean(0), y - y.mean(0)), abs=1e-12)


def test_rsa_equals_spearman_of_cosine_dissimilarities():
    x, y = paired(15, 6, seed=5, noise=2.0)
    assert pw.rsa(x, y) == pytest.approx(rsa_direct(x, y), abs=1e-12)


# ------------------------------------------------------------------ invariances
def test_svcca_invariant_to_an_invertible_linear_map_of_either_side_when_n_exceeds_d():
    x, y = paired(50, 6, seed=7, noise=1.0)
    a = rng(8).normal(size=(6, 6))  # invertible (almost surely), not orthogonal
    base = pw.svcca(x, y, variance=1.0)
    assert pw.svcca(x @ a, y, variance=1.0) == pytest.approx(base, abs=1e-10)
    assert pw.svcca(x, y @ a + 3.0, variance=1.0) == pytest.approx(base, abs=1e-10)


def test_pwcca_invariant_to_an_invertible_map_of_the_searched_side_not_of_the_weighted_one():
    x, y = paired(50, 6, seed=9, noise=1.0)
    a = rng(10).normal(size=(6, 6))
    base = pw.pwcca(x, y, variance=1.0)
    assert pw.pwcca(x, y @ a - 2.0, variance=1.0) == pytest.approx(base, abs=1e-10)
    assert pw.pwcca(5.0 * x + 1.0, y, variance=1.0) == pytest.approx(base, abs=1e-10)  # scale of the weighted side
    assert abs(pw.pwcca(x @ a, y, variance=1.0) - base) > 1e-4  # its weights follow its neurons


@pytest.mark.parametrize("n, d", [(30, 6), (12, 40)])
def test_procrustes_distance_is_zero_for_a_rotated_scaled_translated_copy(n, d):
    x = rng(n).normal(size=(n, d))
    y = 3.7 * x @ rotation(d, seed=d) + rng(1).normal(size=d)
    assert abs(pw.procrustes_distance(x, y)) < 1e-10
    res = similarity(acts_of(np.stack([x, y])[None]), metrics=["procrustes"], null_permutations=0, bootstrap=0,
                     progress=False)
    assert abs(1 - res.sel("procrustes", 0, "en", "fr")) < 1e-10


@pytest.mark.parametrize("n, d", [(30, 6), (12, 40)])
def test_retrieval_after_procrustes_is_one_for_a_rotated_copy(n, d):
    x = rng(n + 1).normal(size=(n, d)) + 0.5
    y = x @ rotation(d, seed=d + 1)
    ab, ba = pw.procrustes_retrieval_hits(x, y, 1)
    assert ab.mean() == 1.0 and ba.mean() == 1.0
    res = similarity(acts_of(np.stack([x, y])[None]), metrics=["p_procrustes@1", "p@1"], null_permutations=0,
                     bootstrap=0, progress=False)
    assert res.sel("p_procrustes@1", 0, "en", "fr") == 1.0 and res.sel("p_procrustes@1", 0, "fr", "en") == 1.0


def test_rsa_is_one_for_a_scaled_copy_and_centred_retrieval_ignores_translations():
    x = rng(2).normal(size=(20, 7))
    assert pw.rsa(x, 4.2 * x) == pytest.approx(1.0, abs=1e-12)
    assert pw.rsa(x, x @ rotation(7)) == pytest.approx(1.0, abs=1e-12)  # cosines survive a rotation too
    y = x + 0.8 * rng(3).normal(size=(20, 7))
    hits = pw.centered_retrieval_hits(x, y)
    moved = pw.centered_retrieval_hits(x + 5.0, y - rng(4).normal(size=7) * 10)
    assert all(np.array_equal(a, b) for a, b in zip(hits, moved))


def test_robust_on_rank_deficient_inputs_with_fewer_sentences_than_dimensions():
    g = rng(12)
    x = g.normal(size=(60, 3)) @ g.normal(size=(3, 640))  # rank 3, 60 x 640
    flip = g.permutation(640), g.choice([-1.0, 1.0], size=640)  # an orthogonal map: signed permutation
    y = x[:, flip[0]] * flip[1] + 1e-3 * g.normal(size=(60, 640))
    for value in (pw.svcca(x, y), pw.pwcca(x, y), pw.procrustes_similarity(x, y), pw.cknna(x, y, 5), pw.rsa(x, y)):
        assert np.isfinite(value)
    assert pw.svcca(x, y) > 0.99 and pw.procrustes_similarity(x, y) > 0.99


# ------------------------------------------------------------------ reference numbers, through the engine
@pytest.fixture(scope="module")
def reference():
    return json.loads(DATA.read_text())


@pytest.mark.parametrize("case", ["n_gt_d", "n_lt_d"])
def test_engine_equals_the_reference_numbers(reference, case):
    ref = reference["cases"][case]["reference"]
    k = reference["k"]
    res = similarity(acts_of(np.array(reference["cases"][case]["data"])), metrics=[*NEW[:2], f"cknna@{k}", *NEW[3:]],
                     null_permutations=3, bootstrap=4, progress=False)
    got = {
        "svcca": res.sel("svcca", None, "en", "fr"), "pwcca_ab": res.sel("pwcca", None, "en", "fr"),
        "pwcca_ba": res.sel("pwcca", None, "fr", "en"), "cknna": res.sel(f"cknna@{k}", None, "en", "fr"),
        "cknna_ba": res.sel(f"cknna@{k}", None, "fr", "en"),
        "procrustes_sim": res.sel("procrustes", None, "en", "fr"),
        "p_procrustes_ab": res.sel("p_procrustes@1", None, "en", "fr"),
        "p_procrustes_ba": res.sel("p_procrustes@1", None, "fr", "en"),
        "p_cent_ab": res.sel("p_cent@1", None, "en", "fr"), "p_cent_ba": res.sel("p_cent@1", None, "fr", "en"),
        "rsa": res.sel("rsa", None, "en", "fr"),
    }
    for name, value in got.items():
        np.testing.assert_allclose(value, ref[name], rtol=0, atol=1e-10, err_msg=f"{case}: {name}")
    # the reference adds 1e-6 to a denominator of order 0.1 (unbiased HSICs of masked cosine kernels)
    np.testing.assert_allclose(got["cknna"], ref["cknna_eps"], rtol=1e-4, atol=0)
    np.testing.assert_allclose(2 - 2 * got["procrustes_sim"], ref["procrustes"], rtol=0, atol=1e-10)
    for m in ("svcca", "pwcca", f"cknna@{k}", "rsa", "p_cent@1"):  # symmetric ones mirror, directional ones not
        same = np.allclose(res.sel(m, None, "en", "fr"), res.sel(m, None, "fr", "en"), rtol=0, atol=1e-12)
        assert same != metric_spec(m).directional, m


@pytest.fixture(scope="module")
def three():
    """2 layers x 3 languages x 16 sentences x 6 dims: a shared meaning plus noise (less at layer 0)."""
    g = rng(21)
    n, d = 16, 6
    meaning = g.normal(size=(n, d))
    data = np.stack([np.stack([meaning @ (np.eye(d) + 0.3 * g.normal(size=(d, d))) + s * g.normal(size=(n, d))
                               + g.normal(size=d) for _ in range(3)]) for s in (0.3, 1.5)])
    return acts_of(data, ("en", "fr", "de"))


R, B, SEED = 6, 9, 4


@pytest.fixture(scope="module")
def result(three):
    return similarity(three, metrics=[*NEW, "cka", "p@1"], null_permutations=R, bootstrap=B, seed=SEED,
                      progress=False)


def test_engine_values_per_layer_and_pair_equal_the_functions(three, result):
    for li in range(2):
        for a, b in itertools.permutations(three.languages, 2):
            x, y = three.get(li, a), three.get(li, b)
            assert result.sel("pwcca", li, a, b) == pytest.approx(pw.pwcca(x, y), abs=1e-12)
            assert result.sel("p_procrustes@1", li, a, b) == pytest.approx(pw.procrustes_retrieval_hits(x, y)[0].mean())
            assert result.sel("p_cent@1", li, a, b) == pytest.approx(pw.centered_retrieval_hits(x, y)[0].mean())
            for m, f in (("svcca", pw.svcca), ("procrustes", pw.procrustes_similarity), ("rsa", pw.rsa),
                         ("cknna@3", lambda p, q: pw.cknna(p, q, 3))):
                assert result.sel(m, li, a, b) == pytest.approx(f(x, y), abs=1e-12), (m, li, a, b)


def test_null_is_the_function_on_shuffled_pairings_and_the_interval_resamples_sentences(three, result):
    perms, boot = draws(three.n_sentences, R, B, SEED)
    x, y = three.get(1, "en"), three.get(1, "fr")
    for m, f in (("svcca", pw.svcca), ("rsa", pw.rsa), ("pwcca", pw.pwcca)):
        null = [f(x, y[p]) for p in perms]
        assert result.sel(m, 1, "en", "fr", field="null_mean") == pytest.approx(np.mean(null), abs=1e-12)
        assert result.sel(m, 1, "en", "fr", field="null_max") == pytest.approx(np.max(null), abs=1e-12)
    boots = [pw.svcca(x[i], y[i]) for i in boot]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    assert result.sel("svcca", 1, "en", "fr", field="ci_low") == pytest.approx(lo, abs=1e-12)
    assert result.sel("svcca", 1, "en", "fr", field="ci_high") == pytest.approx(hi, abs=1e-12)
    # retrieval: the null refits/recentres on each shuffled pairing; the bootstrap resamples the queries
    null = [pw.procrustes_retrieval_hits(x, y[p])[1].mean() for p in perms]
    assert result.sel("p_procrustes@1", 1, "fr", "en", field="null_mean") == pytest.approx(np.mean(null), abs=1e-12)
    hits = pw.centered_retrieval_hits(x, y)[0].astype(float)
    lo, hi = np.percentile([hits[i].mean() for i in boot], [2.5, 97.5])
    assert result.sel("p_cent@1", 1, "en", "fr", field="ci_low") == pytest.approx(lo, abs=1e-12)
    assert result.sel("p_cent@1", 1, "en", "fr", field="ci_high") == pytest.approx(hi, abs=1e-12)
    for m in NEW:
        for field in ("null_mean", "p_value", "ci_low", "ci_high"):
            assert np.all(np.isfinite(result.sel(m, None, "en", "fr", field=field))), (m, field)
        low, high = (result.sel(m, None, "en", "fr", field=f) for f in ("ci_low", "ci_high"))
        assert np.all(low <= high), m


def test_bootstrap_copies_are_not_pairs_for_rsa_and_cknna():
    x, y = paired(12, 4, seed=30, noise=1.0)
    idx = np.array([0, 0, 1, 2, 3, 3, 3, 4, 5, 6, 7, 8])
    keep = [(i, j) for i in range(12) for j in range(i + 1, 12) if idx[i] != idx[j]]
    u, v = (m[idx] / np.linalg.norm(m[idx], axis=1, keepdims=True) for m in (x, y))
    dx = [1 - u[i] @ u[j] for i, j in keep]
    dy = [1 - v[i] @ v[j] for i, j in keep]
    assert pw.rsa(x[idx], y[idx], ids=idx) == pytest.approx(scipy.stats.spearmanr(dx, dy).correlation, abs=1e-12)
    assert np.isfinite(pw.cknna(x[idx], y[idx], 3, ids=idx))


def test_adding_pairwise_metrics_leaves_the_other_metrics_bitwise_unchanged(three, result):
    alone = similarity(three, metrics=["cka", "p@1"], null_permutations=R, bootstrap=B, seed=SEED, progress=False)
    for m in ("cka", "p@1"):
        for field in ("value", "null_mean", "null_max", "p_value", "ci_low", "ci_high"):
            np.testing.assert_array_equal(alone.sel(m, field=field), result.sel(m, field=field))


# ------------------------------------------------------------------ registry
def test_registry_names_aliases_directions_and_chance():
    assert parse_metrics("SVCCA, pwcca, cknna, p_procrustes_at_1, acc-cent, RSA, procrustes") == (
        "svcca", "pwcca", "cknna@10", "p_procrustes@1", "p_cent@1", "rsa", "procrustes")
    assert metric_spec("acc_procrustes").name == "p_procrustes@1" and metric_spec("p_cent@5").k == 5
    assert {m for m, s in PAIR_METRICS.items() if s.directional} == {"pwcca"}
    assert not any(metric_spec(m).directional for m in ("svcca", "procrustes", "rsa"))
    assert not set(PAIR_METRICS) & set(METRICS)
    assert metric_spec("p_procrustes@2").directional and metric_spec("p_cent@1").directional
    assert metric_spec("cknna@5").directional and metric_spec("cknna@5").kernel == "pair"
    assert {"cknna", "p_procrustes", "p_cent"} <= set(FAMILIES)
    assert "optimistic" in metric_spec("p_procrustes@1").label
    for name in ("svcca", "pwcca", "cknna@K", "procrustes", "p_procrustes@K", "p_cent@K", "rsa"):
        assert name in KNOWN
    assert metric_spec("p_cent@2").chance(20) == pytest.approx(0.1) and metric_spec("rsa").chance(20) == 0.0
    assert metric_spec("p_procrustes@1").chance(20) is None and metric_spec("svcca").chance(20) is None
    with pytest.raises(MetricError, match="K >= 2"):
        metric_spec("cknna@1")


@pytest.mark.parametrize("name, score", [
    ("rsa", pw.rsa),
    ("p_cent@1", lambda x, y: pw.centered_retrieval_hits(x, y)[0].mean()),
])
def test_chance_level_is_the_exact_mean_over_every_shuffled_pairing(name, score):
    x, y = paired(6, 3, seed=40, noise=1.0)
    exact = np.mean([score(x, y[list(p)]) for p in itertools.permutations(range(6))])
    assert metric_spec(name).chance(6) == pytest.approx(exact, abs=1e-12)


def test_too_few_sentences_for_a_pairwise_metric_is_refused():
    x = rng(0).normal(size=(1, 2, 5, 4))
    with pytest.raises(MetricError, match="cknna@5 needs N >= 6"):
        similarity(acts_of(x), metrics=["cknna@5"], null_permutations=0, bootstrap=0, progress=False)


def test_the_measures_do_not_rely_on_gesdd_converging(monkeypatch):
    import xling_probe.linalg as linalg

    x, y = paired(12, 30, seed=50, noise=1.0, rank=4)
    before = {f.__name__: f(x, y) for f in (pw.svcca, pw.pwcca, pw.procrustes_similarity)}
    before["p_procrustes"] = pw.procrustes_retrieval_hits(x, y)[0].mean()
    real = linalg._svd

    def failing(a, full_matrices, driver):
        if driver == "gesdd":
            raise np.linalg.LinAlgError("SVD did not converge")
        return real(a, full_matrices, driver)

    monkeypatch.setattr(linalg, "_svd", failing)
    for f in (pw.svcca, pw.pwcca, pw.procrustes_similarity):
        assert f(x, y) == pytest.approx(before[f.__name__], abs=1e-10)
    assert pw.procrustes_retrieval_hits(x, y)[0].mean() == before["p_procrustes"]
