"""Steering the output language with language neurons (Tang et al. 2024, Sec. 5).

While ``model.generate`` continues prompts written in one language, the neurons of a target language
X are set to X's mean activation (from the same pass as the probabilities, times ``scale``); the
continuations are then classified with the project's language detector (lingua, through
:func:`xling_probe.lens.shares.languages_of`), and the result is the share detected as X, next to the
share without intervention.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ..errors import XlingProbeError
from .intervene import neuron_intervention
from .perplexity import check_causal
from .selection import LanguageNeurons


def generate(model: Any, prompts: Sequence[str], *, max_new_tokens: int = 20, batch_size: int = 8) -> list[str]:
    """Greedy continuations of ``prompts`` (the new text only), left-padded batches."""
    check_causal(model)
    tok = model.tokenizer
    previous = tok.padding_side
    tok.padding_side = "left"
    out: list[str] = []
    try:
        with torch.inference_mode():
            for s in range(0, len(prompts), batch_size):
                enc = tok(list(prompts[s:s + batch_size]), return_tensors="pt", padding=True).to(model.device)
                gen = model.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                           pad_token_id=tok.pad_token_id)
                out.extend(tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    finally:
        tok.padding_side = previous
    return out


def steering(model: Any, prompts: dict[str, Sequence[str]], neurons: LanguageNeurons, probabilities: Any, *,
             targets: Iterable[str] | None = None, scale: float = 1.0, max_new_tokens: int = 20,
             batch_size: int = 8, detect: Sequence[str] | None = None):
    """Share of continuations detected as each target language, with and without activating its neurons.

    ``prompts``: {language: prompt texts}; ``targets``: the languages to steer towards (default: the
    selection's languages). Returns a DataFrame with one row per (prompt language, target): ``share_steered``,
    ``share_baseline`` (no intervention), ``n``, and an example continuation.
    """
    import pandas as pd

    from ..lens.shares import languages_of

    targets = tuple(neurons.language(t) for t in targets) if targets is not None else neurons.languages
    detect = tuple(detect) if detect is not None else tuple(dict.fromkeys([*neurons.languages, *prompts]))
    if len(detect) < 2:
        raise XlingProbeError("language detection needs at least 2 candidate languages (detect=)")
    rows = []
    for src, texts in prompts.items():
        base = languages_of(generate(model, texts, max_new_tokens=max_new_tokens, batch_size=batch_size), detect)
        for tgt in targets:
            if tgt == src:
                continue
            with neuron_intervention(model, neurons, language=tgt, value="mean", probabilities=probabilities,
                                     scale=scale):
                cont = generate(model, texts, max_new_tokens=max_new_tokens, batch_size=batch_size)
            found = languages_of(cont, detect)
            rows.append({"prompt_language": src, "target": tgt, "n": len(texts),
                         "share_steered": sum(f == tgt for f in found) / max(len(found), 1),
                         "share_baseline": sum(f == tgt for f in base) / max(len(base), 1),
                         "example": cont[0] if cont else ""})
    return pd.DataFrame(rows)
