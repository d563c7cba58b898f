"""The unit of extraction work: one language x one block of sentences ("a piece"), all layers.

Every path computes pieces with :func:`compute_piece`, so they give the same numbers: the in-memory
path writes them into one array, the store path into an :class:`~.zarr_store.ActivationStore`, and
the distributed path (:func:`run_distributed`) on Dask workers, each of which loads the model once
(a module-level cache in the worker process, keyed by how the model was loaded) and writes its pieces
into the shared store. A piece's batches depend only on its sentences, so a piece computed on a
worker is bitwise the piece computed in the main process (tested).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExtractionError


@dataclass(frozen=True)
class PieceJob:
    """Everything a worker needs to compute pieces (no model object, no corpus object: plain data)."""

    layers: tuple[int, ...]
    options: dict[str, Any]
    load: dict[str, Any]
    store: str
    sources: dict[int, list[str]] = field(default_factory=dict)  # decoder stack: encoder-side sentences per block


def compute_piece(model: Any, texts: list[str], layers: list[int], options: dict[str, Any],
                  language: str | None, sources: list[str] | None, progress: Any = None,
                  out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Pooled states ``[layer, sentence, hidden]`` of one piece (and its truncation count)."""
    from .texts import extract_texts

    pair: dict[str, Any] = {}
    if model.stack is not None:
        pair["language"] = language
    if model.stack == "decoder":
        pair.update(sources=sources, source_language=options["source_language"], decoder_input=options["decoder_input"])
    return extract_texts(
        model, texts, layers, pooling=options["pooling"], include_special=options["include_special"],
        batch_size=options["batch_size"], max_length=options["max_length"], padding_side=options["padding_side"],
        progress=progress, out=out, final_norm_last=options["final_norm_last"], **pair,
    )


_WORKER_MODELS: dict[str, Any] = {}


def _worker_model(load: dict[str, Any]) -> Any:
    """The model of this worker process, loaded on first use and kept (one load per worker)."""
    key = json.dumps(load, sort_keys=True)
    if key not in _WORKER_MODELS:
        from ..models.loading import load_model

        spec = dict(load)
        _WORKER_MODELS[key] = load_model(spec.pop("name_or_path"), **spec)
    return _WORKER_MODELS[key]


def _fault_injection() -> None:
    """For the tests of worker failure: with XLING_PROBE_KILL_WORKER_ONCE=<path>, the first piece on any
    worker kills its process (as an out-of-memory kill would), once: the file at <path> records it."""
    import os

    flag = os.environ.get("XLING_PROBE_KILL_WORKER_ONCE")
    if flag and not os.path.exists(flag):
        Path(flag).write_text("killed")
        os._exit(1)


def _work(job: PieceJob, g: int, k: int, language: str, texts: list[str], fingerprint: str) -> tuple[int, int, int]:
    """Runs on a worker: compute one piece and write it into the shared store."""
    from .zarr_store import ActivationStore

    _fault_injection()
    model = _worker_model(job.load)
    if model.fingerprint != fingerprint:
        raise ExtractionError(f"the worker loaded a different model (fingerprint {model.fingerprint}, expected "
                              f"{fingerprint}): are the workers' model files the same as the client's?")
    states, n_trunc = compute_piece(model, texts, list(job.layers), job.options, language, job.sources.get(k))
    if not np.isfinite(states.sum(axis=(1, 2), dtype=np.float64)).all():
        raise ExtractionError(f"non-finite activations in language {language!r}, sentence block {k}")
    ActivationStore.open(job.store).write_piece(g, k, states)
    return g, k, n_trunc


def run_distributed(client: Any, model: Any, todo: list[tuple[int, int, str, list[str], list[str] | None]],
                    layers: list[int], options: dict[str, Any], store: Path, bar: Any) -> dict[str, int]:
    """Compute the pieces ``todo`` = [(language index, block, language, texts, sources)] on the client's workers."""
    load = model.source.get("load")
    if not load:
        raise ExtractionError(
            "distributed extraction needs a model the workers can load themselves: load_model() it from a hub id, "
            "a folder or a .gguf file (a model object built in this process cannot be sent to other machines)"
        )
    from distributed import as_completed

    job = PieceJob(layers=tuple(layers), options=dict(options), load=dict(load), store=str(store),
                   sources={k: src for _, k, _, _, src in todo if src is not None})
    futures = [client.submit(_work, job, g, k, lang, texts, model.fingerprint, pure=False, retries=1,
                             key=f"xling-piece-{g}-{k}-{model.fingerprint}")
               for g, k, lang, texts, _ in todo]
    truncated: dict[str, int] = {}
    names = {(g, k): lang for g, k, lang, _, _ in todo}
    sizes = {(g, k): len(texts) for g, k, _, texts, _ in todo}
    try:
        for fut in as_completed(futures):
            try:
                g, k, n_trunc = fut.result()
            except ExtractionError:
                raise
            except Exception as exc:  # noqa: BLE001 - a worker that died, or an error inside it
                raise ExtractionError(
                    f"a Dask worker failed on a piece of the extraction ({type(exc).__name__}: {exc}). The pieces "
                    "already written stay valid; run extract() again with the same store to compute the rest."
                ) from exc
            truncated[names[(g, k)]] = truncated.get(names[(g, k)], 0) + n_trunc
            bar.update(sizes[(g, k)])
    finally:
        for fut in futures:
            fut.cancel()
    return truncated
