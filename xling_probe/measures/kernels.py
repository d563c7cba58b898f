"""Kernels of the similarity engine: per-language state shared by every pair, and per-pair scoring.

:class:`LangState` holds what one language contributes at a chunk of layers (unit rows for cosine
retrieval, z-scores for ANC, the Gram matrix or centered features for CKA, k-NN lists), computed
once and shared by every pair, null permutation and bootstrap sample. :func:`score_pair` turns two
states into every requested metric (value, null draws, bootstrap draws). Definitions are in
:mod:`xling_probe.measures.metrics`; the driver is :func:`xling_probe.measures.engine.similarity`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import MetricError
from .registry import metric_spec
from .metrics import (
    anc_from_correlations,
    argmax_unique,
    center,
    cka_ratio,
    hsic_from_rows,
    neuron_correlations,
    normalize_rows,
    standardize,
    topk_indices,
)


class LangState:
    """What one language contributes at a chunk of layers, computed once and shared by all pairs."""

    def __init__(self, x: torch.Tensor, need: set[str], form: str, wt: torch.Tensor | None, mknn_ks: set[int]):
        self.n = x.shape[-2]
        if "cos" in need:
            self.xn = normalize_rows(x)
        if "anc" in need:
            self.z, self.mask = standardize(x)
            if wt is not None:  # weighted first and second moments of every bootstrap sample [Lc, B, D]
                w = wt.T
                self.m1, self.m2 = w @ self.z, w @ (self.z * self.z)
        if "cka" in need:
            xc = center(x)
            self.form = form
            if form == "gram":
                self.k = xc @ xc.transpose(-1, -2)
                self.d, self.r = torch.diagonal(self.k, dim1=-2, dim2=-1), self.k.sum(-1)
            else:
                self.xc = xc
                self.d, self.r = (xc * xc).sum(-1), (xc @ xc.sum(-2).unsqueeze(-1)).squeeze(-1)
            self.rw = None if wt is None else self.weighted_rows(wt)
        self.knn = {k: _knn(self.xn, k) for k in mknn_ks}

    def kl(self, other: LangState) -> torch.Tensor:
        """<K_self, K_other>_F [Lc]."""
        if self.form == "gram":
            return _frob(self.k, other.k)
        return (other.xc.transpose(-1, -2) @ self.xc).square().sum((-2, -1))

    def kl_perm(self, other: LangState, perm: torch.Tensor) -> torch.Tensor:
        """<K_self, P K_other P^T>_F [Lc]: other's rows re-paired by ``perm``."""
        if self.form == "gram":
            return _frob(self.k, other.k[:, perm[:, None], perm[None, :]])
        return (other.xc[:, perm].transpose(-1, -2) @ self.xc).square().sum((-2, -1))

    def weighted_rows(self, wt: torch.Tensor) -> torch.Tensor:
        """K w for every bootstrap sample: [Lc, N, B]."""
        if self.form == "gram":
            return self.k @ wt
        return self.xc @ (self.xc.transpose(-1, -2) @ wt)

    def kl_weighted(self, other: LangState, wt: torch.Tensor) -> torch.Tensor:
        """w^T (K_self o K_other) w for every bootstrap sample w: [Lc, B]."""
        if self.form == "gram":
            return ((self.k * other.k) @ wt * wt).sum(-2)
        cols = [(other.xc.transpose(-1, -2) @ (self.xc * wt[:, s, None])).square().sum((-2, -1))
                for s in range(wt.shape[1])]
        return torch.stack(cols, -1)


def _frob(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b>_F of each leading slice [Lc, N, N] -> [Lc], as a batched dot product (no N x N temporary)."""
    return (a.flatten(1).unsqueeze(1) @ b.flatten(1).unsqueeze(2)).reshape(a.shape[0])


def _knn(xn: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k most cosine-similar other sentences of each sentence [Lc, N, k]."""
    s = xn @ xn.transpose(-1, -2)
    s = s - 3.0 * torch.eye(s.shape[-1], dtype=s.dtype, device=s.device)  # exclude oneself (cosines >= -1)
    return topk_indices(s, k, dim=-1)


def self_hsic(state: dict[str, LangState], names: Sequence[str], n: int, wt: torch.Tensor | None) -> dict[str, dict]:
    """HSIC(K, K) of every language: the CKA normalisers, for the plain sample and every bootstrap sample.
    (A shuffled pairing permutes K's rows and columns together, which leaves HSIC(K, K) unchanged.)"""
    out: dict[str, dict] = {}
    variants = [m for m in names if metric_spec(m).family == "cka"]
    for lang, s in state.items():
        kk = s.kl(s)
        if bool((kk <= 0).any()):
            raise MetricError(f"language {lang!r} has zero variance (all sentence vectors identical) at some layer: "
                              "CKA is undefined")
        out[lang] = {}
        for m in variants:
            plain = pair_hsic(kk[:, None], s.r[..., None], s.d[..., None], s.r[..., None], s.d[..., None], None, n, m)
            boot = None
            if wt is not None:
                boot = pair_hsic(s.kl_weighted(s, wt), s.rw, s.d[..., None], s.rw, s.d[..., None], wt, n, m)
            out[lang][m] = (plain, boot)
    return out


def pair_hsic(kl, ra, da, rb, db, w, n, metric):
    """HSIC (biased for ``cka``, unbiased for ``cka_debiased``) from <K, L>_F, the row sums ``r`` and
    diagonals ``d`` of both Gram matrices, with sentence multiplicities ``w`` (None = each once)."""
    if w is None:
        w = torch.ones(n, 1, dtype=kl.dtype, device=kl.device)
    return hsic_from_rows(kl, ra, da, rb, db, w, n, debiased=metric == "cka_debiased")


def cka_null_products(state: dict[str, LangState], pairs, perms: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
    """<K_a, P K_b P^T> [Lc, R] of every pair under every shuffled pairing P.

    <K_a, P K_b P^T> = <P^T K_a P, K_b>, so either side can be permuted. In the Gram form the side
    whose language is in more pairs is permuted (by the inverse permutation when it is a), and each
    permuted Gram matrix is gathered once per permutation and reused by all its pairs: a pivot
    language is gathered once instead of once per pair.
    """
    count: dict[str, int] = {}
    for a, b in pairs:
        count[a], count[b] = count.get(a, 0) + 1, count.get(b, 0) + 1
    out = {p: [] for p in pairs}
    for perm in perms:
        inv = torch.argsort(perm)
        cache: dict[tuple[str, bool], torch.Tensor] = {}
        for a, b in pairs:
            A, B = state[a], state[b]
            if A.form != "gram":
                out[(a, b)].append(A.kl_perm(B, perm))
                continue
            lang, p = (a, inv) if count[a] >= count[b] else (b, perm)
            if (lang, lang == a) not in cache:
                cache[(lang, lang == a)] = state[lang].k[:, p[:, None], p[None, :]]
            permuted = cache[(lang, lang == a)]
            out[(a, b)].append(_frob(permuted, B.k) if lang == a else _frob(A.k, permuted))
    return {p: torch.stack(v, -1) for p, v in out.items()}


def score_pair(A: LangState, B: LangState, names, ks, perms, wt, hs_a, hs_b,
                kl_null: torch.Tensor | None) -> dict[tuple[str, str], dict[str, torch.Tensor]]:
    """Value [Lc], null [Lc, R] and bootstrap [Lc, B] of every metric for one pair at one chunk of layers."""
    out: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    n, R = A.n, perms.shape[0]
    col = lambda v: v.unsqueeze(-1)  # noqa: E731
    if hs_a:  # ---- CKA: HSIC(K_a, L_b) for the pairing, every shuffled pairing, every bootstrap sample
        kl = A.kl(B)
        kl_boot = A.kl_weighted(B, wt) if wt is not None else None
        for m, (xx, xx_boot) in hs_a.items():
            yy, yy_boot = hs_b[m]
            res = {"value": cka_ratio(pair_hsic(col(kl), col(A.r), col(A.d), col(B.r), col(B.d), None, n, m), xx, yy)[:, 0]}
            if R:  # b's rows re-paired: its row sums and diagonal follow the permutation
                rb, db = B.r[:, perms.T], B.d[:, perms.T]  # [Lc, N, R]
                res["null"] = cka_ratio(pair_hsic(kl_null, col(A.r), col(A.d), rb, db, None, n, m), xx, yy)
            if wt is not None:
                res["boot"] = cka_ratio(pair_hsic(kl_boot, A.rw, col(A.d), B.rw, col(B.d), wt, n, m), xx_boot, yy_boot)
            out[(m, "ab")] = res
    specs = [metric_spec(m) for m in names]
    anc_names = [s.name for s in specs if s.family == "anc"]
    retrieval = {s.k: s.name for s in specs if s.family == "retrieval"}
    if anc_names:  # ---- ANC from z-scores (Pearson r = mean of z products)
        mask = A.mask & B.mask
        r = neuron_correlations(A.z, B.z)
        r_null = _null_correlations(A.z, B.z, perms) if R else None
        r_boot = None
        if wt is not None:  # weighted Pearson r of each bootstrap sample [Lc, B, D]
            m12 = wt.T @ (A.z * B.z)
            ma, mb = A.m1 / n, B.m1 / n
            va, vb = A.m2 / n - ma * ma, B.m2 / n - mb * mb
            ok = (va > 1e-12) & (vb > 1e-12)
            r_boot = torch.where(ok, (m12 / n - ma * mb) / torch.sqrt(torch.where(ok, va * vb, 1.0)), 0.0)
            mask_boot = mask.unsqueeze(1) & ok
        for m in anc_names:
            absolute = m == "anc_abs"
            res = {"value": anc_from_correlations(r, mask, absolute=absolute)}
            if R:
                res["null"] = anc_from_correlations(r_null, mask.unsqueeze(1), absolute=absolute)
            if r_boot is not None:
                res["boot"] = anc_from_correlations(r_boot, mask_boot, absolute=absolute)
            out[(m, "ab")] = res
    if any(s.family in ("retrieval", "mexa") for s in specs):  # ---- cosine similarity S[i, j] = cos(a_i, b_j)
        s = A.xn @ B.xn.transpose(-1, -2)
        own = torch.arange(n, device=s.device)
        if "mexa" in names:
            (arg_row, uniq_row), (arg_col, uniq_col) = argmax_unique(s, -1, overwrite=True), argmax_unique(s, -2, overwrite=True)
        else:
            arg_row, arg_col = s.max(-1).indices, s.max(-2).indices
        for k in sorted(ks):  # top-k indices of each row (a -> b) and each column (b -> a): [Lc, N, k]
            top_row = arg_row.unsqueeze(-1) if k == 1 else topk_indices(s, k, -1)
            top_col = arg_col.unsqueeze(-1) if k == 1 else topk_indices(s, k, -2)
            hit_ab = (top_row == own[:, None]).any(-1)
            hit_ba = (top_col == own[:, None]).any(-1)
            null_ab = null_ba = None
            if R:  # pairing i <-> perm(i): a_i should retrieve b_perm(i); b_perm(i) should retrieve a_i
                null_ab = (top_row[:, None] == perms[None, :, :, None]).any(-1)
                null_ba = (top_col[:, perms] == own[None, None, :, None]).any(-1)
            name = retrieval[k]  # ks are the K of the requested retrieval metrics
            out[(name, "ab")] = _hits(hit_ab, null_ab, wt)
            out[(name, "ba")] = _hits(hit_ba, null_ba, wt)
        if "mexa" in names:  # row i counts when S[i, i] is the strict maximum of its row AND its column
            row_win = torch.where(uniq_row, arg_row, -1)
            col_win = torch.where(uniq_col, arg_col, -1)
            hit = (row_win == own) & (col_win == own)
            null = ((row_win[:, None] == perms[None]) & (col_win[:, perms] == own)) if R else None
            out[("mexa", "ab")] = _hits(hit, null, wt)
        del s
    for spec in specs:
        if spec.family == "mknn":  # ---- mutual k-NN: shared neighbours of i within a and within b
            m, k = spec.name, spec.k
            na, nb = A.knn[k], B.knn[k]
            hit = (na.unsqueeze(-1) == nb.unsqueeze(-2)).any(-1).sum(-1).to(torch.float64) / k
            null = None
            if R:  # pairing i <-> perm(i): compare perm(kNN_a(i)) with kNN_b(perm(i))
                pa = perms[:, na].permute(1, 0, 2, 3)  # [Lc, R, N, k]
                null = (pa.unsqueeze(-1) == nb[:, perms].unsqueeze(-2)).any(-1).sum(-1).to(torch.float64) / k
            out[(m, "ab")] = _hits(hit, null, wt)
    return out


def _null_correlations(za: torch.Tensor, zb: torch.Tensor, perms: torch.Tensor, budget: int = 2**27) -> torch.Tensor:
    """Pearson r per neuron under every shuffled pairing: [Lc, R, D], in batches of permutations
    (about ``budget`` bytes of gathered z-scores at a time)."""
    lc, n, d = za.shape
    step = max(1, budget // (lc * n * d * 8))
    parts = [(zb[:, p] * za.unsqueeze(1)).sum(-2) / n for p in perms.split(step)]
    return torch.cat(parts, 1)


def _hits(hit: torch.Tensor, null: torch.Tensor | None, wt: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Mean of per-sentence scores [Lc, N], its null [Lc, R, N] and query-resampled bootstrap [Lc, B]."""
    h = hit.to(torch.float64)
    res = {"value": h.mean(-1)}
    if null is not None:
        res["null"] = null.to(torch.float64).mean(-1)
    if wt is not None:
        res["boot"] = (h @ wt) / h.shape[-1]
    return res
