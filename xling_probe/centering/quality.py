"""How close a fitted :class:`~xling_probe.centering.estimators.LinearProjection` is to an orthogonal map.

Vasilyev et al. ("Linear Cross-Lingual Mapping of Sentence Embeddings") argue that a good cross-lingual
map is close to orthogonal (it preserves the geometry of the source space). :func:`map_quality` reports,
per layer and source language, for the fitted ``W = coef_[layer, source]`` (``D x D``, rows map as
``x @ W``), with singular values ``s_1 >= ... >= s_D >= 0`` (from :func:`xling_probe.linalg.robust_svd`):

- ``orthogonality_deviation`` = ``||W~^T W~ - I||_F / ||I||_F`` with ``W~ = W / mean(s)`` and
  ``||I||_F = sqrt(D)``. Since ``W~^T W~ = V diag(s / mean(s))^2 V^T``, this is exactly
  ``sqrt(mean_i ((s_i / mean(s))^2 - 1)^2)``: 0 for a (scaled) orthogonal map, and it does not
  change when W is multiplied by a positive number. It is computed from the singular values, so a
  rank-deficient W (fewer fit pairs than dimensions) is fine: its zero singular values count as
  ``(0 - 1)^2 = 1`` each. A W that is all zeros gives NaN.
- ``sv_ratio`` = ``s_1 / s_D`` (``inf`` when W is rank deficient: ``s_D <= eps * D * s_1``),
  ``sv_cv`` = ``std(s) / mean(s)`` (population standard deviation; 0 for an orthogonal map),
  ``sv_max``, ``sv_min``, ``sv_mean`` and ``rank`` (numerical rank: singular values above
  ``eps * D * s_1``, with the eps of the stored map's dtype, float32 for ``coef_``).

Held-out retrieval: :meth:`LinearProjection.evaluate` computes P@1 on held-out pairs; pass those
activations (``heldout=``) and the table gets ``p_at_1_raw``, ``p_at_1_projected`` (mean of both
directions) and ``r2`` from it, next to the geometry. Without ``heldout`` the table has no retrieval
columns (the projection does not store any held-out score itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MetricError
from ..linalg import EPS, numerical_rank, robust_svd

if TYPE_CHECKING:
    import pandas as pd

    from ..extraction.activations import Activations
    from .estimators import LinearProjection

QUALITY_COLUMNS = ("layer", "source", "target", "method", "orthogonality_deviation", "sv_ratio", "sv_cv",
                   "sv_max", "sv_min", "sv_mean", "rank", "hidden")


def singular_value_quality(s: np.ndarray, rcond: float | None = None) -> dict[str, float]:
    """The map diagnostics from the singular values ``s`` of a square ``D x D`` map (see the module docstring).

    ``rcond``: singular values ``<= rcond * s_1`` count as zero for ``rank`` and ``sv_ratio`` (default
    ``eps(float64) * D``; :func:`map_quality` uses ``eps(float32) * D`` since ``coef_`` is stored in float32)."""
    s = np.sort(np.asarray(s, dtype=np.float64))[::-1]
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise MetricError(f"singular values must be a non-empty 1-D array of finite numbers >= 0, got {s!r}")
    d = s.size
    mean = float(s.mean())
    rank = numerical_rank(s, (d, d), rcond)
    if mean <= 0:
        return {"orthogonality_deviation": float("nan"), "sv_ratio": float("nan"), "sv_cv": float("nan"),
                "sv_max": 0.0, "sv_min": 0.0, "sv_mean": 0.0, "rank": 0, "hidden": d}
    scaled = s / mean
    deviation = float(np.sqrt(np.mean((scaled ** 2 - 1.0) ** 2)))
    ratio = float(s[0] / s[-1]) if rank == d else float("inf")
    return {"orthogonality_deviation": deviation, "sv_ratio": ratio, "sv_cv": float(s.std() / mean),
            "sv_max": float(s[0]), "sv_min": float(s[-1]), "sv_mean": mean, "rank": rank, "hidden": d}


def orthogonality_deviation(w: np.ndarray) -> float:
    """``||W~^T W~ - I||_F / sqrt(D)`` with ``W~ = W / mean singular value of W`` (``W`` square ``D x D``)."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise MetricError(f"orthogonality_deviation needs a square map, got shape {w.shape}")
    _, s, _ = robust_svd(w)
    return singular_value_quality(s)["orthogonality_deviation"]


def map_quality(projection: LinearProjection, heldout: Activations | None = None,
                target_acts: Activations | None = None, *, allow_fit_ids: bool = False) -> pd.DataFrame:
    """Per layer and source language: how orthogonal the fitted map is, and (with ``heldout``) its held-out retrieval.

    One row per (layer, source) with the columns of :data:`QUALITY_COLUMNS` (definitions in the module
    docstring: ``orthogonality_deviation = ||W~^T W~ - I||_F / ||I||_F``, ``W~ = W / mean(s)``; ``sv_ratio``
    = max/min singular value; ``sv_cv`` = std/mean of the singular values). ``heldout`` (and
    ``target_acts`` when the target language is in separate activations) are passed to
    :meth:`LinearProjection.evaluate`, adding ``p_at_1_raw``, ``p_at_1_projected`` and ``r2``
    (pairs used in the fit are refused unless ``allow_fit_ids=True``). Pure: the projection is not changed.
    """
    import pandas as pd

    from .estimators import LinearProjection, _check_fitted

    if not isinstance(projection, LinearProjection):
        raise MetricError(f"map_quality needs a fitted LinearProjection, got {type(projection).__name__}")
    _check_fitted(projection, "coef_")
    rows: list[dict[str, Any]] = []
    for li, layer in enumerate(projection.layers_):
        for si, src in enumerate(projection.sources_):
            w = np.asarray(projection.coef_[li, si])
            rcond = float(np.finfo(w.dtype).eps) * w.shape[0] if w.dtype.kind == "f" else None
            _, s, _ = robust_svd(w.astype(np.float64))
            rows.append({"layer": layer, "source": src, "target": projection.target_, "method": projection.method,
                         **singular_value_quality(s, rcond)})
    table = pd.DataFrame(rows, columns=list(QUALITY_COLUMNS))
    if heldout is not None:
        scores = projection.evaluate(heldout, target_acts, allow_fit_ids=allow_fit_ids).summary()
        scores = scores.drop(columns=[c for c in ("target", "method") if c in scores.columns])
        table = table.merge(scores, on=["layer", "source"], how="left")
    table.attrs["normalisation"] = ("orthogonality_deviation = ||W~^T W~ - I||_F / sqrt(D), W~ = W / mean singular "
                                    "value; sv_ratio = s_max / s_min (inf if rank deficient); sv_cv = std(s) / mean(s)")
    table.attrs["eps"] = EPS
    return table
