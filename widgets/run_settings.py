"""The workbench's run chooser: languages, sentences, pooling and metrics, with the cost shown before running.

:class:`RunSettings` (a ``VBox``) over the full corpus the workbench was given. ``.languages``
(multi-select, every language of the corpus), ``.sentences``, ``.pooling``, ``.metrics``; ``.cost`` (HTML) says
what a run will compute: sequences to extract, language pairs x metrics x layers to score, nulls and
resamples, and the time it should take at the rate measured by the last run (before any run: a stated
estimate for the offline model on a 2-core CPU). ``.chosen()`` returns the settings, checked; ``.on_change``
is called whenever one changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as W

from xling_probe.errors import CorpusError
from xling_probe.extraction.pooling import POOLINGS
from xling_probe.measures.registry import METRICS, PAIR_METRICS, parse_metrics

#: Seconds per extracted sequence before the first run: Gemma 3 270M, mean pooling, 2 idle CPU cores
#: (benchmarks/results/report.json: 10 s for 60 sentences x 6 languages).
DEFAULT_SECONDS_PER_SEQUENCE = 0.028
METRIC_CHOICES = (*METRICS, "p@1", "p@5", "mknn@10", *PAIR_METRICS, "cknna@10", "p_procrustes@1", "p_cent@1")
MIN_SENTENCES = 4


class RunSettings(W.VBox):
    """Choose what the next run computes; the cost line updates with every change."""

    def __init__(self, corpus: Any, *, languages: Sequence[str], sentences: int, pooling: str,
                 metrics: Sequence[str], null_permutations: int, bootstrap: int, n_layers: int | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.corpus = corpus
        self.null_permutations, self.bootstrap, self.n_layers = null_permutations, bootstrap, n_layers
        self.seconds_per_sequence: float | None = None  # measured by the last run
        self.on_change = on_change
        options = list(corpus.languages)
        self.languages = W.SelectMultiple(options=options, value=tuple(languages), rows=min(8, len(options)),
                                          description="Languages")
        self.sentences = W.BoundedIntText(value=int(sentences), min=MIN_SENTENCES, max=max(len(corpus), MIN_SENTENCES),
                                          description="Sentences")
        self.pooling = W.Dropdown(options=list(POOLINGS), value=pooling, description="Pooling")
        extra = [m for m in metrics if m not in METRIC_CHOICES]
        self.metrics = W.SelectMultiple(options=[*METRIC_CHOICES, *extra], value=tuple(metrics),
                                        rows=min(8, len(METRIC_CHOICES) + len(extra)), description="Metrics")
        self.cost = W.HTML()
        for w in (self.languages, self.sentences, self.pooling, self.metrics):
            w.observe(lambda _ch: self._changed(), names="value")
        super().__init__([W.HBox([self.languages, W.VBox([self.sentences, self.pooling]), self.metrics]), self.cost])
        self.update_cost()

    def _changed(self) -> None:
        self.update_cost()
        if self.on_change is not None:
            self.on_change()

    def chosen(self) -> dict[str, Any]:
        """``{"languages", "sentences", "pooling", "metrics"}`` as chosen; errors say what to change."""
        langs = list(self.languages.value)
        if len(langs) < 2:
            raise CorpusError(f"choose at least two languages to compare (chosen: {', '.join(langs) or 'none'})")
        if not self.metrics.value:
            raise CorpusError("choose at least one metric")
        return {"languages": langs, "sentences": int(self.sentences.value), "pooling": self.pooling.value,
                "metrics": parse_metrics(self.metrics.value)}

    def cost_numbers(self) -> dict[str, Any]:
        """What the chosen run computes and how long its extraction should take (``None`` when unknown)."""
        langs, n = len(self.languages.value), min(int(self.sentences.value), len(self.corpus))
        rate = self.seconds_per_sequence or DEFAULT_SECONDS_PER_SEQUENCE
        return {"sequences": langs * n, "pairs": langs * (langs - 1) // 2, "metrics": len(self.metrics.value),
                "layers": self.n_layers, "seconds": langs * n * rate, "measured": self.seconds_per_sequence is not None}

    def update_cost(self) -> None:
        c = self.cost_numbers()
        layers = f" × {c['layers']} layers" if c["layers"] else " × every layer"
        basis = ("at the rate of the last run" if c["measured"]
                 else "estimated for Gemma 3 270M on a 2-core CPU; a cached run takes about a second")
        self.cost.value = (f"<b>Cost:</b> {c['sequences']} sequences to extract (≈ {c['seconds']:.0f} s, {basis}); "
                           f"{c['pairs']} language pairs × {c['metrics']} metrics{layers}, with "
                           f"{self.null_permutations} null permutations and {self.bootstrap} bootstrap resamples.")
