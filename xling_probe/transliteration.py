"""Transliteration: romanize a parallel corpus (``uroman``) and compare translation pairs with random pairs,
in the original scripts and romanized ("How Transliterations Improve Crosslingual Alignment").

- :func:`romanize`: a new :class:`~xling_probe.data.corpus.ParallelCorpus` with every sentence romanized by
  uroman (language codes, ids and labels unchanged; ``meta["romanized"]`` records the tool), cached by
  the corpus content hash.
- :func:`matched_random_gap`: pure; per layer and language pair, the mean cosine similarity of translation
  pairs ("matched") and of random pairs (every other sentence), and their gap, with bootstrap intervals.
- :func:`transliteration_gap`: that gap for the original activations and the romanized ones side by side,
  and the change of the gap (romanized - original) with a paired bootstrap interval; from two
  :class:`~xling_probe.extraction.activations.Activations`, or from a model and a corpus (it extracts both).

Definitions (docs/science.md, "Transliteration"): with ``C[i, j] = cos(a_i, b_j)`` over the N sentences
shared by languages a and b at one layer, per sentence i: ``matched_i = C[i, i]`` and
``random_i = (mean_{j != i} C[i, j] + mean_{j != i} C[j, i]) / 2`` (every other sentence as a random
partner, both directions); ``matched = mean_i matched_i``, ``random = mean_i random_i``,
``gap = matched - random``. Intervals: percentile bootstrap over sentences (resampling i with
replacement, ``n_boot`` seeded draws); the romanized - original difference resamples the same sentences
for both versions (paired).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .data.corpus import ParallelCorpus
from .errors import CorpusError, MetricError
from .extraction.activations import Activations

GAP_COLUMNS = ("layer", "lang_a", "lang_b", "version", "matched", "random", "gap", "gap_low", "gap_high", "n")


def _uroman_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("uroman")
    except PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def _uroman():
    try:
        import uroman
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise CorpusError("romanization needs the 'uroman' package: pip install 'uroman>=1.3'") from exc
    return uroman.Uroman()


def romanize_text(text: str, language: str | None = None) -> str:
    """One string romanized by uroman (``language``: any code; passed to uroman as ISO 639-3 when known)."""
    from .distances.codes import to_iso639_3

    lcode = to_iso639_3(language) if language else None
    out = _uroman().romanize_string(text, lcode=lcode)
    return str(out).strip() or text


def romanize(corpus: ParallelCorpus, *, languages: Iterable[str] | None = None, cache: bool = True) -> ParallelCorpus:
    """The corpus with every sentence of ``languages`` (default: all) romanized by uroman.

    Ids, language codes and labels are unchanged; ``meta["romanized"]`` says which languages were romanized,
    with which uroman version, from which corpus (content hash). Deterministic; with ``cache=True`` the
    romanized sentences are stored under the xling_probe cache (``romanized/``) keyed by the corpus hash,
    the languages and the uroman version (uroman takes ~10 ms a sentence)."""
    if not isinstance(corpus, ParallelCorpus):
        raise CorpusError(f"romanize needs a ParallelCorpus, got {type(corpus).__name__}")
    langs = list(corpus.languages) if languages is None else [corpus.resolve_language(x) for x in languages]
    source_hash = corpus.content_hash()
    key = hashlib.sha256(json.dumps([source_hash, langs, _uroman_version()]).encode()).hexdigest()[:32]
    path = None
    done: dict[str, list[str]] | None = None
    if cache:
        from .paths import cache_dir

        path = cache_dir("romanized") / f"{key}.json"
        if path.is_file():
            try:
                done = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                done = None
    if done is None or set(done) != set(langs):
        done = {lang: [romanize_text(s, lang) for s in corpus.sentences[lang]] for lang in langs}
        if path is not None:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(done, ensure_ascii=False), encoding="utf-8")
            tmp.replace(path)
    sentences = {lang: tuple(done[lang]) if lang in done else sents for lang, sents in corpus.sentences.items()}
    meta = dict(corpus.meta)
    meta["romanized"] = {"tool": "uroman", "version": _uroman_version(), "languages": langs,
                         "source_hash": source_hash}
    return ParallelCorpus(corpus.ids, sentences, dict(corpus.labels), meta)


# ====================================================================== matched vs random
def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _per_sentence(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(matched_i, random_i)`` for the rows of ``a``, ``b`` [N, D] (module docstring)."""
    n = a.shape[0]
    c = _normalise(a) @ _normalise(b).T
    diag = np.diag(c).copy()
    rows = (c.sum(axis=1) - diag) / (n - 1)
    cols = (c.sum(axis=0) - diag) / (n - 1)
    return diag, (rows + cols) / 2.0


def _pairs_of(langs: Sequence[str], pairs: Any) -> list[tuple[str, str]]:
    from .labels import resolve_pairs

    return list(resolve_pairs("all" if pairs is None else pairs, list(langs), error=MetricError))


def _boot_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(int(n_boot), n))


def _interval(values: np.ndarray, idx: np.ndarray, ci: float) -> tuple[float, float]:
    if idx.size == 0:
        return float("nan"), float("nan")
    boots = values[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(lo), float(hi)


def _check_acts(acts: Any, what: str) -> Activations:
    if not isinstance(acts, Activations):
        raise MetricError(f"{what} must be an Activations object, got {type(acts).__name__}")
    acts = acts.in_memory()
    if acts.n_sentences < 3:
        raise MetricError(f"{what}: matched vs random pairs need at least 3 sentences, got {acts.n_sentences}")
    if not np.all(np.isfinite(acts.data)):
        raise MetricError(f"{what} contain NaN or infinite values")
    return acts


def matched_random_gap(acts: Activations, *, pairs: Any = None, n_boot: int = 1000, ci: float = 0.95,
                       seed: int = 0, version: str = "original") -> pd.DataFrame:
    """Per layer and language pair: mean cosine of translation pairs (``matched``), of random pairs
    (``random``, every other sentence), ``gap = matched - random`` and its percentile bootstrap interval over
    sentences (``gap_low``, ``gap_high``). Columns :data:`GAP_COLUMNS`; ``pairs`` default: every pair."""
    acts = _check_acts(acts, "activations")
    if not 0 < ci < 1:
        raise MetricError(f"ci must be in (0, 1), got {ci}")
    idx = _boot_indices(acts.n_sentences, n_boot, seed)
    rows = []
    for a, b in _pairs_of(acts.languages, pairs):
        ia, ib = acts.language_index(a), acts.language_index(b)
        for li, layer in enumerate(acts.layers):
            m, r = _per_sentence(acts.data[li, ia], acts.data[li, ib])
            lo, hi = _interval(m - r, idx, ci)
            rows.append((layer, a, b, version, float(m.mean()), float(r.mean()), float((m - r).mean()), lo, hi,
                         acts.n_sentences))
    table = pd.DataFrame(rows, columns=list(GAP_COLUMNS))
    table.attrs.update({"n_boot": int(n_boot), "ci": ci, "seed": int(seed)})
    return table


def _gap_from_acts(original: Activations, romanized: Activations, pairs: Any, n_boot: int, ci: float,
                   seed: int) -> pd.DataFrame:
    original = _check_acts(original, "original activations")
    romanized = _check_acts(romanized, "romanized activations")
    if tuple(original.ids) != tuple(romanized.ids):
        shared = [i for i in original.ids if i in set(romanized.ids)]
        if len(shared) < 3:
            raise MetricError("the original and romanized activations share fewer than 3 sentence ids; extract both "
                              "from the same corpus (romanize(corpus))")
        original, romanized = original.sel(ids=shared), romanized.sel(ids=shared)
    if set(original.languages) != set(romanized.languages) or tuple(original.layers) != tuple(romanized.layers):
        raise MetricError(f"the original ({list(original.languages)}, layers {list(original.layers)}) and romanized "
                          f"({list(romanized.languages)}, layers {list(romanized.layers)}) activations must hold the "
                          "same languages and layers")
    idx = _boot_indices(original.n_sentences, n_boot, seed)
    rows = []
    for a, b in _pairs_of(original.languages, pairs):
        for li, layer in enumerate(original.layers):
            per = {}
            for version, acts in (("original", original), ("romanized", romanized)):
                ia, ib = acts.language_index(a), acts.language_index(b)
                m, r = _per_sentence(acts.data[li, ia], acts.data[li, ib])
                per[version] = m - r
                lo, hi = _interval(m - r, idx, ci)
                rows.append((layer, a, b, version, float(m.mean()), float(r.mean()), float((m - r).mean()), lo, hi,
                             acts.n_sentences))
            diff = per["romanized"] - per["original"]
            lo, hi = _interval(diff, idx, ci)
            rows.append((layer, a, b, "romanized - original", float("nan"), float("nan"), float(diff.mean()), lo, hi,
                         original.n_sentences))
    table = pd.DataFrame(rows, columns=list(GAP_COLUMNS))
    table.attrs.update({"n_boot": int(n_boot), "ci": ci, "seed": int(seed)})
    return table


def transliteration_gap(original: Any, romanized: Any = None, *, corpus: ParallelCorpus | None = None,
                        pairs: Any = None, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                        **extract_kwargs: Any) -> pd.DataFrame:
    """Matched vs random pairs for the original text and its romanization, per layer and language pair.

    Either two :class:`Activations` (``transliteration_gap(original_acts, romanized_acts)``, the same
    sentences and languages), or a model and a corpus (``transliteration_gap(model, corpus=corpus)``:
    the corpus is romanized with :func:`romanize` and both versions extracted with
    :func:`xling_probe.extract`, ``extract_kwargs`` passed on). Rows of :data:`GAP_COLUMNS` with ``version``
    ``"original"``, ``"romanized"`` and ``"romanized - original"`` (the change of the gap, paired bootstrap
    interval; ``matched``/``random`` NaN there). A positive change means romanization brings translations
    closer relative to random pairs.
    """
    if isinstance(original, Activations):
        if romanized is None:
            raise MetricError("pass the romanized activations too: transliteration_gap(original_acts, romanized_acts)")
        return _gap_from_acts(original, romanized, pairs, n_boot, ci, seed)
    if corpus is None:
        if isinstance(romanized, ParallelCorpus):
            corpus, romanized = romanized, None
        else:
            raise MetricError("transliteration_gap(model, corpus=...) needs a corpus, or pass two Activations")
    from .extraction.extract import extract

    roman_corpus = romanize(corpus)
    acts_o = extract(original, corpus, **extract_kwargs)
    acts_r = extract(original, roman_corpus, **extract_kwargs)
    table = _gap_from_acts(acts_o, acts_r, pairs, n_boot, ci, seed)
    table.attrs["romanized"] = roman_corpus.meta["romanized"]
    return table
