"""Similarity on a Dask cluster: layer x pair-block tasks, merged into one :class:`SimilarityResult`.

Two kinds of task, matching the two paths of :func:`~xling_probe.measures.engine.similarity`:

- **values of many pairs** (the all-pairs path: no null, no bootstrap, >= ``ALL_PAIRS_FROM`` pairs):
  the languages are cut into blocks; one task scores one layer for one block pair (A, B) with the
  batched GEMMs of :mod:`~xling_probe.measures.allpairs`, reading only the activations of A and B
  (from the store, when the activations are store-backed: a lazy selection travels as a reference);
- **everything else**: one task per layer and chunk of at most ``PAIRS_PER_TASK`` pairs, each the same
  :func:`similarity` call on the languages of its chunk, with the same seeded null and bootstrap
  draws as the single-process call (the draws depend only on the number of sentences and the seed).

The merged result equals the single-process one (tested to 1e-12; in practice bitwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MetricError
from .result import FIELDS, SimilarityResult

#: The per-pair path sends at most this many pairs to one task.
PAIRS_PER_TASK = 64


def _gather(client: Any, futures: list) -> list:
    try:
        return client.gather(futures)
    except MetricError:
        raise
    except Exception as exc:  # noqa: BLE001 - a worker died or an error inside a task
        raise MetricError(f"a Dask worker failed while scoring similarity ({type(exc).__name__}: {exc}); "
                          "nothing was kept: run it again (workers that died are replaced)") from exc
    finally:
        for fut in futures:
            fut.cancel()


# ---------------------------------------------------------------- per-pair tasks
def _pairs_task(score: Any, acts: Any, kwargs: dict[str, Any]) -> SimilarityResult:
    return score(acts, **kwargs, client=False, progress=False)


def pair_chunks(pair_list: Sequence[tuple[str, str]], size: int = PAIRS_PER_TASK) -> list[list[tuple[str, str]]]:
    """``pair_list`` in chunks of at most ``size`` pairs (order kept)."""
    return [list(pair_list[i:i + size]) for i in range(0, len(pair_list), size)]


def merge(parts: Sequence[SimilarityResult], layers: tuple[int, ...], langs: tuple[str, ...],
          pairs: Sequence[tuple[str, str]], settings: dict[str, Any]) -> SimilarityResult:
    """One result from results on subsets of the layers and pairs (each keeps only its own pairs)."""
    first = parts[0]
    names = first.metrics
    fields = [f for f in FIELDS if f in first.arrays]
    L, G = len(layers), len(langs)
    arrays = {f: np.full((len(names), L, G, G), np.nan) for f in fields}
    excluded = np.zeros((L, G, G), dtype=np.int64) if first.anc_excluded is not None else None
    li = {x: i for i, x in enumerate(layers)}
    gi = {x: i for i, x in enumerate(langs)}
    for p in parts:
        if p.metrics != names or [f for f in FIELDS if f in p.arrays] != fields:
            raise MetricError("only results of the same metrics and fields can be merged")
        rows = [li[x] for x in p.layers]
        pi = {x: i for i, x in enumerate(p.languages)}
        for a, b in p.pairs:
            for x, y in ((a, b), (b, a)):
                for f in fields:
                    arrays[f][:, rows, gi[x], gi[y]] = p.arrays[f][:, :, pi[x], pi[y]]
                if excluded is not None:
                    excluded[rows, gi[x], gi[y]] = p.anc_excluded[:, pi[x], pi[y]]
    return SimilarityResult(metrics=names, layers=layers, languages=langs, pairs=tuple(pairs), arrays=arrays,
                            anc_excluded=excluded, settings=settings)


# ---------------------------------------------------------------- all-pairs block tasks
def _block_task(acts: Any, names: Sequence[str], na: int, diagonal: bool, inner: int, device: Any,
                dtype: Any = None) -> np.ndarray:
    """Values of one layer for block pair (A, B): ``acts`` holds the languages of A, then those of B
    (``dtype``: the compute dtype of the engine's ``dtype=``; None = auto)."""
    from .allpairs import score_layer

    x = np.asarray(acts.data[0])  # [|A| + |B|, N, D]
    G = x.shape[0]
    if diagonal:
        subs = [slice(i, min(i + inner, G)) for i in range(0, G, inner)]
        todo = [(A, B) for ai, A in enumerate(subs) for B in subs[ai:]]
    else:
        sa = [slice(i, min(i + inner, na)) for i in range(0, na, inner)]
        sb = [slice(i, min(i + inner, G)) for i in range(na, G, inner)]
        todo = [(A, B) for A in sa for B in sb]
    return score_layer(x, names, todo, device=device, layer=acts.layers[0], dtype=dtype)


def language_blocks(G: int, inner: int, workers: int) -> int:
    """Languages per block: at most the memory-bound block, and small enough that every worker gets work."""
    per = inner
    while per > 8 and math.ceil(G / per) * (math.ceil(G / per) + 1) // 2 < 2 * max(workers, 1):
        per = math.ceil(per / 2)
    return max(1, min(per, G))


def similarity_distributed(client: Any, score: Any, acts: Any, li_all: Sequence[int], langs: tuple[str, ...],
                           pair_list: Sequence[tuple[str, str]], kwargs: dict[str, Any], *,
                           all_pairs: bool, settings: dict[str, Any]) -> SimilarityResult:
    """Score on the client's workers; ``score`` is :func:`~xling_probe.measures.engine.similarity` (passed in,
    so that this module does not import the engine). ``all_pairs``: the batched path applies."""
    layers = tuple(acts.layers[i] for i in li_all)
    if all_pairs:
        return _all_pairs_distributed(client, acts, li_all, langs, pair_list, kwargs, settings)
    chunks = pair_chunks(pair_list)
    futures = []
    for i in li_all:
        for chunk in chunks:
            used = [x for x in langs if any(x in p for p in chunk)]
            part = acts.sel(layers=[acts.layers[i]], languages=used)
            futures.append(client.submit(_pairs_task, score, part, {**kwargs, "pairs": chunk}, pure=False))
    parts = _gather(client, futures)
    return merge(parts, layers, langs, pair_list, {
        **dict(parts[0].settings), "distributed": f"{len(futures)} tasks ({len(li_all)} layers x {len(chunks)} "
                                                  f"pair chunks)"})


def _all_pairs_distributed(client, acts, li_all, langs, pair_list, kwargs, settings) -> SimilarityResult:
    from .allpairs import block_size, finish_all_pairs

    names = list(kwargs["metrics"])
    n, d, G = acts.n_sentences, acts.hidden_size, len(langs)
    inner = block_size(n, d, kwargs.get("max_memory_gb", 2.0))
    workers = len(getattr(client, "scheduler_info", lambda: {})().get("workers", {})) or 1
    per = language_blocks(G, inner, workers)
    blocks = [list(range(i, min(i + per, G))) for i in range(0, G, per)]
    device = kwargs["device"]  # resolved by the engine
    futures, where = [], []
    for j, li in enumerate(li_all):
        for ai, A in enumerate(blocks):
            for B in blocks[ai:]:
                members = A if A is B else A + B
                part = acts.sel(layers=[acts.layers[li]], languages=[langs[g] for g in members])
                futures.append(client.submit(_block_task, part, names, len(A), A is B, inner, device,
                                             kwargs.get("dtype"), pure=False))
                where.append((j, members))
    values = np.full((len(names), len(li_all), G, G), np.nan)
    for (j, members), block in zip(where, _gather(client, futures)):
        sub = values[:, j]
        idx = np.asarray(members)
        known = ~np.isnan(block)
        view = sub[:, idx[:, None], idx[None, :]]
        view[known] = block[known]
        sub[:, idx[:, None], idx[None, :]] = view
    return finish_all_pairs(values, names, langs, pair_list, tuple(acts.layers[i] for i in li_all), {
        **settings, "cka_form": "gram", "language_block": inner,
        "distributed": f"{len(futures)} tasks ({len(li_all)} layers x {len(blocks) * (len(blocks) + 1) // 2} "
                       f"language-block pairs of <= {per} languages)"})
