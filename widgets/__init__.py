"""Notebook widgets of xling_probe (ipywidgets 8 + plotly FigureWidget), importable as ``xling_probe.widgets``.

- :class:`SimilarityExplorer` (a :class:`~xling_probe.measures.result.SimilarityResult`): metric,
  layer and language pairs; language x language heatmap, per-layer curves, layer x layer heatmap.
- :class:`EmbeddingExplorer` (:class:`~xling_probe.extraction.activations.Activations`): 2-D PCA / UMAP map of
  one layer coloured by language, raw or centered, cached per layer.
- :class:`LogitLensExplorer` (a decoder model): prompt or word-list item, layer x position lens
  heatmap and per-layer language probabilities.
- :class:`NeuronsView` (a LAPE selection and its perplexity-change matrix): language-specific neurons per
  block, overlaps between languages, the perplexity change beside its random control.
- :class:`InterventionsView` (a causal model and activations): steer a prompt toward another language at a
  layer and strength; next-token distribution and continuation with and without.
- :class:`DistancesView` (a SimilarityResult of every pair): on demand, the correlation of similarity with URIEL+
  language distances per layer (Mantel r, partial r controlling for script).
- :class:`Workbench`: one tabbed UI that runs the pipeline and hosts the explorers.

Every explorer updates its figures in place and also works from plain Python: setting a control's
``.value`` updates the figures, so they can be scripted and tested without a browser.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SimilarityExplorer": ".similarity_explorer",
    "EmbeddingExplorer": ".embedding_explorer",
    "LogitLensExplorer": ".lens_explorer",
    "NeuronsView": ".neurons_view",
    "InterventionsView": ".interventions_view",
    "DistancesView": ".distances_view",
    "Workbench": ".workbench",
    "ExportBar": "._base",
    "refresh": "._base",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
