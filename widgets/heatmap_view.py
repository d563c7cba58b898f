"""The language x language view of :class:`~xling_probe.widgets.similarity_explorer.SimilarityExplorer`
for many languages: which languages it shows (family / script filters), in which order, and the
layer update that sends only ``z``.

The order is computed when the metric, the order or a filter changes (``"cluster"``: at the layer
shown at that moment) and kept while the layer slider moves, so the rows stay in place and a layer
change sends one array: above :data:`~xling_probe.plots.heatmaps.TICK_LIMIT` languages the explorer
replaces only the heatmap's ``z`` (3 decimals, None for the empty diagonal) and the title.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from xling_probe.measures.result import SimilarityResult
from xling_probe.plots import language_heatmap
from xling_probe.plots.heatmaps import TICK_LIMIT
from xling_probe.plots.ordering import GROUPINGS, group_of

from ._base import nan_to_none

#: The order control's choices: (label, value); "none" keeps the result's order.
ORDER_CHOICES = (("as computed", "none"), ("cluster", "cluster"), ("family", "family"), ("script", "script"))
ALL = "all"
DECIMALS = 3


def filter_choices(languages: Sequence[str], by: str) -> list[str]:
    """``"all"`` then every family (or script) of ``languages``, most languages first."""
    if by not in GROUPINGS:
        raise ValueError(by)
    groups = group_of(languages, by)
    return [ALL] + sorted(set(groups), key=lambda g: (-groups.count(g), g))


class HeatmapView:
    """The shown languages (filtered, ordered) and how a layer change is sent.

    :meth:`figure` builds the figure for (metric, layer, order, family, script) and remembers the
    shown languages in order; :meth:`z` is the matrix of another layer in that same order, ready to
    send. ``languages`` (the shown order) and ``positions`` (their indices in the result) are set
    after the first :meth:`figure`.
    """

    def __init__(self, result: SimilarityResult) -> None:
        self.result = result
        self.key: tuple[Any, ...] | None = None
        self.languages: list[str] = []
        self.positions: np.ndarray = np.arange(0)

    @property
    def big(self) -> bool:
        """More than :data:`TICK_LIMIT` languages shown: a layer change sends ``z`` only."""
        return len(self.languages) > TICK_LIMIT

    def figure(self, metric: str, layer: int, order: str, family: str, script: str) -> go.Figure:
        """The heatmap; the order is recomputed only when (metric, order, family, script) changed."""
        key = (metric, order, family, script)
        fam, scr = (None if v == ALL else v for v in (family, script))
        groups = order if order in ("family", "script") else "family"
        if key == self.key:
            chosen: Any = list(self.languages)
        else:
            chosen = None if order == "none" else order
        fig = language_heatmap(self.result, metric, layer, order=chosen, family=fam, script=scr, groups=groups)
        self.key = key
        self.languages = list(fig.layout.meta["languages"])
        index = {c: i for i, c in enumerate(self.result.languages)}
        self.positions = np.array([index[c] for c in self.languages], dtype=int)
        return fig

    def z(self, metric: str, layer: int) -> np.ndarray:
        """The shown matrix at ``layer`` in the current order: 3 decimals, None where empty."""
        full = self.result.sel(metric, layer)
        return nan_to_none(np.asarray(full)[np.ix_(self.positions, self.positions)], DECIMALS)
