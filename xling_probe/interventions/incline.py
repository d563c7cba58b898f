"""INCLINE-style alignment maps: move a source language's states toward their image in English's space.

After "Bridging the Language Gaps in Large Language Models with Inference-Time Cross-Lingual
Intervention" (INCLINE): per layer l, a linear map ``W_l, b_l`` from the source language's sentence
representations to English's, fitted by least squares on parallel *training* pairs
(:class:`~xling_probe.centering.estimators.LinearProjection`, ridge ``alpha``); at inference the
source prompt's states at layer l move toward their image,

    h <- h + sigma * ((h W_l + b_l) - h)        (sigma = 0: the model; 1: the mapped state),

at every prompt position (not at the positions of the scored continuation). The paper fits on
sentence representations of the last token; fit on activations extracted with ``pooling="last"`` to
match it (mean-pooled states work too, and are what ``extract`` gives by default; the result records
which was used).

:func:`incline` sweeps layer x sigma on held-out sentences and measures

- ``reference_logprob`` / ``reference_gain``: the mean log-probability per token of the English reference
  after ``<source name>: "<sentence>" - English: "``, and its change from sigma = 0;
- ``p_target_word`` / ``word_gain``: on the word-translation prompts of the lens (source -> English, a
  few shots), the last-layer probability of the English word's token set and its change from sigma = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InterventionError, XlingProbeError
from .mechanism import MapToward
from .results import InterventionResult, summarise
from .run import check_causal, continuation_logprobs, next_token_logprobs
from .steering import _set_probability, eval_sentence_ids

MEASURES = {
    "reference_logprob": "mean log-probability per token of the English reference translation (nats)",
    "reference_gain": "change of the reference log-probability from sigma = 0 (nats per token; > 0 = better)",
    "p_target_word": "P(the English word) at the last layer, word-translation prompts from the source language",
    "word_gain": "change of P(the English word) from sigma = 0",
}


@dataclass(frozen=True, eq=False)
class InclineMaps:
    """Per-layer maps ``source -> target``: ``coef[i]`` ``[d, d]`` and ``intercept[i]`` ``[d]`` at ``layers[i]``."""

    source: str
    target: str
    layers: tuple[int, ...]
    coef: np.ndarray
    intercept: np.ndarray
    fit_ids: tuple[str, ...]
    pooling: str

    def edit(self, layer: int, sigma: float, positions: Any) -> MapToward:
        if layer not in self.layers:
            raise InterventionError(f"no INCLINE map for layer {layer}: fitted layers {list(self.layers)}")
        i = self.layers.index(layer)
        return MapToward(layer, positions=positions, coef=self.coef[i], intercept=self.intercept[i], sigma=sigma)


def fit_incline(acts: Any, source: str, target: str = "en", *, ids: Sequence[str] | None = None,
                alpha: float = 1.0, method: str = "lstsq") -> InclineMaps:
    """Fit one map per layer of ``acts`` from ``source`` to ``target`` on the sentences ``ids`` (a training
    split; the maps never see another id). ``alpha``: ridge penalty (the states have far more dimensions
    than a small corpus has sentences)."""
    from ..centering.estimators import LinearProjection

    src = acts.languages[acts.language_index(source)]
    tgt = acts.languages[acts.language_index(target)]
    if src == tgt:
        raise InterventionError(f"source and target are both {src!r}")
    train = acts.sel(languages=[src, tgt], ids=ids)
    proj = LinearProjection(tgt, [src], method=method, alpha=alpha).fit(train)
    return InclineMaps(src, tgt, tuple(acts.layers), proj.coef_[:, 0].copy(), proj.intercept_[:, 0].copy(),
                       tuple(proj.fit_ids_), str(acts.meta.get("pooling", "?")))


def incline(model: Any, maps: InclineMaps, corpus: Any = None, *, words: Any = None,
            layers: Sequence[int] | None = None, sigmas: Sequence[float] = (0.0, 0.25, 0.5, 1.0), n_items: int = 16,
            eval_ids: Sequence[str] | None = None, shots: int = 3, seed: int = 0, batch_size: int = 8,
            progress: bool = True) -> InterventionResult:
    """Sweep layer x sigma of ``maps`` on held-out sentences of ``corpus`` (and the word-translation prompts);
    see the module docstring. Evaluation ids that were used to fit are refused."""
    from tqdm.auto import tqdm

    from ..lens.prompts import build_prompts, translation_pair
    from ..lens.tokensets import build_item_sets
    from ..lens.words import load_words

    check_causal(model)
    if maps.coef.shape[1] != model.d_model:
        raise InterventionError(f"the maps have width {maps.coef.shape[1]}, {model.name} {model.d_model}")
    S, E = maps.source, maps.target
    layers = list(layers) if layers is not None else [l for l in maps.layers if l >= 1][::3]
    for layer in layers:
        if layer not in maps.layers:
            raise InterventionError(f"no INCLINE map for layer {layer}: fitted layers {list(maps.layers)}")
    sigmas = sorted({float(s) for s in sigmas} | {0.0})
    ref_prompts = refs = None
    ids: list[str] = []
    if corpus is not None:
        cs, ce = corpus.resolve_language(S), corpus.resolve_language(E)
        ids = eval_sentence_ids(corpus, maps.fit_ids, n_items, eval_ids)
        idx = {s: i for i, s in enumerate(corpus.ids)}
        ref_prompts = [translation_pair(S, corpus.sentences[cs][idx[i]], E) for i in ids]
        refs = [f'{corpus.sentences[ce][idx[i]]}"' for i in ids]
    word_prompts = sets = None
    try:
        wl = load_words(words)
        ws, we = wl.resolve_language(S), wl.resolve_language(E)
        items = build_item_sets(model.tokenizer, wl, [ws, we], latent=we, target=ws)
        kept = list(items.kept)[:n_items]
        if len(kept) >= 2:
            word_prompts = [p.text for p in build_prompts(wl, task="translation", source=ws, target=we, shots=shots,
                                                          seed=seed, indices=kept, demonstrations=items.kept)]
            pos = {k: i for i, k in enumerate(items.kept)}
            sets = [items.sets[we][pos[k]] for k in kept]
    except XlingProbeError:
        word_prompts = None
    if ref_prompts is None and word_prompts is None:
        raise InterventionError(f"nothing to measure: no corpus, and the word list has no items in {S} and {E}")

    def measure(layer: int | None, sigma: float) -> dict[str, np.ndarray]:
        def edits(prompt_mask):
            return [] if layer is None else [maps.edit(layer, sigma, prompt_mask)]
        vals: dict[str, np.ndarray] = {}
        if ref_prompts is not None:
            vals["reference_logprob"] = continuation_logprobs(model, ref_prompts, refs, edits=edits,
                                                              batch_size=batch_size)
        if word_prompts is not None:
            vals["p_target_word"] = _set_probability(next_token_logprobs(model, word_prompts, edits=edits,
                                                                         batch_size=batch_size), sets)
        return vals

    todo = [(layer, s) for layer in layers for s in sigmas if s != 0.0]
    cells: list[tuple[dict[str, Any], str, np.ndarray]] = []
    bar = tqdm(total=len(todo) + 1, desc=f"INCLINE {S}->{E}", unit="cell", disable=not progress)
    with bar:
        base = measure(None, 0.0)
        bar.update(1)

        def add(labels, vals):
            gains = {}
            if "reference_logprob" in vals:
                gains["reference_gain"] = vals["reference_logprob"] - base["reference_logprob"]
            if "p_target_word" in vals:
                gains["word_gain"] = vals["p_target_word"] - base["p_target_word"]
            cells.extend((labels, m, v) for m, v in {**vals, **gains}.items())

        for layer in layers:
            add({"layer": layer, "sigma": 0.0}, base)
        for layer, s in todo:
            add({"layer": layer, "sigma": s}, measure(layer, s))
            bar.update(1)
    table = summarise(cells, seed=seed)
    return InterventionResult("incline", table, settings={
        "model": model.name, "source": S, "target": E, "layers": layers, "sigmas": sigmas, "eval_ids": ids,
        "n_fit": len(maps.fit_ids), "fit_pooling": maps.pooling, "n_word_prompts": len(word_prompts or []),
        "shots": shots, "seed": seed}, measures={k: v for k, v in MEASURES.items() if k in set(table["measure"])})
