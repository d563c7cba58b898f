"""The engine route of the pairwise-function metrics (:mod:`.pairwise`): each metric is a pure function f(X, Y)
of two languages' sentence representations, evaluated per layer for the pairing, for every shuffled pairing
(the null) and for every bootstrap resample of sentence ids (the interval)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import MetricError
from .pairwise import (
    SVCCA_VARIANCE,
    _cca_inputs,
    cca_summary,
    centered_retrieval_hits,
    cknna,
    procrustes_retrieval_hits,
    procrustes_similarity,
    pwcca,
    rsa,
    svcca,
)
from .registry import MetricSpec, metric_spec

# ---------------------------------------------------------------------------------- the engine route
#: Families whose function returns per-sentence hits (a -> b, b -> a): the bootstrap resamples queries.
PER_SENTENCE = ("retrieval_procrustes", "retrieval_cent")


def evaluate(spec: str | MetricSpec, x, y, ids: Sequence[int] | None = None):
    """f(x, y) of a ``"pair"``-kernel metric: a float, or for retrieval a pair of per-sentence hit arrays."""
    spec = metric_spec(spec)
    fam = spec.family
    if fam == "svcca":
        return svcca(x, y)
    if fam == "pwcca":
        return pwcca(x, y)
    if fam == "cknna":
        return cknna(x, y, spec.k, ids=ids)
    if fam == "procrustes":
        return procrustes_similarity(x, y)
    if fam == "rsa":
        return rsa(x, y, ids=ids)
    if fam == "retrieval_procrustes":
        return procrustes_retrieval_hits(x, y, spec.k)
    if fam == "retrieval_cent":
        return centered_retrieval_hits(x, y, spec.k)
    raise MetricError(f"metric {spec.name!r} is not a pairwise-function metric")


def score_pair_functions(xa: torch.Tensor, xb: torch.Tensor, specs: Sequence[MetricSpec], perms: torch.Tensor,
                         boot_idx: np.ndarray,
                         wt: torch.Tensor | None) -> dict[tuple[str, str], dict[str, torch.Tensor]]:
    """Value [Lc], null [Lc, R] and bootstrap [Lc, B] of every ``"pair"``-kernel metric of ``specs`` for
    one language pair at a chunk of layers (``xa``, ``xb`` [Lc, N, D]), in the format of
    :func:`~xling_probe.measures.kernels.score_pair`.

    Null: f(X, Y[perm]) for each shuffled pairing (b -> a: f(Y[perm], X)). Bootstrap: f(X[idx], Y[idx])
    for each resample of sentence ids, or, for retrieval, the mean of the per-query hits over the
    resampled queries (``wt`` multiplicities, the candidate pool fixed)."""
    A = xa.detach().to(torch.float64).cpu().numpy()
    Bx = xb.detach().to(torch.float64).cpu().numpy()
    P = perms.cpu().numpy()
    lc, n = A.shape[0], A.shape[1]
    R, nb = P.shape[0], len(boot_idx)
    w = None if wt is None else wt.detach().cpu().numpy()
    out: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    cca = [s for s in specs if s.family in ("svcca", "pwcca")]
    if cca:
        out.update(_score_cca(A, Bx, cca, P, boot_idx, wt))
    for spec in specs:
        if spec in cca:
            continue
        dirs = ("ab", "ba") if spec.directional else ("ab",)
        res = {d: {"value": np.full(lc, np.nan), "null": np.full((lc, R), np.nan), "boot": np.full((lc, nb), np.nan)}
               for d in dirs}
        per_sentence = spec.family in PER_SENTENCE
        for li in range(lc):
            x, y = A[li], Bx[li]
            if per_sentence:
                hab, hba = (h.astype(np.float64) for h in evaluate(spec, x, y))
                res["ab"]["value"][li], res["ba"]["value"][li] = hab.mean(), hba.mean()
                for r in range(R):
                    nab, nba = evaluate(spec, x, y[P[r]])
                    res["ab"]["null"][li, r], res["ba"]["null"][li, r] = nab.mean(), nba.mean()
                if w is not None:
                    res["ab"]["boot"][li], res["ba"]["boot"][li] = (hab @ w) / n, (hba @ w) / n
                continue
            args = {"ab": lambda p, q: (p, q), "ba": lambda p, q: (q, p)}
            for d in dirs:
                res[d]["value"][li] = evaluate(spec, *args[d](x, y))
                for r in range(R):
                    res[d]["null"][li, r] = evaluate(spec, *args[d](x, y[P[r]]))
                for s in range(nb):
                    idx = boot_idx[s]
                    res[d]["boot"][li, s] = evaluate(spec, *args[d](x[idx], y[idx]), ids=idx)
        for d in dirs:
            fields = {"value": res[d]["value"]}
            if R:
                fields["null"] = res[d]["null"]
            if wt is not None:
                fields["boot"] = res[d]["boot"]
            out[(spec.name, d)] = {f: torch.as_tensor(v) for f, v in fields.items()}
    return out


def _score_cca(A: np.ndarray, Bx: np.ndarray, specs: Sequence[MetricSpec], P: np.ndarray, boot_idx: np.ndarray,
               wt: torch.Tensor | None) -> dict[tuple[str, str], dict[str, torch.Tensor]]:
    """SVCCA and PWCCA (both directions) of one pair at a chunk of layers, sharing the SVD step: one
    :func:`principal_basis` per language and sample. A shuffled pairing permutes the rows of b's
    basis (the SVD of Y[perm] is P U S V^T), so the null needs no new SVD of the data; the values
    equal f(X, Y[perm]) (tests/test_measures_more.py)."""
    lc, R, nb = A.shape[0], P.shape[0], len(boot_idx)
    keys = {"svcca": ["svcca"], "pwcca": ["pwcca_ab", "pwcca_ba"]}
    wanted = [k for s in specs for k in keys[s.family]]
    arr = {k: {"value": np.full(lc, np.nan), "null": np.full((lc, R), np.nan), "boot": np.full((lc, nb), np.nan)}
           for k in wanted}

    def put(field, li, col, summary):
        for k in wanted:
            if col is None:
                arr[k][field][li] = summary[k]
            else:
                arr[k][field][li, col] = summary[k]

    for li in range(lc):
        qx, qy, xc, yc = _cca_inputs(A[li], Bx[li], SVCCA_VARIANCE)
        put("value", li, None, cca_summary(qx, qy, xc, yc))
        for r in range(R):
            p = P[r]
            put("null", li, r, cca_summary(qx, qy[p], xc, yc[p]))
        for b in range(nb):
            idx = boot_idx[b]
            put("boot", li, b, cca_summary(*_cca_inputs(A[li][idx], Bx[li][idx], SVCCA_VARIANCE)))
    out: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for spec in specs:
        for key in keys[spec.family]:
            fields = {"value": arr[key]["value"]}
            if R:
                fields["null"] = arr[key]["null"]
            if wt is not None:
                fields["boot"] = arr[key]["boot"]
            out[(spec.name, "ba" if key.endswith("_ba") else "ab")] = {f: torch.as_tensor(v) for f, v in fields.items()}
    return out
