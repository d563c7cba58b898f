"""The multilingual tuned lens against the logit lens: exact full-vocabulary KL to the final layer, per layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import LensError
from ..models.loading import ModelHandle
from .core import Lens, lens_stats
from .tuned import LENS_KINDS, TunedLens
from .tuned_fit import collect_positions


@dataclass(frozen=True)
class LensComparison:
    """Per-layer KL to the final layer (bits, full vocabulary) of the logit lens and a tuned lens on some texts."""

    layers: tuple[int, ...]
    kl_logit: np.ndarray  # [positions, layers]
    kl_tuned: np.ndarray
    groups: tuple[str, ...]  # the language of each position
    meta: Mapping[str, Any] = field(default_factory=dict)

    def curve(self, lens: str = "tuned", language: str | None = None) -> np.ndarray:
        """Mean KL per layer (bits) of ``lens`` ('logit' or 'tuned'), over every position or one language's."""
        if lens not in LENS_KINDS:
            raise LensError(f"lens must be one of {LENS_KINDS}, got {lens!r}")
        v = self.kl_tuned if lens == "tuned" else self.kl_logit
        if language is not None:
            mask = np.asarray(self.groups) == language
            if not mask.any():
                raise LensError(f"no position of {language!r}; languages here: {sorted(set(self.groups))}")
            v = v[mask]
        return v.mean(0)

    def to_dataframe(self):
        """Tidy rows: language, layer, lens, mean KL (bits), and its 95% interval over positions."""
        import pandas as pd

        rows = []
        for lang in sorted(set(self.groups)):
            mask = np.asarray(self.groups) == lang
            for name, v in (("logit", self.kl_logit[mask]), ("tuned", self.kl_tuned[mask])):
                se = v.std(0, ddof=1) / np.sqrt(max(1, v.shape[0])) if v.shape[0] > 1 else np.full(v.shape[1], np.nan)
                for j, layer in enumerate(self.layers):
                    m = float(v[:, j].mean())
                    rows.append({"language": lang, "layer": layer, "lens": name, "kl_bits": m,
                                 "low": m - 1.96 * float(se[j]), "high": m + 1.96 * float(se[j]), "n": int(v.shape[0])})
        return pd.DataFrame(rows)


def compare_lenses(model: ModelHandle, tuned: TunedLens, texts: Mapping[str, Sequence[str]], *,
                   max_tokens: int = 256, seed: int = 0, batch_size: int = 8) -> LensComparison:
    """Exact KL(p_L || q_l) in bits over the full vocabulary, per layer, for the logit lens and ``tuned``.

    ``texts`` maps a language to sentences (use ones the lens was not trained on); up to
    ``max_tokens`` positions are drawn from each language (the first token left out).
    """
    tuned.check(model)
    empty = [lang for lang, sents in texts.items() if not list(sents)]
    if not texts or empty:
        raise LensError(f"compare_lenses needs sentences for every language; none given for {empty or 'any language'}")
    lens = Lens(model)
    layers = list(range(model.n_states))
    kl_l, kl_t, groups = [], [], []
    for lang, sents in texts.items():
        states = collect_positions(model, list(sents), max_tokens=max_tokens, seed=seed, batch_size=batch_size)
        final = states[-1]
        s_logit = lens_stats(lens, states, final, final_is_last=True)
        s_tuned = lens_stats(lens, tuned.translate(states, layers), final, final_is_last=True)
        kl_l.append(s_logit.kl_to_final_bits.T.numpy())
        kl_t.append(s_tuned.kl_to_final_bits.T.numpy())
        groups += [lang] * states.shape[1]
    return LensComparison(layers=tuple(layers), kl_logit=np.concatenate(kl_l), kl_tuned=np.concatenate(kl_t),
                          groups=tuple(groups), meta={"lens": tuned.digest, "model": model.name})
