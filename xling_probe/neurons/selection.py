"""LAPE selection of language-specific neurons (Tang et al. 2024, step 2; docs/neurons.md).

For every neuron (block l, index i) with per-language activation probabilities ``p[l, i, :]``:

    p'[l, i, g] = p[l, i, g] / sum_h p[l, i, h]          (the distribution over languages)
    LAPE[l, i]  = - sum_g p'[l, i, g] log p'[l, i, g]     (0 log 0 = 0; a neuron never active: undefined, dropped)

The paper's recipe, all of it configurable here:

1. ``filter_value`` = the ``filter_percentile``-th percentile of *all* probabilities (every block,
   neuron and language; the k-th smallest with k = round(N * percentile / 100), as their
   ``kthvalue``); a neuron none of whose languages passes it (``p > filter_value``) is dropped
   (default 95);
2. of the remaining neurons keep the ``fraction`` (default 0.01) *of all L x F neurons* with the lowest
   LAPE (fewer when fewer pass the filter);
3. ``assign_value`` = the ``assign_percentile``-th percentile of all probabilities (default 95): a kept
   neuron belongs to every language whose probability exceeds it (one neuron can serve several languages).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import XlingProbeError
from ..labels import resolve_language
from .probabilities import ActivationProbabilities

DEFAULT_FRACTION = 0.01
DEFAULT_FILTER_PERCENTILE = 95.0
DEFAULT_ASSIGN_PERCENTILE = 95.0
DEFAULT_MIN_TOKENS = 200


def lape_entropy(probs: np.ndarray) -> np.ndarray:
    """LAPE of each neuron: entropy of its probabilities normalised over the last axis (languages).

    ``probs [..., language]`` -> ``[...]``; NaN where a neuron is never active in any language.
    """
    p = np.asarray(probs, dtype=np.float64)
    total = p.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = p / total
        terms = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    h = -terms.sum(axis=-1)
    return np.where(total[..., 0] > 0, h, np.nan)


def kth_percentile(values: np.ndarray, percentile: float) -> float:
    """The k-th smallest of ``values`` with k = round(N * percentile / 100), clamped to 1..N (torch ``kthvalue``)."""
    flat = np.sort(np.asarray(values, dtype=np.float64).ravel())
    k = int(round(flat.size * percentile / 100.0))
    return float(flat[min(max(k, 1), flat.size) - 1])


@dataclass(frozen=True, eq=False)
class LanguageNeurons:
    """The selected neurons and the languages they belong to.

    ``selected [k, 2]``: (block, neuron) of each kept neuron, lowest LAPE first; ``entropy [k]``; ``probs
    [k, language]`` their activation probabilities; ``assigned [k, language]`` (bool) which languages each
    one belongs to. ``thresholds`` holds the filter and assignment values actually used.
    """

    model: str
    languages: tuple[str, ...]
    labels: dict[str, str]
    n_layers: int
    n_neurons: int
    selected: np.ndarray
    entropy: np.ndarray
    probs: np.ndarray
    assigned: np.ndarray
    thresholds: dict[str, float]
    settings: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for arr in (self.selected, self.entropy, self.probs, self.assigned):
            arr.setflags(write=False)

    def language(self, language: str) -> str:
        return resolve_language(language, self.languages, self.labels, what="the languages of this selection")

    def index(self, language: str) -> np.ndarray:
        """``[n, 2]`` (block, neuron) of ``language``'s neurons, sorted by block then neuron."""
        g = self.languages.index(self.language(language))
        rows = self.selected[self.assigned[:, g]]
        return rows[np.lexsort((rows[:, 1], rows[:, 0]))] if len(rows) else rows.reshape(0, 2)

    def neurons(self, language: str) -> dict[int, np.ndarray]:
        """``{block: neuron indices}`` of ``language`` (blocks without any are left out)."""
        rows = self.index(language)
        return {int(l): rows[rows[:, 0] == l, 1] for l in np.unique(rows[:, 0])}

    def per_layer(self) -> Any:
        """DataFrame block x language: how many of each language's neurons sit in each block."""
        import pandas as pd

        table = np.zeros((self.n_layers, len(self.languages)), dtype=int)
        for g in range(len(self.languages)):
            np.add.at(table[:, g], self.selected[self.assigned[:, g], 0], 1)
        return pd.DataFrame(table, index=pd.Index(range(self.n_layers), name="layer"),
                            columns=pd.Index(self.languages, name="language"))

    def overlap(self) -> Any:
        """DataFrame language x language: neurons shared by both (the diagonal: each language's total)."""
        import pandas as pd

        a = self.assigned.astype(np.int64)
        return pd.DataFrame(a.T @ a, index=pd.Index(self.languages, name="language"),
                            columns=pd.Index(self.languages, name="language"))

    def counts(self) -> dict[str, int]:
        return {lang: int(self.assigned[:, g].sum()) for g, lang in enumerate(self.languages)}

    def to_dataframe(self) -> Any:
        """Tidy: one row per (neuron, language it belongs to): layer, neuron, language, probability, entropy."""
        import pandas as pd

        k, g = np.nonzero(self.assigned)
        return pd.DataFrame({"layer": self.selected[k, 0], "neuron": self.selected[k, 1],
                             "language": [self.languages[j] for j in g], "probability": self.probs[k, g],
                             "entropy": self.entropy[k]})

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "languages": list(self.languages), "labels": dict(self.labels),
                "n_layers": self.n_layers, "n_neurons": self.n_neurons, "thresholds": self.thresholds,
                "settings": self.settings, "counts": self.counts(), "meta": self.meta,
                "selected": self.selected.tolist(), "entropy": self.entropy.tolist(), "probs": self.probs.tolist(),
                "assigned": self.assigned.astype(int).tolist()}

    def save(self, path: str | Path) -> Path:
        """Write the selection as one JSON file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), default=str), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> LanguageNeurons:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        n = len(d["languages"])
        return cls(d["model"], tuple(d["languages"]), dict(d["labels"]), int(d["n_layers"]), int(d["n_neurons"]),
                   np.asarray(d["selected"], dtype=np.int64).reshape(-1, 2), np.asarray(d["entropy"], dtype=np.float64),
                   np.asarray(d["probs"], dtype=np.float64).reshape(-1, n),
                   np.asarray(d["assigned"], dtype=bool).reshape(-1, n), dict(d["thresholds"]), dict(d["settings"]),
                   dict(d.get("meta", {})))

    def __repr__(self) -> str:
        return (f"LanguageNeurons({self.model!r}, {len(self.selected)} neurons of {self.n_layers} x {self.n_neurons}, "
                f"per language {self.counts()})")


def select_language_neurons(
    probabilities: ActivationProbabilities,
    *,
    fraction: float = DEFAULT_FRACTION,
    filter_percentile: float = DEFAULT_FILTER_PERCENTILE,
    assign_percentile: float = DEFAULT_ASSIGN_PERCENTILE,
    languages: Iterable[str] | None = None,
    min_tokens: int = DEFAULT_MIN_TOKENS,
) -> LanguageNeurons:
    """Language-specific neurons by LAPE (module docstring): lowest-entropy ``fraction`` of all neurons
    among those some language activates above the ``filter_percentile``-th percentile of all
    probabilities, each assigned to the languages above the ``assign_percentile``-th percentile.

    ``languages`` restricts the languages (at least 2; default: all of ``probabilities``). A language with
    fewer than ``min_tokens`` counted tokens is refused (its probabilities would be noise).
    """
    if not isinstance(probabilities, ActivationProbabilities):
        raise XlingProbeError("select_language_neurons() needs the result of xling_probe.activation_probabilities()")
    if not 0.0 < fraction <= 1.0:
        raise XlingProbeError(f"fraction must be in (0, 1], got {fraction}")
    for name, value in (("filter_percentile", filter_percentile), ("assign_percentile", assign_percentile)):
        if not 0.0 <= value <= 100.0:
            raise XlingProbeError(f"{name} must be between 0 and 100, got {value}")
    langs = (tuple(probabilities.language(x) for x in languages) if languages is not None
             else probabilities.languages)
    if len(langs) < 2:
        raise XlingProbeError(f"LAPE compares languages: give at least 2, got {list(langs)}")
    g_idx = [probabilities.languages.index(x) for x in langs]
    tokens = probabilities.tokens[g_idx]
    short = [(probabilities.labels[x], int(t)) for x, t in zip(langs, tokens) if t < min_tokens]
    if short:
        detail = ", ".join(f"{x}: {t}" for x, t in short)
        raise XlingProbeError(f"too few tokens for a reliable activation probability ({detail}); at least "
                              f"min_tokens={min_tokens} are needed per language: give these languages more sentences "
                              "or lower min_tokens")
    p = np.moveaxis(probabilities.probs[g_idx], 0, -1)  # [layer, neuron, language]
    n_layers, n_neurons = p.shape[:2]
    filter_value = kth_percentile(p, filter_percentile)
    assign_value = kth_percentile(p, assign_percentile)
    entropy = lape_entropy(p)
    passes = (p > filter_value).any(axis=-1) & np.isfinite(entropy)
    if not passes.any():
        raise XlingProbeError(
            f"no neuron passes the filter: no language's activation probability exceeds the {filter_percentile}th "
            f"percentile of all probabilities ({filter_value:.4g}); lower filter_percentile")
    k = max(1, int(round(fraction * n_layers * n_neurons)))
    flat = np.where(passes, entropy, np.inf).ravel()
    k = min(k, int(passes.sum()))
    order = np.argsort(flat, kind="stable")[:k]
    layer_of, neuron_of = np.divmod(order, n_neurons)
    chosen = p[layer_of, neuron_of]  # [k, language]
    assigned = chosen > assign_value
    keep = assigned.any(axis=1)
    if not keep.any():
        raise XlingProbeError(
            f"the {k} lowest-entropy neurons belong to no language: none has a probability above the "
            f"{assign_percentile}th percentile of all probabilities ({assign_value:.4g}); lower assign_percentile "
            "or raise fraction")
    return LanguageNeurons(
        model=probabilities.model, languages=langs, labels={x: probabilities.labels[x] for x in langs},
        n_layers=n_layers, n_neurons=n_neurons,
        selected=np.stack([layer_of[keep], neuron_of[keep]], axis=1).astype(np.int64),
        entropy=flat[order][keep], probs=chosen[keep], assigned=assigned[keep],
        thresholds={"filter_value": filter_value, "assign_value": assign_value},
        settings={"fraction": fraction, "filter_percentile": filter_percentile, "assign_percentile": assign_percentile,
                  "min_tokens": min_tokens, "kept_before_assignment": k, "passed_filter": int(passes.sum())},
        meta={**probabilities.meta, "tokens": {x: int(t) for x, t in zip(langs, tokens)}})


def neuron_table(neurons: Mapping[int, Any] | np.ndarray) -> np.ndarray:
    """``{block: indices}`` or ``[n, 2]`` rows -> ``[n, 2]`` int64 (block, neuron)."""
    if isinstance(neurons, Mapping):
        rows = [(int(l), int(i)) for l, idx in neurons.items() for i in np.atleast_1d(np.asarray(idx))]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 2)
    arr = np.asarray(neurons)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise XlingProbeError(f"a neuron set is {{block: indices}} or an [n, 2] array of (block, neuron), got shape {arr.shape}")
    return arr.astype(np.int64)
