"""Language-neuron view: where each language's LAPE neurons sit, what languages share, what switching them off costs.

A tab-able ``VBox`` (:class:`NeuronsView`) over a :class:`~xling_probe.neurons.selection.LanguageNeurons`
selection and, optionally, a :class:`~xling_probe.neurons.perplexity.PerplexityChange` result:

- ``.language`` (dropdown): the language shown in colour in the per-block figure (the others grey) and
  summarised in ``.summary`` (its neurons per block, its largest overlaps, its perplexity row);
- ``.figures["per_layer"]``: :func:`~xling_probe.plots.neurons_per_layer`;
- ``.figures["overlap"]``: :func:`~xling_probe.plots.neuron_overlap`;
- ``.figures["perplexity"]``: :func:`~xling_probe.plots.perplexity_change_heatmap` beside its random control
  (a note when no perplexity result was given); ``.measure`` switches ratio / difference.

Changing a control refreshes the figures in place (one ``batch_update`` each, counted in ``.log``).
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as W

from xling_probe.plots import neuron_overlap, neurons_per_layer, perplexity_change_heatmap

from ._base import ExportBar, WidgetLog, figure_widget, message_figure, refresh

MEASURES = ("ratio", "difference")


class NeuronsView(W.VBox):
    """Explore a LAPE selection (and its perplexity-change matrix) by language."""

    def __init__(self, neurons: Any, perplexity: Any = None, *, language: str | None = None) -> None:
        self.neurons = neurons
        self.perplexity = perplexity
        self.log = WidgetLog()
        langs = list(neurons.languages)
        self.language = W.Dropdown(options=langs, value=neurons.language(language) if language else langs[0],
                                   description="Language")
        self.measure = W.ToggleButtons(options=MEASURES, value="ratio", description="PPL change",
                                       disabled=perplexity is None)
        self.summary = W.HTML()
        self.figures = {"per_layer": figure_widget(self._per_layer()), "overlap": figure_widget(neuron_overlap(neurons)),
                        "perplexity": figure_widget(self._perplexity())}
        self.export = ExportBar(lambda: self.figures["per_layer"], default_name="language_neurons")
        self.language.observe(lambda _: self._on_language(), names="value")
        self.measure.observe(lambda _: self._on_measure(), names="value")
        self._summarise()
        super().__init__([W.HBox([self.language, self.measure]), self.summary, self.figures["per_layer"],
                          W.HBox([self.figures["overlap"]]), self.figures["perplexity"], self.export])

    def _per_layer(self):
        return neurons_per_layer(self.neurons, languages=[self.language.value],
                                 title=f"LAPE neurons per block ({self.language.value} in colour)")

    def _perplexity(self):
        if self.perplexity is None:
            return message_figure("No perplexity-change result: pass perplexity=xp.perplexity_change(...)",
                                  title="Perplexity change")
        return perplexity_change_heatmap(self.perplexity, measure=self.measure.value)

    def _on_language(self) -> None:
        refresh(self.figures["per_layer"], self._per_layer())
        self.log.bump("per_layer")
        self._summarise()

    def _on_measure(self) -> None:
        refresh(self.figures["perplexity"], self._perplexity())
        self.log.bump("perplexity")

    def _summarise(self) -> None:
        lang = self.language.value
        per_block = {int(k): len(v) for k, v in self.neurons.neurons(lang).items()}
        overlap = self.neurons.overlap()[lang].drop(lang).sort_values(ascending=False)
        parts = [f"<b>{escape(lang)}</b>: {sum(per_block.values())} neurons; per block "
                 + (", ".join(f"{k}: {v}" for k, v in per_block.items()) or "none"),
                 "shares most with " + ", ".join(f"{escape(str(k))} ({int(v)})" for k, v in overlap.head(3).items())]
        if self.perplexity is not None and lang in self.perplexity.off:
            row = self.perplexity.matrix().loc[lang]
            parts.append("its neurons off: PPL x " + ", ".join(f"{escape(str(k))} {v:.3f}" for k, v in row.items()))
        self.summary.value = "<br>".join(parts)
