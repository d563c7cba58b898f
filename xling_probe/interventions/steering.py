"""Language steering: add the difference of two languages' mean states, and measure what it does.

Vectors (per layer l, from parallel sentences; the means of :class:`~xling_probe.centering.estimators.LanguageCentering`
on a fit split): ``v_l(A -> B) = mean_B,l - mean_A,l``. Steering adds ``alpha * v_l`` to the residual
stream at layer l at every position (the prompt's and the generated ones); alpha = 1 moves A's mean
state onto B's.

:func:`steer` sweeps layer x alpha as one call and measures, on held-out items:

- ``p_target_word`` / ``p_source_word`` / ``word_switch``: on repetition prompts in A from the word
  list (``Français: "fleur" - Français: "``, a few shots), the final-layer probability of the concept's
  token set in B and in A, and the share of prompts where B's beats A's: the language switched, the
  concept kept;
- ``continuation_target``: the share of greedy continuations of A sentence prefixes that the language
  detector (lingua, as in :mod:`xling_probe.lens.shares`) reads as B;
- ``translation_logprob`` and ``translation_cost``: the mean log-probability per token of the reference
  B translation after ``A: "<sentence>" - B: "`` under the steering, and its change from alpha = 0:
  a steering that switches the language keeps it; one that breaks the model lowers it.

The control (``kind="random"``) is a random direction with the norm of ``v_l`` at each layer (seeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InterventionError, XlingProbeError
from .mechanism import AddVector
from .results import InterventionResult, summarise
from .run import check_causal, continuation_logprobs, generate, next_token_logprobs

MEASURES = {
    "p_target_word": "P(the concept's word in the target language) at the last layer, repetition prompts in the source",
    "p_source_word": "P(the concept's word in the source language) at the last layer, repetition prompts",
    "word_switch": "share of repetition prompts where the target-language word beats the source-language word",
    "continuation_target": "share of greedy continuations of source-language prefixes detected as the target language",
    "translation_logprob": "mean log-probability per token of the reference translation (nats)",
    "translation_cost": "change of the translation log-probability from alpha = 0 (nats per token; < 0 = worse)",
}


@dataclass(frozen=True, eq=False)
class SteeringVectors:
    """``vectors[i]`` = mean of ``target`` - mean of ``source`` at ``layers[i]`` (float32), from ``fit_ids``."""

    source: str
    target: str
    layers: tuple[int, ...]
    vectors: np.ndarray
    fit_ids: tuple[str, ...]

    def vector(self, layer: int) -> np.ndarray:
        if layer not in self.layers:
            raise InterventionError(f"no steering vector for layer {layer}: fitted layers {list(self.layers)}")
        return self.vectors[self.layers.index(layer)]

    def random_control(self, seed: int = 0) -> SteeringVectors:
        """Random directions with the norm of each layer's vector (seeded)."""
        rng = np.random.default_rng(seed)
        r = rng.standard_normal(self.vectors.shape)
        r *= (np.linalg.norm(self.vectors, axis=1, keepdims=True) / np.linalg.norm(r, axis=1, keepdims=True))
        return SteeringVectors(self.source, self.target, self.layers, r.astype(np.float32), self.fit_ids)

    def norms(self) -> np.ndarray:
        return np.linalg.norm(self.vectors, axis=1)


def steering_vectors(acts: Any, source: str, target: str, *, ids: Sequence[str] | None = None) -> SteeringVectors:
    """``v_l(source -> target)`` for every layer of ``acts`` (mean-pooled states of parallel sentences),
    estimated on ``ids`` (default: every sentence of ``acts``: pass a fit split to keep others held out)."""
    from ..centering.estimators import LanguageCentering

    a = acts.languages[acts.language_index(source)]
    b = acts.languages[acts.language_index(target)]
    if a == b:
        raise InterventionError(f"source and target are both {a!r}: a steering vector needs two languages")
    sub = acts.sel(languages=[a, b], ids=ids)
    means = LanguageCentering().fit(sub).means_
    return SteeringVectors(a, b, tuple(acts.layers), (means[:, 1] - means[:, 0]).astype(np.float32), tuple(sub.ids))


def sentence_prefix(sentence: str, language: str) -> str:
    """The first half of a sentence (words; characters for scripts written without spaces)."""
    words = sentence.split()
    if len(words) >= 4:
        return " ".join(words[: max(2, len(words) // 2)])
    return sentence[: max(2, len(sentence) // 2)]


def _set_probability(logp: torch.Tensor, sets: Sequence[Any]) -> np.ndarray:
    return np.array([float(torch.logsumexp(logp[i, list(s.ids)], -1).exp()) for i, s in enumerate(sets)])


def detector_languages(source: str, target: str) -> list[str]:
    from ..lens.shares import DEFAULT_LINGUA_LANGUAGES

    return list(dict.fromkeys([*DEFAULT_LINGUA_LANGUAGES, source, target]))


def eval_sentence_ids(corpus: Any, fit_ids: Sequence[str], n: int, eval_ids: Sequence[str] | None) -> list[str]:
    """Held-out ids: ``eval_ids`` (refused when one was used to fit) or the first ``n`` ids not fitted on."""
    fitted = set(fit_ids)
    if eval_ids is not None:
        leak = [i for i in eval_ids if i in fitted]
        if leak:
            raise InterventionError(f"{len(leak)} evaluation id(s) were used to fit ({leak[:5]}): evaluate on "
                                    "held-out sentences")
        return list(eval_ids)
    out = [i for i in corpus.ids if i not in fitted][:n]
    if len(out) < 2:
        raise InterventionError(f"only {len(out)} sentence(s) of the corpus were not used to fit; hold some out "
                                "(fit on a split: ids=corpus.ids[:k])")
    return out


def steer(model: Any, vectors: SteeringVectors, *, corpus: Any = None, words: Any = None,
          layers: Sequence[int] | None = None, alphas: Sequence[float] = (0.0, 1.0, 2.0, 4.0), control: bool = True,
          n_items: int = 16, eval_ids: Sequence[str] | None = None, max_new_tokens: int = 16, shots: int = 3,
          seed: int = 0, batch_size: int = 8, progress: bool = True) -> InterventionResult:
    """Sweep layer x alpha of ``vectors`` on ``model``; see the module docstring for the measures.

    ``corpus``: a ParallelCorpus with both languages (continuations and translations; ``None`` skips those
    measures), evaluated on ``eval_ids`` or the first ``n_items`` sentences not in ``vectors.fit_ids``;
    ``words``: a word list (``None``: the bundled one) for the repetition prompts (skipped when it lacks
    one of the languages). ``layers``: default every third layer of the vectors' from 1.
    """
    from tqdm.auto import tqdm

    from ..lens.prompts import build_prompts, translation_pair
    from ..lens.shares import languages_of
    from ..lens.tokensets import build_item_sets
    from ..lens.words import load_words
    from ..data.languages import base_language

    check_causal(model)
    if vectors.vectors.shape[1] != model.d_model:
        raise InterventionError(f"the steering vectors have width {vectors.vectors.shape[1]}, {model.name} "
                                f"{model.d_model}: use vectors from this model's activations")
    A, B = vectors.source, vectors.target
    layers = list(layers) if layers is not None else [l for l in vectors.layers if l >= 1][::3]
    for layer in layers:
        vectors.vector(layer)
    alphas = sorted({float(a) for a in alphas} | {0.0})  # alpha = 0 is the baseline of the costs
    kinds = {"vector": vectors, **({"random": vectors.random_control(seed)} if control else {})}

    # what is measured, once
    word_prompts, sets_a, sets_b = None, None, None
    wl = load_words(words)
    try:
        wa, wb = wl.resolve_language(A), wl.resolve_language(B)
        items = build_item_sets(model.tokenizer, wl, [wa, wb], latent=wa, target=wb)
        kept = list(items.kept)[:n_items]
        if len(kept) >= 2:
            word_prompts = [p.text for p in build_prompts(wl, task="repetition", target=wa, shots=shots, seed=seed,
                                                          indices=kept, demonstrations=items.kept)]
            pos = {k: i for i, k in enumerate(items.kept)}
            sets_a = [items.sets[wa][pos[k]] for k in kept]
            sets_b = [items.sets[wb][pos[k]] for k in kept]
    except XlingProbeError:  # a word list without these languages: the word measures are skipped
        word_prompts = None
    prefixes = trans_prompts = trans_refs = None
    ids: list[str] = []
    if corpus is not None:
        ca, cb = corpus.resolve_language(A), corpus.resolve_language(B)
        ids = eval_sentence_ids(corpus, vectors.fit_ids, n_items, eval_ids)
        idx = {s: i for i, s in enumerate(corpus.ids)}
        sa = [corpus.sentences[ca][idx[i]] for i in ids]
        sb = [corpus.sentences[cb][idx[i]] for i in ids]
        prefixes = [sentence_prefix(s, A) for s in sa]
        trans_prompts = [translation_pair(A, s, B) for s in sa]
        trans_refs = [f'{s}"' for s in sb]
    if word_prompts is None and prefixes is None:
        raise InterventionError(f"nothing to measure: the word list has no items in both {A} and {B}, and no corpus "
                                "was given")
    detect = detector_languages(A, B)
    want = base_language(B)

    def measure(edits) -> dict[str, np.ndarray]:
        vals: dict[str, np.ndarray] = {}
        if word_prompts is not None:
            logp = next_token_logprobs(model, word_prompts, edits=edits, batch_size=batch_size)
            pa, pb = _set_probability(logp, sets_a), _set_probability(logp, sets_b)
            vals.update(p_target_word=pb, p_source_word=pa, word_switch=(pb > pa).astype(float))
        if prefixes is not None:
            texts = generate(model, prefixes, edits=edits, max_new_tokens=max_new_tokens, seed=seed,
                             batch_size=batch_size)
            vals["continuation_target"] = np.array([float(f == want) for f in languages_of(texts, detect)])
            vals["translation_logprob"] = continuation_logprobs(model, trans_prompts, trans_refs, edits=edits,
                                                                batch_size=batch_size)
        return vals

    cells: list[tuple[dict[str, Any], str, np.ndarray]] = []
    todo = [(kind, layer, alpha) for kind in kinds for layer in layers for alpha in alphas if alpha != 0.0]
    bar = tqdm(total=len(todo) + 1, desc=f"steering {A}->{B}", unit="cell", disable=not progress)
    with bar:
        base = measure([])  # alpha = 0: the model itself, the same for every layer and kind
        bar.update(1)

        def add(labels: dict[str, Any], vals: dict[str, np.ndarray]) -> None:
            if "translation_logprob" in vals:
                vals = {**vals, "translation_cost": vals["translation_logprob"] - base["translation_logprob"]}
            cells.extend((labels, m, v) for m, v in vals.items())

        for kind in kinds:
            for layer in layers:
                add({"kind": kind, "layer": layer, "alpha": 0.0}, base)
        for kind, layer, alpha in todo:
            add({"kind": kind, "layer": layer, "alpha": alpha},
                measure([AddVector(layer, vector=kinds[kind].vector(layer), alpha=alpha)]))
            bar.update(1)
    table = summarise(cells, seed=seed)
    return InterventionResult("steering", table, settings={
        "model": model.name, "source": A, "target": B, "layers": layers, "alphas": alphas, "control": control,
        "n_word_prompts": len(word_prompts or []), "eval_ids": ids, "n_fit": len(vectors.fit_ids),
        "vector_norms": {int(l): float(n) for l, n in zip(vectors.layers, vectors.norms())},
        "max_new_tokens": max_new_tokens, "shots": shots, "seed": seed,
        "detector_languages": detect}, measures={k: v for k, v in MEASURES.items()
                                                 if k in set(table["measure"])})
