"""Kernels of the similarity engine: per-language state shared by every pair, and per-pair scoring.

:class:`LangState` holds what one language contributes at a chunk of layers (unit rows for cosine
retrieval, z-scores for ANC, the Gram matrix or centered features for CKA, k-NN lists), computed
once and shared by every pair, null permutation and bootstrap sample. :func:`score_pair` turns two
states into every requested metric (value, null draws, bootstrap draws). Definitions are in
:mod:`xling_probe.measures.metrics`; the driver is :func:`xling_probe.measures.engine.similarity`.

Compute dtype (:func:`compute_dtype`): the activations are read, checked, centered, standardised and
normalised in float64; only the operands of the big products (centered rows for the Gram matrices
K = Xc Xc^T or the D x D feature products, unit rows for the cosine matrices S = U_a U_b^T, z-scores
for ANC) are stored in the compute dtype. Gram matrices and feature products are cast to float64
before any reduction, so every HSIC sum, diagonal, row sum, Frobenius product and CKA ratio is a
float64 sum; ANC's per-neuron sums accumulate in float64. The cosine matrix S stays in the compute
dtype: argmax, ties and top-k compare its values exactly (a float32 value converts to float64
exactly, so comparing in float64 would give the same answer). With float64 nothing is converted and
the numbers are those of the float64 engine bit for bit.

float32 vs float64 (measured in tests/test_similarity_float32.py, random and tiny-model
activations): CKA, debiased CKA, ANC and |ANC| differ by < 1e-8 (tested < ``FLOAT32_TOLERANCE`` =
1e-6, values, nulls and intervals); P@k, MEXA and mutual k-NN are identical except where two
cosines of one row or column are within float32 rounding (~1e-6) of each other: there float32 can
break (or create) the tie differently, and each such sentence moves the score by at most 1/N.
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
    normalize_rows,
    standardize,
    topk_indices,
)


#: Largest difference float32 vs float64 allowed (and tested) for CKA, debiased CKA, ANC and |ANC|.
FLOAT32_TOLERANCE = 1e-6
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def compute_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """The dtype of the similarity products: ``"float64"``, ``"float32"`` or ``None`` / ``"auto"``
    (float32 on a GPU, float64 on the CPU; see the module docstring for what stays float64)."""
    if dtype is None or (isinstance(dtype, str) and dtype == "auto"):
        return torch.float64 if torch.device(device).type == "cpu" else torch.float32
    key = str(dtype).removeprefix("torch.") if isinstance(dtype, (str, torch.dtype)) else None
    if key not in _DTYPES:
        raise MetricError(f"dtype must be 'float32', 'float64' or None (auto: float32 on a GPU, float64 on the CPU), "
                          f"got {dtype!r}")
    return _DTYPES[key]


class LangState:
    """What one language contributes at a chunk of layers, computed once and shared by all pairs.

    ``x`` [Lc, N, D] float64; ``dtype`` is the compute dtype of the product operands (module docstring)."""

    def __init__(self, x: torch.Tensor, need: set[str], form: str, wt: torch.Tensor | None, mknn_ks: set[int],
                 dtype: torch.dtype = torch.float64):
        self.n = x.shape[-2]
        if "cos" in need:
            self.xn = normalize_rows(x).to(dtype)  # normalised in float64, stored as the GEMM operand
        if "anc" in need:
            z, self.mask = standardize(x)
            self.z = z.to(dtype)
            if wt is not None:  # weighted first and second moments of every bootstrap sample [Lc, B, D]
                w = wt.T.to(dtype)
                self.m1, self.m2 = (w @ self.z).to(torch.float64), (w @ (self.z * self.z)).to(torch.float64)
        if "cka" in need:
            xc = center(x)
            op = xc.to(dtype)
            self.form = form
            if form == "gram":
                self.k = (op @ op.transpose(-1, -2)).to(torch.float64)  # the reductions below are float64
                self.d, self.r = torch.diagonal(self.k, dim1=-2, dim2=-1), self.k.sum(-1)
            else:
                self.xc = op
                self.d, self.r = (xc * xc).sum(-1), (xc @ xc.sum(-2).unsqueeze(-1)).squeeze(-1)
            self.rw = None if wt is None else self.weighted_rows(wt)
        self.knn = {k: _knn(self.xn, k) for k in mknn_ks}

    def kl(self, other: LangState) -> torch.Tensor:
        """<K_self, K_other>_F [Lc]."""
        if self.form == "gram":
            return _frob(self.k, other.k)
        return _sq(other.xc.transpose(-1, -2) @ self.xc)

    def kl_perm(self, other: LangState, perm: torch.Tensor) -> torch.Tensor:
        """<K_self, P K_other P^T>_F [Lc]: other's rows re-paired by ``perm``."""
        if self.form == "gram":
            return _frob(self.k, other.k[:, perm[:, None], perm[None, :]])
        return _sq(other.xc[:, perm].transpose(-1, -2) @ self.xc)

    def weighted_rows(self, wt: torch.Tensor) -> torch.Tensor:
        """K w for every bootstrap sample: [Lc, N, B] (float64)."""
        if self.form == "gram":
            return self.k @ wt
        w = wt.to(self.xc.dtype)
        return (self.xc @ (self.xc.transpose(-1, -2) @ w)).to(torch.float64)

    def kl_weighted(self, other: LangState, wt: torch.Tensor) -> torch.Tensor:
        """w^T (K_self o K_other) w for every bootstrap sample w: [Lc, B]."""
        if self.form == "gram":
            return ((self.k * other.k) @ wt * wt).sum(-2)
        w = wt.to(self.xc.dtype)
        cols = [_sq(other.xc.transpose(-1, -2) @ (self.xc * w[:, s, None])) for s in range(w.shape[1])]
        return torch.stack(cols, -1)


def _sq(m: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm of each [..., D, D] slice, summed in float64."""
    return m.to(torch.float64).square().sum((-2, -1))


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
    if anc_names:  # ---- ANC from z-scores (Pearson r = mean of z products, summed in float64)
        mask = A.mask & B.mask
        prod = A.z * B.z  # [Lc, N, D] once: the value and every bootstrap sample read the same products
        r = sum_rows64(prod) / n
        r_null = _null_correlations(A.z, B.z, perms) if R else None
        r_boot = None
        if wt is not None:  # weighted Pearson r of each bootstrap sample [Lc, B, D]
            m12 = (wt.T.to(prod.dtype) @ prod).to(torch.float64)
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
        s = A.xn @ B.xn.transpose(-1, -2)  # compute dtype; every comparison below is exact on its values
        own = torch.arange(n, device=s.device)
        if R:  # the null re-reads every row's and column's winner
            if "mexa" in names:
                (arg_row, uniq_row), (arg_col, uniq_col) = argmax_unique(s, -1, overwrite=True), argmax_unique(s, -2, overwrite=True)
            else:
                arg_row, arg_col = s.max(-1).indices, s.max(-2).indices
        elif "mexa" in names or 1 in ks:  # values only: one pass per direction gives P@1 and MEXA
            diag, off_row, off_col = diagonal_margins(s)
        for k in sorted(ks):  # top-k indices of each row (a -> b) and each column (b -> a): [Lc, N, k]
            if k == 1 and not R:
                hit_ab, hit_ba = first_max_hits(s, diag, off_row, off_col)
            else:
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
            if R:
                row_win = torch.where(uniq_row, arg_row, -1)
                col_win = torch.where(uniq_col, arg_col, -1)
                hit = (row_win == own) & (col_win == own)
                null = (row_win[:, None] == perms[None]) & (col_win[:, perms] == own)
            else:
                hit, null = (diag > off_row) & (diag > off_col), None
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
    step = max(1, budget // (lc * n * d * za.element_size()))
    parts = [sum_rows64(zb[:, p] * za.unsqueeze(1)) / n for p in perms.split(step)]
    return torch.cat(parts, 1)


def sum_rows64(p: torch.Tensor, block: int = 128) -> torch.Tensor:
    """Sum over axis -2 accumulated in float64 without a float64 copy of ``p``: a float32 ``p`` is
    summed in float32 over blocks of ``block`` rows, the block sums added in float64."""
    if p.dtype == torch.float64:
        return p.sum(-2)
    n = p.shape[-2]
    head = n - n % block
    out = p[..., :head, :].unflatten(-2, (head // block, block)).sum(-2).to(torch.float64).sum(-2)
    return out + p[..., head:, :].sum(-2).to(torch.float64) if head < n else out


def diagonal_margins(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """S[i, i] and the largest OTHER entry of row i and of column i, for each ``[..., N, N]`` slice.

    One pass over S per direction (the diagonal is set to -inf in place, then restored). MEXA's
    hit is ``own > row & own > col`` (strict maximum of its row and its column) and P@1's is
    :func:`first_max_hits`, so both come from the same two passes."""
    view = torch.diagonal(s, dim1=-2, dim2=-1)
    own = view.clone()
    view.fill_(float("-inf"))
    row, col = s.amax(-1), s.amax(-2)
    view.copy_(own)
    return own, row, col


def first_max_hits(s: torch.Tensor, own: torch.Tensor, row: torch.Tensor,
                   col: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P@1 hits by row (a -> b) and by column (b -> a) from :func:`diagonal_margins`: i's own entry is
    the FIRST maximum of its row (as ``argmax``). Strictly above the rest is a hit; an exact tie is
    settled by ``argmax`` (only computed when some row or column ties)."""
    idx = torch.arange(s.shape[-1], device=s.device)
    out = []
    for dim, other in ((-1, row), (-2, col)):
        hit, tie = own > other, own == other
        if bool(tie.any()):
            hit = hit | (tie & (s.argmax(dim) == idx))
        out.append(hit)
    return out[0], out[1]


def _hits(hit: torch.Tensor, null: torch.Tensor | None, wt: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Mean of per-sentence scores [Lc, N], its null [Lc, R, N] and query-resampled bootstrap [Lc, B]."""
    h = hit.to(torch.float64)
    res = {"value": h.mean(-1)}
    if null is not None:
        res["null"] = null.to(torch.float64).mean(-1)
    if wt is not None:
        res["boot"] = (h @ wt) / h.shape[-1]
    return res
