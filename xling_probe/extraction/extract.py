"""Residual-stream extraction: pooled sentence states at every layer, cached on disk.

Stored states are the raw residual stream (docs/science.md, "Residual-stream layers"): index 0 = the embedding output (the
input to block 0), index l = the output of block l - 1. They are captured with hooks on the
blocks, never from ``output_hidden_states`` (whose last entry is after the final norm on
Llama/Gemma-style decoders). Pooling happens inside the hooks, so the full
``[batch, seq, hidden]`` states of all layers are never accumulated. ``extract(...,
recipe="mexa")`` applies the model's own final norm to the last state instead, as
``output_hidden_states`` does (:mod:`xling_probe.recipes`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .activations import Activations
from ..data.corpus import ParallelCorpus
from ..errors import ExtractionError
from ..labels import parse_layers, resolve_layers  # noqa: F401 - re-exported, extract.resolve_layers is public
from ..models.loading import ModelHandle
from .pooling import check_pooling, pool, pooling_weights

CHUNK = 256  # sentences per cache part: the unit that an interrupted extraction resumes from


class _StopForward(Exception):
    """Raised from a hook once the last requested layer is captured: later blocks are skipped."""


@dataclass
class Tokenized:
    """Token ids of a list of sentences (no padding yet)."""

    ids: list[list[int]]
    special: list[list[int]]
    n_truncated: int


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> Tokenized:
    """Tokenize with special tokens; sentences over ``max_length`` tokens are truncated (counted)."""
    enc = tokenizer(list(texts), add_special_tokens=True, return_special_tokens_mask=True, truncation=False)
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    long_rows = [k for k, row in enumerate(ids) if len(row) > max_length]
    if long_rows:
        short = tokenizer([texts[k] for k in long_rows], add_special_tokens=True, return_special_tokens_mask=True,
                          truncation=True, max_length=max_length)
        for j, k in enumerate(long_rows):
            ids[k], special[k] = short["input_ids"][j], short["special_tokens_mask"][j]
    return Tokenized(ids=list(ids), special=list(special), n_truncated=len(long_rows))


def pad_batch(rows: Sequence[Sequence[int]], special: Sequence[Sequence[int]], pad_id: int, side: str) -> dict[str, torch.Tensor]:
    """Pad token rows on ``side`` ('left' or 'right') into tensors with masks."""
    width = max(len(r) for r in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    spec = torch.zeros((n, width), dtype=torch.long)
    for b, (r, s) in enumerate(zip(rows, special)):
        sl = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        input_ids[b, sl] = torch.tensor(r, dtype=torch.long)
        attention[b, sl] = 1
        spec[b, sl] = torch.tensor(s, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention, "special_tokens_mask": spec}


class PoolingRunner:
    """Mixin: a runner with ``run(batch, reduce)`` gets pooled extraction for free."""

    layers: list[int]

    def run(self, batch: dict[str, torch.Tensor], reduce: Callable[[int, torch.Tensor], Any]) -> dict[int, Any]:
        raise NotImplementedError

    def __call__(self, batch: dict[str, torch.Tensor], weights: torch.Tensor,
                 normed: tuple[int, torch.nn.Module] | None = None) -> torch.Tensor:
        """Pooled states ``[len(layers), batch, d]`` with per-token ``weights``.

        ``normed = (layer, norm)``: that layer's token states go through ``norm`` (the model's final
        norm, as HF ``hidden_states[-1]``) before pooling; pooling a normed state is not the norm
        of the pooled state, so it must happen per token, inside the hook.
        """
        def reduce(layer: int, hidden: torch.Tensor) -> torch.Tensor:
            if normed is not None and layer == normed[0]:
                hidden = normed[1](hidden)
            return pool(hidden, weights)

        out = self.run(batch, reduce)
        return torch.stack([out[layer] for layer in self.layers])


class HFRunner(PoolingRunner):
    """Runs batches through the HF base model with hooks that reduce the requested states.

    ``reduce(layer, hidden)`` turns one layer's ``[batch, seq, d]`` residual states into
    whatever the caller keeps (a pooled ``[batch, d]`` vector for extraction, the last
    position for the lens), inside the hook, so full states of all layers are never held.
    Blocks after the last requested layer are skipped.
    """

    def __init__(self, handle: ModelHandle, layers: Sequence[int]):
        self.handle = handle
        self.layers = list(layers)
        self.last_needed = max(self.layers)

    def run(self, batch: dict[str, torch.Tensor], reduce: Callable[[int, torch.Tensor], Any]) -> dict[int, Any]:
        blocks = self.handle.parts.blocks
        out: dict[int, Any] = {}
        hooks = []
        wanted = set(self.layers)
        stop_after = self.last_needed

        def capture(index: int, hidden: torch.Tensor) -> None:
            out[index] = reduce(index, hidden)
            if index == stop_after and stop_after < len(blocks):
                raise _StopForward

        if 0 in wanted:
            def pre(_module, args, kwargs):
                capture(0, args[0] if args else kwargs["hidden_states"])
            hooks.append(blocks[0].register_forward_pre_hook(pre, with_kwargs=True))
        for layer in self.layers:
            if layer == 0:
                continue

            def post(_module, _args, output, layer=layer):
                capture(layer, output[0] if isinstance(output, (tuple, list)) else output)
            hooks.append(blocks[layer - 1].register_forward_hook(post))
        try:
            self.handle.parts.runner(**model_inputs(self.handle, batch))
        except _StopForward:
            pass
        finally:
            for h in hooks:
                h.remove()
        missing = wanted - set(out)
        if missing:
            raise ExtractionError(f"hooks did not capture layers {sorted(missing)}; is this architecture supported?")
        return out


def model_inputs(handle: ModelHandle, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    device = handle.device
    inputs = {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}
    if handle.kind == "decoder":
        # Positions count real tokens, so left padding does not shift them (as in generation).
        pos = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        inputs["position_ids"] = pos.to(device)
        inputs["use_cache"] = False
    return inputs


def make_runner(handle: ModelHandle, layers: Sequence[int]):
    if handle.backend == "transformer_lens":
        from ..models.tl_bridge import TLRunner

        return TLRunner(handle, layers)
    return HFRunner(handle, layers)


def extract_texts(
    handle: ModelHandle,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    pooling: str = "mean",
    include_special: bool = False,
    batch_size: int = 16,
    max_length: int = 512,
    padding_side: str | None = None,
    progress: Any = None,
    out: np.ndarray | None = None,
    final_norm_last: bool = False,
) -> tuple[np.ndarray, int]:
    """Pooled states ``[len(layers), len(texts), d_model]`` (float32) and the truncation count.

    Sentences are sorted by length (longest first) so batches carry little padding, then put
    back in the input order. With ``out`` (a float32 array or view of that shape) the states are
    written there and no other result array is allocated. With ``final_norm_last`` the last
    residual state (``handle.n_states - 1``, when requested) goes through the model's own final
    norm before pooling, as HF ``output_hidden_states`` returns it (the MEXA recipe).
    """
    tok = tokenize(handle.tokenizer, texts, max_length)
    side = padding_side or ("right" if handle.kind == "encoder" else handle.tokenizer.padding_side or "right")
    if side not in ("left", "right"):
        raise ExtractionError(f"padding_side must be 'left' or 'right', got {side!r}")
    order = sorted(range(len(texts)), key=lambda k: -len(tok.ids[k]))
    runner = make_runner(handle, layers)
    norm = handle.parts.final_norm if final_norm_last else None
    normed = (handle.n_states - 1, norm) if norm is not None else None
    shape = (len(layers), len(texts), handle.d_model)
    if out is not None and (out.shape != shape or out.dtype != np.float32):
        raise ExtractionError(f"out must be a float32 array of shape {shape}, got {out.dtype} {out.shape}")
    result = out if out is not None else np.empty(shape, dtype=np.float32)
    pad_id = handle.tokenizer.pad_token_id
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = pad_batch([tok.ids[k] for k in idx], [tok.special[k] for k in idx], pad_id, side)
            weights = pooling_weights(
                batch["attention_mask"].to(handle.device),
                batch["special_tokens_mask"].to(handle.device),
                pooling,
                include_special=include_special,
            )
            pooled = runner(batch, weights, normed)
            result[:, idx] = pooled.cpu().numpy()
            if progress is not None:
                progress.update(len(idx))
    return result, tok.n_truncated


def extract(
    model: ModelHandle,
    corpus: ParallelCorpus,
    *,
    languages: Iterable[str] | None = None,
    layers: Any = "all",
    pooling: str | None = None,
    include_special: bool | None = None,
    batch_size: int = 16,
    max_length: int = 512,
    padding_side: str | None = None,
    cache: bool = True,
    cache_root: Any = None,
    progress: bool = True,
    recipe: str | None = None,
) -> Activations:
    """Pooled residual-stream activations of ``corpus`` at ``layers`` for ``languages``.

    Returns :class:`Activations` (layer x language x sentence x hidden; layer 0 = embeddings,
    layer l = output of block l - 1). With ``cache=True`` the result is stored under the cache
    directory keyed by everything that changes it; a repeated call loads it, and an interrupted
    call recomputes only the parts (language x chunk of sentences) that were not finished.

    ``pooling`` defaults to ``"mean"`` and ``include_special`` to False (special tokens left out).
    ``recipe="mexa"`` reproduces MEXA's extractor (docs/science.md; :mod:`xling_probe.recipes`):
    ``pooling="weighted_mean"``, ``include_special=True`` (BOS included) and the last state after
    the model's own final norm, exactly as HF ``output_hidden_states`` returns it; ``acts.meta``
    records ``recipe="mexa"`` and ``last_state``. An explicit ``pooling``/``include_special`` that
    contradicts the recipe raises :class:`~xling_probe.recipes.RecipeError`. MEXA's score is then
    ``similarity(acts, metrics=["mexa"], pairs="pivot:en").peak_layers()`` (``mean_over_layers``
    and ``max_over_layers`` per pair).
    """
    from ..recipes import EXTRACT_RECIPES, resolve

    rec, chosen = resolve(recipe, EXTRACT_RECIPES,
                          {"pooling": pooling, "include_special": include_special, "final_norm_last": None},
                          {"pooling": "mean", "include_special": False, "final_norm_last": False})
    pooling, include_special = chosen["pooling"], bool(chosen["include_special"])
    final_norm_last = bool(chosen["final_norm_last"])
    if not isinstance(model, ModelHandle):
        raise ExtractionError("extract() needs a ModelHandle: model = xling_probe.load_model(...)")
    if not isinstance(corpus, ParallelCorpus):
        raise ExtractionError("extract() needs a ParallelCorpus: corpus = xling_probe.ParallelCorpus.from_tsv(...)")
    check_pooling(pooling)
    if batch_size < 1 or max_length < 2:
        raise ExtractionError(f"batch_size must be >= 1 and max_length >= 2, got {batch_size} and {max_length}")
    if languages is not None:
        corpus = corpus.select_languages(list(languages))
    layer_idx = resolve_layers(layers, model.n_states)
    last = model.n_states - 1
    if not final_norm_last or last not in layer_idx:
        last_state = "raw residual stream (no final norm)" if last in layer_idx else "not extracted"
        final_norm_last = False
    elif model.parts.final_norm is None:
        last_state, final_norm_last = "block output (the model has no final norm)", False
    else:
        last_state = "final_norm_applied"
    fields = {
        "model": model.fingerprint,
        "corpus": corpus.content_hash(),
        "languages": list(corpus.languages),
        "layers": layer_idx,
        "pooling": pooling,
        "include_special": include_special,
        "max_length": max_length,
        "dtype": str(model.dtype),
        "padding_side": padding_side,
    }
    if final_norm_last:  # only then: the keys of existing caches stay as they were
        fields["last_state"] = "final_norm"
    entry = None
    if cache:
        from .store import CacheEntry

        entry = CacheEntry.open(fields, root=cache_root)
    n = len(corpus)
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    # One preallocated result; per-language views are filled in place (no final copy).
    data = np.empty((len(layer_idx), len(corpus.languages), n, model.d_model), dtype=np.float32)
    per_lang = {lang: data[:, j] for j, lang in enumerate(corpus.languages)}
    todo: list[tuple[str, int, int]] = []
    for lang in corpus.languages:
        for k, (s, e) in enumerate(chunks):
            part = entry.load_part(f"{lang}-{k}") if entry is not None else None
            if part is not None and part.shape == (len(layer_idx), e - s, model.d_model):
                per_lang[lang][:, s:e] = part
            else:
                todo.append((lang, k, s))
    truncated: dict[str, int] = {}
    if todo:
        from tqdm.auto import tqdm

        total = sum(min(s + CHUNK, n) - s for _, _, s in todo)
        bar = tqdm(total=total, desc=f"extract {model.name}", unit="sent", disable=not progress)
        lock = entry.lock() if entry is not None else nullcontext()
        with lock, bar:
            for lang, k, s in todo:
                e = min(s + CHUNK, n)
                if entry is not None and (part := entry.load_part(f"{lang}-{k}")) is not None:
                    per_lang[lang][:, s:e] = part  # finished by another process meanwhile
                    bar.update(e - s)
                    continue
                states, n_trunc = extract_texts(  # written straight into the result (no per-chunk copy)
                    model, corpus.sentences[lang][s:e], layer_idx, pooling=pooling, include_special=include_special,
                    batch_size=batch_size, max_length=max_length, padding_side=padding_side, progress=bar,
                    out=per_lang[lang][:, s:e], final_norm_last=final_norm_last,
                )
                _check_finite(states, layer_idx, corpus.labels[lang])
                truncated[lang] = truncated.get(lang, 0) + n_trunc
                if entry is not None:
                    entry.save_part(f"{lang}-{k}", states)
    if truncated and sum(truncated.values()):
        detail = ", ".join(f"{lang}: {c}" for lang, c in truncated.items() if c)
        warnings.warn(
            f"{sum(truncated.values())} sentences were longer than max_length={max_length} tokens and were "
            f"truncated ({detail}). Raise max_length to keep them whole.",
            stacklevel=2,
        )
    return Activations(
        data=data,
        layers=tuple(layer_idx),
        languages=corpus.languages,
        ids=corpus.ids,
        labels=dict(corpus.labels),
        texts={lang: corpus.sentences[lang] for lang in corpus.languages},
        meta={
            "model": model.name,
            "fingerprint": model.fingerprint,
            "backend": model.backend,
            "kind": model.kind,
            "n_blocks": model.n_layers,
            "pooling": pooling,
            "include_special": include_special,
            "max_length": max_length,
            "dtype": str(model.dtype).replace("torch.", ""),
            "corpus": corpus.meta.get("source", "?"),
            "corpus_hash": corpus.content_hash(),
            "states": ("HF hidden_states: 0 = embedding output, l = output of block l-1, the last after the final norm"
                       if final_norm_last else
                       "raw residual stream: 0 = embedding output, l = output of block l-1 (no final norm)"),
            "last_state": last_state,
            **({"recipe": rec.name} if rec is not None else {}),
        },
    )


def _check_finite(states: np.ndarray, layers: Sequence[int], language: str) -> None:
    # A float64 sum per layer is NaN/inf exactly when a value is (float32 values cannot overflow it),
    # and needs no array-sized boolean temporary.
    if np.isfinite(states.sum(axis=(1, 2), dtype=np.float64)).all():
        return
    bad_layers = [layers[i] for i in range(len(layers)) if not np.isfinite(states[i]).all()]
    raise ExtractionError(
        f"non-finite values (NaN or inf) in the activations of language {language!r} at layer(s) {bad_layers}. "
        "This usually means float16 overflow: load the model with dtype='float32' or 'bfloat16'."
    )

