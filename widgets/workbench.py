"""Workbench: one tabbed UI that runs the whole pipeline and hosts the explorers.

What the user sees: a header (model, corpus, settings), a "Run pipeline" button, one progress bar
per stage (load model, extract, similarity, centering, logit lens) and tabs:

- "Similarity": :class:`SimilarityExplorer` of the similarity result (with the activations, so the
  layer x layer view works);
- "Embeddings": :class:`EmbeddingExplorer` of the activations (PCA / UMAP, raw / centered);
- "Logit lens": :class:`LogitLensExplorer` of the model, for decoders with an unembedding;
  otherwise a note saying why the lens is undefined for it;
- "Neutrality": retrieval, language-ID accuracy and language variance share before and after
  centering on a held-out split (:func:`~xling_probe.centering.evaluate.neutrality`);
- "Neurons": on demand (a button: it runs the model over the corpus twice more), the LAPE
  language-specific neurons of the corpus and the perplexity change when each language's are switched
  off (:class:`NeuronsView`);
- "Interventions": steering a prompt from one language toward another at a chosen layer and strength
  (:class:`InterventionsView`; causal language models only, otherwise a note says why);
- "Distances": on demand (a button: URIEL+'s first use takes minutes), the correlation of the similarity
  results with URIEL+ language distances per layer, Mantel p-values and the partial r controlling for
  script (:class:`DistancesView`; at least 4 languages).

``Workbench(...).run()`` runs the same pipeline from a script and returns the workbench, whose
``acts``, ``result``, ``centered`` and ``neutrality`` then hold the outputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np

from xling_probe.centering.estimators import LanguageCentering
from xling_probe.data.corpus import ParallelCorpus, load_corpus
from xling_probe.errors import CorpusError, LensError, XlingProbeError
from xling_probe.extraction.extract import extract
from xling_probe.lens import check_lens_model
from xling_probe.models.loading import ModelHandle, load_model
from xling_probe.centering.evaluate import neutrality
from xling_probe.plots import neutrality_curves
from xling_probe.extraction.pooling import check_pooling
from xling_probe.measures.engine import similarity
from xling_probe.measures.registry import parse_metrics
from xling_probe.report.build import REPORT_METRICS

from ._base import figure_widget
from ._progress import StageProgress

STAGES = ("load model", "extract", "similarity", "centering", "logit lens")
TABS = ("Similarity", "Embeddings", "Logit lens", "Neutrality", "Neurons", "Interventions", "Distances")
MIN_SENTENCES = 4


#: Figure layout in teaching mode (projector): fonts about 1.5x the paper style's.
TEACHING_LAYOUT = {"font": {"size": 18}, "title": {"font": {"size": 22}}}
PLAIN_FONT = {"font": {"size": None}, "title": {"font": {"size": None}}}


def _walk(widget: Any):
    """Every widget under ``widget`` (boxes, tabs, explorers), depth first."""
    yield widget
    for child in getattr(widget, "children", ()) or ():
        yield from _walk(child)


def _note(text: str, color: str = "#555") -> W.HTML:
    return W.HTML(f"<div style='padding:1em;color:{color}'>{escape(text, quote=False)}</div>")


class Workbench(W.VBox):
    """Run extraction, similarity and centering on a model and a parallel corpus, and explore them.

    ``model``: None (the offline Gemma 3 270M), a :class:`ModelHandle`, or a path / hub id for
    ``load_model`` (loaded by the first run). ``corpus``: None (the bundled sample), a
    :class:`ParallelCorpus` or a corpus file (``.tsv``, ``.jsonl``, ``.csv``); it is cut to
    ``languages`` and its first ``sentences`` sentences. ``layers``/``pooling`` go to ``extract``
    (``cache``: reuse activations on disk), ``metrics``/``null_permutations``/``bootstrap`` to
    ``similarity``; ``neutrality_split`` is the held-out share of the neutrality tab (None: no
    neutrality). ``autorun=True`` runs the pipeline at once. ``teaching=True`` (or the *Teaching mode*
    button) is the projector layout: figure fonts about 1.5x, no export bars, no run settings.
    ``distance_options`` go to the Distances tab's :class:`DistancesView` (``source``: ``"urielplus"``, the
    default, or ``"uriel"``, fast; ``kinds``, ``permutations``). ``tuned_lens``: a
    :class:`~xling_probe.lens.TunedLens` of the model (``xp.train_tuned_lens(model)``) offered next to
    the logit lens in the Logit-lens tab.

    Attributes: ``run_button``, ``status`` (HTML), ``header`` (HTML), ``progress``
    (:class:`StageProgress`), ``tabs`` (Tab), ``explorers`` (``"similarity"``, ``"embeddings"``,
    ``"lens"`` -> explorer or None), ``lens_unavailable`` (why there is no lens, or None) and the
    outputs ``model``, ``corpus``, ``acts``, ``result``, ``centered``, ``neutrality``.
    """

    def __init__(self, model: Any = None, corpus: Any = None, *,
                 languages: Sequence[str] = ("en", "de", "fr", "zh", "ru", "ar"), sentences: int = 40,
                 layers: Any = "all", pooling: str = "mean",
                 metrics: Sequence[str] = REPORT_METRICS,
                 null_permutations: int = 10, bootstrap: int = 50, autorun: bool = False, cache: bool = True,
                 neutrality_split: float | None = 0.5, seed: int = 0, teaching: bool = False,
                 distance_options: dict[str, Any] | None = None, tuned_lens: Any = None) -> None:
        if isinstance(sentences, bool) or not isinstance(sentences, (int, np.integer)) or sentences < MIN_SENTENCES:
            raise CorpusError(f"sentences must be an integer >= {MIN_SENTENCES} (the metrics need several "
                              f"sentences per language), got {sentences!r}")
        if isinstance(languages, str) or len(list(languages)) < 2:
            raise CorpusError(f"the workbench compares languages: give at least two, got {languages!r}")
        self.metrics = parse_metrics(metrics)
        self.pooling = check_pooling(pooling)
        self.layers, self.null_permutations, self.bootstrap = layers, null_permutations, bootstrap
        self.cache, self.seed, self.neutrality_split = bool(cache), int(seed), neutrality_split
        self.distance_options = dict(distance_options or {})
        self.tuned_lens = tuned_lens
        self._full_corpus = self._load(corpus, list(languages))
        self.corpus = self._cut(self._full_corpus, list(languages), int(sentences))
        self._model_arg = model
        self.model: ModelHandle | None = model if isinstance(model, ModelHandle) else None
        self.acts = self.result = self.centered = self.neutrality = None
        self.neurons = self.perplexity = self.transliteration = None
        self.explorers: dict[str, Any] = {"similarity": None, "embeddings": None, "lens": None, "neurons": None,
                                          "interventions": None, "distances": None}
        self.lens_unavailable: str | None = None
        self.elapsed: float | None = None

        self.header = W.HTML(self._header_html())
        from .run_settings import RunSettings

        self.settings = RunSettings(self._full_corpus, languages=list(self.corpus.languages),
                                    sentences=int(sentences), pooling=self.pooling, metrics=self.metrics,
                                    null_permutations=null_permutations, bootstrap=bootstrap,
                                    on_change=self._settings_changed)
        self.settings_box = W.Accordion(children=[self.settings], titles=("Run settings",))
        self.run_button = W.Button(description="Run pipeline", icon="play", button_style="primary")
        self.run_button.on_click(self._on_click)
        self.teaching = W.ToggleButton(value=bool(teaching), description="Teaching mode", icon="television",
                                       tooltip="for a projector: bigger fonts, no export bars or run settings")
        self.teaching.observe(lambda _ch: self._present(), names="value")
        self.status = W.HTML("Press <b>Run pipeline</b> to load the model, extract and score.")
        self.progress = StageProgress(STAGES)
        self.tabs = W.Tab(children=[_note("Run the pipeline to fill this tab.") for _ in TABS], titles=TABS)
        super().__init__([self.header, self.settings_box, W.HBox([self.run_button, self.teaching, self.status]),
                          self.progress, self.tabs])
        self._present()
        if autorun:
            self.run()

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _load(corpus: Any, languages: list[str]) -> ParallelCorpus:
        """The whole corpus the run chooser picks from (the bundled sample: all its languages)."""
        if corpus is None:
            corpus = ParallelCorpus.sample()
        elif isinstance(corpus, (str, Path)):
            corpus = load_corpus(corpus)
        elif not isinstance(corpus, ParallelCorpus):
            raise CorpusError(f"corpus must be None (the bundled sample), a ParallelCorpus or a file path, "
                              f"got {type(corpus).__name__}")
        if len(corpus) < MIN_SENTENCES:
            raise CorpusError(f"the corpus has {len(corpus)} sentences; the workbench needs at least {MIN_SENTENCES}")
        return corpus

    @staticmethod
    def _cut(corpus: ParallelCorpus, languages: list[str], sentences: int) -> ParallelCorpus:
        """The corpus cut to ``languages`` (unknown ones raise the corpus's LanguageCodeError) and ``sentences``."""
        return corpus.select_languages(languages).head(sentences)

    def _settings_changed(self) -> None:
        """A setting of the run chooser changed: the header says what the next run will use."""
        try:
            chosen = self.settings.chosen()
        except CorpusError as err:
            self.status.value = f"<span style='color:#b00'>{escape(str(err), quote=False)}</span>"
            return
        self.corpus = self._cut(self._full_corpus, chosen["languages"], chosen["sentences"])
        self.pooling, self.metrics = check_pooling(chosen["pooling"]), chosen["metrics"]
        self.header.value = self._header_html()
        self.status.value = "Settings changed: press <b>Run pipeline</b> to compute them."

    def _header_html(self) -> str:
        if self.model is not None:
            m = self.model
            model = (f"<b>{escape(m.name)}</b> ({m.kind}, {m.n_blocks} blocks, width {m.d_model}, "
                     f"{'with' if m.has_unembedding else 'no'} unembedding, {m.backend}, {m.device})")
        elif self._model_arg is None:
            model = "<b>Gemma 3 270M</b> (offline default; loaded when the pipeline runs)"
        else:
            model = f"<b>{escape(str(self._model_arg))}</b> (loaded when the pipeline runs)"
        c = self.corpus
        source = c.meta.get("source", "corpus")
        corpus = (f"{len(c)} sentences × {len(c.languages)} languages ({', '.join(c.languages)}) "
                  f"from {escape(str(source))}")
        settings = (f"layers {escape(str(self.layers))}, {self.pooling} pooling; metrics {', '.join(self.metrics)}; "
                    f"{self.null_permutations} null permutations, {self.bootstrap} bootstrap resamples")
        return f"Model: {model}<br>Corpus: {corpus}<br>Settings: {settings}"

    # ------------------------------------------------------------------ pipeline
    def run(self) -> Workbench:
        """Run every stage synchronously and fill the tabs; errors are raised (the button shows them)."""
        start = time.perf_counter()
        self.settings.chosen()  # fewer than two languages or no metric: say so before anything runs
        self.progress.reset()
        self.status.value = "running…"
        with self.progress.stage("load model"):
            if self.model is None:
                self.model = load_model(self._model_arg)
        self.header.value = self._header_html()
        with self.progress.stage("extract"):
            t0 = time.perf_counter()
            self.acts = extract(self.model, self.corpus, layers=self.layers, pooling=self.pooling, cache=self.cache,
                                progress=False)
            self._acts_corpus = self.corpus  # the settings may change self.corpus before the next run
            spent = time.perf_counter() - t0
            if spent > 1.0:  # a cache hit says nothing about the rate
                self.settings.seconds_per_sequence = spent / max(1, len(self.corpus) * len(self.corpus.languages))
            self.settings.n_layers = len(self.acts.layers)
            self.settings.update_cost()
        with self.progress.stage("similarity"):
            self.result = similarity(self.acts, metrics=self.metrics, null_permutations=self.null_permutations,
                                     bootstrap=self.bootstrap, seed=self.seed, progress=False)
        with self.progress.stage("centering"):
            self.centered = LanguageCentering().fit_transform(self.acts)
            neutral = self._neutrality()
        lens = self._lens()
        self._fill_tabs(neutral, lens)
        self.elapsed = time.perf_counter() - start
        self.status.value = f"done in {self.elapsed:.1f} s"
        return self

    def _neutrality(self) -> W.Widget:
        """The neutrality tab's content (a figure, or why there is none)."""
        self.neutrality = None
        if self.neutrality_split is None:
            return _note("Neutrality was switched off (neutrality_split=None).")
        try:
            self.neutrality = neutrality(self.acts, self.neutrality_split, seed=self.seed, progress=False)
        except XlingProbeError as err:
            return _note(f"No neutrality report: {err}", "#b00")
        return figure_widget(neutrality_curves(self.neutrality))

    def _lens(self) -> Any:
        """The lens explorer, or None with ``lens_unavailable`` saying why."""
        from .lens_explorer import LogitLensExplorer

        self.lens_unavailable = None
        try:
            check_lens_model(self.model)
        except LensError as err:
            self.lens_unavailable = str(err)
            self.progress.skip("logit lens", "no unembedding" if self.model.kind == "decoder" else "encoder model")
            return None
        try:
            with self.progress.stage("logit lens"):
                return LogitLensExplorer(self.model, seed=self.seed, run_languages=list(self.corpus.languages),
                                         tuned=self.tuned_lens)
        except LensError as err:  # e.g. a context too short for the k-shot prompts
            self.lens_unavailable = f"the logit lens could not start: {err}"
            return None

    def _fill_tabs(self, neutral: W.Widget, lens: Any) -> None:
        from .embedding_explorer import EmbeddingExplorer
        from .similarity_explorer import SimilarityExplorer

        for old in self.explorers.values():
            close = getattr(old, "close", None)
            if close is not None:
                close()
        sim = SimilarityExplorer(self.result, self.acts)
        emb = EmbeddingExplorer(self.acts, seed=self.seed)
        steer, steer_tab = self._interventions()
        from .distances_view import DistancesView

        distances = self._distances_view()
        self.explorers = {"similarity": sim, "embeddings": emb, "lens": lens, "neurons": None, "interventions": steer,
                          "distances": distances}
        lens_tab = lens if lens is not None else _note(f"No logit lens for this model: {self.lens_unavailable}")
        self.tabs.children = [sim, emb, lens_tab, neutral, self._neurons_tab(), steer_tab, distances]
        self.tabs.titles = TABS
        self._present()

    def _present(self) -> None:
        """Teaching mode on or off: figure fonts, export bars and the run settings (every widget in the tabs)."""
        from ._base import ExportBar, LiveFigureWidget

        on = bool(self.teaching.value)
        self.settings_box.layout.display = "none" if on else None
        self.header.layout.display = None
        for w in _walk(self.tabs):
            if isinstance(w, LiveFigureWidget):
                w.present(TEACHING_LAYOUT if on else None)
                if not on:
                    w.layout.update(PLAIN_FONT)
            elif isinstance(w, ExportBar):
                w.layout.display = "none" if on else None

    def _interventions(self) -> tuple[Any, W.Widget]:
        """(the steering view or None, the tab's content)."""
        from .interventions_view import InterventionsView

        try:
            view = InterventionsView(self.model, self.acts, self.corpus, seed=self.seed)
        except XlingProbeError as err:
            return None, _note(f"No interventions for this model: {err}")
        return view, view

    def _distances_view(self) -> Any:
        """The Distances tab: distance correlations on demand, and the transliteration gap when the run has a
        non-Latin-script language."""
        from xling_probe.report.transliteration import transliteration_plan

        from .distances_view import DistancesView

        why = None
        try:
            transliteration_plan(self._acts_corpus, list(self.acts.languages), self._pivot())
        except XlingProbeError as err:
            why = str(err)
        return DistancesView(self.result, seed=self.seed, **self.distance_options,
                             transliterate=None if why else self.transliteration_gap, transliteration_unavailable=why)

    def _pivot(self) -> str:
        langs = list(self.acts.languages)
        return "en" if "en" in langs else langs[0]

    def transliteration_gap(self, *, n_boot: int | None = None, ci: float = 0.95) -> Any:
        """The matched - random gap of the run's non-Latin-script languages (against a Latin-script reference) for
        the original and the uroman-romanized text (:func:`~xling_probe.transliteration.transliteration_gap`):
        the romanized sentences are extracted as the run extracted the original (layers, pooling, cache);
        ``n_boot`` default: the run's ``bootstrap``. Stored in ``.transliteration``."""
        from xling_probe.report.transliteration import transliteration_plan
        from xling_probe.transliteration import romanize, transliteration_gap

        if self.acts is None or self.model is None:
            raise XlingProbeError("run the pipeline first (the transliteration compares with its activations)")
        langs, pairs, _ = transliteration_plan(self._acts_corpus, list(self.acts.languages), self._pivot())
        roman = romanize(self._acts_corpus.select_languages(langs), cache=self.cache)
        romanized = extract(self.model, roman, layers=self.layers, pooling=self.pooling, cache=self.cache,
                            progress=False)
        self.transliteration = transliteration_gap(self.acts.sel(languages=langs), romanized, pairs=pairs,
                                                   n_boot=self.bootstrap if n_boot is None else n_boot, ci=ci,
                                                   seed=self.seed)
        return self.transliteration

    def _neurons_tab(self) -> W.Widget:
        """A button that finds the language neurons (slow: two more passes), then the view in its place."""
        button = W.Button(description="Find language neurons", icon="search", button_style="primary")
        status = W.HTML(f"LAPE on {len(self.corpus)} sentences × {len(self.corpus.languages)} languages: 80% to "
                        "select the neurons, 20% to measure the perplexity change. It runs the model over the "
                        "corpus twice more.")
        box = W.VBox([W.HBox([button, status])])

        def click(_b: Any) -> None:
            button.disabled = True
            status.value = "running… (activation probabilities, then the perplexity with each language's neurons off)"
            start = time.perf_counter()
            try:
                box.children = [self.find_neurons()]
            except Exception as err:  # shown in the tab; find_neurons() from a script raises
                status.value = f"<span style='color:#b00'>{type(err).__name__}: {escape(str(err), quote=False)}</span>"
                button.disabled = False
            else:
                self.status.value = f"language neurons found in {time.perf_counter() - start:.1f} s"

        button.on_click(click)
        return box

    def find_neurons(self, **options: Any) -> Any:
        """Run the LAPE analysis on the workbench's corpus (options of
        :func:`~xling_probe.report.neurons.run_neuron_analysis`); returns the :class:`NeuronsView`."""
        from xling_probe.report.neurons import run_neuron_analysis

        from .neurons_view import NeuronsView

        if self.model is None:
            raise XlingProbeError("run the pipeline first (the model is loaded by it)")
        _, self.neurons, self.perplexity = run_neuron_analysis(self.model, self.corpus, seed=self.seed,
                                                               **{"progress": False, **options})
        view = NeuronsView(self.neurons, self.perplexity)
        self.explorers["neurons"] = view
        if self.teaching.value:
            for w in _walk(view):
                if hasattr(w, "present"):
                    w.present(TEACHING_LAYOUT)
        return view

    def _on_click(self, _button: Any) -> None:
        self.run_button.disabled = True
        try:
            self.run()
        except Exception as err:  # the UI shows every failure; scripts calling run() get the exception
            self.status.value = f"<span style='color:#b00'>{type(err).__name__}: {escape(str(err), quote=False)}</span>"
        finally:
            self.run_button.disabled = False
