"""Reference numbers for tests/test_measures_more.py: writes tests/data/reference_measures.json.

Run from the repository root: ``.venv/bin/python tests/data/reference_measures.py``.

Every function below is OUR OWN re-implementation, written for this file, of the algorithm of a
published reference code (none of that code is vendored or imported; the file needs only numpy and
scipy). It deliberately takes the reference's route, not the library's
(:mod:`xling_probe.measures.pairwise`), so that agreement checks two different computations:

- ``svcca_ref``: Google's SVCCA (github.com/google/svcca, ``cca_core.get_cca_similarity`` as called by
  the SVCCA tutorial and by the ANC paper's repository, MaksymDel/xsim ``google.py``): activations as
  neurons x datapoints, centred per neuron, SVD, the reduced activations s_k V_k (here the top directions
  explaining 99% of the variance, Raghu et al. 2017, instead of the tutorial's fixed 20), then CCA from
  ``np.cov`` of the stacked reduced activations, each block rescaled by its largest entry, epsilon = 0,
  ``pinv`` of Sxx and Syy, their matrix square roots by ``eigh``, the SVD of
  invsqrt_xx Sxy invsqrt_yy, and cca_core's ``"mean"``: the mean of the leading coefficients whose
  partial sum reaches 98% of their total (``sum_threshold``).
- ``pwcca_ref``: Morcos et al. 2018 projection weighting on top of that CCA (Google's ``pwcca.py``
  ``compute_pwcca``): canonical directions u^T invsqrt_xx applied to the centred reduced X activations
  (cca_core's ``cca_dirns``), orthonormalised by QR as ``pwcca.py`` does, weights
  alpha_i = sum_j |<h_i, x_j>| over the centred original neurons x_j of the FIRST argument, normalised,
  PWCCA = sum alpha_i rho_i over the min(kx, ky) coefficients. Deviations from ``pwcca.py`` (stated in
  docs/science.md): it builds its directions from u^T alone (without invsqrt_xx), adds the neuron means
  back and weights by the uncentred activations, and weights whichever side has fewer neurons.
- ``cknna_ref``: the platonic representation hypothesis code (minyoungg/platonic-rep ``metrics.py``,
  ``AlignmentMetrics.cknna`` with ``unbiased=True`` and its ``hsic_unbiased``), on unit-normalised rows
  as its ``measure_alignment.py`` prepares them: K = A A^T, top-k per row with the diagonal at -inf,
  masks, HSIC_u(mask o K, mask o L) with the reference's transposed second argument. The masked
  kernels are not symmetric, so neither is the value: cknna(a, b) != cknna(b, a) (both stored). Both the value
  with the reference's ``+ 1e-6`` in the denominator (``cknna_ref_eps``) and without it (``cknna_ref``,
  which the library computes) are stored.
- ``procrustes_ref``: netrep's orthogonal ``LinearMetric`` (Williams et al. 2021, alpha = 1,
  ``center_columns=True``) with Frobenius-normalised inputs: fit W = U V^T from the full SVD of
  X^T Y, then the squared distance ||X W - Y||_F^2 (the form of Ding et al. 2021); the library's
  ``procrustes`` reports 1 - d^2 / 2, stored as ``procrustes_sim_ref``.
- ``p_procrustes_ref``: xsim's ``acc-procrustes`` as described by the ANC paper: orthogonal Procrustes
  map (U V^T of the SVD of X^T Y) of the unit-normalised rows of a onto those of b, then the accuracy of
  cosine nearest-neighbour retrieval (a -> b by rows, b -> a by columns). Fitted and evaluated on the
  same sentences, as xsim does (optimistic).
- ``p_cent_ref``: xsim's ``acc-cent``: each side minus its sentence mean, then cosine retrieval accuracy.
- ``rsa_ref``: representational similarity analysis (Kriegeskorte et al. 2008) with
  ``scipy.spatial.distance.pdist(x, "cosine")`` and ``scipy.stats.spearmanr``.

Arrays: seeded ``np.random.default_rng`` normal draws rounded to float32 (so the engine reads the same
numbers), stored in the JSON next to the numbers, for an N > D case and an N < D case.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.spatial.distance
import scipy.stats

OUT = Path(__file__).with_name("reference_measures.json")
VARIANCE, THRESHOLD, K_NN = 0.99, 0.98, 3


# ------------------------------------------------------------------ Google SVCCA / PWCCA route
def _reduce(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """acts [neurons, datapoints] -> (centred acts, reduced s_k V_k [k, datapoints], 99% of variance)."""
    cacts = acts - acts.mean(axis=1, keepdims=True)
    _, s, vt = np.linalg.svd(cacts, full_matrices=False)
    s = s[s > s[0] * 1e-12]
    share = np.cumsum(s ** 2) / np.sum(s ** 2)
    k = int(np.argmax(share >= VARIANCE - 1e-12)) + 1
    return cacts, (s[:k] * np.eye(k)) @ vt[:k]


def _matrix_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T


def _cca(x: np.ndarray, y: np.ndarray):
    """CCA of x [kx, m], y [ky, m] the cca_core way: coefficients, u, invsqrt_xx."""
    nx = x.shape[0]
    cov = np.cov(x, y)
    sxx, sxy, syy = cov[:nx, :nx], cov[:nx, nx:], cov[nx:, nx:]
    xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    inv_xx, inv_yy = _matrix_sqrt(np.linalg.pinv(sxx)), _matrix_sqrt(np.linalg.pinv(syy))
    u, s, _ = np.linalg.svd(inv_xx @ sxy @ inv_yy)
    return np.abs(s), u, inv_xx


def _sum_threshold(s: np.ndarray, threshold: float) -> int:
    for i in range(len(s)):
        if np.sum(s[:i]) / np.sum(s) >= threshold:
            return i
    return len(s)


def svcca_ref(a: np.ndarray, b: np.ndarray) -> float:
    _, ra = _reduce(a.T)
    _, rb = _reduce(b.T)
    s, _, _ = _cca(ra, rb)
    return float(np.mean(s[:_sum_threshold(s, THRESHOLD)]))


def pwcca_ref(a: np.ndarray, b: np.ndarray) -> float:
    ca, ra = _reduce(a.T)
    _, rb = _reduce(b.T)
    s, u, inv_xx = _cca(ra, rb)
    m = len(s)
    dirns = (u.T @ inv_xx @ (ra - ra.mean(axis=1, keepdims=True)))[:m]  # canonical variates [m, datapoints]
    p, _ = np.linalg.qr(dirns.T)
    weights = np.sum(np.abs(p.T @ ca.T), axis=1)  # |<h_i, x_j>| summed over the centred neurons of a
    weights = weights / weights.sum()
    return float(np.sum(weights * s))


# ------------------------------------------------------------------ platonic CKNNA
def _hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    m = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    value = np.sum(kt * lt.T) + np.sum(kt) * np.sum(lt) / ((m - 1) * (m - 2)) - 2 * np.sum(kt @ lt) / (m - 2)
    return value / (m * (m - 3))


def _cknna(a: np.ndarray, b: np.ndarray, topk: int, eps: float) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    n = a.shape[0]
    K, L = a @ a.T, b @ b.T

    def similarity(K, L):
        kh, lh = K.copy(), L.copy()
        np.fill_diagonal(kh, -np.inf)
        np.fill_diagonal(lh, -np.inf)
        mk, ml = np.zeros((n, n)), np.zeros((n, n))
        for i in range(n):
            mk[i, np.argsort(-kh[i])[:topk]] = 1
            ml[i, np.argsort(-lh[i])[:topk]] = 1
        mask = mk * ml
        return _hsic_unbiased(mask * K, mask * L)

    return float(similarity(K, L) / (np.sqrt(similarity(K, K) * similarity(L, L)) + eps))


# ------------------------------------------------------------------ netrep Procrustes, xsim retrieval, RSA
def procrustes_ref(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a - a.mean(0), b - b.mean(0)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    u, _, vt = np.linalg.svd(x.T @ y)
    return float(np.sum((x @ (u @ vt) - y) ** 2))


def _accuracy(s: np.ndarray) -> tuple[float, float]:
    own = np.arange(s.shape[0])
    return float(np.mean(s.argmax(1) == own)), float(np.mean(s.argmax(0) == own))


def p_procrustes_ref(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    x = a / np.linalg.norm(a, axis=1, keepdims=True)
    y = b / np.linalg.norm(b, axis=1, keepdims=True)
    u, _, vt = np.linalg.svd(x.T @ y)
    xm = x @ (u @ vt)
    xm = xm / np.linalg.norm(xm, axis=1, keepdims=True)
    return _accuracy(xm @ y.T)


def p_cent_ref(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    x, y = a - a.mean(0), b - b.mean(0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return _accuracy(x @ y.T)


def rsa_ref(a: np.ndarray, b: np.ndarray) -> float:
    return float(scipy.stats.spearmanr(scipy.spatial.distance.pdist(a, "cosine"),
                                       scipy.spatial.distance.pdist(b, "cosine")).correlation)


# ------------------------------------------------------------------ the cases
CASES = {"n_gt_d": dict(n=14, d=5, seed=11, rank=5, noise=(0.2, 1.5)),
         "n_lt_d": dict(n=16, d=40, seed=12, rank=4, noise=(0.1, 0.5))}


def arrays(n: int, d: int, seed: int, rank: int, noise: tuple[float, float]) -> np.ndarray:
    """[layer=2, language=2, n, d]: a shared meaning of ``rank`` dimensions plus language noise (less
    at layer 0, more at layer 1); language b sees the meaning through a near-identity linear map.
    float32-representable. The N < D case keeps kx + ky <= N - 1 directions in the 99% step: beyond
    that the two subspaces must share directions, several canonical correlations are exactly 1 and
    the PWCCA weights are not unique (docs/science.md, the N < D caveat)."""
    g = np.random.default_rng(seed)
    out = []
    for level in noise:
        meaning = 3.0 * g.normal(size=(n, rank)) @ g.normal(size=(rank, d)) / np.sqrt(rank)
        mix = np.eye(d) + 0.5 * g.normal(size=(d, d)) / np.sqrt(d)
        out.append([meaning + level * g.normal(size=(n, d)) + g.normal(size=d),
                    meaning @ mix + level * g.normal(size=(n, d))])
    return np.asarray(out, dtype=np.float32).astype(np.float64)


def numbers(x: np.ndarray) -> dict:
    res: dict[str, list] = {k: [] for k in ("svcca", "pwcca_ab", "pwcca_ba", "cknna", "cknna_ba", "cknna_eps",
                                            "procrustes",
                                            "procrustes_sim", "p_procrustes_ab", "p_procrustes_ba", "p_cent_ab",
                                            "p_cent_ba", "rsa")}
    for layer in x:
        a, b = layer
        res["svcca"].append(svcca_ref(a, b))
        res["pwcca_ab"].append(pwcca_ref(a, b))
        res["pwcca_ba"].append(pwcca_ref(b, a))
        res["cknna"].append(_cknna(a, b, K_NN, 0.0))
        res["cknna_ba"].append(_cknna(b, a, K_NN, 0.0))
        res["cknna_eps"].append(_cknna(a, b, K_NN, 1e-6))
        d2 = procrustes_ref(a, b)
        res["procrustes"].append(d2)
        res["procrustes_sim"].append(1 - d2 / 2)
        for name, fn in (("p_procrustes", p_procrustes_ref), ("p_cent", p_cent_ref)):
            ab, ba = fn(a, b)
            res[f"{name}_ab"].append(ab)
            res[f"{name}_ba"].append(ba)
        res["rsa"].append(rsa_ref(a, b))
    return res


def main() -> None:
    out = {"k": K_NN, "variance": VARIANCE, "threshold": THRESHOLD, "cases": {}}
    for name, spec in CASES.items():
        x = arrays(**spec)
        out["cases"][name] = {**spec, "data": x.tolist(), "reference": numbers(x)}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
