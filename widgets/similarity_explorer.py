"""Interactive view of a :class:`~xling_probe.measures.result.SimilarityResult`.

What the user sees, top to bottom: a row of controls (metric, layer slider, the language pairs
drawn as curves), then the language x language heatmap of the metric at the chosen layer next to
the per-layer curves of the chosen pairs (a dashed vertical line marks the chosen layer), then a
pair picker with the layer x layer heatmap of that pair, and an export bar.

Every figure is rebuilt by the pure builders of :mod:`xling_probe.plots` and copied into a
long-lived FigureWidget. A control change refreshes only the figures that depend on it, once each
(``explorer.log`` counts refreshes per figure name): the layer slider redraws the heatmap and moves
the marker on the curves; the metric redraws all three; ``.pairs`` redraws the curves; ``.pair``
redraws the layer x layer heatmap, which is computed from the activations (when given) and cached
per (pair, metric).

Linked views: clicking a cell (a, b) of the language x language heatmap selects that pair for the
layer x layer view and the curves (:meth:`SimilarityExplorer.select_cell`); the selected pair is
always drawn (added to ``.pairs`` when few pairs are drawn, on top in black when many are:
:mod:`.curves_view`). While a control recomputes (a metric change, a layer x layer matrix, a
cluster order) ``.status`` says what is being computed; the old figure stays until the new one
replaces it in one update.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go

from xling_probe.errors import ExportError, MetricError, XlingProbeError
from xling_probe.extraction.activations import Activations
from xling_probe.labels import layer_position, parse_pair, resolve_language
from xling_probe.measures.engine import cross_layer_similarity
from xling_probe.measures.registry import METRICS
from xling_probe.measures.result import CrossLayerResult, SimilarityResult
from xling_probe.plots import cross_layer_heatmap, similarity_curves

from ._base import ExportBar, WidgetLog, figure_widget, message_figure, refresh
from .curves_view import MANY_PAIRS, CurvesView, restyle
from .explorer_links import LinkedViews
from .heatmap_view import ALL, ORDER_CHOICES, HeatmapView, filter_choices

#: Metrics for which a layer x layer matrix can be computed (``MetricSpec.cross_layer`` in the registry).
CROSS_METRICS = tuple(name for name, spec in METRICS.items() if spec.cross_layer)
FIGURES = ("heatmap", "curves", "cross")
#: How many pairs the curves show when the caller does not choose.
DEFAULT_PAIR_COUNT = 4
MARKER_LINE = dict(color="#808080", dash="dash", width=1.5)


def pair_label(pair: tuple[str, str]) -> str:
    """The pair as the controls show it: ``en–de`` (an en dash, as in the figures' legends)."""
    return f"{pair[0]}–{pair[1]}"


def _or_first(result: SimilarityResult, metric: str) -> int:
    """:meth:`SimilarityResult.peak_layer` (mean over every computed pair), or the first layer when the
    metric has no value at all."""
    try:
        return result.peak_layer(metric)
    except MetricError:
        return result.layers[0]


def marker_shape(layer: int) -> dict[str, Any]:
    """The vertical dashed line drawn on the curves at the chosen layer (full plot height)."""
    return dict(type="line", xref="x", yref="paper", x0=layer, x1=layer, y0=0, y1=1, line=MARKER_LINE,
                name="chosen layer")


class SimilarityExplorer(LinkedViews, W.VBox):
    """Explore a SimilarityResult: metric, layer, pairs; heatmap, curves and layer x layer heatmap.

    Parameters
    ----------
    result: the :class:`SimilarityResult` to show.
    acts: the :class:`Activations` it was computed from; needed only for the layer x layer
        heatmap ("cross"), which is available for cka, cka_debiased, anc and anc_abs.
    metric: initial metric (default: the result's first).
    layer: initial layer (default: :meth:`SimilarityResult.peak_layer`, where the metric's mean over
        every computed pair peaks; negative values count from the last layer).
    pairs: pairs drawn as curves, as ``(a, b)`` tuples or labels in the :mod:`xling_probe.labels`
        grammar (``"en-de"``, ``"en/zh-Hant"``, any language spelling; default: the first four pairs).
    pair: the pair of the layer x layer heatmap (default: the first of ``pairs``).
    order: order of the heatmap's languages: ``"none"`` (the result's), ``"cluster"``, ``"family"`` or
        ``"script"`` (:func:`~xling_probe.plots.language_heatmap`; default: none up to 60 languages,
        family above). The order is computed when the metric, order or a filter changes and kept
        while the layer moves; above 60 languages a layer change sends only the heatmap's ``z``.
    family, script: show only the languages of one family / script (default ``"all"``).

    Attributes: controls ``metric`` (Dropdown), ``layer`` (SelectionSlider of layer numbers),
    ``pairs`` (SelectMultiple; values are ``(a, b)`` tuples), ``pair`` (Dropdown), ``order``,
    ``family``, ``script`` (Dropdowns of the heatmap view, :class:`~.heatmap_view.HeatmapView`: ``view``); ``figures``
    (``"heatmap"``, ``"curves"``, ``"cross"`` -> FigureWidget), ``log`` (refreshes per figure),
    ``computed`` (layer x layer matrices computed per ``(a, b, metric)``), ``export_bar``.
    """

    def __init__(self, result: SimilarityResult, acts: Activations | None = None, *, metric: str | None = None,
                 layer: int | None = None, pairs: Sequence[Any] | None = None, pair: Any = None,
                 order: str | None = None, family: str = ALL, script: str = ALL) -> None:
        if not isinstance(result, SimilarityResult):
            raise MetricError(f"SimilarityExplorer needs a SimilarityResult (from xling_probe.measures.engine.similarity), "
                              f"got {type(result).__name__}")
        if acts is not None and not isinstance(acts, Activations):
            raise MetricError(f"acts must be the Activations the result was computed from (or None), "
                              f"got {type(acts).__name__}")
        self.result, self.acts = result, acts
        metric = self._metric(result.metrics[0] if metric is None else metric)
        layer = _or_first(result, metric) if layer is None else self._layer(layer)
        chosen = [self._resolve_pair(p) for p in pairs] if pairs is not None else \
            list(result.pairs[:DEFAULT_PAIR_COUNT])
        pair = self._resolve_pair(pair) if pair is not None else (chosen or list(result.pairs))[0]

        self.log = WidgetLog(type(self).__name__)
        self.computed: Counter[tuple[str, str, str]] = Counter()
        self._cross: dict[tuple[str, str, str], CrossLayerResult] = {}
        self._holding = False
        self._curves_view: CurvesView | None = None  # the grouped curves on screen (many pairs), else None
        self.status = W.HTML("")
        self.status_log: list[str] = []  # every "computing …" message shown, in order
        options = [(pair_label(p), p) for p in result.pairs]
        self.metric = W.Dropdown(options=list(result.metrics), value=metric, description="metric")
        self.layer = W.SelectionSlider(options=list(result.layers), value=layer, description="layer",
                                       continuous_update=True)
        self.pairs = W.SelectMultiple(options=options, value=tuple(chosen), rows=min(6, len(options)),
                                      description="curves")
        self.pair = W.Dropdown(options=options, value=pair, description="layer × layer")
        self.view = HeatmapView(result)
        big = len(result.languages) > 60
        self.order = W.Dropdown(options=list(ORDER_CHOICES), value=order or ("family" if big else "none"),
                                description="order")
        self.family = W.Dropdown(options=filter_choices(result.languages, "family"), value=family,
                                 description="family")
        self.script = W.Dropdown(options=filter_choices(result.languages, "script"), value=script,
                                 description="script")
        self.figures = {name: figure_widget() for name in FIGURES}
        for name in FIGURES:
            self._refresh(name)
        self.export_choice = W.Dropdown(options=list(FIGURES), value="heatmap", description="figure",
                                        layout=W.Layout(width="200px"))
        self.export_bar = ExportBar(lambda: self.figures[self.export_choice.value], "similarity_heatmap")
        self.export_choice.observe(lambda ch: setattr(self.export_bar.path, "value", f"similarity_{ch['new']}"),
                                   "value")
        for name in ("metric", "layer", "pairs", "pair", "order", "family", "script"):
            getattr(self, name).observe(self._on(name), "value")
        super().__init__([
            W.HBox([W.VBox([self.metric, self.layer]), self.pairs, W.VBox([self.order, self.family, self.script])]),
            self.status,
            # side by side on a wide screen, one under the other on a narrow one (never clipped)
            W.HBox([self.figures["heatmap"], self.figures["curves"]], layout=W.Layout(flex_flow="row wrap")),
            self.pair, self.figures["cross"],
            W.HBox([self.export_choice, self.export_bar]),
        ])

    # ------------------------------------------------------------------ input checks
    def _metric(self, metric: str) -> str:
        """The canonical name of a computed metric (any spelling the registry reads)."""
        name = self.result.spec(metric).name
        if name not in self.result.metrics:
            raise MetricError(f"metric {metric!r} was not computed; this result has {list(self.result.metrics)}")
        return name

    def _layer(self, layer: int) -> int:
        """The layer label of ``layer`` (negative values count from the last layer of the result)."""
        return self.result.layers[layer_position(layer, self.result.layers)]

    def _resolve_pair(self, item: Any) -> tuple[str, str]:
        """A computed pair as written, read with :func:`xling_probe.labels.parse_pair` (any language spelling)."""
        try:
            a, b = parse_pair(item)
            pair = tuple(resolve_language(x, self.result.languages, error=MetricError, what="this result")
                         for x in (a, b))
        except XlingProbeError:
            pair = None
        if pair not in self.result.pairs:
            raise MetricError(f"pair {item!r} is not in this result; pairs: "
                              f"{', '.join(pair_label(p) for p in self.result.pairs)}")
        return pair  # type: ignore[return-value]

    # ------------------------------------------------------------------ figures
    def heatmap_figure(self) -> go.Figure:
        """Language x language heatmap of the current metric at the current layer (order and filters of :attr:`view`)."""
        return self.view.figure(self.metric.value, self.layer.value, self.order.value, self.family.value,
                                self.script.value)

    def curves_figure(self) -> go.Figure:
        """Per-layer curves of the chosen pairs with the marker at the current layer."""
        pairs = list(self.pairs.value)
        if not pairs:
            return message_figure("Select at least one language pair to draw its curve.",
                                  title=f"{self.result.spec(self.metric.value).label} per layer")
        if len(pairs) > MANY_PAIRS:
            view = self._grouped_view()
            fig = view.figure(self.metric.value)
        else:
            fig = similarity_curves(self.result, self.metric.value, pairs)
        fig.add_shape(**marker_shape(self.layer.value))
        return fig

    @property
    def curves_view(self) -> CurvesView | None:
        """The grouped curves on screen (more than :data:`~.curves_view.MANY_PAIRS` pairs), else None."""
        return self._curves_view

    def _grouped_view(self) -> CurvesView:
        """The grouped curves of the drawn pairs (+ the selected one), the one on screen when it fits."""
        directed = self.result.spec(self.metric.value).directional
        view = self._curves_view
        if view is not None and view.key[:2] == (tuple(self.pairs.value), self.pair.value):
            return view
        return CurvesView(self.result, list(self.pairs.value), self.pair.value, directed)

    def cross_result(self, pair: tuple[str, str] | None = None, metric: str | None = None) -> CrossLayerResult | None:
        """The CrossLayerResult of ``pair`` and ``metric`` (computed once, then cached); None when unavailable."""
        (a, b), metric = pair or self.pair.value, metric or self.metric.value
        if self.acts is None or not self.result.spec(metric).cross_layer:
            return None
        key = (a, b, metric)
        if key not in self._cross:
            self._cross[key] = cross_layer_similarity(self.acts, a, b, metric)
            self.computed[key] += 1
        return self._cross[key]

    def cross_figure(self) -> go.Figure:
        """Layer x layer heatmap of the current pair, or an explanation of why it is unavailable."""
        (a, b), metric = self.pair.value, self.metric.value
        title = f"{a} × {b} layers"
        if self.acts is None:
            return message_figure("The layer × layer view needs the activations:<br>"
                                  "SimilarityExplorer(result, acts)", title=title)
        label = self.result.spec(metric).label
        if not self.result.spec(metric).cross_layer:
            return message_figure(f"No layer × layer view for {label}:<br>"
                                  f"it exists for {', '.join(CROSS_METRICS[:-1])} and {CROSS_METRICS[-1]}.",
                                  title=title)
        try:
            cross = self.cross_result()
        except MetricError as err:
            return message_figure(f"Layer × layer {label} failed:<br>{err}", title=title)
        return cross_layer_heatmap(cross)

    def _refresh(self, name: str) -> None:
        if name == "curves" and self._restyle_curves():
            self.log.bump(name)
            return
        fig = {"heatmap": self.heatmap_figure, "curves": self.curves_figure, "cross": self.cross_figure}[name]()
        refresh(self.figures[name], fig)
        if name == "curves":
            self._curves_view = self._grouped_view() if len(self.pairs.value) > MANY_PAIRS else None
        if name == "heatmap":
            self._link_heatmap()
        self.log.bump(name)

    def _restyle_curves(self) -> bool:
        """Many pairs, same traces as on screen (a metric change): send only the new ``y`` and titles."""
        if self._curves_view is None or len(self.pairs.value) <= MANY_PAIRS:
            return False
        view = self._grouped_view()
        if view is not self._curves_view:
            return False
        restyle(self.figures["curves"], view, self.metric.value)
        return True

    def _layer_heatmap(self) -> None:
        """The heatmap at the new layer: above 60 languages only ``z`` and the title are sent (same
        languages, same order); otherwise the whole figure is refreshed."""
        fw = self.figures["heatmap"]
        if not self.view.big or self.view.key != (self.metric.value, self.order.value, self.family.value,
                                                  self.script.value):
            self._refresh("heatmap")
            return
        z = self.view.z(self.metric.value, self.layer.value)
        title = f"{self.result.spec(self.metric.value).label} at layer {self.layer.value}"
        with fw.batch_update():
            fw.data[0].z = z
            fw.layout.title.text = title
        self.log.bump("heatmap")

    def _move_marker(self) -> None:
        fw = self.figures["curves"]
        if not fw.layout.shapes:  # the "no pair selected" message has no marker
            return
        with fw.batch_update():
            fw.layout.shapes[0].update(x0=self.layer.value, x1=self.layer.value)
        self.log.bump("curves")

    # ------------------------------------------------------------------ control changes
    @contextmanager
    def _hold(self) -> Iterator[None]:
        """Control changes inside this block refresh nothing (the caller refreshes once afterwards)."""
        before, self._holding = self._holding, True
        try:
            yield
        finally:
            self._holding = before

    def _on(self, control: str):
        """The observer of one control: refresh the figures that depend on it (the layer moves the marker)."""
        def handler(_change: dict) -> None:
            if self._holding:
                return
            if control == "layer":
                self._layer_heatmap()
                self._move_marker()
                return
            names = {"metric": FIGURES, "pairs": ("curves",), "pair": ("cross",), "order": ("heatmap",),
                     "family": ("heatmap",), "script": ("heatmap",)}[control]
            if control == "pair" and self._curves_view is not None:
                names = ("cross", "curves")  # the selected pair is drawn on top of many curves
            with self._busy(self._what(control)):
                for name in names:
                    self._refresh(name)
        return handler

    def select(self, *, metric: str | None = None, layer: int | None = None, pairs: Sequence[Any] | None = None,
               pair: Any = None) -> None:
        """Change several controls at once; each affected figure is refreshed once."""
        metric = self._metric(metric) if metric is not None else None
        layer = self._layer(layer) if layer is not None else None
        new_pairs = tuple(self._resolve_pair(p) for p in pairs) if pairs is not None else None
        new_pair = self._resolve_pair(pair) if pair is not None else None
        old = (self.metric.value, self.layer.value, self.pairs.value, self.pair.value)
        with self._hold():
            for control, value in ((self.metric, metric), (self.layer, layer), (self.pairs, new_pairs),
                                   (self.pair, new_pair)):
                if value is not None:
                    control.value = value
        changed = [a != b for a, b in zip(old, (self.metric.value, self.layer.value, self.pairs.value,
                                                 self.pair.value))]
        if changed[0]:
            with self._busy(self._what("metric")):
                for name in FIGURES:
                    self._refresh(name)
            return
        if changed[1]:
            self._layer_heatmap()
        if changed[2] or (changed[3] and self._curves_view is not None):
            self._refresh("curves")
        elif changed[1]:
            self._move_marker()
        if changed[3]:
            with self._busy(self._what("pair")):
                self._refresh("cross")

    # ------------------------------------------------------------------ export
    def export(self, name: str = "heatmap", path: str | Path | None = None,
               formats: Sequence[str] | None = None) -> list[Path]:
        """Write figure ``name`` (heatmap, curves or cross) as PNG/SVG/PDF; returns the written paths
        (empty after a failure, which is shown in the export bar's status)."""
        if name not in self.figures:
            raise ExportError(f"unknown figure {name!r}; figures: {', '.join(self.figures)}")
        self.export_choice.value = name
        return self.export_bar.export(path, formats)
