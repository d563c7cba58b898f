"""Interactive 2-D map of sentence representations, one layer at a time, coloured by language.

What the user sees: a layer slider, PCA/UMAP and raw/centered toggles, a status line, the map and
an export bar. Each point is one sentence in one language (colour = the language's colour in every
xling_probe figure); hovering shows the language, the sentence id and the sentence text when the
activations carry texts. "centered" subtracts each language's mean at that layer (language
centering fitted on the shown sentences), so clusters that merge there were a language offset.

Projections are cached per (layer, method, view): going back to a layer is instant, and
``explorer.computed`` counts the projections actually computed. UMAP takes seconds per layer, so
with ``background=True`` it runs in a worker thread while the status line says "computing UMAP for
layer N…"; the map is redrawn when it finishes, unless the user moved on meanwhile, in which case
the result is only cached. ``wait()`` joins pending work (scripts, tests, benchmarks).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from collections.abc import Sequence

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xling_probe.centering.estimators import LanguageCentering
from xling_probe.errors import ExportError, MetricError
from xling_probe.extraction.activations import Activations
from xling_probe.labels import layer_position
from xling_probe.plots import project_2d
from xling_probe.plots.embedding import axis_titles
from xling_probe.plots.embedding import METHODS
from xling_probe.plots.style import TEMPLATE, language_color, register

from ._base import ExportBar, WidgetLog, figure_widget, refresh

VIEWS = ("raw", "centered")
Key = tuple[int, str, str]  # (layer, method, view)


def subsample(acts: Activations, max_points: int | None, seed: int) -> Activations:
    """At most ``max_points`` points in all: the same randomly chosen sentences in every language."""
    n_lang, n = len(acts.languages), acts.n_sentences
    if max_points is None or n_lang * n <= max_points:
        return acts
    if int(max_points) < 3 * n_lang:
        raise MetricError(f"max_points={max_points} leaves fewer than 3 sentences per language "
                          f"({n_lang} languages); use max_points >= {3 * n_lang} or None")
    keep = np.sort(np.random.default_rng(seed).choice(n, int(max_points) // n_lang, replace=False))
    return acts.sel(ids=[acts.ids[i] for i in keep])


def _layer(layer: int, acts: Activations) -> int:
    """The label of an extracted layer (:func:`xling_probe.labels.layer_position`: negative counts from the last)."""
    return acts.layers[layer_position(layer, acts.layers)]


class EmbeddingExplorer(W.VBox):
    """2-D PCA/UMAP map of one layer of ``acts``, raw or language-centered.

    Parameters
    ----------
    acts: :class:`Activations` (layer x language x sentence x hidden).
    method: ``"pca"`` (exact, instant) or ``"umap"`` (umap-learn, seeded by ``seed``).
    layer: initial residual-stream layer (default: the middle extracted layer; negative counts from the last).
    centered: start on the centered view.
    background: compute UMAP in a worker thread (the widget stays responsive); False computes
        every projection synchronously when it is asked for.
    seed: UMAP's random_state and the sentence sample of ``max_points``.
    max_points: show at most this many points (the same random sentences in every language).

    Attributes: controls ``layer`` (SelectionSlider), ``method`` and ``view`` (ToggleButtons);
    ``status`` (HTML: what is being computed), ``figures`` (``{"map": FigureWidget}``), ``log``
    (refreshes per figure), ``computed`` (Counter of projections computed per
    ``(layer, method, view)``), ``acts`` (the activations shown, after ``max_points``),
    ``export_bar``.
    """

    def __init__(self, acts: Activations, *, method: str = "pca", layer: int | None = None, centered: bool = False,
                 background: bool = True, seed: int = 0, max_points: int | None = None) -> None:
        if not isinstance(acts, Activations):
            raise MetricError(f"EmbeddingExplorer needs an Activations object, got {type(acts).__name__}")
        if method not in METHODS:
            raise MetricError(f"method must be one of {METHODS}, got {method!r}")
        layer = acts.layers[len(acts.layers) // 2] if layer is None else _layer(layer, acts)
        if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer))):
            raise MetricError(f"max_points must be a positive int or None, got {max_points!r}")
        self.acts = subsample(acts, max_points, seed)
        self.seed, self.background = int(seed), bool(background)
        self.computed: Counter[Key] = Counter()
        #: explained-variance share of the two axes per computed PCA selection (None for UMAP)
        self.variance: dict[Key, np.ndarray | None] = {}
        self._cache: dict[Key, np.ndarray] = {}
        self._pending: dict[Key, Future] = {}
        self._keep: set[Key] = set()  # pending keys asked for by precompute (never cancelled)
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None
        self._centered: Activations | None = None
        self._hover = {lang: self._hover_text(lang) for lang in self.acts.languages}
        self.log = WidgetLog(type(self).__name__)
        self.layer = W.SelectionSlider(options=list(self.acts.layers), value=layer, description="layer",
                                       continuous_update=False)
        self.method = W.ToggleButtons(options=[("PCA", "pca"), ("UMAP", "umap")], value=method, description="method")
        self.view = W.ToggleButtons(options=[("raw", "raw"), ("centered", "centered")],
                                    value="centered" if centered else "raw", description="view")
        self.status = W.HTML("")
        self.figures = {"map": figure_widget()}
        self.export_bar = ExportBar(lambda: self.figures["map"], "embedding_map")
        for control in (self.layer, self.method, self.view):
            control.observe(lambda _change: self._show(), "value")
        super().__init__([W.HBox([self.layer, self.method, self.view]), self.status, self.figures["map"],
                          self.export_bar])
        self._show()

    # ------------------------------------------------------------------ projections
    def key(self) -> Key:
        """The current selection: (layer, method, view)."""
        return (self.layer.value, self.method.value, self.view.value)

    def _source(self, view: str) -> Activations:
        if view == "raw":
            return self.acts
        with self._lock:
            if self._centered is None:
                self._centered = LanguageCentering().fit_transform(self.acts)
            return self._centered

    def _compute(self, key: Key) -> np.ndarray:
        """Project one (layer, method, view) to [language, sentence, 2] and cache it."""
        layer, method, view = key
        src = self._source(view)
        x = src.data[src.layer_index(layer)]
        xy, ratio = project_2d(x.reshape(x.shape[0] * x.shape[1], -1), method, seed=self.seed, return_variance=True)
        xy = xy.reshape(*x.shape[:2], 2)
        with self._lock:
            self._cache[key], self.computed[key] = xy, self.computed[key] + 1
            self.variance[key] = ratio
        return xy

    def projection(self, layer: int | None = None, method: str | None = None, view: str | None = None) -> np.ndarray:
        """Coordinates [language, sentence, 2] of a selection (default: the current one), computed
        synchronously unless cached (waits for a pending background job of the same selection)."""
        key = self._check_key(layer, method, view)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            future = self._pending.get(key)
        if future is not None:
            if not future.cancel():  # already running: wait for it
                future.result()
                return self._cache[key]
            with self._lock:
                self._forget(key)
        return self._compute(key)

    def _check_key(self, layer: int | None, method: str | None, view: str | None) -> Key:
        cur = self.key()
        key = (cur[0] if layer is None else _layer(layer, self.acts), method or cur[1], view or cur[2])
        if key[1] not in METHODS:
            raise MetricError(f"method must be one of {METHODS}, got {key[1]!r}")
        if key[2] not in VIEWS:
            raise MetricError(f"view must be one of {VIEWS}, got {key[2]!r}")
        return key

    # ------------------------------------------------------------------ background work
    def _submit(self, key: Key, *, keep: bool) -> Future:
        with self._lock:
            if keep:
                self._keep.add(key)
            if key in self._pending:
                return self._pending[key]
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xling-embedding")
            future = self._executor.submit(self._job, key)
            self._pending[key] = future
            return future

    def _job(self, key: Key) -> None:
        try:
            xy = self._compute(key)
        except Exception as err:
            with self._lock:
                self._forget(key)
                if self.key() == key:
                    self.status.value = f"<span style='color:#b00'>{key[1].upper()} failed: {err}</span>"
            raise
        with self._lock:
            self._forget(key)
            if self.key() == key:  # the user may have moved on: then the result is only cached
                self._draw(key, xy)

    def _forget(self, key: Key) -> None:
        self._pending.pop(key, None)
        self._keep.discard(key)

    def _cancel_stale(self, current: Key) -> None:
        """Drop queued (not started) jobs of selections the user has left, except precomputed ones."""
        for key, future in list(self._pending.items()):
            if key != current and key not in self._keep and future.cancel():
                self._forget(key)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the pending projections are done (True) or ``timeout`` seconds pass (False).
        Re-raises the first error of a finished job."""
        with self._lock:
            futures = list(self._pending.values())
        done, not_done = wait_futures(futures, timeout=timeout)
        for future in done:
            if not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        return not not_done

    def precompute(self, layers: Sequence[int] | None = None, method: str | None = None,
                   view: str | None = None) -> int:
        """Compute (in the background when ``background=True``) the projections of ``layers``
        (default: all) for ``method``/``view`` (default: the current ones); returns how many were
        started or computed (cached ones are skipped)."""
        keys = [self._check_key(layer, method, view) for layer in (layers if layers is not None else self.acts.layers)]
        started = 0
        for key in keys:
            with self._lock:
                if key in self._cache:
                    continue
            started += 1
            if self.background:
                self._submit(key, keep=True)
            else:
                self._compute(key)
        return started

    # ------------------------------------------------------------------ figure
    def _hover_text(self, lang: str) -> list[str]:
        texts = (self.acts.texts or {}).get(lang)
        return [f"{lang} {sid}" + (f"<br>{texts[i][:80]}" if texts else "") for i, sid in enumerate(self.acts.ids)]

    def figure(self, key: Key | None = None, xy: np.ndarray | None = None) -> go.Figure:
        """The map of a selection as a plain Figure: the traces of ``embedding_map`` for one panel."""
        key = key or self.key()
        layer, method, view = key
        xy = self.projection(*key) if xy is None else xy
        register()
        fig = make_subplots(rows=1, cols=1, subplot_titles=[f"{view} ({method.upper()})"])
        for gi, lang in enumerate(self.acts.languages):
            fig.add_trace(go.Scatter(x=xy[gi, :, 0], y=xy[gi, :, 1], mode="markers", name=lang, legendgroup=lang,
                                     text=self._hover[lang], hovertemplate="%{text}<extra></extra>",
                                     marker=dict(color=language_color(lang), size=6, opacity=0.85,
                                                 line=dict(width=0.5, color="white"))))
        x_title, y_title = axis_titles(method, self.variance.get(key))  # PCA: "PC1 (23.4% of variance)"
        fig.update_xaxes(title_text=x_title, showticklabels=method == "pca")
        fig.update_yaxes(title_text=y_title, showticklabels=method == "pca")
        fig.update_layout(template=TEMPLATE, width=620, height=480, title=f"Sentence representations at layer {layer}")
        return fig

    def _draw(self, key: Key, xy: np.ndarray) -> None:
        with self._lock:
            refresh(self.figures["map"], self.figure(key, xy))
            self.log.bump("map")
            self.status.value = ""

    def _show(self) -> None:
        key = self.key()
        with self._lock:
            self._cancel_stale(key)
            xy = self._cache.get(key)
            if xy is None and self.background and key[1] == "umap":
                self._submit(key, keep=False)
                self.status.value = f"computing {key[1].upper()} for layer {key[0]} ({key[2]})…"
                return
        if xy is None:
            self.status.value = f"computing {key[1].upper()} for layer {key[0]} ({key[2]})…"
            try:
                xy = self._compute(key)
            except MetricError as err:
                self.status.value = f"<span style='color:#b00'>{err}</span>"
                raise
        self._draw(key, xy)

    # ------------------------------------------------------------------ export / cleanup
    def export(self, name: str = "map", path: str | Path | None = None,
               formats: Sequence[str] | None = None) -> list[Path]:
        """Write the map as PNG/SVG/PDF; returns the written paths (empty after a failure)."""
        if name != "map":
            raise ExportError(f"unknown figure {name!r}; this explorer has one figure, 'map'")
        return self.export_bar.export(path, formats)

    def close(self) -> None:
        """Cancel queued projections, let a running one finish in the background, close the widget."""
        if hasattr(self, "_lock"):  # also called by __del__ after a constructor error
            with self._lock:
                for future in self._pending.values():
                    future.cancel()
                if self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=True)
        super().close()

    def __repr__(self) -> str:
        return (f"EmbeddingExplorer(layer={self.layer.value}, method={self.method.value!r}, view={self.view.value!r}, "
                f"points={len(self.acts.languages) * self.acts.n_sentences}, cached={len(self._cache)})")
