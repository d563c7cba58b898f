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

from ..cluster import resolve_client
from ..data.corpus import ParallelCorpus
from ..errors import ExtractionError
from ..labels import LayerSpec, parse_layers, resolve_layers  # noqa: F401 - re-exported, extract.resolve_layers is public
from ..models.loading import ModelHandle
from ..models.weightless import is_weightless
from .activations import Activations
from .pooling import Pooling, check_pooling
from .texts import extract_texts  # noqa: F401 - re-exported: extract.extract_texts is public

CHUNK = 256  # sentences per cache part: the unit that an interrupted extraction resumes from


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
    store: str | Path | None = None,
    store_dtype: str = "float32",
    client: Any = None,
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

    Out of core: with ``store="path.zarr"`` the states go into a chunked zarr store (layer x language
    x block of sentences; ``store_dtype="float16"``/``"bfloat16"`` halves it on disk, computation stays
    float32) as each piece finishes, an interrupted run resumes from the finished pieces, and the
    result is backed lazily by the store (``acts.lazy``; ``acts.sel(...)`` reads only what it selects).
    The store may be a folder or an object-storage URL that fsspec reads (``"s3://bucket/run.zarr"``; the
    scheme's fsspec package, such as ``s3fs``, installed). With a ``dask.distributed`` ``client`` (or, with
    a store, the active client; ``client=False`` for none) the pieces run on the workers, which each
    load the model once and write into the (shared) store.
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
    if is_weightless(model) and (not cache or store is not None or client not in (None, False)):
        from ..models.weightless import WeightsNotLoaded

        raise WeightsNotLoaded("a handle without weights only answers from the activation cache: load the model")
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
    options = {"pooling": pooling, "include_special": include_special, "batch_size": batch_size,
               "max_length": max_length, "padding_side": padding_side, "final_norm_last": final_norm_last,
               "source_language": seq2seq.get("source_language"), "decoder_input": decoder_input}
    n = len(corpus)
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    shape = (len(layer_idx), len(corpus.languages), n, model.d_model)

    def sources_of(s: int, e: int) -> list[str] | None:
        return list(full_corpus.sentences[seq2seq["source_language"]][s:e]) if model.stack == "decoder" else None

    if store is not None:
        client = resolve_client(client)  # the active client, when one was made (False: this process)
    elif client is False:
        client = None
    if store is not None or client is not None:
        data, truncated = _extract_to_store(model, corpus, layer_idx, options, fields, chunks, shape, store,
                                            store_dtype, client, progress, sources_of)
    else:
        data, truncated = _extract_in_memory(model, corpus, layer_idx, options, fields, chunks, shape, cache,
                                             cache_root, progress, sources_of)
    if truncated and sum(truncated.values()):
        detail = ", ".join(f"{lang}: {c}" for lang, c in truncated.items() if c)
        warnings.warn(
            f"{sum(truncated.values())} sentences were longer than max_length={max_length} tokens and were "
            f"truncated ({detail}). Raise max_length to keep them whole.",
            stacklevel=2,
        )
    acts = Activations(
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
            **({"store": str(store), "store_dtype": store_dtype} if store is not None else {}),
        },
    )
    if store is not None:
        from .zarr_store import ActivationStore

        ActivationStore.open(store).save_meta(acts.meta)  # so that Activations.load(store) has it all
    return acts


def _extract_in_memory(model, corpus, layer_idx, options, fields, chunks, shape, cache, cache_root, progress,
                       sources_of) -> tuple[np.ndarray, dict[str, int]]:
    """Pieces into one preallocated array, each cached as a checksummed part (resumable)."""
    from .pieces import compute_piece

    entry = None
    if cache:
        from .store import CacheEntry

        entry = CacheEntry.open(fields, root=cache_root)
    n = shape[2]
    # One preallocated result; per-language views are filled in place (no final copy).
    data = np.empty(shape, dtype=np.float32)
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
    if todo and is_weightless(model):  # a cache lookup without weights (xling-probe extract): nothing computed
        from ..models.weightless import WeightsNotLoaded

        raise WeightsNotLoaded(f"{len(todo)} cache part(s) of this extraction are missing: load the model")
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
                states, n_trunc = compute_piece(  # written straight into the result (no per-chunk copy)
                    model, list(corpus.sentences[lang][s:e]), layer_idx, options, lang, sources_of(s, e),
                    progress=bar, out=per_lang[lang][:, s:e])
                _check_finite(states, layer_idx, corpus.labels[lang])
                truncated[lang] = truncated.get(lang, 0) + n_trunc
                if entry is not None:
                    entry.save_part(f"{lang}-{k}", states)
    return data, truncated


def _extract_to_store(model, corpus, layer_idx, options, fields, chunks, shape, store, store_dtype, client, progress,
                      sources_of):
    """Pieces into an on-disk zarr store (resumable piece by piece), in this process or on Dask workers."""
    from tqdm.auto import tqdm

    from .pieces import compute_piece, run_distributed
    from .zarr_store import ActivationStore

    if store is None:
        raise ExtractionError("distributed extraction writes into a store that every worker can reach: pass "
                              "store='path/on/shared/storage.zarr' with client=")
    labels = {"layers": list(layer_idx), "languages": list(corpus.languages), "ids": list(corpus.ids),
              "labels": dict(corpus.labels)}
    st = ActivationStore.open_or_create(store, fields=fields, labels=labels, shape=shape, storage=store_dtype,
                                        block=CHUNK)
    todo = st.missing()
    bar = tqdm(total=sum(chunks[k][1] - chunks[k][0] for _, k in todo), desc=f"extract {model.name} -> store",
               unit="sent", disable=not progress)
    truncated: dict[str, int] = {}
    with bar:
        if client is not None and todo:
            work = [(g, k, corpus.languages[g], list(corpus.sentences[corpus.languages[g]][slice(*chunks[k])]),
                     sources_of(*chunks[k])) for g, k in todo]
            truncated = run_distributed(client, model, work, layer_idx, options, st.path, bar)
        else:
            for g, k in todo:
                lang = corpus.languages[g]
                s, e = chunks[k]
                states, n_trunc = compute_piece(model, list(corpus.sentences[lang][s:e]), layer_idx, options, lang,
                                                sources_of(s, e), progress=bar)
                _check_finite(states, layer_idx, corpus.labels[lang])
                st.write_piece(g, k, states)
                truncated[lang] = truncated.get(lang, 0) + n_trunc
    return st.view(), truncated


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

