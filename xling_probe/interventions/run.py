"""Scoring and generation under an intervention: the few forward passes every experiment needs.

- :func:`continuation_logprobs`: the mean log-probability per token of a continuation given its prompt
  (teacher-forced), per row; the edits of prompt positions are given as masks built here
  (:func:`prompt_mask`), so a batch can be left-padded.
- :func:`next_token_logprobs`: the log-distribution of the next token after each prompt.
- :func:`generate`: continuations (greedy by default; sampling is seeded, so it is deterministic).

Rows are left-padded, positions count real tokens (as in the lens), so padding changes nothing for a
causal model. The hf and nnsight backends run the Hugging Face model; the transformer_lens backend runs
its bridge (and generates without a key-value cache, one full forward pass per new token).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InterventionError
from .mechanism import Edit, intervene

EditsFor = Callable[[torch.Tensor], Sequence[Edit]]  # attention mask of the batch -> the edits of that batch


def check_causal(handle: Any) -> Any:
    from ..models.handle import ModelHandle

    if not isinstance(handle, ModelHandle):
        raise InterventionError("interventions need a ModelHandle: model = xling_probe.load_model(...)")
    if handle.kind != "decoder" or handle.stack is not None or not handle.has_unembedding:
        raise InterventionError(f"{handle.name} is not a causal language model (kind={handle.kind}, "
                                f"stack={handle.stack}): these interventions score and generate next tokens")
    if handle.remote:
        raise InterventionError("interventions run on a local model; load it without remote=True")
    return handle


def encode(handle: Any, texts: Sequence[str], *, special: bool = True) -> list[list[int]]:
    tok = handle.tokenizer
    return [list(tok(t, add_special_tokens=special)["input_ids"]) for t in texts]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, T - len(r):] = torch.as_tensor(r)
            mask[i, T - len(r):] = 1
    return ids, mask


def _pad_id(handle: Any) -> int:
    tok = handle.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)


def logits(handle: Any, ids: torch.Tensor, mask: torch.Tensor, keep: int | None = None) -> torch.Tensor:
    """Float32 logits ``[B, keep or T, V]`` of the last ``keep`` positions (the model's own head)."""
    device = handle.device
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        if handle.backend == "transformer_lens":
            out = handle.bridge(ids, attention_mask=mask, position_ids=pos, return_type="logits")
        else:
            kw: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": False}
            if keep is not None:
                kw["logits_to_keep"] = keep
            out = handle.model(**kw).logits
    out = out[:, -keep:] if keep is not None else out
    if not torch.isfinite(out).all():
        raise InterventionError("the model's logits are non-finite under this intervention: lower its strength")
    return out.float()


def prompt_mask(prompt_lengths: Sequence[int], total: Sequence[int], T: int) -> torch.Tensor:
    """Bool ``[B, T]``: the prompt tokens of each left-padded row (``total`` = prompt + continuation tokens)."""
    mask = torch.zeros((len(total), T), dtype=torch.bool)
    for i, (p, n) in enumerate(zip(prompt_lengths, total)):
        start = T - n
        mask[i, start:start + p] = True
    return mask


def continuation_logprobs(handle: Any, prompts: Sequence[str], continuations: Sequence[str], *,
                          edits: EditsFor | Sequence[Edit] = (), batch_size: int = 8) -> np.ndarray:
    """Mean log-probability (nats per token) of each continuation after its prompt, under ``edits``.

    ``edits``: a list of edits for every batch, or a function of (the batch's prompt mask ``[B, T]``) that
    returns the edits (for edits of the prompt positions only, e.g. INCLINE)."""
    check_causal(handle)
    if len(prompts) != len(continuations):
        raise InterventionError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    p_rows = encode(handle, prompts)
    c_rows = encode(handle, continuations, special=False)
    if any(not c for c in c_rows):
        raise InterventionError("a continuation is empty (no tokens to score)")
    out = np.empty(len(prompts))
    pad = _pad_id(handle)
    for s in range(0, len(prompts), batch_size):
        rows = [p + c for p, c in zip(p_rows[s:s + batch_size], c_rows[s:s + batch_size])]
        ids, mask = left_pad(rows, pad)
        plen = [len(p) for p in p_rows[s:s + batch_size]]
        clen = [len(c) for c in c_rows[s:s + batch_size]]
        K = max(clen) + 1
        todo = edits(prompt_mask(plen, [len(r) for r in rows], ids.shape[1])) if callable(edits) else edits
        with intervene(handle, todo):
            lg = logits(handle, ids, mask, keep=K)
        logp = torch.log_softmax(lg, -1)
        for i, n in enumerate(clen):
            target = ids[i, -n:].to(logp.device)
            pred = logp[i, K - n - 1:K - 1]  # position t predicts token t + 1
            out[s + i] = float(pred.gather(-1, target[:, None]).mean())
    return out


def next_token_logprobs(handle: Any, prompts: Sequence[str], *, edits: EditsFor | Sequence[Edit] = (),
                        batch_size: int = 8) -> torch.Tensor:
    """Log-probabilities ``[n_prompts, V]`` of the token after each prompt, under ``edits``."""
    check_causal(handle)
    rows = encode(handle, prompts)
    pad = _pad_id(handle)
    parts = []
    for s in range(0, len(rows), batch_size):
        ids, mask = left_pad(rows[s:s + batch_size], pad)
        n = [len(r) for r in rows[s:s + batch_size]]
        todo = edits(prompt_mask(n, n, ids.shape[1])) if callable(edits) else edits
        with intervene(handle, todo):
            parts.append(torch.log_softmax(logits(handle, ids, mask, keep=1)[:, -1], -1).cpu())
    return torch.cat(parts)


def generate(handle: Any, prompts: Sequence[str], *, edits: Sequence[Edit] = (), max_new_tokens: int = 16,
             do_sample: bool = False, temperature: float = 1.0, seed: int = 0, batch_size: int = 8) -> list[str]:
    """The continuation of each prompt (new text only), with ``edits`` applied to every forward pass."""
    check_causal(handle)
    if max_new_tokens < 1:
        raise InterventionError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    tok = handle.tokenizer
    out: list[str] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if handle.backend == "transformer_lens":
            with intervene(handle, edits):
                for p in prompts:
                    ids = torch.as_tensor([encode(handle, [p])[0]], device=handle.device)
                    new = handle.bridge.generate(ids, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                                 temperature=temperature, use_past_kv_cache=False, verbose=False,
                                                 stop_at_eos=True, return_type="tokens")
                    out.append(tok.decode(new[0, ids.shape[1]:], skip_special_tokens=True))
            return out
        rows = encode(handle, prompts)
        pad = _pad_id(handle)
        for s in range(0, len(rows), batch_size):
            ids, mask = left_pad(rows[s:s + batch_size], pad)
            with intervene(handle, edits), torch.inference_mode():
                gen = handle.model.generate(input_ids=ids.to(handle.device), attention_mask=mask.to(handle.device),
                                            max_new_tokens=max_new_tokens, do_sample=do_sample,
                                            temperature=temperature if do_sample else None, top_p=None, top_k=None,
                                            pad_token_id=pad)
            out.extend(tok.decode(g[ids.shape[1]:], skip_special_tokens=True) for g in gen)
    return out
