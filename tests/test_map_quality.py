"""map_quality: orthogonality of a fitted LinearProjection against the formula, on planted maps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from xling_probe import Activations, LinearProjection
from xling_probe.centering import map_quality, orthogonality_deviation
from xling_probe.centering.quality import singular_value_quality
from xling_probe.errors import MetricError, NotFittedError


def _formula(w: np.ndarray) -> float:
    """||W~^T W~ - I||_F / ||I||_F with W~ = W / mean singular value, written out directly."""
    s = np.linalg.svd(w, compute_uv=False)
    wt = w / s.mean()
    eye = np.eye(w.shape[0])
    return float(np.linalg.norm(wt.T @ wt - eye, "fro") / np.linalg.norm(eye, "fro"))


def _acts(maps: list[np.ndarray], n: int = 200, d: int = 8, seed: int = 0, noise: float = 0.0) -> Activations:
    """Two layers, languages en (target) and xx (source) with en = xx @ W_layer (+ noise)."""
    rng = np.random.default_rng(seed)
    data = np.empty((len(maps), 2, n, d))
    for li, w in enumerate(maps):
        x = rng.normal(size=(n, d))
        data[li, 1] = x
        data[li, 0] = x @ w + noise * rng.normal(size=(n, d))
    return Activations(data.astype(np.float32), layers=tuple(range(len(maps))), languages=("en", "fr"),
                       ids=[str(i) for i in range(n)])


def test_planted_orthogonal_and_anisotropic_maps():
    d = 8
    q = ortho_group.rvs(d, random_state=1)
    sv = np.array([4.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.75, 0.5])
    u, v = ortho_group.rvs(d, random_state=2), ortho_group.rvs(d, random_state=3)
    aniso = u @ np.diag(sv) @ v.T
    acts = _acts([3.0 * q, aniso])
    proj = LinearProjection("en", method="lstsq").fit(acts)
    table = map_quality(proj)
    assert list(table["layer"]) == [0, 1] and list(table["source"]) == ["fr", "fr"]
    orth, an = table.iloc[0], table.iloc[1]
    # float32 activations: the fitted map equals the planted one to ~1e-6, the deviation of an exact
    # orthogonal map is 0 to 1e-10 (below), here it is tiny
    assert orth["orthogonality_deviation"] < 1e-5
    assert orth["sv_ratio"] == pytest.approx(1.0, abs=1e-5) and orth["sv_cv"] < 1e-5
    assert orth["sv_mean"] == pytest.approx(3.0, rel=1e-5)
    scaled = sv / sv.mean()
    expected = np.sqrt(np.mean((scaled ** 2 - 1) ** 2))
    assert an["orthogonality_deviation"] == pytest.approx(expected, rel=1e-5)
    assert an["orthogonality_deviation"] == pytest.approx(_formula(aniso), rel=1e-5)
    assert an["sv_ratio"] == pytest.approx(8.0, rel=1e-5)
    assert an["sv_cv"] == pytest.approx(sv.std() / sv.mean(), rel=1e-5)
    assert an["rank"] == d and an["hidden"] == d


def test_exact_formula_and_scale_invariance():
    d = 16
    q = ortho_group.rvs(d, random_state=5)
    assert orthogonality_deviation(q) < 1e-10
    assert orthogonality_deviation(0.01 * q) < 1e-10
    rng = np.random.default_rng(0)
    w = rng.normal(size=(d, d))
    assert orthogonality_deviation(w) == pytest.approx(_formula(w), rel=1e-10)
    assert orthogonality_deviation(7.0 * w) == pytest.approx(_formula(w), rel=1e-10)


def test_rank_deficient_map_is_fine():
    d = 10
    rng = np.random.default_rng(0)
    w = rng.normal(size=(d, 3)) @ rng.normal(size=(3, d))  # rank 3
    out = singular_value_quality(np.linalg.svd(w, compute_uv=False))
    assert out["rank"] == 3 and out["sv_ratio"] == np.inf
    assert out["orthogonality_deviation"] == pytest.approx(_formula(w), rel=1e-8)
    # fewer fit pairs than dimensions: the min-norm lstsq map is rank deficient, no error
    acts = _acts([np.eye(d)], n=6, d=d)
    table = map_quality(LinearProjection("en").fit(acts))
    assert table["rank"].iloc[0] <= 5 and np.isinf(table["sv_ratio"].iloc[0])
    assert np.isfinite(table["orthogonality_deviation"].iloc[0])
    zero = singular_value_quality(np.zeros(4))
    assert np.isnan(zero["orthogonality_deviation"])


def test_heldout_retrieval_columns_and_errors():
    d = 8
    q = ortho_group.rvs(d, random_state=1)
    acts = _acts([q, q], n=120, noise=0.05)
    fit_ids, test_ids = acts.ids[:80], acts.ids[80:]
    proj = LinearProjection("en").fit(acts.sel(ids=fit_ids))
    table = map_quality(proj, acts.sel(ids=test_ids))
    assert {"p_at_1_raw", "p_at_1_projected", "r2"} <= set(table.columns)
    assert (table["p_at_1_projected"] > 0.9).all() and (table["r2"] > 0.9).all()
    with pytest.raises(MetricError):
        map_quality(proj, acts)  # fit pairs are refused
    with pytest.raises(NotFittedError):
        map_quality(LinearProjection("en"))
    with pytest.raises(MetricError):
        map_quality("not a projection")
