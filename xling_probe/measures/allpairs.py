"""All language pairs at once: batched GEMMs over blocks of languages, in bounded memory.

For hundreds of languages (402 UDHR languages = 80,601 pairs per layer) the per-pair loop of
:func:`~xling_probe.measures.engine.similarity` spends its time in Python. Here the same
definitions (:mod:`xling_probe.measures.metrics`) are evaluated for a whole block of language
pairs per tensor operation:

- per language and layer, once: unit rows U (cosine retrieval, MEXA) and the centred Gram matrix
  K = Xc Xc^T with its diagonal and row sums (CKA);
- per block pair (A, B) of languages: S[a, b] = U_a U_b^T for every a in A, b in B
  (``[|A|, |B|, N, N]``), from which P@k in both directions and MEXA follow; and
  <K_a, K_b>_F, sum_i K_a,ii K_b,ii, (K~_a 1).(K~_b 1) for every a, b as three GEMMs, from which
  biased and debiased CKA follow exactly as in the engine.

Memory is set by ``max_memory_gb``, not by the number of languages: one layer's per-language
state (streamed from the activations, which may live in an on-disk store) plus one block pair's
similarity matrices. The results equal the engine's per-pair path to float64 rounding (tested
< 1e-12); there are no null permutations or bootstrap intervals here (per pair they cost as much
as the values times R or B: compute them for the pairs you report, with :func:`similarity`).

dtype: U and the centred rows are cast to the compute dtype for the two big products (S and K);
K is cast back to float64 before its diagonal, row sums and Frobenius products, and S's argmax and
tie checks compare its values exactly, as in :mod:`~xling_probe.measures.kernels`. P@1 and MEXA
come from one max pass per direction over S (:func:`~xling_probe.measures.kernels.diagonal_margins`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import MetricError
from .kernels import compute_dtype, diagonal_margins, first_max_hits
from .metrics import center, cka_ratio, hsic_biased, hsic_unbiased, normalize_rows, topk_indices
from .registry import metric_spec
from .result import SimilarityResult

#: Metric families this path evaluates (the others go through the engine's per-pair path).
FAMILIES = ("cka", "retrieval", "mexa")


def supports(names: Sequence[str]) -> bool:
    """Whether every metric in ``names`` has a batched all-pairs form."""
    return all(metric_spec(m).family in FAMILIES for m in names)


def block_size(n: int, d: int, max_memory_gb: float) -> int:
    """Languages per block so one block pair's working set (S and its argmax temporaries) fits the budget."""
    per_pair = n * n * 8 * 4 + 64
    return max(1, min(512, int(math.sqrt(max_memory_gb * 2**30 / 2 / per_pair))))


class _Layer:
    """Per-language state of one layer: unit rows and Gram parts, for the languages ``gi``."""

    def __init__(self, x: torch.Tensor, need_cos: bool, need_cka: bool, dtype: torch.dtype = torch.float64):
        self.u = normalize_rows(x).to(dtype) if need_cos else None
        if need_cka:
            xc = center(x).to(dtype)
            k = (xc @ xc.transpose(-1, -2)).to(torch.float64)  # [G, N, N]; float64 from here on
            self.k = k
            self.d = torch.diagonal(k, dim1=-2, dim2=-1)  # [G, N]
            self.r = k.sum(-1)  # K 1
            if bool((k.flatten(1).square().sum(1) <= 0).any()):
                raise MetricError("a language has zero variance (all sentence vectors identical) at some layer: "
                                  "CKA is undefined")


def _cka_block(A: _Layer, B: _Layer, ia: slice, ib: slice, n: int, debiased: bool) -> torch.Tensor:
    ka, kb = A.k[ia], B.k[ib]
    kl = ka.flatten(1) @ kb.flatten(1).T  # <K_a, K_b>_F  [|A|, |B|]
    da, db, ra, rb = A.d[ia], B.d[ib], A.r[ia], B.r[ib]
    if not debiased:
        return hsic_biased(kl, ra @ rb.T, ra.sum(-1)[:, None], rb.sum(-1)[None, :], n)
    ea, eb = ra - da, rb - db  # K~ 1 (diagonal zeroed)
    return hsic_unbiased(kl, da @ db.T, ea.sum(-1)[:, None], eb.sum(-1)[None, :], ea @ eb.T, n)


def _self_hsic(L: _Layer, n: int, debiased: bool) -> torch.Tensor:
    kk = L.k.flatten(1).square().sum(1)
    if not debiased:
        return hsic_biased(kk, (L.r * L.r).sum(-1), L.r.sum(-1), L.r.sum(-1), n)
    e = L.r - L.d
    return hsic_unbiased(kk, (L.d * L.d).sum(-1), e.sum(-1), e.sum(-1), (e * e).sum(-1), n)


def all_pairs_similarity(acts: Any, names: Sequence[str], li_all: Sequence[int], langs: tuple[str, ...],
                         gi: Sequence[int], pair_list: Sequence[tuple[str, str]], *, device: torch.device,
                         max_memory_gb: float, progress: bool, settings: dict[str, Any],
                         dtype: str | torch.dtype | None = None) -> SimilarityResult:
    """Every metric of ``names`` for every pair of ``langs`` at layers ``li_all`` (axis-0 indices);
    ``dtype`` as in :func:`~xling_probe.measures.kernels.compute_dtype`."""
    from tqdm.auto import tqdm

    n, d, G = acts.n_sentences, acts.hidden_size, len(langs)
    b = block_size(n, d, max_memory_gb)
    blocks = [slice(i, min(i + b, G)) for i in range(0, G, b)]
    todo = [(A, B) for ai, A in enumerate(blocks) for B in blocks[ai:]]
    values = np.full((len(names), len(li_all), G, G), np.nan)
    bar = tqdm(total=len(li_all) * len(todo), desc="similarity (all pairs)", unit="block", disable=not progress)
    with bar:
        for j, li in enumerate(li_all):
            x = np.asarray(acts.data[li, list(gi)])  # [G, N, D]: one layer, read once
            values[:, j] = score_layer(x, names, todo, device=device, layer=acts.layers[li], bar=bar, dtype=dtype)
    return finish_all_pairs(values, names, langs, pair_list, tuple(acts.layers[i] for i in li_all),
                            {**settings, "language_block": b})


def score_layer(x: np.ndarray, names: Sequence[str], todo: Sequence[tuple[slice, slice]], *, device: torch.device,
                layer: int, bar: Any = None, dtype: str | torch.dtype | None = None) -> np.ndarray:
    """Values ``[metric, G, G]`` of one layer's activations ``x`` ``[G, N, D]`` for the block pairs ``todo``
    (both orientations of each block pair are filled; cells of no block pair stay NaN). ``dtype``: the
    compute dtype (None = auto for ``device``)."""
    specs = [metric_spec(m) for m in names]
    G, n = x.shape[0], x.shape[1]
    need_cos = any(s.family in ("retrieval", "mexa") for s in specs)
    need_cka = any(s.family == "cka" for s in specs)
    out = np.full((len(names), G, G), np.nan)
    own = torch.arange(n, device=device)
    dt = compute_dtype(dtype, device)
    with torch.no_grad():
        t = torch.as_tensor(x, device=device).to(torch.float64)
        if not torch.isfinite(t).all():
            raise MetricError(f"non-finite activations at layer {layer}")
        state = _Layer(t, need_cos, need_cka, dt)
        del t
        selfs = {s.name: _self_hsic(state, n, s.name == "cka_debiased") for s in specs if s.family == "cka"}
        for A, B in todo:
            _score_block(state, A, B, specs, names, selfs, out, n, own)
            if bar is not None:
                bar.update(1)
    return out


def finish_all_pairs(values: np.ndarray, names: Sequence[str], langs: tuple[str, ...],
                     pair_list: Sequence[tuple[str, str]], layers: tuple[int, ...],
                     settings: dict[str, Any]) -> SimilarityResult:
    """The result of all-pairs values ``[metric, layer, G, G]``: the diagonal and unrequested pairs NaN."""
    G = len(langs)
    for k in range(G):
        values[:, :, k, k] = np.nan  # a language with itself is no pair
    wanted = np.zeros((G, G), dtype=bool)
    pos = {x: i for i, x in enumerate(langs)}
    for a, b2 in pair_list:
        wanted[pos[a], pos[b2]] = wanted[pos[b2], pos[a]] = True
    values[:, :, ~wanted] = np.nan
    return SimilarityResult(metrics=tuple(names), layers=layers, languages=langs, pairs=tuple(pair_list),
                            arrays={"value": values}, anc_excluded=None,
                            settings={**settings, "path": "all-pairs blocks"})


def _score_block(state: _Layer, A: slice, B: slice, specs, names, selfs, out: np.ndarray, n: int,
                 own: torch.Tensor) -> None:
    """Fill ``out[metric, a, b]`` and ``out[metric, b, a]`` for a in block A, b in block B."""
    for m, spec in enumerate(specs):
        if spec.family == "cka":
            xy = _cka_block(state, state, A, B, n, spec.name == "cka_debiased")
            xx, yy = selfs[spec.name][A][:, None], selfs[spec.name][B][None, :]
            v = cka_ratio(xy, xx, yy).cpu().numpy()
            out[m, A, B] = v
            out[m, B, A] = v.T
    if not any(s.family in ("retrieval", "mexa") for s in specs):
        return
    s = torch.einsum("and,bmd->abnm", state.u[A], state.u[B])  # cos(a_i, b_j)  [|A|, |B|, N, N]
    if any(sp.family == "mexa" or sp.k == 1 for sp in specs if sp.family in ("retrieval", "mexa")):
        diag, off_row, off_col = diagonal_margins(s)  # one max pass per direction serves P@1 and MEXA
    for m, spec in enumerate(specs):
        if spec.family == "retrieval":
            k = spec.k
            if k == 1:
                hit_ab, hit_ba = first_max_hits(s, diag, off_row, off_col)
            else:
                hit_ab = (topk_indices(s, k, -1) == own[:, None]).any(-1)
                hit_ba = (topk_indices(s, k, -2) == own[:, None]).any(-1)
            ab = hit_ab.to(torch.float64).mean(-1).cpu().numpy()  # a -> b
            ba = hit_ba.to(torch.float64).mean(-1).cpu().numpy()  # b -> a
            out[m, A, B] = ab
            out[m, B, A] = ba.T
        elif spec.family == "mexa":
            hit = (diag > off_row) & (diag > off_col)
            v = hit.to(torch.float64).mean(-1).cpu().numpy()
            out[m, A, B] = v
            out[m, B, A] = v.T
