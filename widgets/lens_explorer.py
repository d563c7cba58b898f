"""Logit-lens explorer: what each layer of a decoder would write next, for a word-list item or any prompt.

Two figures:

- ``"heatmap"``: the layer x position lens table of the current prompt
  (:func:`~xling_probe.plots.lens_heatmap` of the table of :func:`~xling_probe.lens.prompt_lens`, equal
  to :func:`~xling_probe.lens.lens_table`), coloured by the top-1 probability or by the entropy (``.color``);
- ``"languages"``: per layer, the lens probability at the last position of the token set of the
  current item's word in each chosen language (``.languages``), one line per language in its
  fixed colour. In free-prompt mode the lines still use the words of the selected item, so a
  hand-written prompt can be checked for the same concept.

In ``"word item"`` mode the prompt is the seeded k-shot translation prompt of the item
(:func:`~xling_probe.lens.build_prompts`, the one :func:`~xling_probe.lens.language_drift` uses) and
changing ``.item``, ``.source`` or ``.target`` runs the lens at once. In ``"free prompt"`` mode the
text of ``.prompt`` runs when ``.run_button`` is pressed (or ``.run()`` is called).

The model runs once per distinct prompt text: its :class:`~xling_probe.lens.PromptLens` (table and
last-position states) is cached, so going back to an item is instant, and ``.color`` / ``.languages``
only re-render (new curves come from the kept states, :meth:`~xling_probe.lens.PromptLens.probabilities`).
Errors (an empty prompt, a prompt longer than the context, a word without tokens) appear in
``.status`` and the old figures stay.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from html import escape
from typing import Any

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from xling_probe.data.languages import language_name
from xling_probe.errors import LensError, XlingProbeError
from xling_probe.lens import PositionTable, PromptLens, build_prompts, check_lens_model, free_prompt, load_words
from xling_probe.lens import prompt_lens, token_set
from xling_probe.models.loading import ModelHandle, load_model
from xling_probe.plots import language_color, lens_heatmap
from xling_probe.plots.style import TEMPLATE, register

from ._base import ExportBar, WidgetLog, figure_widget, refresh

MODES = ("word item", "free prompt")
FIGURES = ("heatmap", "languages")


def language_curves(layers: Sequence[int], curves: Mapping[str, tuple[str, np.ndarray]], *,
                    title: str = "Lens probability of the word's tokens at the last position") -> go.Figure:
    """One line per language: ``curves[lang] = (word, P(token set) per layer)``."""
    register()
    fig = go.Figure()
    for lang, (word, values) in curves.items():
        fig.add_trace(go.Scatter(x=list(layers), y=np.asarray(values, float), mode="lines+markers",
                                 name=f"P({lang}) {word}", line=dict(color=language_color(lang), width=2),
                                 marker=dict(size=5),
                                 hovertemplate=f"{lang} '{word}'<br>layer %{{x}}: %{{y:.4f}}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, height=420, title=title, legend=dict(orientation="h", y=-0.2, x=0),
                      xaxis=dict(title="layer (residual stream)"), yaxis=dict(title="probability", range=[0, 1]))
    return fig


class LogitLensExplorer(W.VBox):
    """Interactive logit lens of one decoder (see the module docstring for what it shows).

    ``model`` is a :class:`~xling_probe.models.loading.ModelHandle` or anything ``load_model`` accepts; an
    encoder raises the :class:`LensError` of :func:`~xling_probe.lens.check_lens_model`. ``words``
    is a word list (default: the bundled one), ``source``/``target`` the translation direction of
    item prompts, ``latent`` the third language shown by default, ``shots`` the examples per
    prompt (drawn with ``seed``), ``top_k`` the tokens listed per heatmap cell. ``prompt`` starts
    in free-prompt mode with that text. ``run_languages`` (the Workbench passes the languages of
    its run) limits Source, Target and Curves to those languages (default: every language of the
    word list); a source / target outside them falls back to the first offered ones.

    The curves follow the direction: changing Source or Target replaces the old source / target
    in the curves by the new one (other chosen languages stay). While the model runs on a new
    prompt, ``.status`` says so and the old figures stay until the new ones are ready.
    """

    def __init__(self, model: Any, *, words: Any = None, source: str = "fr", target: str = "zh", latent: str = "en",
                 shots: int = 3, top_k: int = 5, prompt: str | None = None, seed: int = 0,
                 run_languages: Sequence[str] | None = None, tuned: Any = None) -> None:
        handle = model if isinstance(model, ModelHandle) else load_model(model)
        self.model = check_lens_model(handle)
        self.words = load_words(words)
        offered = self._offered(run_languages)
        src, tgt, lat = (self.words.resolve_language(x) for x in (source, target, latent))
        if tgt not in offered:
            tgt = next((c for c in offered if c != src), offered[0])
        if src not in offered:
            src = next((c for c in offered if c != tgt), offered[0])
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise LensError(f"top_k must be an integer >= 1, got {top_k!r}")
        if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 0:
            raise LensError(f"shots must be an integer >= 0, got {shots!r}")
        self.top_k, self.shots, self.seed = int(top_k), int(shots), int(seed)
        from xling_probe.lens.tuned import checked_tuned

        self.tuned = checked_tuned(tuned, self.model)
        self.log = WidgetLog(type(self).__name__)
        self.n_runs = 0  # prompts sent through the model (cache misses)
        self.busy_log: list[str] = []  # every "computing …" status shown, in order
        self.error: str | None = None  # the last error shown in .status (None after a good run)
        self.notes: list[str] = []  # languages left out of the curves on screen, and why
        self._lens: dict[tuple[str, str], PromptLens] = {}  # (lens kind, text) -> its lens (table + last states)
        self._curves: dict[tuple[str, str, str, int], np.ndarray] = {}
        self._held = 0
        self._checked = False
        self._shown: tuple[str, int] | None = None  # (prompt text, item index) on screen

        langs = [(f"{c} ({language_name(c)})", c) for c in offered]
        self._direction = (src, tgt)
        self.mode = W.ToggleButtons(options=MODES, value=MODES[1] if prompt is not None else MODES[0],
                                    description="Mode")
        self.source = W.Dropdown(options=langs, value=src, description="Source")
        self.target = W.Dropdown(options=langs, value=tgt, description="Target")
        self.item = W.Dropdown(options=self._items(src, tgt), description="Item")
        self.prompt = W.Textarea(value=prompt or "", rows=6, layout=W.Layout(width="100%"),
                                 placeholder="Any text; the lens reads every position")
        self.run_button = W.Button(description="Run lens", icon="play", button_style="primary")
        default = tuple(dict.fromkeys(c for c in (lat, src, tgt) if c in offered))
        self.languages = W.SelectMultiple(options=langs, value=default, rows=min(6, len(langs)), description="Curves")
        self.color = W.ToggleButtons(options=("prob", "entropy"), value="prob", description="Colour")
        self.lens_kind = W.ToggleButtons(
            options=(("logit lens", "logit"), ("tuned lens", "tuned")), value="logit", description="Lens",
            disabled=tuned is None,
            tooltips=("unembed(final_norm(h_l))",
                      "unembed(final_norm(h_l + A_l h_l + b_l)), translators trained on multilingual text"
                      if tuned is not None else "no tuned lens given: Workbench(..., tuned_lens=xp.train_tuned_lens(model))"))
        self.status = W.HTML("")
        self.figures = {name: figure_widget() for name in FIGURES}
        self.export_choice = W.Dropdown(options=FIGURES, value="heatmap", description="Figure",
                                        layout=W.Layout(width="220px"))
        self.export_bar = ExportBar(lambda: self.figures[self.export_choice.value], "lens_heatmap")
        self.export_choice.observe(lambda ch: setattr(self.export_bar.path, "value", f"lens_{ch['new']}"), "value")

        self.mode.observe(self._on_mode, "value")
        for control in (self.source, self.target):
            control.observe(self._on_direction, "value")
        self.item.observe(self._on_item, "value")
        self.languages.observe(lambda _: self._guarded(lambda: self._render(heatmap=False)), "value")
        self.color.observe(lambda _: self._guarded(lambda: self._render(languages=False)), "value")
        self.lens_kind.observe(lambda _: self._guarded(self._on_lens_kind), "value")
        self.run_button.on_click(lambda _: self.run())
        self._sync_mode()
        super().__init__([
            W.HBox([self.mode, self.color, self.lens_kind]), W.HBox([self.source, self.target, self.item]),
            W.HBox([self.prompt, W.VBox([self.run_button, self.languages])]), self.status,
            self.figures["heatmap"], self.figures["languages"], W.HBox([self.export_choice, self.export_bar]),
        ])
        self.run(raise_errors=True)

    # ------------------------------------------------------------------ public
    def run(self, *, raise_errors: bool = False) -> PositionTable | None:
        """Run the lens for the current item (word mode) or the text of ``.prompt`` (free mode) and
        update both figures once. Returns the prompt's table, or None after an error (shown in
        ``.status``, old figures kept); ``raise_errors=True`` raises the :class:`LensError` instead."""
        try:
            text, k = self._current()
            table = self._prompt_lens(text).table
        except LensError as err:
            self._fail(err)
            if raise_errors:
                raise
            return None
        if self.mode.value == MODES[0]:
            self.prompt.value = text  # show the item's prompt (not observed: typing never runs the model)
        self._shown = (text, k)
        self._render()
        return table

    def export(self, name: str = "heatmap", path: Any = None, formats: Sequence[str] | None = None) -> list:
        """Write figure ``name`` ("heatmap" or "languages") with :func:`~xling_probe.plots.save_figure`."""
        if name not in self.figures:
            raise LensError(f"unknown figure {name!r}; use one of {', '.join(FIGURES)}")
        self.export_choice.value = name
        return self.export_bar.export(path, formats)

    @property
    def table(self) -> PositionTable | None:
        """The lens table on screen."""
        return self._lens[(self.lens_kind.value, self._shown[0])].table if self._shown else None

    # ------------------------------------------------------------------ computing (cached)
    def _offered(self, run_languages: Sequence[str] | None) -> list[str]:
        """The word list's languages that are also in ``run_languages`` (all when None), in the list's order."""
        if run_languages is None:
            return list(self.words.languages)
        wanted = set()
        for code in run_languages:
            try:
                wanted.add(self.words.resolve_language(code))
            except XlingProbeError:
                continue  # a language of the run without words in this list (or no such code)
        offered = [c for c in self.words.languages if c in wanted]
        if len(offered) < 2:
            raise LensError(f"the word list has words for {len(offered)} of the run's languages "
                            f"({', '.join(run_languages)}); the lens needs two (a source and a target)")
        return offered

    def _items(self, src: str, tgt: str) -> list[str]:
        return [c for k, c in enumerate(self.words.concepts) if self.words.has(src, k) and self.words.has(tgt, k)]

    def _current(self) -> tuple[str, int]:
        k = self.words.concepts.index(self.item.value) if self.item.value is not None else -1
        if self.mode.value == MODES[1]:
            return free_prompt(self.prompt.value).text, k
        if k < 0:
            raise LensError(f"no item has words in both {self.source.value} and {self.target.value}")
        p = build_prompts(self.words, task="translation", source=self.source.value, target=self.target.value,
                          shots=self.shots, seed=self.seed, indices=[k])[0]
        return p.text, k

    def _prompt_lens(self, text: str) -> PromptLens:
        kind = self.lens_kind.value
        if (kind, text) not in self._lens:
            what = "item prompt" if self.mode.value == MODES[0] else "prompt"
            self.status.value = (f"<span style='color:#1f5fa8'>⏳ computing the {kind} lens of the {what} "
                                 f"({len(text)} characters, {self.source.value} → {self.target.value})…</span>")
            self.busy_log.append(self.status.value)
            self._lens[(kind, text)] = prompt_lens(self.model, text, top_k=self.top_k, check=not self._checked,
                                                   tuned=self.tuned if kind == "tuned" else None)
            self._checked = True
            self.n_runs += 1
        return self._lens[(kind, text)]

    def _curves_for(self, text: str, k: int, notes: list[str]) -> dict[str, tuple[str, np.ndarray]]:
        """P(token set of the item's word) per layer for each chosen language (cached per text)."""
        words, todo = {}, {}
        kind = self.lens_kind.value
        for lang in self.languages.value:
            alts = self.words.alternatives(lang, k) if k >= 0 else ()
            if not alts:
                notes.append(f"no {lang} word for this item")
                continue
            ids = token_set(self.model.tokenizer, alts, language=lang).ids
            if not ids:
                notes.append(f"the {lang} word '{alts[0]}' has an empty token set in this tokenizer")
                continue
            words[lang] = alts[0]
            if (kind, text, lang, k) not in self._curves:
                todo[lang] = ids
        if todo:
            for lang, p in self._lens[(kind, text)].probabilities(todo).items():
                self._curves[(kind, text, lang, k)] = p
        return {lang: (w, self._curves[(kind, text, lang, k)]) for lang, w in words.items()}

    # ------------------------------------------------------------------ rendering
    def _render(self, *, heatmap: bool = True, languages: bool = True) -> None:
        if self._shown is None:
            return
        text, k = self._shown
        kind = self.lens_kind.value
        if (kind, text) not in self._lens:
            return
        table = self._lens[(kind, text)].table
        notes: list[str] = []
        if heatmap:
            refresh(self.figures["heatmap"], lens_heatmap(table, color=self.color.value))
            self.log.bump("heatmap")
        if languages:
            concept = self.words.concepts[k] if k >= 0 else "?"
            curves = self._curves_for(text, k, notes)
            refresh(self.figures["languages"], language_curves(
                table.layers, curves,
                title=f"'{concept}': {kind}-lens probability of its word at the last position"))
            self.log.bump("languages")
        if languages:
            self.notes = notes
        self.error = None
        head = f"{len(table.input_ids)} tokens, {len(table.layers)} layers, read through the {kind} lens"
        if self.mode.value == MODES[0] and k >= 0:
            expected = escape(self.words.word(self.target.value, k), quote=False)
            head += f"; the prompt asks for {self.target.value} '{expected}'"
        warn = "".join(f"<br><span style='color:#a60'>{escape(n, quote=False)}: left out</span>" for n in notes)
        self.status.value = head + warn

    def _fail(self, err: Exception) -> None:
        self.error = str(err)
        self.status.value = f"<span style='color:#b00'>{escape(str(err), quote=False)}</span>"

    # ------------------------------------------------------------------ events
    @contextmanager
    def _hold(self) -> Iterator[None]:
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1

    def _guarded(self, action) -> None:
        if not self._held:
            action()

    def _sync_mode(self) -> None:
        free = self.mode.value == MODES[1]
        self.prompt.disabled = not free
        self.run_button.disabled = not free

    def _on_mode(self, _change: Any) -> None:
        self._sync_mode()
        if self._held:
            return
        if self.mode.value == MODES[0]:
            self.run()

    def _on_direction(self, _change: Any) -> None:
        if self._held:
            return
        with self._hold():
            options = self._items(self.source.value, self.target.value)
            keep = self.item.value if self.item.value in options else (options[0] if options else None)
            self.item.options = options
            self.item.value = keep
            old = self._direction
            self._direction = (self.source.value, self.target.value)
            kept = [c for c in self.languages.value if c not in old]  # the curves follow the direction
            self.languages.value = tuple(dict.fromkeys(kept + list(self._direction)))
        self._on_item(None)

    def _on_lens_kind(self) -> None:
        """Read the shown prompt through the other lens (one model run the first time, cached after)."""
        if self._shown is None:
            return
        try:
            self._prompt_lens(self._shown[0])
        except Exception as err:  # noqa: BLE001 - shown in the widget
            self._fail(err)
            return
        self._render()

    def _on_item(self, _change: Any) -> None:
        if self._held:
            return
        if self.mode.value == MODES[0]:
            self.run()
        elif self._shown is not None:  # free prompt: same text, the curves follow the item's words
            k = self.words.concepts.index(self.item.value) if self.item.value is not None else -1
            self._shown = (self._shown[0], k)
            self._render(heatmap=False)
