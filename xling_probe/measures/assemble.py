"""From the engine's per-slot arrays to a :class:`~xling_probe.measures.result.SimilarityResult`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .registry import metric_spec
from .result import FIELDS, SimilarityResult


def assemble(names: Sequence[str], layers: tuple[int, ...], langs: tuple[str, ...], pairs: Sequence[tuple[str, str]],
             slots: dict, excluded: dict, R: int, B: int, ci: float, settings: dict[str, Any]) -> SimilarityResult:
    """Build a :class:`SimilarityResult` from the engine's per-slot arrays.

    ``slots[(metric, a, b)]`` holds ``value`` [layer], ``null`` [layer, R] and ``boot`` [layer, B];
    ``excluded[(a, b)]`` the zero-variance neuron counts of ANC [layer]. Symmetric metrics are
    mirrored into [b, a]; directional ones hold a -> b at [a, b] only.
    """
    shape = (len(names), len(layers), len(langs), len(langs))
    arrays = {f: np.full(shape, np.nan) for f in FIELDS}
    if not R:
        for f in ("null_mean", "null_std", "null_max", "p_value"):
            del arrays[f]
    if not B:
        del arrays["ci_low"], arrays["ci_high"]
    li = {x: i for i, x in enumerate(langs)}
    for (m, a, b), res in slots.items():
        targets = [(li[a], li[b])] + ([] if metric_spec(m).directional else [(li[b], li[a])])
        v = res["value"]
        stats = {"value": v}
        if R:
            null = res["null"]
            stats.update(null_mean=null.mean(1), null_std=null.std(1, ddof=1) if R > 1 else np.zeros(len(v)),
                         null_max=null.max(1), p_value=(1 + (null >= v[:, None] - 1e-12).sum(1)) / (1 + R))
        if B:
            lo, hi = np.nanpercentile(res["boot"], [50 * (1 - ci), 50 * (1 + ci)], axis=1)
            stats.update(ci_low=lo, ci_high=hi)
        for f, arr in stats.items():
            for ia, ib in targets:
                arrays[f][names.index(m), :, ia, ib] = arr
    exc = None
    if any(metric_spec(m).family == "anc" for m in names):
        exc = np.zeros((len(layers), len(langs), len(langs)), dtype=np.int64)
        for (a, b), e in excluded.items():
            exc[:, li[a], li[b]] = exc[:, li[b], li[a]] = e
    return SimilarityResult(metrics=tuple(names), layers=layers, languages=langs, pairs=tuple(pairs),
                            arrays=arrays, anc_excluded=exc, settings=settings)
