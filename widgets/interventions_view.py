"""Interventions view: steer a prompt from one language toward another and see what changes.

:class:`InterventionsView` (a tab-able ``VBox``) over a causal model and mean-pooled activations of
parallel sentences (the steering vectors ``v_l(A -> B) = mean_B,l - mean_A,l``, docs/interventions.md):

- ``.source`` / ``.target`` (dropdowns), ``.layer`` (slider over the activations' layers), ``.alpha``
  (strength; 0 = no intervention), ``.prompt`` (text; default: the first half of a sentence of the corpus
  in the source language), ``.max_new_tokens``;
- ``.run_button`` applies them: ``.figure`` shows the top next tokens without and with the steering vector
  added at that layer (every position), ``.continuations`` the greedy continuation of both runs and the
  language the detector reads in each; while it runs the button is disabled and ``.status`` says so;
- ``.control`` (checkbox): add a random vector of the same norm instead (the control of the sweeps).

Vectors are computed once per (source, target) pair and kept. ``run()`` does the same from a script and
returns the numbers it showed (``.last``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any

import ipywidgets as W
import numpy as np

from xling_probe.errors import InterventionError, XlingProbeError
from xling_probe.interventions import AddVector, generate, next_token_logprobs, steering_vectors
from xling_probe.interventions.run import check_causal
from xling_probe.interventions.steering import sentence_prefix
from xling_probe.plots import next_token_bars

from ._base import ExportBar, WidgetLog, figure_widget, message_figure, refresh

TOP_K = 8


class InterventionsView(W.VBox):
    """Steering a prompt's language at one layer: next-token distribution and continuation, with and without."""

    def __init__(self, model: Any, acts: Any, corpus: Any = None, *, source: str | None = None,
                 target: str | None = None, layer: int | None = None, alpha: float = 4.0,
                 fit_ids: Sequence[str] | None = None, seed: int = 0, autorun: bool = False) -> None:
        check_causal(model)
        if len(acts.languages) < 2:
            raise InterventionError("steering needs activations of at least two languages")
        self.model, self.acts, self.corpus, self.seed = model, acts, corpus, int(seed)
        self.fit_ids = list(fit_ids) if fit_ids is not None else None
        self.log = WidgetLog()
        self._vectors: dict[tuple[str, str], Any] = {}
        self.last: dict[str, Any] | None = None
        langs = list(acts.languages)
        src = acts.languages[acts.language_index(source)] if source else langs[0]
        tgt = acts.languages[acts.language_index(target)] if target else next(l for l in langs if l != src)
        layers = list(acts.layers)
        mid = layer if layer is not None else layers[len(layers) // 2]
        if mid not in layers:
            raise InterventionError(f"layer {mid} is not among the activations' layers {layers}")
        self.source = W.Dropdown(options=langs, value=src, description="From")
        self.target = W.Dropdown(options=langs, value=tgt, description="Toward")
        self.layer = W.SelectionSlider(options=layers, value=mid, description="Layer", continuous_update=False)
        self.alpha = W.FloatSlider(value=float(alpha), min=-4.0, max=16.0, step=0.5, description="Strength α",
                                   continuous_update=False)
        self.control = W.Checkbox(value=False, description="random vector of the same norm (control)", indent=False)
        self.prompt = W.Textarea(value=self._default_prompt(src), description="Prompt",
                                 layout=W.Layout(width="95%", height="4em"))
        self.max_new_tokens = W.BoundedIntText(value=16, min=1, max=128, description="New tokens")
        self.run_button = W.Button(description="Run", icon="play", button_style="primary")
        self.status = W.HTML("Pick languages, a layer and a strength, then press <b>Run</b>.")
        self.continuations = W.HTML()
        self.figure = figure_widget(message_figure("Press Run to compare the next tokens without and with steering",
                                                   title="Next-token probabilities", height=320))
        self.export = ExportBar(lambda: self.figure, default_name="steering_next_tokens")
        self.run_button.on_click(lambda _b: self._on_click())
        self.source.observe(lambda ch: self._on_source(ch["new"]), names="value")
        super().__init__([W.HBox([self.source, self.target]), W.HBox([self.layer, self.alpha]), self.control,
                          self.prompt, W.HBox([self.max_new_tokens, self.run_button, self.status]),
                          self.figure, self.continuations, self.export])
        if autorun:
            self.run()

    def _default_prompt(self, language: str) -> str:
        c = self.corpus
        if c is None:
            return ""
        try:
            code = c.resolve_language(language)
        except XlingProbeError:
            return ""
        ids = [i for i in c.ids if self.fit_ids is None or i not in set(self.fit_ids)] or list(c.ids)
        return sentence_prefix(c.sentences[code][list(c.ids).index(ids[0])], language)

    def _on_source(self, lang: str) -> None:
        if self.corpus is not None:
            self.prompt.value = self._default_prompt(lang) or self.prompt.value
        if self.target.value == lang:
            self.target.value = next(l for l in self.target.options if l != lang)

    def vectors(self, source: str, target: str) -> Any:
        """The steering vectors of ``source -> target`` (fitted on ``fit_ids`` or every sentence), cached."""
        key = (source, target)
        if key not in self._vectors:
            self._vectors[key] = steering_vectors(self.acts, source, target, ids=self.fit_ids)
        return self._vectors[key]

    def run(self) -> dict[str, Any]:
        """Apply the current settings; returns (and keeps in ``.last``) what the view shows."""
        prompt = self.prompt.value
        if not prompt.strip():
            raise InterventionError("the prompt is empty: type a sentence start in the source language")
        src, tgt, layer, alpha = self.source.value, self.target.value, int(self.layer.value), float(self.alpha.value)
        vec = self.vectors(src, tgt)
        if self.control.value:
            vec = vec.random_control(self.seed)
        edits = [AddVector(layer, vector=vec.vector(layer), alpha=alpha)]
        tok = self.model.tokenizer
        dists: dict[str, list[tuple[str, float]]] = {}
        for name, todo in (("without", []), (f"with α={alpha:g} at layer {layer}", edits)):
            p = next_token_logprobs(self.model, [prompt], edits=todo)[0].exp().numpy()
            top = np.argsort(-p)[:TOP_K]
            dists[name] = [(tok.decode([int(i)]), float(p[i])) for i in top]
        texts = {name: generate(self.model, [prompt], edits=todo, max_new_tokens=int(self.max_new_tokens.value),
                                seed=self.seed)[0]
                 for name, todo in (("without", []), ("with", edits))}
        detected = _detect(list(texts.values()), src, tgt)
        kind = "random vector (control)" if self.control.value else f"{src} → {tgt} vector"
        refresh(self.figure, next_token_bars(dists, title=f"Next token: {kind}, α={alpha:g}, layer {layer}"))
        self.log.bump("figure")
        rows = "".join(f"<tr><td><b>{escape(name)}</b></td><td>{escape(text)}</td><td>{escape(str(lang))}</td></tr>"
                       for (name, text), lang in zip(texts.items(), detected))
        self.continuations.value = ("<table><tr><th></th><th>greedy continuation</th><th>detected language</th></tr>"
                                    f"{rows}</table>")
        self.last = {"source": src, "target": tgt, "layer": layer, "alpha": alpha, "control": bool(self.control.value),
                     "next_tokens": dists, "continuations": texts, "detected": dict(zip(texts, detected))}
        return self.last

    def _on_click(self) -> None:
        self.run_button.disabled = True
        self.status.value = "running… (two forward passes and two generations)"
        start = time.perf_counter()
        try:
            self.run()
            self.status.value = f"done in {time.perf_counter() - start:.1f} s"
        except Exception as err:  # the UI shows every failure; run() from a script raises it
            self.status.value = f"<span style='color:#b00'>{type(err).__name__}: {escape(str(err), quote=False)}</span>"
        finally:
            self.run_button.disabled = False


def _detect(texts: list[str], source: str, target: str) -> list[str]:
    """The language the detector (lingua) reads in each text, among the lens languages plus the two at hand."""
    from xling_probe.interventions.steering import detector_languages
    from xling_probe.lens.shares import languages_of

    return list(languages_of(texts, detector_languages(source, target)))
