"""Measures computed as a pure function f(X, Y) of two paired N x D matrices: SVCCA, PWCCA, CKNNA,
orthogonal Procrustes, Procrustes-aligned and mean-centred retrieval, RSA.

These are the metrics of kernel ``"pair"`` in :mod:`~xling_probe.measures.registry`. The engine
(:func:`~xling_probe.measures.engine.similarity`) scores them through :func:`score_pair_functions`,
the generic route: for every layer of a pair it evaluates f(X, Y) for the value, f(X, Y[perm]) for
every shuffled pairing of the null, and f(X[idx], Y[idx]) for every bootstrap resample ``idx`` of the
sentence ids (retrieval keeps its candidate pool fixed and resamples the queries, as the engine's
other retrieval metrics do). Everything here is float64 numpy whatever the engine's compute dtype;
every SVD goes through :func:`xling_probe.linalg.robust_svd` (no reliance on ``gesdd`` converging).

Definitions (docs/science.md, "More similarity measures"); X, Y are N x D, row i of each the same
sentence, Xc, Yc their column-centred versions:

- SVCCA (Raghu et al. 2017): keep the top singular directions of Xc (and of Yc) explaining
  ``SVCCA_VARIANCE`` (99%) of its variance (sum of squared singular values); the canonical
  correlations of the two reduced spaces are the singular values of Qx^T Qy (Qx, Qy orthonormal
  bases: the kept left singular vectors). SVCCA = their mean as Google's ``cca_core`` reports it
  (``"mean"``: the leading coefficients that hold ``CCA_MEAN_THRESHOLD`` = 98% of their sum).
- PWCCA (Morcos et al. 2018), directional: the same reduction and CCA; with h_i the X-side canonical
  variates (unit vectors in sentence space, Qx u_i) and x_j the centred neurons (columns of Xc),
  alpha_i = sum_j |<h_i, x_j>|, PWCCA(X, Y) = sum_i alpha_i rho_i / sum_i alpha_i. Weights come from
  the first argument: [a, b] weights by a's neurons. With N < D, CCA of the raw spaces is degenerate
  (every correlation is 1), hence the same 99% SVD reduction as SVCCA before the CCA; the weights
  still use all D centred neurons.
- CKNNA (Huh et al. 2024, ``metrics.py`` ``cknna``): unit rows, K = U U^T, L = V V^T; mask_K[i, j] = 1
  when j is among the k nearest other rows of i under K (likewise L), M = mask_K * mask_L;
  CKNNA = HSIC_u(M o K, M o L) / sqrt(HSIC_u(mask_K o K, mask_K o K) HSIC_u(mask_L o L, mask_L o L)), HSIC_u the
  unbiased estimator of Song et al. (2012) in the reference's form (which transposes its second
  argument). The masked kernels are not symmetric, and the estimator's cross term (1^T K~)(L~ 1) is
  not symmetric in them, so CKNNA(X, Y) != CKNNA(Y, X) (slightly): the registry marks it directional.
  The reference adds 1e-6 to the denominator; we do not.
- Procrustes: Xc, Yc scaled to unit Frobenius norm; min over orthogonal Q of ||Xc Q - Yc||_F^2 =
  2 - 2 ||Xc^T Yc||_* (the squared form of Ding et al. 2021; Williams et al.'s netrep angular
  distance is arccos of the same nuclear norm). The registry's ``procrustes`` is the similarity
  ||Xc^T Yc||_* = 1 - d^2 / 2 in [0, 1] (1 for a rotated, scaled, translated copy), so that larger
  means closer like every other metric (nulls, p-values); :func:`procrustes_distance` gives d^2.
- ``p_procrustes@K`` (xsim's ``acc-procrustes``): unit rows, the orthogonal W minimising ||U W - V||
  (:func:`xling_probe.linalg.orthogonal_procrustes`), then cosine retrieval P@K of U W against V
  (a -> b by rows, b -> a by columns: the same matrix, as W^T maps b onto a). W is fitted on the
  very sentences it is evaluated on, which is optimistic (with N < D an orthogonal map can align
  much of any pairing): read it against its null, which refits W on every shuffled pairing.
- ``p_cent@K`` (xsim's ``acc-cent``): each language's sentence mean subtracted, then cosine P@K.
- RSA: Spearman correlation of the upper triangles (i < j) of the two dissimilarity matrices
  1 - cos(x_i, x_j) and 1 - cos(y_i, y_j) (average ranks for ties).

Bootstrap copies: a resample holds some sentences twice. Two copies of one sentence are not an
independent pair (the engine's CKA rule), so RSA drops the pairs of copies and CKNNA excludes
copies from each other's neighbours and zeroes their kernel entries, like the diagonal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.stats
import torch

from ..errors import MetricError
from ..linalg import numerical_rank, orthogonal_procrustes, robust_svd

#: Share of variance (sum of squared singular values) the SVD step of SVCCA and PWCCA keeps.
SVCCA_VARIANCE = 0.99
#: Google's ``cca_core`` "mean": the mean of the leading canonical correlations holding this share of their sum.
CCA_MEAN_THRESHOLD = 0.98

__all__ = ["CCA_MEAN_THRESHOLD", "SVCCA_VARIANCE", "canonical_correlations", "cca_summary", "centered_retrieval_hits",
           "cknna",
           "principal_basis", "procrustes_distance", "procrustes_retrieval_hits", "procrustes_similarity", "pwcca",
           "rsa", "score_pair_functions", "svcca"]


# ---------------------------------------------------------------------------------- helpers
def _matrix(x, name: str = "x") -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise MetricError(f"{name} must be a matrix [N, D] with N >= 2, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise MetricError(f"{name} contains NaN or inf")
    return a


def _pair(x, y, same_width: bool = False) -> tuple[np.ndarray, np.ndarray]:
    X, Y = _matrix(x, "x"), _matrix(y, "y")
    if X.shape[0] != Y.shape[0]:
        raise MetricError(f"x has {X.shape[0]} sentences but y has {Y.shape[0]}; rows must be paired")
    if same_width and X.shape[1] != Y.shape[1]:
        raise MetricError(f"x has {X.shape[1]} dimensions but y has {Y.shape[1]}; this measure needs the same width")
    return X, Y


def _center(x: np.ndarray) -> np.ndarray:
    return x - x.mean(0, keepdims=True)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise MetricError("a sentence vector has zero norm, so its cosine similarity is undefined")
    return x / norms


def principal_basis(xc: np.ndarray, variance: float = SVCCA_VARIANCE) -> np.ndarray:
    """Orthonormal basis [N, k] of the top left singular directions of the centred ``xc`` [N, D] that
    explain ``variance`` of its variance (smallest k with sum_{i<k} s_i^2 >= variance * sum s^2);
    ``variance=1`` keeps every direction of non-zero singular value (the numerical rank)."""
    if not 0 < variance <= 1:
        raise MetricError(f"variance must be in (0, 1], got {variance!r}")
    u, s, _ = robust_svd(xc)
    r = numerical_rank(s, xc.shape)
    if r == 0:
        raise MetricError("a language has zero variance (all sentence vectors identical): CCA is undefined")
    share = np.cumsum(s[:r] ** 2)
    share = share / share[-1]
    k = min(r, int(np.searchsorted(share, variance * (1 - 1e-12))) + 1)
    return u[:, :k]


def canonical_correlations(qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical correlations (descending, in [0, 1]) of the column spaces of orthonormal ``qx``, ``qy``
    and the X-side canonical variates [N, m] (m = min of the widths), unit norm and mutually orthogonal."""
    u, s, _ = robust_svd(qx.T @ qy)
    m = min(qx.shape[1], qy.shape[1])
    return np.clip(s[:m], 0.0, 1.0), qx @ u[:, :m]


def google_mean(rho: np.ndarray, threshold: float | None = CCA_MEAN_THRESHOLD) -> float:
    """Google ``cca_core``'s "mean" of descending coefficients: the mean of rho[:i] for the first i with
    sum(rho[:i]) >= threshold * sum(rho) (all of them when no such i < len); ``None``: the plain mean."""
    rho = np.asarray(rho, dtype=np.float64)
    if threshold is None:
        return float(rho.mean())
    total = rho.sum()
    if total <= 0:
        return 0.0
    before = np.concatenate([[0.0], np.cumsum(rho)[:-1]])
    hit = np.nonzero(before / total >= threshold)[0]
    idx = int(hit[0]) if len(hit) else len(rho)
    return float(rho[:idx].mean()) if idx > 0 else float("nan")


# ---------------------------------------------------------------------------------- CCA family
def cca_summary(qx: np.ndarray, qy: np.ndarray, xc: np.ndarray, yc: np.ndarray,
                threshold: float | None = CCA_MEAN_THRESHOLD) -> dict[str, float]:
    """SVCCA and PWCCA in both directions from the reduced bases ``qx``, ``qy`` (:func:`principal_basis`)
    and the centred data ``xc``, ``yc``: ``{"svcca", "pwcca_ab" (weights of x), "pwcca_ba" (weights of y)}``."""
    u, s, vt = robust_svd(qx.T @ qy)
    m = min(qx.shape[1], qy.shape[1])
    rho = np.clip(s[:m], 0.0, 1.0)

    def weighted(h: np.ndarray, c: np.ndarray) -> float:
        alpha = np.abs(h.T @ c).sum(1)  # sum_j |<h_i, x_j>| over the centred neurons
        return float((alpha * rho).sum() / alpha.sum())

    return {"svcca": google_mean(rho, threshold), "pwcca_ab": weighted(qx @ u[:, :m], xc),
            "pwcca_ba": weighted(qy @ vt[:m].T, yc)}


def _cca_inputs(x, y, variance: float):
    X, Y = _pair(x, y)
    xc, yc = _center(X), _center(Y)
    return principal_basis(xc, variance), principal_basis(yc, variance), xc, yc


def svcca(x, y, *, variance: float = SVCCA_VARIANCE, threshold: float | None = CCA_MEAN_THRESHOLD) -> float:
    """SVCCA of ``x`` [N, Dx], ``y`` [N, Dy] (module docstring). Symmetric; invariant to an invertible
    linear map of either side when nothing is truncated (``variance=1``, N > D)."""
    return cca_summary(*_cca_inputs(x, y, variance), threshold)["svcca"]


def pwcca(x, y, *, variance: float = SVCCA_VARIANCE) -> float:
    """Projection-weighted CCA of ``x`` onto ``y`` (weights from the neurons of ``x``; module docstring).
    Not symmetric. Invariant to an invertible linear map of ``y`` when nothing is truncated
    (``variance=1``, N > D); the weights change with the basis of ``x`` (not with its scale)."""
    return cca_summary(*_cca_inputs(x, y, variance))["pwcca_ab"]


# ---------------------------------------------------------------------------------- CKNNA
def _hsic_unbiased_ref(k: np.ndarray, l: np.ndarray, zero: np.ndarray) -> float:
    """Unbiased HSIC in the CKNNA reference's form (its second argument enters transposed); ``zero``
    marks the entries set to 0 (the diagonal, and pairs of bootstrap copies)."""
    m = k.shape[0]
    kt, lt = np.where(zero, 0.0, k), np.where(zero, 0.0, l)
    value = (kt * lt.T).sum() + kt.sum() * lt.sum() / ((m - 1) * (m - 2)) - 2.0 * (kt.sum(0) @ lt.sum(1)) / (m - 2)
    return float(value / (m * (m - 3)))


def _knn_mask(k: np.ndarray, topk: int, exclude: np.ndarray) -> np.ndarray:
    """mask[i, j] = 1 when j is among the ``topk`` largest entries of row i outside ``exclude``
    (ties toward the lower index)."""
    hat = np.where(exclude, -np.inf, k)
    idx = np.argsort(-hat, axis=1, kind="stable")[:, :topk]
    mask = np.zeros_like(k)
    np.put_along_axis(mask, idx, 1.0, axis=1)
    return mask


def cknna(x, y, k: int = 10, *, ids: Sequence[int] | None = None) -> float:
    """CKNNA of ``x`` [N, Dx], ``y`` [N, Dy] with ``k`` nearest neighbours (module docstring); NaN where a
    normaliser is not positive. ``ids``: the sentence id of each row (bootstrap copies share one)."""
    X, Y = _pair(x, y)
    n = X.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n - 1:
        raise MetricError(f"CKNNA needs 2 <= k <= N - 1 = {n - 1}, got {k!r}")
    if n < 4:
        raise MetricError(f"CKNNA (unbiased HSIC) needs N >= 4 sentences, got {n}")
    u, v = _unit_rows(X), _unit_rows(Y)
    K, L = u @ u.T, v @ v.T
    same = np.eye(n, dtype=bool) if ids is None else np.equal.outer(np.asarray(ids), np.asarray(ids))
    mk, ml = _knn_mask(K, k, same), _knn_mask(L, k, same)
    mask = mk * ml
    kl = _hsic_unbiased_ref(mask * K, mask * L, same)
    kk = _hsic_unbiased_ref(mk * K, mk * K, same)
    ll = _hsic_unbiased_ref(ml * L, ml * L, same)
    den = kk * ll
    return float(kl / np.sqrt(den)) if den > 0 else float("nan")


# ---------------------------------------------------------------------------------- Procrustes
def _cross_singular_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Singular values of a^T b (``a`` [N, Da], ``b`` [N, Db]), from an at most N x N matrix when N < D."""
    n = a.shape[0]
    if max(a.shape[1], b.shape[1]) <= n:
        return robust_svd(a.T @ b)[1]
    ua, sa, _ = robust_svd(a)
    ub, sb, _ = robust_svd(b)
    # a^T b = Va Sa Ua^T Ub Sb Vb^T: same singular values as Sa Ua^T Ub Sb (Va, Vb orthonormal columns)
    return robust_svd(sa[:, None] * (ua.T @ ub) * sb[None, :])[1]


def procrustes_similarity(x, y) -> float:
    """||Xc^T Yc||_* / (||Xc||_F ||Yc||_F) in [0, 1]: 1 - d^2 / 2 of :func:`procrustes_distance`."""
    X, Y = _pair(x, y)
    xc, yc = _center(X), _center(Y)
    nx, ny = np.linalg.norm(xc), np.linalg.norm(yc)
    if nx == 0 or ny == 0:
        raise MetricError("a language has zero variance (all sentence vectors identical): Procrustes is undefined")
    return float(_cross_singular_values(xc / nx, yc / ny).sum())


def procrustes_distance(x, y) -> float:
    """Squared orthogonal Procrustes distance min_Q ||Xc Q - Yc||_F^2 of the centred, unit-Frobenius-norm
    matrices = 2 - 2 ||Xc^T Yc||_*, in [0, 2]; 0 for a rotated, scaled and translated copy."""
    return 2.0 - 2.0 * procrustes_similarity(x, y)


# ---------------------------------------------------------------------------------- retrieval
def _hits(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence P@k hits of ``s`` [N, N] by row (a -> b) and by column (b -> a), ties toward the
    lower index (as the engine's ``topk_indices``)."""
    n = s.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise MetricError(f"k must be between 1 and the number of sentences ({n}), got {k!r}")
    own = np.arange(n)[:, None]
    if k == 1:
        return s.argmax(1)[:, None] == own, s.argmax(0)[:, None] == own
    row = np.argsort(-s, axis=1, kind="stable")[:, :k]
    col = np.argsort(-s.T, axis=1, kind="stable")[:, :k]
    return (row == own).any(1), (col == own).any(1)


def procrustes_retrieval_hits(x, y, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence hits (a -> b, b -> a) of cosine P@k after the orthogonal Procrustes map of the unit
    rows of ``x`` onto those of ``y``, fitted on these same sentences (optimistic: module docstring)."""
    X, Y = _pair(x, y, same_width=True)
    u, v = _unit_rows(X), _unit_rows(Y)
    mapped = _unit_rows(u @ orthogonal_procrustes(u, v))
    return tuple(h.reshape(-1) for h in _hits(mapped @ v.T, k))


def centered_retrieval_hits(x, y, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence hits (a -> b, b -> a) of cosine P@k after subtracting each language's sentence mean."""
    X, Y = _pair(x, y, same_width=True)
    return tuple(h.reshape(-1) for h in _hits(_unit_rows(_center(X)) @ _unit_rows(_center(Y)).T, k))


# ---------------------------------------------------------------------------------- RSA
def rsa(x, y, *, ids: Sequence[int] | None = None) -> float:
    """Spearman correlation of the upper triangles of 1 - cos within ``x`` and within ``y`` (module
    docstring); NaN when either triangle is constant. ``ids``: pairs of rows sharing an id are dropped."""
    X, Y = _pair(x, y)
    n = X.shape[0]
    if n < 3:
        raise MetricError(f"RSA needs N >= 3 sentences (3 pairs), got {n}")
    u, v = _unit_rows(X), _unit_rows(Y)
    i, j = np.triu_indices(n, 1)
    if ids is not None:
        ids = np.asarray(ids)
        keep = ids[i] != ids[j]
        i, j = i[keep], j[keep]
    dx = 1.0 - (u[i] * u[j]).sum(1)
    dy = 1.0 - (v[i] * v[j]).sum(1)
    rx, ry = scipy.stats.rankdata(dx), scipy.stats.rankdata(dy)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")
