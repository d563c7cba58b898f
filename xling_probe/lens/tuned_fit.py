"""Training and evaluating the multilingual tuned lens (:mod:`xling_probe.lens.tuned` has the lens itself).

:func:`train_tuned_lens` collects residual states at sampled token positions of multilingual text,
fits the translators (regression start, sampled-softmax KL steps, validation against the logit
lens; the recipe is in :mod:`xling_probe.lens.tuned`) and caches the result;
:func:`~xling_probe.lens.tuned_eval.compare_lenses` gives the exact full-vocabulary KL of both lenses on other text.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import LensError
from ..models.loading import ModelHandle
from .cache import ResultCache, digest, json_safe, model_fields
from .core import Lens, encode, lens_stats, run_batches
from .tuned import TunedLens, check_tuned_model


def _training_texts(corpus: Any, languages: Sequence[str] | None, n_sentences: int | None) -> dict[str, list[str]]:
    from ..data.corpus import ParallelCorpus
    if corpus is None:
        corpus = ParallelCorpus.sample()
    if isinstance(corpus, ParallelCorpus):
        langs = list(languages) if languages is not None else list(corpus.languages)
        missing = [l for l in langs if l not in corpus.languages]
        if missing:
            raise LensError(f"languages {missing} are not in the corpus ({', '.join(corpus.languages)})")
        texts = {l: list(corpus.texts(l)) for l in langs}
    elif isinstance(corpus, Mapping):
        langs = list(languages) if languages is not None else list(corpus)
        missing = [l for l in langs if l not in corpus]
        if missing:
            raise LensError(f"languages {missing} are not in the texts given ({', '.join(map(str, corpus))})")
        texts = {l: [str(t) for t in corpus[l]] for l in langs}
    else:
        raise LensError("corpus must be a ParallelCorpus, a mapping language -> sentences, or None (the bundled sample)")
    if not langs:
        raise LensError("no training languages")
    if n_sentences is not None:
        if n_sentences < 1:
            raise LensError(f"n_sentences must be >= 1, got {n_sentences}")
        texts = {l: t[:n_sentences] for l, t in texts.items()}
    texts = {l: [t for t in ts if t.strip()] for l, ts in texts.items()}
    empty = [l for l, ts in texts.items() if not ts]
    if empty:
        raise LensError(f"no text for {empty}")
    return texts


def collect_positions(model: ModelHandle, texts: Sequence[str], *, max_tokens: int | None, seed: int = 0,
                      batch_size: int = 8, progress: Any = None) -> torch.Tensor:
    """Raw residual states ``[n_states, n, d]`` (float32) at up to ``max_tokens`` token positions of ``texts``.

    Positions are drawn uniformly (seeded) among every token after the first (the BOS state, whose
    norm is far larger than any other, is left out); rows are run in left-padded batches.
    """
    rows = encode(model, list(texts))
    skip = 1 if model.tokenizer.bos_token_id is not None else 0
    eligible = [(r, p) for r, row in enumerate(rows) for p in range(skip, len(row))]
    if not eligible:
        raise LensError("the texts hold no token after the first; give longer sentences")
    if max_tokens is not None and len(eligible) > max_tokens:
        pick = np.random.default_rng(seed).choice(len(eligible), size=max_tokens, replace=False)
        eligible = [eligible[i] for i in sorted(pick)]
    wanted: dict[int, list[int]] = {}
    for r, p in eligible:
        wanted.setdefault(r, []).append(p)
    layers = list(range(model.n_states))
    out = torch.empty(len(layers), len(eligible), model.d_model, dtype=torch.float32)
    slot = {(r, p): i for i, (r, p) in enumerate(eligible)}
    keep_rows = sorted(wanted)
    for idx, _inputs, states in run_batches(model, [rows[r] for r in keep_rows], layers, keep="all",
                                            batch_size=batch_size, progress=progress):
        stack = torch.stack([states[l] for l in layers])  # [L, B, T, d], left-padded
        t = stack.shape[2]
        for j, k in enumerate(idx):
            r = keep_rows[k]
            offset = t - len(rows[r])
            ps = wanted[r]
            cols = [slot[(r, p)] for p in ps]
            out[:, cols] = stack[:, j, [offset + p for p in ps]].float()
    return out


class _Head:
    """The model's final norm and unembedding, float32 and frozen; ``logits(h, ids)`` for a subset of ids."""

    def __init__(self, lens: Lens):
        self.lens = lens
        self.norm = copy.deepcopy(lens.norm).float().requires_grad_(False)
        self.w = lens.unembed.weight.detach().float()
        b = lens.unembed.bias
        self.b = None if b is None else b.detach().float()
        if lens.bias is not None:
            self.b = lens.bias.float() if self.b is None else self.b + lens.bias.float()

    def logits(self, h: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(h.float())
        if self.lens.scale:
            x = x * self.lens.scale
        w = self.w if ids is None else self.w[ids]
        b = None if self.b is None else self.b if ids is None else self.b[ids]
        z = torch.nn.functional.linear(x, w, b)
        if self.lens.softcap:
            z = torch.tanh(z / self.lens.softcap) * self.lens.softcap
        return z


def _vocab_subset(head: _Head, final: torch.Tensor, size: int, top_k: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The top token ids of p_L over the positions (at most ``size``), the exact full-vocabulary
    log-sum-exp of every position ``[n]``, and the mean share of p_L's mass the ids hold."""
    vocab = head.w.shape[0]
    n = final.shape[0]
    score = torch.zeros(vocab, dtype=torch.float64)
    lse = torch.empty(n, dtype=torch.float32)
    with torch.no_grad():
        for p0 in range(0, n, 64):
            z = head.logits(final[p0:p0 + 64])
            lse[p0:p0 + 64] = torch.logsumexp(z, -1)
            prob = torch.softmax(z, -1)
            top = prob.topk(min(top_k, vocab), dim=-1)
            score.index_add_(0, top.indices.reshape(-1), top.values.reshape(-1).double())
    chosen = torch.nonzero(score > 0).reshape(-1)
    if chosen.numel() > size:
        chosen = torch.argsort(score, descending=True)[:size]
    ids = torch.sort(chosen).values
    with torch.no_grad():
        zl = head.logits(final, ids)
        coverage = float(torch.exp(zl - lse[:, None]).sum(-1).mean())
    return ids, lse, coverage


def _regression_init(states: torch.Tensor, ridge: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """A_l, b_l of the ridge least-squares map h_l -> h_L, shrunk towards the identity.

    Minimises ``sum_i ||h_l,i + A h_l,i + b - h_L,i||^2 + lam ||A||^2`` over the training positions
    (centred, float64), with ``lam = ridge`` x the mean diagonal of the Gram matrix: with little data
    or a layer already close to the output the translator stays near the logit lens.
    """
    n_states, n, d = states.shape
    last = states[-1].double()
    a_all = torch.zeros(n_states, d, d, dtype=torch.float32)
    b_all = torch.zeros(n_states, d, dtype=torch.float32)
    eye = torch.eye(d, dtype=torch.float64)
    for l in range(n_states - 1):
        x = states[l].double()
        mx = x.mean(0)
        xc = x - mx
        resid = last - x  # what the translator must add
        mr = resid.mean(0)
        g = xc.T @ xc
        lam = ridge * float(torch.diagonal(g).mean().clamp(min=1e-12))
        a = torch.linalg.solve(g + lam * eye, xc.T @ (resid - mr))  # [d, d]: resid ~ x a
        a_all[l] = a.T.float()
        b_all[l] = (mr - mx @ a).float()
    return a_all, b_all


def fit_translators(lens: Lens, states: torch.Tensor, *, vocab_size: int = 8192, top_k: int = 32, steps: int = 60,
                    batch_tokens: int = 128, lr: float = 1e-4, init: str = "regression", seed: int = 0,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Translators ``(weight [S, d, d], bias [S, d], meta)`` fitted to raw states ``[S, n, d]`` (last = final layer)."""
    from tqdm.auto import tqdm

    n_states, n, d = states.shape
    torch.manual_seed(seed)
    head = _Head(lens)
    vocab = head.w.shape[0]
    top, lse_final, coverage = _vocab_subset(head, states[-1], vocab_size // 2 if vocab_size < vocab else vocab, top_k)
    n_tail = min(vocab - top.numel(), vocab_size - top.numel())
    tail_pool = torch.from_numpy(np.setdiff1d(np.arange(vocab), top.numpy()))
    tail_weight = (tail_pool.numel() / n_tail) if n_tail > 0 else 0.0
    if init == "regression":
        a0, b0 = _regression_init(states)
    else:
        a0, b0 = torch.zeros(n_states, d, d), torch.zeros(n_states, d)
    trained = list(range(n_states - 1))  # the last state keeps the identity
    a = a0[:-1].clone().requires_grad_(True)
    b = b0[:-1].clone().requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=lr)
    rng = np.random.default_rng(seed + 1)
    history: list[float] = []

    def sample_ids() -> tuple[torch.Tensor, torch.Tensor]:
        """The ids of one step's softmax and their log importance weights (0 for the top ids)."""
        if n_tail <= 0:
            return top, torch.zeros(top.numel())
        tail = tail_pool[torch.from_numpy(rng.choice(tail_pool.numel(), size=n_tail, replace=False))]
        logw = torch.cat([torch.zeros(top.numel()), torch.full((n_tail,), math.log(tail_weight))])
        return torch.cat([top, tail]), logw

    def step_loss(sel: np.ndarray, backward: bool) -> list[float]:
        """Sampled-softmax estimate of KL(p_L || q_l) per layer (nats): the full-vocabulary sums of
        p log p, p z and exp(z) are estimated from the top ids plus importance-weighted tail ids."""
        ids, logw = sample_ids()
        with torch.no_grad():
            logp = head.logits(states[-1][sel], ids) - lse_final[sel, None]  # exact log p_L on the ids
            pw = torch.exp(logp + logw)  # p times the importance weight
            neg_entropy = (pw * logp).sum(-1)
        losses = []
        for l in trained:
            h = states[l][sel]
            z = head.logits(h + h @ a[l].T + b[l], ids)
            kl = neg_entropy - (pw * z).sum(-1) + torch.logsumexp(z + logw, -1)
            loss = kl.mean()
            if backward:
                loss.backward()
            losses.append(float(loss.detach()))
        return losses

    probe = rng.choice(n, size=min(n, 256), replace=False)
    with torch.no_grad():
        start_kl = step_loss(probe, backward=False)
    bar = tqdm(total=steps, desc="tuned lens: KL steps", unit="step", disable=not progress)
    with bar, torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            sel = rng.choice(n, size=min(n, batch_tokens), replace=False)
            losses = step_loss(sel, backward=True)
            opt.step()
            history.append(float(np.mean(losses)))
            bar.set_postfix(kl=f"{history[-1] / math.log(2):.3f} bits")
            bar.update(1)
    with torch.no_grad():
        end_kl = step_loss(probe, backward=False)
    weight = torch.cat([a.detach(), torch.zeros(1, d, d)]).numpy().astype(np.float32)
    bias = torch.cat([b.detach(), torch.zeros(1, d)]).numpy().astype(np.float32)
    meta = {"vocab_coverage": coverage, "vocab_top": int(top.numel()), "vocab_tail_sampled": int(max(n_tail, 0)),
            "objective": "KL(p_L || q_l), sampled softmax: top ids of p_L + importance-weighted random tail ids",
            "train_kl_bits_start": [v / math.log(2) for v in start_kl] + [0.0],
            "train_kl_bits_end": [v / math.log(2) for v in end_kl] + [0.0],
            "loss_history_bits": [v / math.log(2) for v in history]}
    return weight, bias, meta


def _validate(lens: Lens, val: torch.Tensor, weight: np.ndarray, bias: np.ndarray):
    """Exact full-vocabulary KL (bits) per layer on validation states for the logit lens and the fitted
    translators; a layer whose translator is not better keeps the identity."""
    layers = list(range(val.shape[0]))
    probe = TunedLens(model="", fingerprint="", weight=weight, bias=bias)
    kl_logit = lens_stats(lens, val, val[-1], final_is_last=True).kl_to_final_bits.mean(1).numpy()
    kl_tuned = lens_stats(lens, probe.translate(val, layers), val[-1], final_is_last=True).kl_to_final_bits.mean(1).numpy()
    keep = kl_tuned < kl_logit
    keep[-1] = False
    identity = [l for l in layers[:-1] if not keep[l]]
    weight, bias = weight.copy(), bias.copy()
    weight[identity] = 0.0
    bias[identity] = 0.0
    return weight, bias, {"validation_kl_bits_logit": kl_logit.tolist(), "validation_kl_bits_fitted": kl_tuned.tolist(),
                          "identity_layers": identity}


def train_tuned_lens(
    model: ModelHandle,
    corpus: Any = None,
    *,
    languages: Sequence[str] | None = None,
    n_sentences: int | None = 100,
    max_tokens: int = 4096,
    validation_tokens: int = 64,
    vocab_size: int = 8192,
    top_k: int = 32,
    steps: int = 20,
    batch_tokens: int = 128,
    lr: float = 1e-4,
    init: str = "regression",
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
    cache: bool = True,
    cache_root: str | Path | None = None,
) -> TunedLens:
    """Train per-layer translators on multilingual text (the tuned-lens objective: KL to the final layer).

    ``corpus``: a :class:`~xling_probe.ParallelCorpus`, a mapping language -> sentences, or None for the
    bundled sample (16 languages). The first ``n_sentences`` of each of ``languages`` are run and
    ``max_tokens`` positions drawn among them for training and ``validation_tokens`` others for
    validation: a layer whose translator does not lower the exact full-vocabulary KL on the
    validation positions keeps the identity (the logit lens), and ``meta["identity_layers"]`` lists
    them. ``steps`` Adam steps of ``batch_tokens`` positions
    each, learning rate ``lr``, softmax over ``vocab_size`` ids (module docstring). ``init``:
    'regression' (closed-form start) or 'identity' (the paper's). ``steps=0`` keeps the start.
    With ``cache=True`` a lens trained before with the same inputs is loaded instead.
    """
    from tqdm.auto import tqdm

    lens = check_tuned_model(model)
    if init not in ("regression", "identity"):
        raise LensError(f"init must be 'regression' or 'identity', got {init!r}")
    for name, value, low in (("max_tokens", max_tokens, 2), ("validation_tokens", validation_tokens, 0), ("vocab_size", vocab_size, 2), ("top_k", top_k, 1),
                             ("steps", steps, 0), ("batch_tokens", batch_tokens, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise LensError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise LensError(f"lr must be a positive number, got {lr!r}")
    texts = _training_texts(corpus, languages, n_sentences)
    flat = [t for ts in texts.values() for t in ts]
    settings = {"languages": list(texts), "n_sentences": n_sentences, "max_tokens": max_tokens,
                "validation_tokens": validation_tokens, "vocab_size": vocab_size, "top_k": top_k, "steps": steps, "batch_tokens": batch_tokens, "lr": lr,
                "init": init, "seed": seed}
    entry = None
    if cache:
        entry = ResultCache("tuned_lens", {**model_fields(model), "texts": digest(texts), **settings}, root=cache_root)
        hit = entry.load()
        if hit is not None:
            doc, arrays = hit
            return TunedLens(model=doc["model"], fingerprint=doc["fingerprint"], weight=arrays["weight"],
                             bias=arrays["bias"], meta={**doc["meta"], "from_cache": True})
    t0 = time.perf_counter()
    bar = tqdm(total=len(flat), desc="tuned lens: states", unit="sentence", disable=not progress)
    with bar:
        states = collect_positions(model, flat, max_tokens=max_tokens + validation_tokens, seed=seed,
                                   batch_size=batch_size, progress=bar)
    t_states = time.perf_counter() - t0
    n_all = states.shape[1]
    n_val = min(validation_tokens, n_all // 5)
    order = torch.from_numpy(np.random.default_rng(seed + 2).permutation(n_all))
    train, val = states[:, order[n_val:]], states[:, order[:n_val]]
    del states
    weight, bias, fit_meta = fit_translators(lens, train, vocab_size=vocab_size, top_k=top_k, steps=steps,
                                             batch_tokens=batch_tokens, lr=lr, init=init, seed=seed, progress=progress)
    checked = {}
    if n_val:
        weight, bias, checked = _validate(lens, val, weight, bias)
    meta = {**settings, **fit_meta, **checked, "n_tokens": int(train.shape[1]), "n_validation": int(n_val),
            "seconds": time.perf_counter() - t0, "seconds_states": t_states, "from_cache": False}
    result = TunedLens(model=model.name, fingerprint=str(model.fingerprint), weight=weight, bias=bias, meta=meta)
    if entry is not None:
        entry.save(json_safe({"model": result.model, "fingerprint": result.fingerprint, "meta": meta}),
                   {"weight": weight, "bias": bias})
    return result
