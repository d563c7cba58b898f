"""The float32 compute path of the similarity engine against float64 (issue 19, item 2).

Documented (xling_probe/measures/kernels.py, similarity's docstring): CKA, debiased CKA, ANC and |ANC|
within FLOAT32_TOLERANCE = 1e-6 of float64 (values, nulls and intervals); P@k, MEXA and mutual k-NN
identical except where two cosines of a row or column are within float32 rounding of each other, where
each such sentence moves a score by at most 1/N. Checked on random activations with clear margins and on
a tiny model's activations (which have exact ties: identical sentence vectors).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_similarity import make_acts
from xling_probe import Activations
from xling_probe.errors import MetricError
from xling_probe.measures.engine import cross_layer_similarity, similarity
from xling_probe.measures.kernels import FLOAT32_TOLERANCE, compute_dtype

ALL = ("cka", "cka_debiased", "anc", "anc_abs", "p@1", "p@3", "mexa", "mknn@5")
CONTINUOUS = ("cka", "cka_debiased", "anc", "anc_abs")
DISCRETE = ("p@1", "p@3", "mexa", "mknn@5")
#: Cosines closer than this in float64 count as a near-tie (float32 rounding of a cosine is ~1e-7).
NEAR = 1e-5


def both(acts, **kw):
    r64 = similarity(acts, dtype="float64", progress=False, **kw)
    r32 = similarity(acts, dtype="float32", progress=False, **kw)
    assert r64.settings["dtype"] == "float64" and r32.settings["dtype"] == "float32"
    return r64, r32


def max_diff(r64, r32, metric):
    i = r64.metrics.index(metric)
    return max(float(np.nanmax(np.abs(r64.arrays[f][i] - r32.arrays[f][i]))) for f in r64.arrays)


def unit(x):
    x = torch.as_tensor(np.array(x), dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def sorted_gaps(s, k):
    """Gap between the k-th and (k+1)-th largest entry of each row of ``s``."""
    v = s.sort(dim=-1, descending=True).values
    return v[..., k - 1] - v[..., k]


def min_margin(acts, knn=True):
    """Smallest float64 gap that decides any retrieval, MEXA or (``knn``) 5-NN outcome (value or null)."""
    out = np.inf
    for li in range(len(acts.layers)):
        u = [unit(acts.data[li, g]) for g in range(len(acts.languages))]
        for a in range(len(u)):
            within = u[a] @ u[a].T - 3.0 * torch.eye(len(u[a]), dtype=torch.float64)
            out = min(out, float(sorted_gaps(within, 5).min()) if knn else out)
            for b in range(a + 1, len(u)):
                s = u[a] @ u[b].T
                for m in (s, s.T):
                    out = min(out, float(sorted_gaps(m, 1).min()), float(sorted_gaps(m, 3).min()))
    return out


def value_margin(acts):
    """Smallest float64 gap |S_ii - k-th largest other entry| (k = 1, 3) of a row or column: what decides
    the P@1, P@3 and MEXA values (without a null)."""
    out = np.inf
    for li in range(len(acts.layers)):
        u = [unit(acts.data[li, g]) for g in range(len(acts.languages))]
        for a in range(len(u)):
            for b in range(a + 1, len(u)):
                s = u[a] @ u[b].T
                for m in (s, s.T):
                    own, rest = m.diagonal().clone(), m.clone().fill_diagonal_(-np.inf)
                    v = rest.sort(dim=-1, descending=True).values
                    out = min(out, float((own - v[:, 0]).abs().min()), float((own - v[:, 2]).abs().min()))
    return out


# ------------------------------------------------------------------ random activations with clear margins
@pytest.fixture(scope="module")
def acts():
    return make_acts(n=60, d=24, seed=5)


def test_float32_matches_float64_within_the_documented_tolerance(acts):
    assert min_margin(acts) > NEAR  # no near-ties anywhere: the discrete metrics must agree exactly
    r64, r32 = both(acts, metrics=ALL, null_permutations=6, bootstrap=25, seed=2)
    assert set(r64.arrays) == set(r32.arrays) and "null_mean" in r64.arrays and "ci_low" in r64.arrays
    for m in CONTINUOUS:
        assert max_diff(r64, r32, m) < FLOAT32_TOLERANCE, m
        assert max_diff(r64, r32, m) > 0 or m.startswith("anc"), m  # it really ran in float32
    for m in DISCRETE:
        for f in r64.arrays:
            i = r64.metrics.index(m)
            np.testing.assert_array_equal(r64.arrays[f][i], r32.arrays[f][i], err_msg=f"{m} {f}")


@pytest.mark.parametrize("form", ["gram", "feature"])
def test_both_cka_forms_in_float32(acts, form):
    r64, r32 = both(acts, metrics=("cka", "cka_debiased"), null_permutations=4, bootstrap=10, cka_form=form)
    assert r32.settings["cka_form"] == form
    for m in ("cka", "cka_debiased"):
        assert max_diff(r64, r32, m) < FLOAT32_TOLERANCE


def test_values_only_path_and_the_all_pairs_path_in_float32():
    langs = tuple(f"l{i}" for i in range(12))  # 66 pairs: the batched all-pairs path
    many = make_acts(n=40, d=16, langs=langs, noise=(0.3, 0.8), seed=1)
    assert value_margin(many) > NEAR
    metrics = ("cka", "cka_debiased", "p@1", "p@3", "mexa")
    r64, r32 = both(many, metrics=metrics, null_permutations=0, bootstrap=0)
    assert r32.settings["path"] == "all-pairs blocks" == r64.settings["path"]
    for m in ("cka", "cka_debiased"):
        assert max_diff(r64, r32, m) < FLOAT32_TOLERANCE
    for m in ("p@1", "p@3", "mexa"):
        i = r64.metrics.index(m)
        np.testing.assert_array_equal(r64.value[i], r32.value[i], err_msg=m)
    # the per-pair path without null or bootstrap (one max pass per direction for P@1 and MEXA)
    few = make_acts(n=40, d=16, seed=2)
    assert min_margin(few) > NEAR
    p64, p32 = both(few, metrics=ALL, null_permutations=0, bootstrap=0)
    for m in CONTINUOUS:
        assert max_diff(p64, p32, m) < FLOAT32_TOLERANCE
    for m in DISCRETE:
        i = p64.metrics.index(m)
        np.testing.assert_array_equal(p64.value[i], p32.value[i], err_msg=m)


def test_cross_layer_similarity_in_float32(acts):
    for m in ("cka", "cka_debiased", "anc"):
        a = cross_layer_similarity(acts, "en", "de", m, dtype="float64")
        b = cross_layer_similarity(acts, "en", "de", m, dtype="float32")
        assert b.settings["dtype"] == "float32"
        assert np.max(np.abs(a.matrix - b.matrix)) < FLOAT32_TOLERANCE, m


# ------------------------------------------------------------------ exact ties: float32 may break them differently
def test_exact_ties_are_the_documented_exception():
    g = np.random.default_rng(0)
    n, d = 30, 16
    base = g.normal(size=(n, d))
    x = base.copy()
    x[1] = x[0]  # two identical sentence vectors: a tie in rows and columns 0 and 1
    y = base + 0.05 * g.normal(size=(n, d))
    acts = Activations(data=np.stack([x, y])[None].astype(np.float32), layers=(0,), languages=("en", "de"),
                       ids=tuple(f"s{i}" for i in range(n)), meta={})
    r64, r32 = both(acts, metrics=("p@1", "mexa", "cka"), null_permutations=0, bootstrap=0)
    for m in ("p@1", "mexa"):  # at most the tied sentences can differ
        assert max_diff(r64, r32, m) <= 2 / n + 1e-12
    assert max_diff(r64, r32, "cka") < FLOAT32_TOLERANCE
    for r in (r64, r32):  # the other sentences are clear hits in both
        assert r.sel("mexa", 0, "en", "de") >= (n - 2) / n - 1e-12


# ------------------------------------------------------------------ a tiny model's activations
@pytest.fixture(scope="module")
def model_acts(tiny_decoder):
    from xling_probe import ParallelCorpus, extract

    corpus = ParallelCorpus.sample(languages=["en", "de", "fr", "zh"]).head(60)
    return extract(tiny_decoder, corpus, progress=False, cache=False)


def near_counts(acts, li, a, b):
    """Sentences whose P@1 / MEXA outcome is a near-tie in float64: |S_ii - max of the rest| < NEAR."""
    s = unit(acts.data[li, a]) @ unit(acts.data[li, b]).T
    own = s.diagonal().clone()
    s.fill_diagonal_(-np.inf)
    row, col = (own - s.amax(1)).abs() < NEAR, (own - s.amax(0)).abs() < NEAR
    return int(row.sum()), int(col.sum()), int((row | col).sum())


def test_tiny_model_activations_float32_vs_float64(model_acts):
    n = model_acts.n_sentences
    r64, r32 = both(model_acts, metrics=ALL, null_permutations=5, bootstrap=20, seed=1)
    for m in CONTINUOUS:
        assert max_diff(r64, r32, m) < FLOAT32_TOLERANCE, m
    p1, mx = r64.metrics.index("p@1"), r64.metrics.index("mexa")
    clean = 0
    for li in range(len(model_acts.layers)):
        for a, b in r64.pairs:
            ia, ib = r64.languages.index(a), r64.languages.index(b)
            near_ab, near_ba, near_mexa = near_counts(model_acts, li, model_acts.language_index(a),
                                                      model_acts.language_index(b))
            for (i, j), near in (((ia, ib), near_ab), ((ib, ia), near_ba)):
                diff = abs(r64.value[p1, li, i, j] - r32.value[p1, li, i, j])
                assert diff <= near / n + 1e-12, (li, a, b)
            diff = abs(r64.value[mx, li, ia, ib] - r32.value[mx, li, ia, ib])
            assert diff <= near_mexa / n + 1e-12, (li, a, b)
            clean += near_ab == near_ba == 0
    assert clean > 0  # some pair-layers have no near-tie, and there the values are identical


# ------------------------------------------------------------------ the setting itself
def test_dtype_defaults_and_bad_values(acts):
    assert compute_dtype(None, "cpu") == torch.float64 == compute_dtype("auto", torch.device("cpu"))
    assert compute_dtype(None, torch.device("cuda")) == torch.float32  # the default on a GPU
    assert compute_dtype("float32", "cpu") == torch.float32 == compute_dtype(torch.float32, "cpu")
    kw = dict(metrics=("cka", "p@1"), null_permutations=2, bootstrap=3, progress=False, device="cpu")
    default = similarity(acts, **kw)
    assert default.settings["dtype"] == "float64"
    explicit = similarity(acts, dtype="float64", **kw)
    for f in default.arrays:
        np.testing.assert_array_equal(default.arrays[f], explicit.arrays[f])
    for bad in ("float16", "fp32", 32, torch.float16, ["float32"]):
        with pytest.raises(MetricError, match="dtype must be 'float32', 'float64' or None"):
            similarity(acts, dtype=bad, **kw)
    with pytest.raises(MetricError, match="dtype must be"):
        cross_layer_similarity(acts, "en", "de", dtype="half")
    assert "1e-6" in similarity.__doc__ and FLOAT32_TOLERANCE == 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_default_is_float32_and_within_tolerance_of_the_cpu(acts):
    gpu = similarity(acts, metrics=ALL, null_permutations=4, bootstrap=10, device="cuda", progress=False)
    cpu = similarity(acts, metrics=ALL, null_permutations=4, bootstrap=10, device="cpu", progress=False)
    assert gpu.settings["dtype"] == "float32" and cpu.settings["dtype"] == "float64"
    for m in CONTINUOUS:
        assert max_diff(cpu, gpu, m) < FLOAT32_TOLERANCE, m
