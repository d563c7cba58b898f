"""Language shares without word lists: which script or language each layer decodes to.

Without word lists: classify each decoded top-k token by script/language to get a per-layer
language distribution (useful for free text). For free text, the top-k tokens of the lens distribution at every layer and every real position
(special tokens such as BOS left out: their states are attention sinks) are decoded and
classified, and each layer gets a distribution over categories:

    share_l(c) = sum of the weights of the top-k tokens of class c at layer l
                 / sum of the weights of all top-k tokens at layer l,

with weight = the token's lens probability (``weight="probability"``) or 1 (``"count"``).

Classifiers (no hand-written guesser):

- ``by="script"``: the Unicode script of the token's letters, read from the Unicode character
  names (:mod:`unicodedata`: 'CJK UNIFIED IDEOGRAPH-82B1' -> Han, 'CYRILLIC SMALL LETTER ZHE'
  -> Cyrillic), majority over the letters; tokens without letters are 'none', partial UTF-8
  bytes (decoded as U+FFFD) are 'bytes'.
- ``by="language"``: the ``lingua-language-detector`` library on the token text, restricted to
  ``languages`` (default: the languages of the bundled word list); tokens without letters are
  'none', tokens lingua cannot place are 'unknown'. Single sub-word tokens are short, so expect
  noise on Latin-script languages; the script view is exact.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LensError
from ..labels import LayerSpec
from ..data.languages import base_language, normalize_codes
from .core import DEFAULT_CHUNK_ELEMENTS
from .positions import decode_tokens, iter_text_stats

if TYPE_CHECKING:
    from ..models.loading import ModelHandle

DEFAULT_LINGUA_LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "ru", "zh", "ja", "ko", "ar", "hi")
# Words that qualify a character's name before its script ('FULLWIDTH LATIN CAPITAL LETTER A').
_QUALIFIERS = frozenset({"FULLWIDTH", "HALFWIDTH", "MATHEMATICAL", "SMALL", "CAPITAL", "PARENTHESIZED", "CIRCLED",
                         "SQUARED", "NEGATIVE", "BOLD", "ITALIC", "SCRIPT", "DOUBLE-STRUCK", "MODIFIER"})
_SCRIPT_ALIASES = {"CJK": "Han", "KANGXI": "Han", "IDEOGRAPHIC": "Han"}


@lru_cache(maxsize=65536)
def char_script(ch: str) -> str:
    """Unicode script of one letter from its character name ('ж' -> 'Cyrillic', '花' -> 'Han')."""
    name = unicodedata.name(ch, "")
    for word in name.split():
        if word in _QUALIFIERS:
            continue
        return _SCRIPT_ALIASES.get(word, word.title())
    return "Unknown"


def script_of(text: str) -> str:
    """Majority script of the letters of ``text``; 'none' without letters, 'bytes' for partial UTF-8."""
    if "\ufffd" in text:
        return "bytes"
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            s = char_script(ch)
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return "none"
    return max(counts, key=lambda s: (counts[s], s))


@lru_cache(maxsize=8)
def _lingua(codes: tuple[str, ...]):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    isos = []
    for c in codes:
        try:
            isos.append(IsoCode639_1.from_str(base_language(c)))
        except (ValueError, KeyError):
            raise LensError(f"lingua does not know language {c!r}; pass languages= it supports") from None
    if len(isos) < 2:
        raise LensError("language classification needs at least 2 candidate languages")
    return LanguageDetectorBuilder.from_iso_codes_639_1(*isos).build()


def languages_of(texts: Sequence[str], languages: Sequence[str] = DEFAULT_LINGUA_LANGUAGES) -> list[str]:
    """Language code of each text by lingua ('none' without letters, 'unknown' when undecided)."""
    detector = _lingua(tuple(normalize_codes(languages)))
    out = ["none"] * len(texts)
    todo = [k for k, t in enumerate(texts) if script_of(t) not in ("none", "bytes")]
    for k, t in enumerate(texts):
        if script_of(t) == "bytes":
            out[k] = "bytes"
    found = detector.detect_languages_in_parallel_of([texts[k].strip() for k in todo])
    for k, lang in zip(todo, found):
        out[k] = lang.iso_code_639_1.name.lower() if lang is not None else "unknown"
    return out


@dataclass(frozen=True, eq=False)
class SharesResult:
    """Per-layer distribution over categories of the top-k lens tokens: ``shares [layer, category]``
    (rows sum to 1); ``counts`` holds how many top-k tokens fell in each cell."""

    model: str
    by: str
    weight: str
    top_k: int
    layers: tuple[int, ...]
    categories: tuple[str, ...]
    shares: np.ndarray
    counts: np.ndarray
    n_positions: int
    meta: dict[str, Any] = field(default_factory=dict)

    def share(self, category: str) -> np.ndarray:
        """``[layer]`` share of one category (zeros when it never occurs)."""
        if category not in self.categories:
            return np.zeros(len(self.layers))
        return self.shares[:, self.categories.index(category)]

    def dominant(self) -> list[str]:
        """The largest category at each layer."""
        return [self.categories[j] for j in self.shares.argmax(axis=1)]

    def to_dataframe(self):
        """Tidy: one row per (layer, category) with the share and the token count."""
        import pandas as pd

        n_l, n_c = self.shares.shape
        return pd.DataFrame({
            "layer": np.repeat(np.array(self.layers), n_c),
            "category": np.tile(np.array(self.categories, dtype=object), n_l),
            "share": self.shares.reshape(-1),
            "count": self.counts.reshape(-1),
        })

    def to_xarray(self):
        import xarray as xr

        return xr.Dataset(
            {"share": (("layer", "category"), self.shares), "count": (("layer", "category"), self.counts)},
            coords={"layer": list(self.layers), "category": list(self.categories)},
            attrs={"model": self.model, "by": self.by, "weight": self.weight, "top_k": self.top_k},
        )

    def __repr__(self) -> str:
        return f"SharesResult({self.model!r}, by={self.by}, layers={len(self.layers)}, categories={list(self.categories)})"


def language_shares(
    model: ModelHandle,
    texts: str | Sequence[str],
    *,
    top_k: int = 10,
    by: str = "script",
    weight: str = "probability",
    languages: Sequence[str] | None = None,
    layers: LayerSpec = "all",
    batch_size: int = 4,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
    progress: bool = True,
) -> SharesResult:
    """Per-layer script or language distribution of the top-k lens tokens of free text."""
    from tqdm.auto import tqdm

    if by not in ("script", "language"):
        raise LensError(f"by must be 'script' or 'language', got {by!r}")
    if weight not in ("probability", "count"):
        raise LensError(f"weight must be 'probability' or 'count', got {weight!r}")
    if top_k < 1:
        raise LensError(f"top_k must be >= 1, got {top_k}")
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items or any(not isinstance(t, str) or not t.strip() for t in items):
        raise LensError("language_shares needs non-empty texts")
    collected: list[tuple[np.ndarray, np.ndarray]] = []  # per text: ids [L, T', k], probs [L, T', k]
    used: list[int] = []
    n_positions = 0
    bar = tqdm(total=len(items), desc="lens shares", unit="text", disable=not progress)
    with bar:
        for _, _ids, special, used, stats in iter_text_stats(model, items, layers, top_k=top_k, batch_size=batch_size,
                                                             chunk_elements=chunk_elements, progress=bar):
            keep = np.array([s == 0 for s in special])
            n_positions += int(keep.sum())
            collected.append((stats.top_ids.numpy()[:, keep], stats.top_probs.numpy()[:, keep]))
    if n_positions == 0:
        raise LensError("the texts have no positions besides special tokens")
    all_ids = np.concatenate([c[0].reshape(-1) for c in collected])
    text_of = decode_tokens(model.tokenizer, all_ids.tolist())
    uniq = list(text_of)
    if by == "script":
        labels = [script_of(text_of[i]) for i in uniq]
    else:
        labels = languages_of([text_of[i] for i in uniq], languages or DEFAULT_LINGUA_LANGUAGES)
    categories = tuple(sorted(set(labels)))
    cat_index = {i: categories.index(lab) for i, lab in zip(uniq, labels)}
    lookup = np.vectorize(cat_index.__getitem__, otypes=[np.int64])
    n_l = len(used)
    mass = np.zeros((n_l, len(categories)))
    counts = np.zeros((n_l, len(categories)), dtype=np.int64)
    for ids, probs in collected:
        cats = lookup(ids).reshape(n_l, -1)
        w = probs.reshape(n_l, -1).astype(np.float64) if weight == "probability" else np.ones(cats.shape)
        for li in range(n_l):
            mass[li] += np.bincount(cats[li], weights=w[li], minlength=len(categories))
            counts[li] += np.bincount(cats[li], minlength=len(categories))
    shares = mass / mass.sum(axis=1, keepdims=True)
    return SharesResult(
        model=model.name, by=by, weight=weight, top_k=top_k, layers=tuple(used), categories=categories,
        shares=shares, counts=counts, n_positions=n_positions,
        meta={"languages": list(languages or DEFAULT_LINGUA_LANGUAGES) if by == "language" else None,
              "n_texts": len(items)},
    )
