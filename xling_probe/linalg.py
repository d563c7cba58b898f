"""Linear algebra that does not die on a user's CPU: SVD, least squares, ridge and Procrustes.

LAPACK's divide-and-conquer SVD (``gesdd``, behind ``np.linalg.svd`` and ``np.linalg.lstsq``) can
stop with "SVD did not converge" on finite, rank-deficient matrices, depending on the CPU and the
BLAS build (issue 11: a 640 x 640 Procrustes cross-covariance of rank 39 on the bundled sample).
Every SVD of the library goes through :func:`robust_svd`, which tries the drivers of
:data:`SVD_DRIVERS` in turn: scipy's ``gesdd``, scipy's ``gesvd`` (QR iteration: slower, converges
where ``gesdd`` does not) and numpy's own LAPACK (numpy and scipy ship separate OpenBLAS builds).
An output with NaN or inf counts as a failure. Least squares and Procrustes are also computed on
the smaller side when there are fewer rows N than dimensions D, so the SVDs they need are at most
2N x D instead of D x D (definitions: docs/science.md, "Explicit projections").

All functions work in float64 and raise :class:`~xling_probe.errors.MetricError` on NaN/inf input
or when every driver fails.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg

from .errors import MetricError

#: SVD drivers tried in this order by :func:`robust_svd`.
SVD_DRIVERS = ("gesdd", "gesvd", "numpy")
EPS = float(np.finfo(np.float64).eps)


def _as_matrix(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise MetricError(f"{what} needs a 2-D matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise MetricError(f"{what} of a {a.shape[0]} x {a.shape[1]} matrix with NaN or infinite entries; "
                          "remove them first (e.g. re-extract the activations in float32)")
    return a


def _svd(a: np.ndarray, full_matrices: bool, driver: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One SVD attempt with one driver (separate so that tests can make a driver fail)."""
    if driver == "numpy":
        return np.linalg.svd(a, full_matrices=full_matrices)
    return scipy.linalg.svd(a, full_matrices=full_matrices, lapack_driver=driver, check_finite=False)


def robust_svd(
    a: np.ndarray, full_matrices: bool = False, *, drivers: Sequence[str] = SVD_DRIVERS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SVD ``a = u @ diag(s) @ vt`` of ``a`` [M, N] in float64, falling back across ``drivers``.

    Returns ``u`` [M, K], ``s`` [K] (descending, >= 0), ``vt`` [K, N] with K = min(M, N) (or the
    square factors with ``full_matrices=True``), like ``np.linalg.svd``. A driver that raises
    ``LinAlgError`` or returns NaN/inf is skipped; ``drivers`` picks the drivers (tests force one).
    """
    a = _as_matrix(a, "SVD")
    failures = []
    for driver in drivers:
        if driver not in SVD_DRIVERS:
            raise MetricError(f"unknown SVD driver {driver!r}; choose from {SVD_DRIVERS}")
        try:
            u, s, vt = _svd(a, full_matrices, driver)
        except (np.linalg.LinAlgError, ValueError) as exc:
            failures.append(f"{driver}: {exc}")
            continue
        if np.all(np.isfinite(s)) and np.all(np.isfinite(u)) and np.all(np.isfinite(vt)):
            return u, s, vt
        failures.append(f"{driver}: NaN or inf in the result")
    raise MetricError(f"the SVD of a {a.shape[0]} x {a.shape[1]} matrix failed with every LAPACK driver "
                      f"({'; '.join(failures)}); check the input for extreme values (e.g. |x| > 1e150)")


def numerical_rank(s: np.ndarray, shape: tuple[int, ...], rcond: float | None = None) -> int:
    """Numerical rank: singular values above ``rcond * s_max`` (default eps * max(shape), as numpy)."""
    if s.size == 0 or s[0] <= 0:
        return 0
    cut = (EPS * max(shape) if rcond is None else rcond) * s[0]
    return int(np.count_nonzero(s > cut))


def robust_lstsq(a: np.ndarray, b: np.ndarray, rcond: float | None = None) -> np.ndarray:
    """Minimum-norm least-squares solution ``x`` [D, K] of ``a @ x ~ b`` (``a`` [N, D], ``b`` [N, K] or [N]).

    Singular values below ``rcond * s_max`` count as zero (default ``eps * max(N, D)``, the cut-off
    of ``np.linalg.lstsq(rcond=None)``). Tries scipy's ``gelsd``; if it fails, the same solution
    ``V diag(1/s) U^T b`` through :func:`robust_svd`.
    """
    a = _as_matrix(a, "least squares")
    b = np.asarray(b, dtype=np.float64)
    if b.shape[0] != a.shape[0] or b.ndim not in (1, 2):
        raise MetricError(f"least squares needs b with {a.shape[0]} rows, got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise MetricError(f"least squares with a right-hand side {b.shape} holding NaN or inf; remove them first")
    cond = EPS * max(a.shape) if rcond is None else float(rcond)
    try:
        x = scipy.linalg.lstsq(a, b, cond=cond, lapack_driver="gelsd", check_finite=False)[0]
        if np.all(np.isfinite(x)):
            return x
    except (np.linalg.LinAlgError, ValueError):
        pass
    u, s, vt = robust_svd(a)
    r = numerical_rank(s, a.shape, cond)
    coef = u[:, :r].T @ b
    coef = coef / (s[:r, None] if coef.ndim == 2 else s[:r])
    return vt[:r].T @ coef


def ridge_solve(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """``W = argmin ||x W - y||^2 + alpha ||W||^2`` = ``(x^T x + alpha I)^-1 x^T y`` [D, K], alpha > 0.

    ``x`` [N, D], ``y`` [N, K]. With N < D it solves the equal N x N system
    ``W = x^T (x x^T + alpha I)^-1 y`` instead of the D x D one. Cholesky first; if the matrix is not
    numerically positive definite (alpha tiny against the data), least squares on the same system.
    """
    x = _as_matrix(x, "ridge regression")
    y = _as_matrix(y, "ridge regression")
    if alpha <= 0:
        raise MetricError(f"ridge_solve needs alpha > 0, got {alpha}; use robust_lstsq for alpha = 0")
    small = x.shape[0] < x.shape[1]
    gram = x @ x.T if small else x.T @ x
    gram[np.diag_indices_from(gram)] += alpha
    rhs = y if small else x.T @ y
    try:
        sol = scipy.linalg.solve(gram, rhs, assume_a="pos", check_finite=False)
        if not np.all(np.isfinite(sol)):
            raise np.linalg.LinAlgError("non-finite solution")
    except (np.linalg.LinAlgError, ValueError):
        sol = robust_lstsq(gram, rhs)
    return x.T @ sol if small else sol


def _procrustes_core(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthogonal ``W`` [k, k] maximising ``tr(W^T a^T b)`` (``a``, ``b`` [N, k]); among several
    maximisers (rank-deficient ``a^T b``), the one closest to the identity.

    With ``a^T b = U_r S_r V_r^T`` (rank r), every maximiser is ``U_r V_r^T + U_0 Q V_0^T`` with
    ``U_0``, ``V_0`` orthonormal bases of the null spaces and Q orthogonal; ``tr(W)`` is largest
    for Q = the polar factor of ``(V_0^T U_0)^T``.
    """
    k = a.shape[1]
    m = a.T @ b
    u, s, vt = robust_svd(m, full_matrices=True)
    r = numerical_rank(s, m.shape)
    w = u[:, :r] @ vt[:r]
    if r < k:
        u0, v0 = u[:, r:], vt[r:].T
        p, _, qt = robust_svd(v0.T @ u0)
        w = w + u0 @ (p @ qt).T @ v0.T
    return w


def orthogonal_procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Orthogonal ``W`` [D, D] minimising ``||x @ W - y||_F`` for ``x``, ``y`` [N, D] (not centred here).

    The minimiser is ``U V^T`` from the SVD of ``x^T y`` (Schoenemann 1966). When ``x^T y`` is rank
    deficient (always when N < D) the minimisers form a family; this returns the one closest to
    the identity (largest trace), which is the identity on every direction orthogonal to the rows
    of both ``x`` and ``y``. With 2N < D the problem is solved in an orthonormal basis of that
    row space (dimension <= 2N), so no D x D SVD is taken.
    """
    x = _as_matrix(x, "Procrustes")
    y = _as_matrix(y, "Procrustes")
    if x.shape != y.shape:
        raise MetricError(f"Procrustes needs x and y of the same shape, got {x.shape} and {y.shape}")
    n, d = x.shape
    if 2 * n >= d:
        return _procrustes_core(x, y)
    stacked = np.concatenate([x, y])
    _, s, vt = robust_svd(stacked)
    basis = vt[: numerical_rank(s, stacked.shape)].T  # [D, k], orthonormal columns spanning both row spaces
    w_small = _procrustes_core(x @ basis, y @ basis)
    w = basis @ (w_small - np.eye(basis.shape[1])) @ basis.T
    w[np.diag_indices_from(w)] += 1.0
    return w
