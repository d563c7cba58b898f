"""Similarity on a Dask cluster: one task per layer, merged into one :class:`SimilarityResult`.

Every task runs the same :func:`~xling_probe.measures.engine.similarity` on one layer's activations
(a lazy store-backed selection travels as a reference to the store, an in-memory one as its data),
with the same seeded null and bootstrap draws as the single-process call, so the merged result equals
it (tested to 1e-12; in practice bitwise). Within a layer the all-pairs path blocks the language pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MetricError
from .result import SimilarityResult


def _one_layer(score: Any, acts: Any, kwargs: dict[str, Any]) -> SimilarityResult:
    return score(acts, **kwargs, progress=False)


def concat_layers(parts: Sequence[SimilarityResult]) -> SimilarityResult:
    """Results of the same metrics, languages and pairs at different layers, as one result (layer order kept)."""
    first = parts[0]
    for p in parts[1:]:
        if (p.metrics, p.languages, p.pairs) != (first.metrics, first.languages, first.pairs):
            raise MetricError("only results of the same metrics, languages and pairs can be merged along layers")
    arrays = {f: np.concatenate([p.arrays[f] for p in parts], axis=1) for f in first.arrays}
    excluded = None
    if first.anc_excluded is not None:
        excluded = np.concatenate([p.anc_excluded for p in parts], axis=0)
    layers = tuple(x for p in parts for x in p.layers)
    return SimilarityResult(metrics=first.metrics, layers=layers, languages=first.languages, pairs=first.pairs,
                            arrays=arrays, anc_excluded=excluded,
                            settings={**dict(first.settings), "distributed": f"{len(parts)} layer tasks"})


def similarity_distributed(client: Any, score: Any, acts: Any, li_all: Sequence[int],
                           kwargs: dict[str, Any]) -> SimilarityResult:
    """One task per layer of ``li_all`` (axis-0 indices of ``acts``) on the client's workers; ``score`` is
    :func:`~xling_probe.measures.engine.similarity` (passed in, so this module does not import the engine)."""
    futures = [client.submit(_one_layer, score, acts.sel(layers=[acts.layers[i]]), kwargs, pure=False)
               for i in li_all]
    try:
        parts = client.gather(futures)
    except MetricError:
        raise
    except Exception as exc:  # noqa: BLE001 - a worker died or an error inside a task
        raise MetricError(f"a Dask worker failed while scoring a layer ({type(exc).__name__}: {exc})") from exc
    return concat_layers(parts)
