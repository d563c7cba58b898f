"""The online-softmax accumulator of the chunked logit lens (:func:`xling_probe.lens.core.lens_stats`).

It keeps, per (layer, position), a running maximum m, s = sum exp(z - m) and the other sums
rescaled by exp(m_old - m_new) whenever the maximum grows, so the vocabulary is walked in slices
and layers x positions x vocabulary is never held at once (docs/science.md, "Logit lens").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

LN2 = math.log(2.0)


class OnlineSoftmax:
    """Running (online-softmax) sums over vocabulary chunks for one (layers, positions) chunk.

    ``update(z, zf, v0, v1, pairs)`` takes the float32 logits ``z [l, p, v]`` of vocabulary ids
    ``v0:v1`` (and the final layer's ``zf [p, v]`` when the KL is wanted); ``result()`` gives the
    statistics of :func:`~xling_probe.lens.core.lens_stats` (formulas in :mod:`xling_probe.lens.core`).
    """

    def __init__(self, n_l: int, n_p: int, k: int, dev: torch.device, *, with_final: bool, names: list[str],
                 thr: torch.Tensor | None, rank_of: str | None):
        f64 = dict(dtype=torch.float64, device=dev)
        self.m = torch.full((n_l, n_p), -math.inf, **f64)
        self.s = torch.zeros((n_l, n_p), **f64)  # sum exp(z - m)
        self.t = torch.zeros((n_l, n_p), **f64)  # sum exp(z - m) * z
        self.sets = {name: torch.zeros((n_l, n_p), **f64) for name in names}
        self.with_final = with_final
        if with_final:
            self.mf = torch.full((n_p,), -math.inf, **f64)
            self.sf = torch.zeros((n_p,), **f64)  # sum exp(z_L - m_L)
            self.u = torch.zeros((n_l, n_p), **f64)  # sum exp(z_L - m_L) * (z_L - z_l)
        self.thr = thr
        self.rank_of = rank_of
        self.count = torch.zeros((n_l, n_p), dtype=torch.long, device=dev) if thr is not None else None
        self.k = k
        self.top_v = torch.empty((n_l, n_p, 0), dtype=torch.float32, device=dev)
        self.top_i = torch.empty((n_l, n_p, 0), dtype=torch.long, device=dev)

    def update(self, z: torch.Tensor, zf: torch.Tensor | None, v0: int, v1: int,
               pairs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        m_new = torch.maximum(self.m, z.amax(-1).double())
        scale = torch.exp(self.m - m_new)  # exp(-inf) = 0 on the first chunk
        e = torch.exp(z - m_new.unsqueeze(-1).float())  # [l, p, v] float32, values in (0, 1]
        self.s = self.s * scale + e.sum(-1).double()
        self.t = self.t * scale + torch.einsum("lpv,lpv->lp", e, z).double()  # sum e*z, no temporary
        if self.count is not None:
            self.count += (z > self.thr.unsqueeze(-1)).sum(-1)
        for name, (pp, tt) in pairs.items():
            lo = int(torch.searchsorted(tt, v0))
            hi = int(torch.searchsorted(tt, v1))
            acc = self.sets[name] * scale
            if hi > lo:
                p_in, t_in = pp[lo:hi], tt[lo:hi] - v0
                acc = acc.index_add(1, p_in, e[:, p_in, t_in].double())  # e[:, p, t]: [l, pairs in chunk]
                if name == self.rank_of:
                    # The threshold came from a differently shaped matmul: a set token that rounds a
                    # hair above it must not count as outranking its own set.
                    above = (z[:, p_in, t_in] > self.thr[:, p_in]).long()
                    self.count.index_add_(1, p_in, -above)
            self.sets[name] = acc
        self.m = m_new
        if self.with_final:
            mf_new = torch.maximum(self.mf, zf.amax(-1).double())
            sc = torch.exp(self.mf - mf_new)
            ef = torch.exp(zf - mf_new.unsqueeze(-1).float())  # [p, v]
            self.sf = self.sf * sc + ef.sum(-1).double()
            # difference first: splitting it into sum ef * zf - sum ef * z cancels badly near the last layer
            self.u = self.u * sc + torch.einsum("lpv,pv->lp", zf.unsqueeze(0) - z, ef).double()
            self.mf = mf_new
        if self.k:
            kk = min(self.k, z.shape[-1])
            v, i = torch.topk(z, kk, dim=-1)
            cat_v = torch.cat([self.top_v, v], -1)
            cat_i = torch.cat([self.top_i, i + v0], -1)
            keep = min(self.k, cat_v.shape[-1])
            best_v, pos = torch.topk(cat_v, keep, dim=-1)
            self.top_v, self.top_i = best_v, torch.gather(cat_i, -1, pos)

    def result(self) -> dict[str, Any]:
        lse = self.m + torch.log(self.s)
        out: dict[str, Any] = {
            "lse": lse,
            "entropy_bits": (lse - self.t / self.s) / LN2,
            "sets": {name: acc / self.s for name, acc in self.sets.items()},
        }
        if self.with_final:
            lse_f = self.mf + torch.log(self.sf)
            out["kl_bits"] = ((self.u / self.sf.unsqueeze(0) - lse_f.unsqueeze(0) + lse) / LN2).clamp(min=0.0)
        if self.count is not None:
            out["rank"] = self.count + 1
        if self.k:
            out["top_ids"] = self.top_i
            out["top_probs"] = torch.exp(self.top_v.double() - lse.unsqueeze(-1)).float()
        return out
