"""The language x language view of :class:`~xling_probe.widgets.similarity_explorer.SimilarityExplorer`
for many languages: which languages it shows (family / script filters), in which order, and the
layer update that sends only ``z``.

The order is computed when the metric, the order or a filter changes (``"cluster"``: at the layer
shown at that moment) and kept while the layer slider moves, so the rows stay in place and a layer
change sends one array: above :data:`~xling_probe.plots.heatmaps.TICK_LIMIT` languages the explorer
replaces only the heatmap's ``z`` and the title (x/y labels, hover text and colour bar stay).

When the order or a filter changes, the view also slices every layer of the metric once into a
``[layers, G, G]`` float32 cube in the shown order (:attr:`HeatmapView.cube`, 12 MB at 402
languages x 19 layers), so a layer change is one slice: :meth:`HeatmapView.z` returns it rounded to
3 decimals (NaN on the empty diagonal), and the figure widget sends it as float32 binary rows
(:func:`~xling_probe.widgets._base.to_js`: 646 kB instead of 1.1 MB of JSON at 402 languages).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from xling_probe.measures.result import SimilarityResult
from xling_probe.plots import language_heatmap
from xling_probe.plots.heatmaps import TICK_LIMIT
from xling_probe.plots.ordering import GROUPINGS, group_of, language_name


#: The order control's choices: (label, value); "none" keeps the result's order.
ORDER_CHOICES = (("as computed", "none"), ("cluster", "cluster"), ("family", "family"), ("script", "script"))
ALL = "all"
DECIMALS = 3
#: Up to this many shown languages the axes name each language next to its code ("fr · French").
NAMED_LIMIT = 24
#: Why cells are blank, under the heatmap (plotly shows no value there, so the hover cannot say it).
BLANK_NOTE = ("blank diagonal: a language is not compared with itself"
              "; other blank cells: pairs that were not computed")


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
        self.cube: np.ndarray | None = None  # [layer, shown a, shown b] float32 of ``key``'s metric
        self._cube_key: tuple[Any, ...] | None = None

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
        _explain(fig)
        self.key = key
        self.languages = list(fig.layout.meta["languages"])
        index = {c: i for i, c in enumerate(self.result.languages)}
        self.positions = np.array([index[c] for c in self.languages], dtype=int)
        if self.big:
            self._cube(metric)  # every layer in this order, so that a layer change is one slice
        return fig

    def _cube(self, metric: str) -> np.ndarray:
        """Every layer of ``metric`` in the shown order, float32 (computed once per metric and view)."""
        key = (metric, tuple(self.positions))
        if self._cube_key != key or self.cube is None:
            full = np.asarray(self.result.sel(metric, None), dtype=float)  # [layer, a, b]
            pos = self.positions
            # rounded before the cast, so that z() gives exactly np.round(value, 3) back
            self.cube = np.round(full[:, pos][:, :, pos], DECIMALS).astype(np.float32)
            self._cube_key = key
        return self.cube

    def z(self, metric: str, layer: int) -> np.ndarray:
        """The shown matrix at ``layer`` in the current order (float64, 3 decimals, NaN where empty):
        one slice of :attr:`cube`."""
        li = list(self.result.layers).index(layer)
        return np.round(self._cube(metric)[li].astype(np.float64), DECIMALS)


def _explain(fig: go.Figure) -> None:
    """Widget-only labels (the report's figure stays as built): names next to codes on the axes when
    few languages are shown."""
    hm = fig.data[0]
    codes = list(fig.layout.meta["languages"])
    if len(codes) <= NAMED_LIMIT:
        named = [c if language_name(c) == c else f"{c} · {language_name(c)}" for c in codes]
        for axis in (fig.layout.xaxis, fig.layout.yaxis):
            axis.update(tickmode="array", tickvals=list(hm.x), ticktext=named)
        fig.layout.xaxis.tickangle = -35
        fig.layout.margin.update(l=150, b=130)
    # why cells are blank: the figure's subtitle and the hover of a blank cell say it (plots.language_heatmap)
