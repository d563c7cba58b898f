"""Sentence pooling of token states, as pure tensor functions (docs/science.md, "Sentence pooling").

- ``mean``: average over real tokens (padding excluded); special tokens (BOS/CLS/SEP/EOS)
  excluded by default: a decoder's BOS state has a huge norm ("attention sink") and would
  dominate every mean.
- ``last``: the last real token (correct for left and right padding).
- ``first``: the first real token (CLS for encoders, BOS for decoders that add one).
- ``weighted_mean`` (MEXA): e = sum_t t * m_t * h_t / sum_t t * m_t, positions t = 1..T counted
  over the sentence's real tokens (so padding on either side gives the same value), m = mask.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from ..errors import ExtractionError

#: The sentence poolings (docs/science.md, "Sentence pooling").
Pooling = Literal["mean", "last", "first", "weighted_mean"]
POOLINGS: tuple[str, ...] = get_args(Pooling)


def check_pooling(pooling: str) -> Pooling:
    """``pooling`` if it is one of :data:`POOLINGS`, else an :class:`ExtractionError` listing them."""
    if pooling not in POOLINGS:
        raise ExtractionError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
    return pooling  # type: ignore[return-value]


def pooling_weights(
    attention_mask: torch.Tensor,
    special_mask: torch.Tensor | None,
    pooling: Pooling,
    *,
    include_special: bool = False,
) -> torch.Tensor:
    """Per-token weights ``[batch, seq]`` (float32, each row sums to 1) for a pooling.

    ``attention_mask`` is 1 on real tokens and 0 on padding; ``special_mask`` is 1 on special
    tokens. Pooling is then ``sum_t w[b, t] * h[b, t]``, one batched contraction per layer.
    """
    check_pooling(pooling)
    real = attention_mask.bool()
    if pooling in ("first", "last"):
        seq = real.shape[1]
        pos = torch.arange(seq, device=real.device).expand_as(real)
        if pooling == "first":
            at = torch.where(real, pos, torch.full_like(pos, seq)).min(dim=1).values
        else:
            at = torch.where(real, pos, torch.full_like(pos, -1)).max(dim=1).values
        w = torch.zeros(real.shape, dtype=torch.float32, device=real.device)
        w[torch.arange(real.shape[0], device=real.device), at] = 1.0
        return w
    keep = real if (include_special or special_mask is None) else real & ~special_mask.bool()
    empty = ~keep.any(dim=1)
    if empty.any():
        # A sentence made only of special tokens: fall back to all its real tokens.
        keep = torch.where(empty[:, None], real, keep)
    w = keep.to(torch.float32)
    if pooling == "weighted_mean":
        positions = real.to(torch.float32).cumsum(dim=1)  # t = 1..T over real tokens
        w = w * positions
    return w / w.sum(dim=1, keepdim=True)


def pool(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Pool ``hidden`` ``[batch, seq, d]`` with ``weights`` ``[batch, seq]`` -> ``[batch, d]`` (float32).

    Positions with weight 0 are zeroed before the sum, so NaN or inf in padding positions (which
    some attention kernels produce) never leak into the pooled vector.
    """
    h = hidden.to(torch.float32)
    weights = weights.to(h.device)  # a split model's blocks live on several devices
    h = torch.where(weights[..., None] > 0, h, torch.zeros((), dtype=h.dtype, device=h.device))
    return torch.einsum("bsd,bs->bd", h, weights)
