"""The per-layer curves of :class:`~xling_probe.widgets.similarity_explorer.SimilarityExplorer` when
many pairs are drawn, and the update that sends only the changed ``y`` arrays.

Up to :data:`MANY_PAIRS` pairs the explorer shows :func:`~xling_probe.plots.similarity_curves` as it
is (a line and a band per pair, one legend entry each). With more pairs (all 210 pairs of 21
languages: 421 traces, ~0.5 s to build and diff on every metric change) :func:`grouped_curves`
draws **one line trace and one band trace per colour** (pairs of one colour joined with gaps, the
pair named in the hover), the null band, and the selected pair on top in black, so the figure has
at most ~45 traces whatever the number of pairs. The traces depend only on the pairs, the
selected pair and whether the result has intervals / a null; a metric change then sends the new
``y`` arrays (binary float64, :func:`~xling_probe.widgets._base.to_js`) and the axis titles,
nothing else (:meth:`CurvesView.restyle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from xling_probe.labels import pair_label as directed_label
from xling_probe.measures.result import SimilarityResult
from xling_probe.plots.curves import metric_label, pair_colors
from xling_probe.plots.style import TEMPLATE, register, rgba

#: Above this many pairs the curves are drawn one trace per colour (:func:`grouped_curves`).
MANY_PAIRS = 12
SELECTED_LINE = dict(color="#111111", width=3.5)


def _name(pair: tuple[str, str], directed: bool) -> str:
    return directed_label(pair, directed) if directed else f"{pair[0]}–{pair[1]}"


class CurvesView:
    """The structure of the grouped curves of ``pairs`` (+ the ``selected`` pair) of ``result``.

    ``key`` identifies the trace structure: a metric change with the same key only restyles.
    :meth:`figure` builds the figure, :meth:`arrays` the ``y`` of every trace for a metric in
    trace order.
    """

    def __init__(self, result: SimilarityResult, pairs: Sequence[tuple[str, str]],
                 selected: tuple[str, str] | None, directed: bool) -> None:
        self.result = result
        self.pairs = list(pairs)
        self.selected = selected
        self.directed = directed
        colors = pair_colors(self.pairs)
        self.groups: dict[str, list[tuple[str, str]]] = {}
        for p in self.pairs:
            self.groups.setdefault(colors[p], []).append(p)
        self.layers = list(result.layers)
        position = {p: k for k, p in enumerate(self.pairs)}
        self._index = {c: [position[p] for p in ps] for c, ps in self.groups.items()}
        where = {c: i for i, c in enumerate(result.languages)}
        self._a = np.array([where[a] for a, _ in self.pairs], dtype=int)
        self._b = np.array([where[b] for _, b in self.pairs], dtype=int)
        # the traces depend on these only (a directional metric renames the curves: restyle() sends names)
        self.key = (tuple(self.pairs), selected, result.has_ci, result.has_null)

    # ------------------------------------------------------------------ arrays
    def _field(self, metric: str, field: str) -> np.ndarray:
        """[layer, pair] of ``field`` for every drawn pair (a -> b as drawn; one vectorised selection)."""
        return np.asarray(self.result.sel(metric, None, field=field), dtype=float)[:, self._a, self._b]

    def _xs(self, count: int, band: bool) -> np.ndarray:
        x = np.asarray(self.layers, dtype=float)
        one = np.concatenate([x, x[::-1], [np.nan]]) if band else np.concatenate([x, [np.nan]])
        return np.tile(one, count)

    def arrays(self, metric: str) -> list[np.ndarray]:
        """``y`` of every trace, in the order of :meth:`figure`'s traces: lines are the group's curves
        one after the other with NaN between them (a gap); bands closed polygons (upper edge, then
        the lower edge back), NaN between them."""
        out: list[np.ndarray] = []
        if self.result.has_null:
            lo = self._field(metric, "null_mean").min(axis=1)
            hi = self._field(metric, "null_max").max(axis=1)
            out.append(np.concatenate([hi, lo[::-1]]))
        value = self._field(metric, "value")
        if self.result.has_ci:
            low, high = self._field(metric, "ci_low"), self._field(metric, "ci_high")
        gap = lambda k: np.full((k, 1), np.nan)  # noqa: E731
        for idx in self._index.values():
            if self.result.has_ci:
                poly = np.concatenate([high[:, idx].T, low[::-1][:, idx].T, gap(len(idx))], axis=1)
                out.append(poly.ravel())
            out.append(np.concatenate([value[:, idx].T, gap(len(idx))], axis=1).ravel())
        if self.selected is not None:
            out.append(np.asarray(self.result.sel(metric, None, *self.selected), dtype=float))
        return out

    def locate(self, pair: tuple[str, str]) -> tuple[int, slice]:
        """(trace index, slice of its ``y``) that hold the curve of ``pair`` (a drawn pair)."""
        k = self.pairs.index(pair)
        trace = int(self.result.has_null)
        for idx in self._index.values():
            trace += int(self.result.has_ci)
            if k in idx:
                start = idx.index(k) * (len(self.layers) + 1)
                return trace, slice(start, start + len(self.layers))
            trace += 1
        raise KeyError(pair)

    # ------------------------------------------------------------------ figure
    def figure(self, metric: str) -> go.Figure:
        """The grouped curves of ``metric`` (see the module docstring)."""
        register()
        ys = iter(self.arrays(metric))
        fig = go.Figure()
        layers = np.asarray(self.layers, dtype=float)
        if self.result.has_null:
            fig.add_trace(go.Scatter(x=np.concatenate([layers, layers[::-1]]), y=next(ys), fill="toself",
                                     fillcolor=rgba("#808080", 0.3), line=dict(width=0), mode="lines",
                                     name="shuffled-pairing null", hoverinfo="skip"))
        labels = self.labels(self.directed)
        for k, (color, pairs) in enumerate(self.groups.items()):
            label, text = labels[k]
            if self.result.has_ci:
                fig.add_trace(go.Scatter(x=self._xs(len(pairs), True), y=next(ys), fill="toself",
                                         fillcolor=rgba(color, 0.12), line=dict(width=0), mode="lines",
                                         name=f"{label} CI", legendgroup=color, showlegend=False,
                                         hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=self._xs(len(pairs), False), y=next(ys), mode="lines",
                                     line=dict(color=color, width=1.2), opacity=0.8, name=label,
                                     legendgroup=color, text=text, connectgaps=False,
                                     hovertemplate="%{text}<br>layer %{x}: %{y:.3f}<extra></extra>"))
        if self.selected is not None:
            fig.add_trace(go.Scatter(x=layers, y=next(ys), mode="lines+markers", name=labels[-1][0],
                                     line=SELECTED_LINE, marker=dict(size=6),
                                     hovertemplate="%{text}<br>layer %{x}: %{y:.3f}<extra></extra>",
                                     text=labels[-1][1]))
        fig.update_layout(template=TEMPLATE, title=titles(metric, len(self.pairs))["title.text"],
                          xaxis_title="layer (residual stream)", yaxis_title=metric_label(metric),
                          legend=dict(font=dict(size=10)))
        return fig


    def labels(self, directed: bool) -> list[tuple[str, np.ndarray]]:
        """(legend name, hover text per point) of every line trace, the selected pair last."""
        out = []
        for pairs in self.groups.values():
            names = [_name(p, directed) for p in pairs]
            label = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
            out.append((label, np.repeat(np.asarray(names, dtype=object), len(self.layers) + 1)))
        if self.selected is not None:
            name = _name(self.selected, directed)
            out.append((f"{name} (selected)", np.asarray([name] * len(self.layers), dtype=object)))
        return out

    def line_traces(self) -> list[int]:
        """Indices of the line traces (one per colour, then the selected pair), as :meth:`labels`."""
        out, trace = [], int(self.result.has_null)
        for _ in self._index:
            trace += int(self.result.has_ci)
            out.append(trace)
            trace += 1
        return out + ([trace] if self.selected is not None else [])


def titles(metric: str, n_pairs: int) -> dict[str, Any]:
    """The layout text that depends on the metric (what a metric change sends besides ``y``)."""
    return {"title.text": f"{metric_label(metric)} per layer ({n_pairs} pairs)",
            "yaxis.title.text": metric_label(metric)}


def restyle(fw: go.FigureWidget, view: CurvesView, metric: str) -> None:
    """Show ``metric`` in a widget that holds ``view.figure(...)``: only ``y`` and the titles change
    (one ``batch_update``, one message); between a symmetric and a directional metric also the
    curves' names (en–de vs en→de)."""
    ys = view.arrays(metric)
    directed = view.result.spec(metric).directional
    with fw.batch_update():
        for trace, y in zip(fw.data, ys):
            trace.y = y
        if directed != view.directed:
            for index, (name, text) in zip(view.line_traces(), view.labels(directed)):
                fw.data[index].name, fw.data[index].text = name, text
            view.directed = directed
        for path, text in titles(metric, len(view.pairs)).items():
            fw.layout[path] = text
