"""Robust SVD, least squares, ridge and Procrustes (xling_probe.linalg) on rank-deficient inputs.

Issue 11: np.linalg.svd (LAPACK gesdd) raised "SVD did not converge" on the finite, rank-deficient
640 x 640 Procrustes cross-covariance of the bundled sample (40 fit sentences) on a user's CPU.
The user's failure cannot be reproduced on every CPU, so these tests force each driver (scipy's
gesdd and gesvd on scipy's OpenBLAS, numpy's gesdd on numpy's own OpenBLAS), make the first ones
fail on purpose, and check every answer against its definition.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from xling_probe import linalg
from xling_probe.extraction.activations import Activations
from xling_probe.centering.estimators import LinearProjection, fit_linear_map
from xling_probe.errors import MetricError
from xling_probe.linalg import SVD_DRIVERS, orthogonal_procrustes, ridge_solve, robust_lstsq, robust_svd

SEEDS = range(50)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """One BLAS thread: multi-threaded OpenBLAS SVDs of these small matrices slow down ~100x on a
    loaded 2-core machine; the numbers are checked to tolerances that do not depend on threading."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def centred(rng: np.random.Generator, n: int, d: int, rank: int | None = None, spikes: int = 3) -> np.ndarray:
    """[n, d] centred rows like LM states: optional exact low rank, a few huge 'massive activation' columns."""
    x = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) if rank else rng.standard_normal((n, d))
    x[:, rng.choice(d, spikes, replace=False)] *= 100.0
    return x - x.mean(axis=0)


def optimum(x: np.ndarray, y: np.ndarray) -> float:
    """min over orthogonal W of ||x W - y||^2 = ||x||^2 + ||y||^2 - 2 * nuclear norm of x^T y, the
    nuclear norm taken through QR of both sides (the N x N core), independently of the library."""
    _, rx = np.linalg.qr(x.T)
    _, ry = np.linalg.qr(y.T)
    nuclear = scipy.linalg.svdvals(rx @ ry.T, check_finite=False).sum()
    return float((x**2).sum() + (y**2).sum() - 2 * nuclear)


def fail_driver(monkeypatch, failing: set[str], how: str = "raise") -> None:
    """Make the named drivers of linalg._svd fail (raise LinAlgError, or return NaN)."""
    real = linalg._svd

    def patched(a, full_matrices, driver):
        if driver in failing:
            if how == "raise":
                raise np.linalg.LinAlgError("SVD did not converge")
            u, s, vt = real(a, full_matrices, driver)
            return u, np.full_like(s, np.nan), vt
        return real(a, full_matrices, driver)

    monkeypatch.setattr(linalg, "_svd", patched)


def user_cpu(monkeypatch) -> None:
    """The user's machine of issue 11: gesdd never converges, in numpy (svd, lstsq) or in scipy."""
    def refuse(*_a, **_k):
        raise np.linalg.LinAlgError("SVD did not converge")

    real_svd, real_lstsq = scipy.linalg.svd, scipy.linalg.lstsq
    monkeypatch.setattr(np.linalg, "svd", refuse)
    monkeypatch.setattr(np.linalg, "lstsq", refuse)
    monkeypatch.setattr(scipy.linalg, "svd", lambda a, *args, lapack_driver="gesdd", **kw:
                        refuse() if lapack_driver == "gesdd" else real_svd(a, *args, lapack_driver=lapack_driver, **kw))
    monkeypatch.setattr(scipy.linalg, "lstsq", lambda *args, lapack_driver=None, **kw:
                        refuse() if lapack_driver in (None, "gelsd") else real_lstsq(*args, lapack_driver=lapack_driver,
                                                                                     **kw))


# ====================================================================== robust_svd
@pytest.mark.parametrize("driver", SVD_DRIVERS)
def test_every_driver_decomposes_rank_deficient_products(driver):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x, y = centred(rng, 8, 48), centred(rng, 8, 48)
        m = x.T @ y  # 48 x 48, rank 7
        u, s, vt = robust_svd(m, drivers=(driver,))
        scale = s[0]
        assert np.abs(u * s @ vt - m).max() < 1e-10 * scale
        assert np.abs(u.T @ u - np.eye(48)).max() < 1e-10
        assert np.abs(vt @ vt.T - np.eye(48)).max() < 1e-10
        assert np.all(np.diff(s) <= 1e-12 * scale) and s.min() >= 0
        assert np.count_nonzero(s > 1e-10 * scale) == 7
        np.testing.assert_allclose(s, scipy.linalg.svdvals(m, check_finite=False), rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("driver", SVD_DRIVERS)
def test_every_driver_on_the_bundled_sample_shape(driver):
    """The failing case's shape: the 640 x 640 cross-covariance of 40 centred pairs (rank 39)."""
    rng = np.random.default_rng(3)
    m = centred(rng, 40, 640).T @ centred(rng, 40, 640)
    u, s, vt = robust_svd(m, drivers=(driver,))
    assert np.abs(u * s @ vt - m).max() < 1e-10 * s[0]
    assert np.count_nonzero(s > 1e-10 * s[0]) == 39


@pytest.mark.parametrize("how", ["raise", "nan"])
def test_fallback_when_the_first_driver_fails_gives_the_next_drivers_answer(monkeypatch, how):
    rng = np.random.default_rng(0)
    m = centred(rng, 12, 60).T @ centred(rng, 12, 60)
    direct = robust_svd(m, drivers=("gesvd",))
    fail_driver(monkeypatch, {"gesdd"}, how)
    for got, want in zip(robust_svd(m), direct):
        np.testing.assert_array_equal(got, want)
    fail_driver(monkeypatch, {"gesdd", "gesvd"}, how)
    for got, want in zip(robust_svd(m), robust_svd(m, drivers=("numpy",))):
        np.testing.assert_array_equal(got, want)


def test_all_drivers_failing_is_a_metric_error_naming_the_shape(monkeypatch):
    fail_driver(monkeypatch, set(SVD_DRIVERS))
    with pytest.raises(MetricError, match=r"SVD of a 5 x 3 matrix failed with every LAPACK driver \(gesdd: SVD did"):
        robust_svd(np.ones((5, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_a_metric_error_naming_the_shape(bad):
    a = np.ones((4, 7))
    a[1, 2] = bad
    with pytest.raises(MetricError, match="SVD of a 4 x 7 matrix with NaN or infinite entries"):
        robust_svd(a)
    with pytest.raises(MetricError, match="Procrustes of a 4 x 7 matrix with NaN"):
        orthogonal_procrustes(a, np.ones((4, 7)))


# ====================================================================== Procrustes
@pytest.mark.parametrize("n, d, seeds", [(16, 240, SEEDS), (40, 640, range(3))])
def test_procrustes_n_below_d_is_orthogonal_and_optimal_over_many_seeds(n, d, seeds):
    """N < D (the second case is the bundled sample's 40 fit pairs x 640 dims)."""
    for seed in seeds:
        rng = np.random.default_rng(seed)
        x, y = centred(rng, n, d), centred(rng, n, d)
        w = orthogonal_procrustes(x, y)
        assert w.shape == (d, d)
        assert np.abs(w.T @ w - np.eye(d)).max() < 1e-10
        assert abs(((x @ w - y) ** 2).sum() - optimum(x, y)) < 1e-10 * (x**2).sum()


def test_procrustes_exactly_rank_deficient_data():
    """Rows of rank 5 (N = 30 > rank, 2N < D and 2N > D): still orthogonal and optimal."""
    for seed in range(10):
        for d in (100, 50):
            rng = np.random.default_rng(seed)
            x, y = centred(rng, 30, d, rank=5, spikes=0), centred(rng, 30, d, rank=5, spikes=0)
            w = orthogonal_procrustes(x, y)
            assert np.abs(w.T @ w - np.eye(d)).max() < 1e-10
            assert abs(((x @ w - y) ** 2).sum() - optimum(x, y)) < 1e-10 * (x**2).sum()


def test_procrustes_equals_scipy_on_full_rank_data():
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x, y = centred(rng, 200, 32), centred(rng, 200, 32)
        r, _ = scipy.linalg.orthogonal_procrustes(x, y)
        np.testing.assert_allclose(orthogonal_procrustes(x, y), r, rtol=0, atol=1e-10)


def test_procrustes_returns_the_solution_closest_to_the_identity():
    """N < D: identical inputs give exactly I (np.linalg.svd's U V^T does not: its null-space bases
    differ), a rotated copy is recovered on the data, and directions orthogonal to both row spaces
    are left alone."""
    rng = np.random.default_rng(1)
    x = centred(rng, 40, 640)
    np.testing.assert_allclose(orthogonal_procrustes(x, x), np.eye(640), rtol=0, atol=1e-10)
    rot, _ = np.linalg.qr(rng.standard_normal((640, 640)))
    y = x @ rot
    w = orthogonal_procrustes(x, y)
    np.testing.assert_allclose(x @ w, y, rtol=0, atol=1e-9 * np.abs(y).max())
    q, _ = np.linalg.qr(np.concatenate([x, y]).T)  # [640, 80] basis of both row spaces
    v = rng.standard_normal((5, 640))
    v -= v @ q @ q.T
    np.testing.assert_allclose(v @ w, v, rtol=0, atol=1e-10 * np.abs(v).max())


def test_procrustes_through_the_fallback_driver_equals_the_direct_answer(monkeypatch):
    rng = np.random.default_rng(2)
    x, y = centred(rng, 40, 640), centred(rng, 40, 640)
    direct = orthogonal_procrustes(x, y)
    fail_driver(monkeypatch, {"gesdd"})
    np.testing.assert_allclose(orthogonal_procrustes(x, y), direct, rtol=0, atol=1e-10)


def test_procrustes_shape_mismatch():
    with pytest.raises(MetricError, match=r"same shape, got \(4, 3\) and \(4, 5\)"):
        orthogonal_procrustes(np.ones((4, 3)), np.ones((4, 5)))


# ====================================================================== least squares, ridge
def test_lstsq_is_numpys_minimum_norm_solution_on_rank_deficient_inputs():
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        a, b = centred(rng, 12, 80), centred(rng, 12, 80)  # rank 11
        want = np.linalg.lstsq(a, b, rcond=None)[0]
        np.testing.assert_allclose(robust_lstsq(a, b), want, rtol=0, atol=1e-9 * np.abs(want).max())


def test_lstsq_fallback_through_svd_equals_the_direct_answer(monkeypatch):
    rng = np.random.default_rng(4)
    a, b = centred(rng, 40, 640), centred(rng, 40, 640)
    direct = robust_lstsq(a, b)
    monkeypatch.setattr(scipy.linalg, "lstsq", lambda *a, **k: (_ for _ in ()).throw(np.linalg.LinAlgError("x")))
    fail_driver(monkeypatch, {"gesdd"})
    got = robust_lstsq(a, b)
    np.testing.assert_allclose(got, direct, rtol=0, atol=1e-9 * np.abs(direct).max())
    np.testing.assert_allclose(a @ got, b, rtol=0, atol=1e-8 * np.abs(b).max())  # interpolates (N < D)
    np.testing.assert_allclose(robust_lstsq(a, b[:, 0]), direct[:, 0], rtol=0, atol=1e-9 * np.abs(direct).max())


@pytest.mark.parametrize("n, d", [(20, 90), (90, 20)])
def test_ridge_equals_the_closed_form_on_either_side(monkeypatch, n, d):
    rng = np.random.default_rng(5)
    x, y = centred(rng, n, d), centred(rng, n, d)
    for alpha in (1e-3, 1.0, 1e4):
        want = np.linalg.solve(x.T @ x + alpha * np.eye(d), x.T @ y)
        got = ridge_solve(x, y, alpha)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-8 * np.abs(want).max())
    monkeypatch.setattr(scipy.linalg, "solve", lambda *a, **k: (_ for _ in ()).throw(np.linalg.LinAlgError("x")))
    np.testing.assert_allclose(ridge_solve(x, y, 1.0), np.linalg.solve(x.T @ x + np.eye(d), x.T @ y),
                               rtol=0, atol=1e-8)
    with pytest.raises(MetricError, match="alpha > 0"):
        ridge_solve(x, y, 0.0)


# ====================================================================== the library's callers
def sample_shaped(seed: int = 0) -> Activations:
    """2 layers x 3 languages x 60 sentences x 640 dims, like Gemma 3 270M on the bundled sample."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((2, 1, 60, 640))
    data = shared + 0.5 * rng.standard_normal((2, 3, 60, 640)) + 3.0 * rng.standard_normal((2, 3, 1, 640))
    data[..., :3] *= 50.0
    return Activations(data=data.astype(np.float32), layers=(3, 6), languages=("en", "ar", "hi"),
                       ids=[f"s{i:02d}" for i in range(60)])


@pytest.mark.parametrize("method", ["procrustes", "lstsq"])
def test_linear_projection_fits_the_bundled_sample_shape_on_a_cpu_where_gesdd_fails(monkeypatch, method):
    acts = sample_shaped()
    fit, held = acts.sel(ids=acts.ids[:40]), acts.sel(ids=acts.ids[40:])
    reference = LinearProjection("en", method=method).fit(fit)
    user_cpu(monkeypatch)
    with pytest.raises(np.linalg.LinAlgError):  # the old code path
        np.linalg.svd(np.ones((3, 3)))
    proj = LinearProjection("en", method=method).fit(fit)
    assert proj.coef_.shape == (2, 2, 640, 640)
    np.testing.assert_allclose(proj.coef_, reference.coef_, rtol=0, atol=1e-5)
    if method == "procrustes":
        for w in proj.coef_.reshape(-1, 640, 640).astype(np.float64):
            assert np.abs(w.T @ w - np.eye(640)).max() < 1e-5  # float32 storage
    out = proj.transform(held)
    assert np.all(np.isfinite(out.data))


def test_fit_linear_map_procrustes_is_optimal_with_translation():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((40, 640)) + 5.0
    y = x @ np.linalg.qr(rng.standard_normal((640, 640)))[0] - 2.0
    coef, intercept = fit_linear_map(x, y, "procrustes")
    np.testing.assert_allclose(x @ coef + intercept, y, rtol=0, atol=1e-9)
    assert np.abs(coef.T @ coef - np.eye(640)).max() < 1e-10


def test_pca_map_survives_a_cpu_where_gesdd_fails(monkeypatch):
    from xling_probe.plots.embedding import project_2d

    rng = np.random.default_rng(0)
    x = centred(rng, 120, 640) + 1.0
    want = project_2d(x)
    user_cpu(monkeypatch)
    np.testing.assert_allclose(project_2d(x), want, rtol=0, atol=1e-8 * np.abs(want).max())
