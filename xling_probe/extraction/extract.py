"""Residual-stream extraction: pooled sentence states at every layer, cached on disk.

The cached pipeline (:func:`extract`) and the batched pooling of one list of texts
(:func:`extract_texts`); the hooked forward passes live in :mod:`.runners`, shared with the lens.

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
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.corpus import ParallelCorpus
from ..errors import ExtractionError
from ..labels import LayerSpec, parse_layers, resolve_layers  # noqa: F401 - re-exported, extract.resolve_layers is public
from ..models.loading import ModelHandle
from .activations import Activations
from .pooling import Pooling, check_pooling, pooling_weights
from .backends import make_runner
from .runners import pad_batch, seq2seq_batch, tokenize

CHUNK = 256  # sentences per cache part: the unit that an interrupted extraction resumes from


def extract_texts(
    handle: ModelHandle,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    pooling: Pooling = "mean",
    include_special: bool = False,
    batch_size: int = 16,
    max_length: int = 512,
    padding_side: str | None = None,
    progress: Any = None,
    out: np.ndarray | None = None,
    final_norm_last: bool = False,
    language: str | None = None,
    sources: Sequence[str] | None = None,
    source_language: str | None = None,
    decoder_input: str = "translation",
) -> tuple[np.ndarray, int]:
    """Pooled states ``[len(layers), len(texts), d_model]`` (float32) and the truncation count.

    Sentences are sorted by length (longest first) so batches carry little padding, then put
    back in the input order. With ``out`` (a float32 array or view of that shape) the states are
    written there and no other result array is allocated. With ``final_norm_last`` the last
    residual state (``handle.n_states - 1``, when requested) goes through the model's own final
    norm before pooling, as HF ``output_hidden_states`` returns it (the MEXA recipe).

    Encoder-decoder models (:mod:`.seq2seq`): ``language`` sets the language tag of ``texts``. On the
    encoder stack ``texts`` are the encoder input; on the decoder stack they are the target
    (``decoder_input="translation"``: teacher-forced after the start token and ``language``'s tag;
    ``"tag"``: the prefix only) and ``sources`` (in ``source_language``) are the encoder input.
    """
    src = None
    if handle.stack is None:
        tok = tokenize(handle.tokenizer, texts, max_length)
    else:
        from .seq2seq import tokenize_source, tokenize_target

        if handle.stack == "encoder":
            tok = tokenize_source(handle.tokenizer, texts, language, max_length)
        else:
            if sources is None or len(sources) != len(texts):
                raise ExtractionError("the decoder stack needs one source sentence per target sentence (sources=)")
            src = tokenize_source(handle.tokenizer, sources, source_language, max_length)
            tok = tokenize_target(handle.tokenizer, handle.model, texts, language, len(texts), decoder_input, max_length)
    side = padding_side or ("right" if handle.kind == "encoder" or handle.stack else handle.tokenizer.padding_side or "right")
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
            if src is not None:
                batch = seq2seq_batch(pad_batch([src.ids[k] for k in idx], [src.special[k] for k in idx], pad_id, side),
                                      batch)
            weights = pooling_weights(
                batch.get("pool_mask", batch["attention_mask"]).to(handle.device),
                batch["special_tokens_mask"].to(handle.device),
                pooling,
                include_special=include_special,
            )
            pooled = runner(batch, weights, normed)
            result[:, idx] = pooled.cpu().numpy()
            if progress is not None:
                progress.update(len(idx))
    return result, tok.n_truncated + (src.n_truncated if src is not None else 0)


def extract(
    model: ModelHandle,
    corpus: ParallelCorpus,
    *,
    languages: Iterable[str] | None = None,
    layers: LayerSpec = "all",
    pooling: Pooling | None = None,
    include_special: bool | None = None,
    batch_size: int = 16,
    max_length: int = 512,
    padding_side: str | None = None,
    cache: bool = True,
    cache_root: str | Path | None = None,
    progress: bool = True,
    recipe: str | None = None,
    source_language: str | None = None,
    decoder_input: str = "translation",
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

    Encoder-decoder models: on the encoder stack (``load_model(..., stack="encoder")``, the default)
    each language's sentences are the encoder input, with its language tag where the model has tags.
    On the decoder stack the encoder reads ``source_language``'s sentences (default: English when the
    corpus has it, else its first language) and the decoder reads each language's translation
    after its forced language tag (``decoder_input="translation"``) or the tag alone (``"tag"``).
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
    full_corpus = corpus  # the decoder stack's source language need not be among the languages extracted
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
    seq2seq: dict[str, Any] = {}
    if model.stack is not None:
        seq2seq["stack"] = model.stack
        if model.stack == "decoder":
            from .seq2seq import DECODER_INPUTS

            if decoder_input not in DECODER_INPUTS:
                raise ExtractionError(f"decoder_input must be one of {', '.join(DECODER_INPUTS)}, got {decoder_input!r}")
            source = _source_language(full_corpus, source_language)
            seq2seq.update(source_language=source, decoder_input=decoder_input)
        fields.update(seq2seq)
        if model.stack == "decoder":  # the encoder's sentences change the states: they key the cache too
            fields["source_hash"] = full_corpus.select_languages([seq2seq["source_language"]]).content_hash()
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
                pair: dict[str, Any] = {}
                if model.stack is not None:
                    pair["language"] = lang
                if model.stack == "decoder":
                    src = seq2seq["source_language"]
                    pair.update(sources=full_corpus.sentences[src][s:e], source_language=src, decoder_input=decoder_input)
                states, n_trunc = extract_texts(  # written straight into the result (no per-chunk copy)
                    model, corpus.sentences[lang][s:e], layer_idx, pooling=pooling, include_special=include_special,
                    batch_size=batch_size, max_length=max_length, padding_side=padding_side, progress=bar,
                    out=per_lang[lang][:, s:e], final_norm_last=final_norm_last, **pair,
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
            "n_blocks": model.n_blocks,
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
            **seq2seq,
        },
    )


def _source_language(corpus: ParallelCorpus, source_language: str | None) -> str:
    """The encoder-side language of decoder-stack extraction: the given one, else English, else the first."""
    from ..labels import resolve_language

    if source_language is not None:
        return resolve_language(source_language, corpus.languages, corpus.labels)
    return "en" if "en" in corpus.languages else corpus.languages[0]


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

