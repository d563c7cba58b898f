"""Language-distance view: does URIEL+ language distance explain the similarity results, layer by layer?

A tab-able ``VBox`` (:class:`DistancesView`) over a :class:`~xling_probe.measures.result.SimilarityResult` of
every language pair. Nothing is computed until ``.button`` ("Compute distance correlations") is pressed (or
:meth:`DistancesView.compute` is called): URIEL+'s first use integrates its databases (1-4 min, then cached).
While it runs the button is disabled and ``.status`` says so; an error is shown in ``.status`` (and the button
enabled again). Then:

- ``.metric`` (dropdown): the similarity metric whose correlations are shown;
- ``.value`` (toggle): Mantel r, or the partial r controlling for script;
- ``.figure``: :func:`~xling_probe.distances.distance_correlation_figure` of the metric's table (filled markers:
  p < 0.05);
- ``.summary``: per distance kind, the strongest |r|, its layer and p-value (the report's sentence);
- ``.tables[metric]``: :func:`~xling_probe.distances.distance_correlations` of the result, per metric;
- ``.export``: the figure (PNG/SVG) and the metric's correlation table (CSV).

Changing a control refreshes the figure in place (one ``batch_update``, counted in ``.log["figure"]``).

Transliteration (when ``transliterate`` is given: a function returning a
:func:`~xling_probe.transliteration.transliteration_gap` table, e.g. :meth:`Workbench.transliteration_gap`):
``.translit_button`` computes it on demand (disabled while it runs, errors in ``.translit_status``) and
``.translit_figure`` shows :func:`~xling_probe.plots.transliteration_curves` of ``.translit_table``;
``transliteration_unavailable`` (a reason) shows that reason instead of the button.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import ipywidgets as W

from xling_probe.errors import MetricError

from xling_probe.distances import DEFAULT_KINDS, distance_correlation_figure, distance_correlations, language_distances
from xling_probe.plots import transliteration_curves

from ._base import ExportBar, WidgetLog, figure_table, figure_widget, message_figure, refresh

VALUES = (("Mantel r", "r"), ("partial r | script", "partial_r"))
MIN_LANGUAGES = 4


class DistancesView(W.VBox):
    """Correlate a similarity result with URIEL+ language distances on demand, per layer and distance kind."""

    def __init__(self, result: Any, *, kinds: Sequence[str] = DEFAULT_KINDS, source: str = "urielplus",
                 permutations: int = 999, seed: int = 0, alpha: float = 0.05, metric: str | None = None,
                 transliterate: Callable[[], Any] | None = None, transliteration_unavailable: str | None = None) -> None:
        from xling_probe.report.distances import DISTANCE_METRICS

        self.result = result
        self.kinds, self.source = tuple(kinds), source
        self.permutations, self.seed, self.alpha = int(permutations), int(seed), float(alpha)
        self.log = WidgetLog()
        self.distances: Any = None
        self.tables: dict[str, Any] = {}
        self.elapsed: float | None = None
        metrics = list(result.metrics)
        first = metric or next((m for m in DISTANCE_METRICS if m in metrics), metrics[0])
        self.metric = W.Dropdown(options=metrics, value=first, description="Metric", disabled=True)
        self.value = W.ToggleButtons(options=VALUES, value="r", description="Show", disabled=True)
        self.button = W.Button(description="Compute distance correlations", icon="calculator",
                               button_style="primary", layout=W.Layout(width="260px"))
        n = len(result.languages)
        src = ("URIEL+ (the first use integrates its databases: 1-4 min, then cached)" if source == "urielplus"
               else "the original URIEL arrays")
        self.status = W.HTML(f"{n} languages, {n * (n - 1) // 2} pairs; distances from {src}; "
                             f"{self.permutations} Mantel permutations (seed {self.seed}).")
        self.summary = W.HTML()
        self.figure = figure_widget(message_figure("Press 'Compute distance correlations'",
                                                   title="Similarity vs language distance"))
        self.export = ExportBar(lambda: self.figure, default_name="distance_correlations",
                                get_table=self._export_table)
        if n < MIN_LANGUAGES:
            self.button.disabled = True
            self.status.value = (f"<span style='color:#b00'>A Mantel test over language pairs needs at least "
                                 f"{MIN_LANGUAGES} languages; this result has {n} ({escape(', '.join(result.languages))})"
                                 "</span>")
        self.button.on_click(lambda _b: self._on_click())
        self.metric.observe(lambda _: self._show(), names="value")
        self.value.observe(lambda _: self._show(), names="value")
        children = [W.HBox([self.button, self.status]), W.HBox([self.metric, self.value]), self.summary,
                    self.figure, self.export]
        self._transliterate = transliterate
        self.translit_table: Any = None
        self.translit_button = self.translit_status = self.translit_figure = None
        if transliterate is not None or transliteration_unavailable:
            self.translit_button = W.Button(description="Romanize and compare", icon="language",
                                            button_style="primary", layout=W.Layout(width="260px"),
                                            disabled=transliterate is None)
            self.translit_status = W.HTML(
                "Transliteration: translation vs random pairs for the original and the uroman-romanized text of "
                "the non-Latin-script languages (one more pass over their sentences)." if transliterate is not None
                else f"No transliteration: {escape(transliteration_unavailable or '', quote=False)}")
            self.translit_figure = figure_widget(message_figure("Press 'Romanize and compare'",
                                                                title="Transliteration"))
            self.translit_button.on_click(lambda _b: self._on_transliterate())
            children += [W.HTML("<h4>Transliteration</h4>"), W.HBox([self.translit_button, self.translit_status]),
                         self.translit_figure]
        super().__init__(children)

    def _export_table(self) -> Any:
        """The CSV of the export bar: the shown metric's correlation table (before computing: the figure's data)."""
        table = self.tables.get(self.metric.value)
        return table if table is not None else figure_table(self.figure)

    # ------------------------------------------------------------------ computing
    def compute(self) -> dict[str, Any]:
        """Compute the distances and every metric's correlations (raises on error); returns ``.tables``."""
        dist = language_distances(self.result.languages, self.kinds, source=self.source)
        tables = {m: distance_correlations(self.result, dist, m, permutations=self.permutations, seed=self.seed)
                  for m in self.metric.options}
        self.distances, self.tables = dist, tables
        self.metric.disabled = self.value.disabled = False
        self._show()
        return tables

    def _on_click(self) -> None:
        self.button.disabled = True
        self.status.value = "running… (URIEL+ distances, then a Mantel test per layer, metric and distance kind)"
        start = time.perf_counter()
        try:
            self.compute()
        except Exception as err:  # shown in the tab; compute() from a script raises
            self.status.value = f"<span style='color:#b00'>{type(err).__name__}: {escape(str(err), quote=False)}</span>"
            self.button.disabled = False
            return
        self.elapsed = time.perf_counter() - start
        unmapped = (f"; no URIEL+ entry for {', '.join(self.distances.unmapped)}" if self.distances.unmapped else "")
        self.status.value = f"done in {self.elapsed:.1f} s{escape(unmapped)}"
        self.button.disabled = False

    # ------------------------------------------------------------------ showing
    def _figure(self):
        table = self.tables[self.metric.value]
        return distance_correlation_figure(table, value=self.value.value, alpha=self.alpha)

    def _show(self) -> None:
        if self.metric.value not in self.tables:
            return
        refresh(self.figure, self._figure())
        self.log.bump("figure")
        self._summarise()

    def _summarise(self) -> None:
        table = self.tables[self.metric.value]
        col, pcol = ("r", "p") if self.value.value == "r" else ("partial_r", "partial_p")
        parts = []
        for kind, sub in table.groupby("kind", sort=False):
            defined = sub.dropna(subset=[col])
            if defined.empty:
                parts.append(f"{escape(str(kind))}: undefined")
                continue
            best = defined.loc[defined[col].abs().idxmax()]
            n_sig = int((defined[pcol] < self.alpha).sum())
            parts.append(f"<b>{escape(str(kind))}</b>: strongest {col} {best[col]:+.3f} at layer {int(best['layer'])} "
                         f"(p = {best[pcol]:.3g}); p &lt; {self.alpha} at {n_sig} of {len(sub)} layers")
        none = "" if (table[pcol] < self.alpha).any() else (
            f"<br>No correlation reaches p &lt; {self.alpha} at any layer.")
        self.summary.value = "<br>".join(parts) + none

    # ------------------------------------------------------------------ transliteration
    def transliteration(self) -> Any:
        """Compute the transliteration gap table (raises on error) and show it; returns the table."""
        if self._transliterate is None:
            raise MetricError("no transliteration here: pass transliterate= (the workbench does)")
        table = self._transliterate()
        self.translit_table = table
        refresh(self.translit_figure, transliteration_curves(table))
        self.log.bump("transliteration")
        return table

    def _on_transliterate(self) -> None:
        self.translit_button.disabled = True
        self.translit_status.value = "running… (romanizing, extracting the romanized sentences, bootstrap)"
        start = time.perf_counter()
        try:
            table = self.transliteration()
        except Exception as err:  # shown in the tab; transliteration() from a script raises
            self.translit_status.value = (f"<span style='color:#b00'>{type(err).__name__}: "
                                          f"{escape(str(err), quote=False)}</span>")
            self.translit_button.disabled = False
            return
        from xling_probe.report.transliteration import describe_transliteration

        self.translit_status.value = (f"done in {time.perf_counter() - start:.1f} s. "
                                      + escape(describe_transliteration(table), quote=False))
        self.translit_button.disabled = False
