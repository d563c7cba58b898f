"""The batched all-pairs path: the engine's per-pair numbers, for every pair, in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

import xling_probe as xp
from xling_probe.errors import MetricError
from xling_probe.extraction.activations import Activations
from xling_probe.measures import allpairs, engine
from xling_probe.measures.registry import metric_spec

METRICS = ["p_at_1", "p@3", "mexa", "cka", "cka_debiased"]


def _acts(G=14, L=3, n=24, d=40, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((L, 1, n, d))
    data = (base + rng.uniform(0.3, 2.0, (1, G, 1, 1)) * rng.standard_normal((L, G, n, d))).astype(np.float32)
    data[:, 3] = data[:, 2]  # two identical languages: ties everywhere in their cosine matrix
    return Activations(data=data, layers=tuple(range(L)), languages=tuple(f"x{i}" for i in range(G)),
                       ids=tuple(map(str, range(n))))


def test_all_pairs_path_equals_the_per_pair_engine(monkeypatch):
    acts = _acts()
    fast = xp.similarity(acts, metrics=METRICS, null_permutations=0, bootstrap=0, progress=False,
                         max_memory_gb=0.0005)  # a tiny budget: many blocks, several block pairs per layer
    assert fast.settings["path"] == "all-pairs blocks" and fast.settings["language_block"] < 14
    monkeypatch.setattr(engine, "ALL_PAIRS_FROM", 10**9)
    slow = xp.similarity(acts, metrics=METRICS, null_permutations=0, bootstrap=0, progress=False)
    assert "path" not in slow.settings and fast.pairs == slow.pairs and fast.metrics == slow.metrics
    for m in METRICS:
        i = fast.metrics.index(metric_spec(m).name)
        a, b = fast.value[i], slow.value[i]
        assert np.array_equal(np.isnan(a), np.isnan(b))
        tol = 0 if metric_spec(m).family != "cka" else 1e-12  # counts are exact; CKA differs by summation order
        assert np.nanmax(np.abs(a - b)) <= tol, m


def test_all_pairs_on_a_subset_of_pairs_leaves_the_rest_empty():
    acts = _acts(G=20)
    pairs = [(f"x{i}", f"x{j}") for i in range(20) for j in range(i + 1, 20) if (i + j) % 2 == 0]
    assert len(pairs) >= engine.ALL_PAIRS_FROM
    res = xp.similarity(acts, metrics=["p_at_1"], pairs=pairs, null_permutations=0, bootstrap=0, progress=False)
    assert res.settings["path"] == "all-pairs blocks"
    wanted = np.zeros((20, 20), bool)
    for a, b in pairs:
        wanted[int(a[1:]), int(b[1:])] = wanted[int(b[1:]), int(a[1:])] = True
    assert np.array_equal(~np.isnan(res.value[0, 0]), wanted)


def test_block_size_follows_the_memory_budget_not_the_languages():
    small, big = allpairs.block_size(50, 640, 0.5), allpairs.block_size(50, 640, 8.0)
    assert big == min(512, 4 * small) or big > small
    # the working set of one block pair stays within the budget
    b = allpairs.block_size(1000, 4096, 2.0)
    assert b * b * 1000 * 1000 * 8 * 4 <= 2.0 * 2**30


def test_the_per_pair_path_refuses_draws_that_would_not_fit():
    acts = _acts(G=40, L=2, n=8, d=8)
    with pytest.raises(MetricError, match="would hold .* GiB of draws.*null_permutations=0, bootstrap=0"):
        engine.SLOT_LIMIT_GB, old = 1e-4, engine.SLOT_LIMIT_GB
        try:
            xp.similarity(acts, metrics=["p_at_1"], null_permutations=20, bootstrap=200, progress=False)
        finally:
            engine.SLOT_LIMIT_GB = old
