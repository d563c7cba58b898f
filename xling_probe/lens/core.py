"""The logit lens, computed in bounded memory.

Definition (docs/science.md, "Logit lens"; nostalgebraist; Wendler et al. 2024): logits_l = unembed(final_norm(h_l))
for each layer l, softmax in float32 over the full vocabulary. ``h_l`` is the raw residual stream
(index 0 = the embedding output, l = the output of block l - 1) as the hooks of
:mod:`xling_probe.extraction.runners` capture it, so the final norm is applied here exactly once. The norm
and the unembedding are the model's own modules (Gemma's RMSNorm with (1 + w) included) and the
model's final-logit soft-capping, tanh(z / c) * c, is applied when its config sets one. The last
layer therefore reproduces the model's own logits; :func:`check_final_logits` verifies it.

Memory: :func:`lens_stats` never holds layers x positions x vocabulary at once. It walks over
chunks of (layers, positions) and, inside each, over chunks of the vocabulary, keeping running
sums in the style of an online softmax: a running maximum m, s = sum exp(z - m) and the other
sums rescaled by exp(m_old - m_new) whenever the maximum grows. From them:

- log-sum-exp: lse = m + log s; P(token set) = sum over the set of exp(z - lse);
- entropy in bits: H = (lse - sum_v p_v z_v) / ln 2;
- KL to the final layer, in bits: KL(p_L || p_l) = sum_v p_L,v (log p_L,v - log p_l,v)
  = (sum_v p_L,v (z_L,v - z_l,v) - lse_L + lse_l) / ln 2;
- rank of a token set: 1 + the number of vocabulary tokens whose logit is strictly greater than
  the largest logit in the set (rank 1 = the set holds the top token);
- the top-k tokens and their probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LensError
from ..extraction.backends import make_runner
from ..extraction.runners import model_inputs, pad_batch
from ..models.loading import ModelHandle
from .online import OnlineSoftmax

#: Elements of one float32 logits chunk (layers x positions x vocabulary slice): 16 MiB.
DEFAULT_CHUNK_ELEMENTS = 2**22


def check_lens_model(model: object) -> ModelHandle:
    """The handle, if the logit lens is defined for it; :class:`LensError` saying why not otherwise."""
    if not isinstance(model, ModelHandle):
        raise LensError("the logit lens needs a ModelHandle: model = xling_probe.load_model(...)")
    if model.kind == "encoder" and model.stack == "encoder":
        raise LensError(
            f"{model.name} was loaded with its encoder stack, which has no unembedding; the logit lens reads the "
            "decoder stack: load_model(..., stack='decoder')"
        )
    if model.kind == "encoder":
        raise LensError(
            f"{model.name} is an encoder (bidirectional) model: it has no causal unembedding that predicts "
            "the next token, so the logit lens is undefined for it. Use a decoder (causal LM) such as the "
            "default Gemma 3 270M: load_model()."
        )
    if not model.has_unembedding:
        raise LensError(
            f"cannot find the final norm and the unembedding (LM head) of {model.name} "
            f"({type(model.model).__name__}); load it as a causal LM (AutoModelForCausalLM)"
        )
    return model


def context_length(model: ModelHandle) -> int | None:
    """The longest input the model accepts, from its config (None when it does not say)."""
    cfg = model.model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class Lens:
    """unembed(final_norm(h)) of one model, with the model's own modules.

    ``logits(h)`` takes RAW residual states ``[..., d_model]`` and returns float32 logits
    ``[..., vocab]`` (soft-capped when the model soft-caps); the chunked helpers take states that
    are already normed, so the norm runs once per chunk of rows, not once per vocabulary slice.
    """

    def __init__(self, model: ModelHandle):
        self.handle = check_lens_model(model)
        parts = model.parts
        self.norm: nn.Module = parts.final_norm
        self.unembed: nn.Module = parts.unembed
        self.softcap: float | None = float(parts.logit_softcap) if parts.logit_softcap else None
        self.scale: float | None = parts.logit_scale  # T5 with tied embeddings: d_model ** -0.5 after the norm
        self.bias: torch.Tensor | None = None if parts.logit_bias is None else parts.logit_bias.reshape(-1).float()
        weight = getattr(self.unembed, "weight", None)
        # An unembedding offloaded by accelerate has its weight on the meta device: call the module instead.
        self._linear = isinstance(self.unembed, nn.Linear) and weight is not None and weight.device.type != "meta"
        if self._linear:
            self.vocab_size = int(weight.shape[0])
        else:
            probe = self.unembed(torch.zeros(1, model.d_model, device=model.device, dtype=model.dtype))
            self.vocab_size = int(probe.shape[-1])

    @torch.inference_mode()
    def normed(self, hidden: torch.Tensor) -> torch.Tensor:
        """final_norm(h) in the model's dtype: ``[..., d_model]`` (times the model's pre-unembedding scale, if any)."""
        x = self.norm(hidden.to(self.handle.dtype))
        return x * self.scale if self.scale else x

    def _cap(self, z: torch.Tensor) -> torch.Tensor:
        z = z.float()
        if self.softcap:
            z = torch.tanh(z / self.softcap) * self.softcap
        return z

    @torch.inference_mode()
    def logits_normed(self, x: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Float32 logits of normed states ``x [..., d]`` for vocabulary ids ``lo:hi``."""
        hi = self.vocab_size if hi is None else hi
        if self._linear:
            w = self.unembed.weight[lo:hi]
            b = self.unembed.bias[lo:hi] if self.unembed.bias is not None else None
            z = F.linear(x.to(w.device), w, b)
        else:
            z = self.unembed(x)[..., lo:hi]
        if self.bias is not None:  # Marian / mBART final_logits_bias
            z = z.float() + self.bias[lo:hi].to(z.device)
        return self._cap(z)

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Full float32 logits ``[..., vocab]`` of raw residual states (materialises the vocabulary)."""
        return self.logits_normed(self.normed(hidden))

    @torch.inference_mode()
    def token_logits(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits of chosen tokens per position: ``x [L, P, d]`` normed, ``ids [P, K]`` -> ``[L, P, K]``."""
        if self._linear:
            w = self.unembed.weight[ids.to(self.unembed.weight.device)]  # [P, K, d]: only the chosen rows
            z = torch.einsum("lpd,pkd->lpk", x.to(device=w.device, dtype=w.dtype), w)
            if self.unembed.bias is not None:
                z = z + self.unembed.bias[ids.to(w.device)]
            if self.bias is not None:
                z = z.float() + self.bias.to(z.device)[ids.to(z.device)]
            return self._cap(z)
        return torch.stack([torch.gather(self.logits_normed(x[i]), 1, ids) for i in range(x.shape[0])])


@dataclass(frozen=True)
class LensStats:
    """Per-(layer, position) statistics of the lens distribution; all tensors are ``[L, P]``
    except ``top_ids``/``top_probs`` ``[L, P, k]``. ``sets[name]`` holds P(token set)."""

    lse: torch.Tensor
    entropy_bits: torch.Tensor
    kl_to_final_bits: torch.Tensor | None
    sets: dict[str, torch.Tensor]
    rank: torch.Tensor | None
    top_ids: torch.Tensor | None
    top_probs: torch.Tensor | None


def _plan(n_layers: int, n_pos: int, vocab: int, chunk_elements: int | None) -> tuple[int, int, int]:
    """Chunk sizes (layers, positions, vocabulary) so a logits chunk has <= chunk_elements entries."""
    if chunk_elements is None:
        return n_layers, n_pos, vocab
    if chunk_elements < 1:
        raise LensError(f"chunk_elements must be >= 1 or None, got {chunk_elements}")
    min_vocab = min(vocab, 4096)  # keep vocabulary slices wide enough for efficient matmuls
    max_rows = max(1, chunk_elements // min_vocab)
    pc = min(n_pos, max_rows)
    lc = max(1, min(n_layers, max_rows // pc))
    vc = max(1, min(vocab, chunk_elements // (pc * (lc + 1))))  # + 1: the final layer's rows
    return lc, pc, vc


def _pairs(sets: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten per-position token sets into (position, token id) pairs, sorted by token id."""
    uniq = [sorted({int(t) for t in ids}) for ids in sets]
    pos = [p for p, ids in enumerate(uniq) for _ in ids]
    tok = [t for ids in uniq for t in ids]
    p = torch.tensor(pos, dtype=torch.long, device=device)
    t = torch.tensor(tok, dtype=torch.long, device=device)
    order = torch.argsort(t)
    return p[order], t[order]


def _padded_ids(sets: Sequence[Sequence[int]], device: torch.device) -> torch.Tensor:
    """``[P, K]`` ids, each row padded by repeating its first id (repeats do not change a max)."""
    width = max(len(s) for s in sets)
    rows = [list(s) + [s[0]] * (width - len(s)) for s in sets]
    return torch.tensor(rows, dtype=torch.long, device=device)


@torch.inference_mode()
def lens_stats(
    lens: Lens,
    resid: torch.Tensor,
    final: torch.Tensor | None = None,
    *,
    sets: Mapping[str, Sequence[Sequence[int]]] | None = None,
    rank_of: str | None = None,
    top_k: int = 0,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
    final_is_last: bool = False,
) -> LensStats:
    """Lens statistics of raw residual states ``resid [L, P, d]`` (L layers, P positions).

    ``final [P, d]`` is the last layer's raw state at the same positions (for the KL to the final
    layer; ``None`` skips the KL). ``final_is_last=True`` says that ``final`` is ``resid[-1]``: the
    reference logits are then the last layer's own (computed once, not a second time for the KL)
    wherever a chunk of layers holds the last one. ``sets[name][p]`` lists the token ids whose summed probability
    is reported for position p; ``rank_of`` names the set whose rank is reported (every one of its
    per-position sets must be non-empty). ``chunk_elements=None`` computes everything in one chunk
    (the naive full materialisation, for checks and benchmarks).
    """
    if resid.dim() != 3:
        raise LensError(f"resid must be [layers, positions, d_model], got shape {tuple(resid.shape)}")
    n_layers, n_pos, _ = resid.shape
    sets = dict(sets or {})
    for name, per_pos in sets.items():
        if len(per_pos) != n_pos:
            raise LensError(f"token sets {name!r} have {len(per_pos)} entries for {n_pos} positions")
    if rank_of is not None:
        if rank_of not in sets:
            raise LensError(f"rank_of={rank_of!r} is not one of the sets {list(sets)}")
        if any(len(s) == 0 for s in sets[rank_of]):
            raise LensError(f"the rank needs a non-empty {rank_of!r} token set at every position")
    dev = resid.device
    vocab = lens.vocab_size
    k = min(top_k, vocab)
    lc, pc, vc = _plan(n_layers, n_pos, vocab, chunk_elements)

    lse = torch.empty(n_layers, n_pos, dtype=torch.float64)
    ent = torch.empty_like(lse)
    kl = torch.empty_like(lse) if final is not None else None
    rank = torch.empty(n_layers, n_pos, dtype=torch.long) if rank_of is not None else None
    set_out = {name: torch.empty_like(lse) for name in sets}
    top_ids = torch.empty(n_layers, n_pos, k, dtype=torch.long) if k else None
    top_probs = torch.empty(n_layers, n_pos, k, dtype=torch.float32) if k else None
    pairs_all = {name: _pairs(per_pos, dev) for name, per_pos in sets.items()}

    if final_is_last and (final is None or tuple(final.shape) != tuple(resid.shape[1:])):
        raise LensError("final_is_last=True needs final = resid[-1] ([positions, d_model])")
    for p0 in range(0, n_pos, pc):
        p1 = min(n_pos, p0 + pc)
        xf = None  # the normed reference rows, made for the first chunk of layers that needs them
        pairs = {}
        for name, (pp, tt) in pairs_all.items():
            sel = (pp >= p0) & (pp < p1)
            pairs[name] = (pp[sel] - p0, tt[sel])
        for l0 in range(0, n_layers, lc):
            l1 = min(n_layers, l0 + lc)
            x = lens.normed(resid[l0:l1, p0:p1])  # [lc, pc, d]
            thr = None
            if rank_of is not None:
                thr = lens.token_logits(x, _padded_ids(sets[rank_of][p0:p1], dev)).amax(-1)  # [lc, pc]
            reuse = final_is_last and l1 == n_layers  # this chunk holds the last layer: its logits are the reference
            if final is not None and not reuse and xf is None:
                xf = lens.normed(final[p0:p1].to(dev))
            acc = OnlineSoftmax(l1 - l0, p1 - p0, k, dev, with_final=final is not None, names=list(sets), thr=thr,
                               rank_of=rank_of)
            for v0 in range(0, vocab, vc):
                v1 = min(vocab, v0 + vc)
                z = lens.logits_normed(x, v0, v1)  # [lc, pc, vc] float32
                zf = z[-1] if reuse else lens.logits_normed(xf, v0, v1) if final is not None else None
                acc.update(z, zf, v0, v1, pairs)
            res = acc.result()
            lse[l0:l1, p0:p1] = res["lse"].cpu()
            ent[l0:l1, p0:p1] = res["entropy_bits"].cpu()
            if kl is not None:
                kl[l0:l1, p0:p1] = res["kl_bits"].cpu()
            if rank is not None:
                rank[l0:l1, p0:p1] = res["rank"].cpu()
            for name in sets:
                set_out[name][l0:l1, p0:p1] = res["sets"][name].cpu()
            if k:
                top_ids[l0:l1, p0:p1] = res["top_ids"].cpu()
                top_probs[l0:l1, p0:p1] = res["top_probs"].cpu()
    return LensStats(lse=lse, entropy_bits=ent, kl_to_final_bits=kl, sets=set_out, rank=rank,
                     top_ids=top_ids, top_probs=top_probs)


def check_final_logits(model: ModelHandle, lens: Lens, inputs: Mapping[str, torch.Tensor],
                       final_last: torch.Tensor) -> float:
    """Compare the lens at the last layer with the model's own logits at the last position.

    ``inputs`` are the model inputs of a left-padded batch (so position -1 is real for every
    row) and ``final_last [B, d]`` the raw last-layer residual there. Returns the largest absolute
    difference; raises :class:`LensError` when it is larger than float rounding can explain
    (a final norm applied twice, a missing soft-cap or hooks on the wrong modules).
    """
    import inspect

    kwargs = dict(inputs)
    if "logits_to_keep" in inspect.signature(model.model.forward).parameters:
        kwargs["logits_to_keep"] = 1  # only the last position: never a [B, T, vocab] tensor
    with torch.inference_mode():
        own = model.model(**kwargs).logits[:, -1].float()
        ours = lens.logits(final_last)
    diff = float((own - ours).abs().max())
    scale = float(own.abs().max().clamp(min=1.0))
    tol = (1e-3 if model.dtype in (torch.float32, torch.float64) else 3e-2) * scale
    if not math.isfinite(diff) or diff > tol:
        raise LensError(
            f"the logit lens at the last layer does not reproduce the model's own logits (max |difference| "
            f"{diff:.3g} > {tol:.3g}). The final norm may be applied twice or missing, the soft-capping of "
            f"{model.name} may be missed, or the hooks sit on the wrong modules; this architecture "
            f"({type(model.model).__name__}) is not supported by the lens yet."
        )
    return diff


def encode(model: ModelHandle, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[int]]:
    """Token ids of prompts (with the model's special tokens, e.g. BOS); :class:`LensError` when a
    prompt is longer than the model's context (``labels`` name the prompts in that message)."""
    if not texts:
        raise LensError("no prompts to run")
    rows = [list(r) for r in model.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
    limit = context_length(model)
    if limit is not None:
        long = [(labels[k] if labels else f"prompt {k}", len(r)) for k, r in enumerate(rows) if len(r) > limit]
        if long:
            shown = ", ".join(f"{name} ({n} tokens)" for name, n in long[:5])
            raise LensError(
                f"{len(long)} prompt(s) are longer than the context of {model.name} ({limit} tokens): {shown}. "
                "Use fewer shots or shorter text."
            )
    empty = [k for k, r in enumerate(rows) if not r]
    if empty:
        raise LensError(f"prompt(s) {empty[:5]} tokenize to nothing; give some text")
    return rows


def run_batches(model: ModelHandle, rows: Sequence[Sequence[int]], layers: Sequence[int], *, keep: str = "last",
                batch_size: int = 8, progress: Any = None, decoder_prefix: Sequence[int] | None = None):
    """Run token rows in left-padded batches and yield ``(indices, inputs, states)``.

    ``states[layer]`` is the raw residual stream, ``[B, d]`` at the last position
    (``keep="last"``) or ``[B, T, d]`` (``keep="all"``); ``inputs`` are the model inputs of the
    batch. Rows are grouped by length so batches carry little padding. Left padding puts every
    row's last real token at position -1, and positions come from the attention mask, so padding
    changes nothing for a causal model.

    On the decoder stack of an encoder-decoder model the rows are the encoder input and the decoder
    reads ``decoder_prefix`` (default: the decoder start token); states are at its last position.
    """
    if batch_size < 1:
        raise LensError(f"batch_size must be >= 1, got {batch_size}")
    if keep not in ("last", "all"):
        raise LensError(f"keep must be 'last' or 'all', got {keep!r}")
    runner = make_runner(model, list(layers))
    pad_id = model.tokenizer.pad_token_id
    order = sorted(range(len(rows)), key=lambda k: -len(rows[k]))

    def reduce(_layer: int, hidden: torch.Tensor) -> torch.Tensor:
        # copy the slice: a view would keep the whole [B, T, d] block alive
        return hidden[:, -1].clone() if keep == "last" else hidden.detach().clone()

    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = pad_batch([rows[k] for k in idx], [[0] * len(rows[k]) for k in idx], pad_id, "left")
            if decoder_prefix is not None and model.stack == "decoder":
                batch["decoder_input_ids"] = torch.tensor([list(decoder_prefix)] * len(idx), dtype=torch.long)
            states = runner.run(batch, reduce)
            yield idx, model_inputs(model, batch), states
            if progress is not None:
                progress.update(len(idx))
