"""The report's transliteration section: does romanizing the run's non-Latin-script languages change how far
translation pairs stand out from random pairs?

:func:`transliteration_plan` picks the languages and pairs from the corpus text (the majority Unicode script of
each language's sentences): every non-Latin-script language paired with a Latin-script reference (the pivot when
it is in Latin script, else the first Latin-script language), or, when the run has no Latin-script language,
every pair of the non-Latin ones. :func:`run_transliteration_analysis` romanizes those languages
(:func:`~xling_probe.transliteration.romanize`, uroman), extracts the romanized text with the report's
settings and computes :func:`~xling_probe.transliteration.transliteration_gap` against the report's own
activations of the original text. :func:`transliteration_section` is pure (table in, Section out) and
:func:`describe_transliteration` is the sentence under the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import MetricError

if TYPE_CHECKING:
    from .html import Section

#: At most this many non-Latin-script languages are romanized (each costs a pass over its sentences).
MAX_LANGUAGES = 12
TABLES = ("transliteration",)

TRANSLITERATION_TEXT = (
    "Transliteration (after 'How Transliterations Improve Crosslingual Alignment'): for each pair of a non-Latin-"
    "script language with a Latin-script reference, the mean cosine similarity of translation pairs (matched) "
    "minus that of random pairs (every other sentence), per layer: how far translations stand out. The same gap "
    "is measured again after romanizing the text with uroman (the model reads Latin letters instead of the "
    "original script). Left: the gap of the original text (dashed) and of the romanized text (solid); right: the "
    "change, romanized − original, with a paired bootstrap interval over sentences (the same resampled sentences "
    "for both versions). A change above 0 means romanization brings translations closer relative to random "
    "pairs; an interval that covers 0 means no clear difference at that layer. The languages' scripts are read "
    "from the corpus text (majority Unicode script).")


def transliteration_plan(corpus: Any, languages: Sequence[str], pivot: str | None = None, *,
                         max_languages: int = MAX_LANGUAGES) -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    """``(languages to romanize, pairs, script of every language)``; raises :class:`MetricError` when the run has no
    non-Latin-script language (nothing to romanize) or only one language in all."""
    from ..distances.codes import scripts_from_texts

    scripts = scripts_from_texts({lang: corpus.sentences[lang] for lang in languages})
    other = [x for x in languages if scripts[x] != "Latin"]
    latin = [x for x in languages if scripts[x] == "Latin"]
    if not other:
        raise MetricError(f"every language of this run is written in Latin script ({', '.join(languages)}): there "
                          "is nothing to romanize")
    if len(other) > max_languages:  # evenly spaced, in corpus order
        keep = {other[round(i * (len(other) - 1) / (max_languages - 1))] for i in range(max_languages)}
        other = [x for x in other if x in keep]
    if latin:
        ref = pivot if pivot in latin else latin[0]
        return [ref] + other, [(ref, x) for x in other], scripts
    if len(other) < 2:
        raise MetricError(f"one language only ({other[0]}): a pair needs two")
    return other, [(a, b) for i, a in enumerate(other) for b in other[i + 1:]], scripts


def run_transliteration_analysis(handle: Any, corpus: Any, acts: Any, *, pivot: str | None = None,
                                 n_boot: int = 100, ci: float = 0.95, seed: int = 0, batch_size: int = 16,
                                 max_length: int = 128, progress: bool = True, cache: bool = True,
                                 max_languages: int = MAX_LANGUAGES, extract_options: dict | None = None
                                 ) -> tuple[pd.DataFrame, dict[str, str]]:
    """``(gap table, scripts)``: the corpus's chosen languages romanized and extracted as the report extracted the
    original (mean pooling, ``batch_size``, ``max_length``, ``extract_options``), then
    ``transliteration_gap(acts of the original, acts of the romanized, pairs=...)``."""
    from ..extraction.extract import extract
    from ..transliteration import romanize, transliteration_gap

    langs, pairs, scripts = transliteration_plan(corpus, list(acts.languages), pivot, max_languages=max_languages)
    sub = corpus.select_languages(langs)
    roman = romanize(sub, cache=cache)
    options = {k: v for k, v in (extract_options or {}).items() if k not in ("store", "store_dtype")}
    romanized = extract(handle, roman, pooling="mean", batch_size=batch_size, max_length=max_length,
                        progress=progress, cache=cache, **options)
    original = acts.sel(languages=langs)
    table = transliteration_gap(original, romanized, pairs=pairs, n_boot=n_boot, ci=ci, seed=seed)
    table.attrs["romanized"] = roman.meta["romanized"]
    return table, scripts


def describe_transliteration(table: pd.DataFrame) -> str:
    """Per pair: the layer of the largest change of the gap (romanized - original) with its interval and the two
    gaps there; then how many (pair, layer) changes have an interval above 0, below 0, or covering 0."""
    ci = table.attrs.get("ci", 0.95)
    diff = table[table["version"] == "romanized - original"]
    gaps = table[table["version"] != "romanized - original"].set_index(["lang_a", "lang_b", "layer", "version"])["gap"]
    parts = []
    for (a, b), sub in diff.groupby(["lang_a", "lang_b"], sort=False):
        row = sub.loc[sub["gap"].abs().idxmax()]
        layer = int(row["layer"])
        up, down = int((sub["gap_low"] > 0).sum()), int((sub["gap_high"] < 0).sum())
        parts.append(f"{a}–{b} largest change {row['gap']:+.3f} [{row['gap_low']:+.3f}, {row['gap_high']:+.3f}] at "
                     f"layer {layer} (gap {gaps[(a, b, layer, 'original')]:.3f} → {gaps[(a, b, layer, 'romanized')]:.3f}"
                     f"; interval above 0 at {up}, below 0 at {down} of {len(sub)} layers)")
    n = len(diff)
    up, down = int((diff["gap_low"] > 0).sum()), int((diff["gap_high"] < 0).sum())
    n_sent = int(diff["n"].max()) if n else 0
    text = (f"This run ({n_sent} sentences, {round(100 * ci)}% intervals): " + "; ".join(parts) + ". ")
    if up == 0 and down == 0:
        text += (f"At no layer of any pair does the interval of the change exclude 0 ({n} pair-layers): romanization "
                 "makes no clear difference to the gap here.")
    else:
        text += (f"Over the {n} pair-layers, romanization raises the gap (interval above 0) at {up}, lowers it "
                 f"(interval below 0) at {down}, and the interval covers 0 at {n - up - down}.")
    return text


def transliteration_section(table: pd.DataFrame, scripts: dict[str, str] | None = None
                            ) -> tuple[Section, dict[str, Any], dict[str, Any]]:
    """(Section, tables, figures) of a :func:`~xling_probe.transliteration.transliteration_gap` table."""
    from .. import plots
    from .html import Section

    diff = table[table["version"] == "romanized - original"]
    pairs = list(dict.fromkeys(zip(diff["lang_a"], diff["lang_b"])))
    used = list(dict.fromkeys(x for p in pairs for x in p))
    romanized = [x for x in used if not scripts or scripts.get(x) != "Latin"]
    refs = [x for x in used if x not in romanized]
    ci = table.attrs.get("ci", 0.95)
    n_boot = table.attrs.get("n_boot", "?")
    caption = (f"{len(pairs)} pair(s); dashed: original script, solid: romanized (uroman); bands: "
               f"{round(100 * ci)}% bootstrap intervals over sentences ({n_boot} resamples)")
    figs = {"transliteration": plots.transliteration_curves(table, caption=caption)}
    shown = diff[["layer", "lang_a", "lang_b", "gap", "gap_low", "gap_high"]].copy()
    shown = shown.rename(columns={"gap": "change", "gap_low": "low", "gap_high": "high"})
    best = shown.loc[shown.groupby(["lang_a", "lang_b"], sort=False)["change"].apply(lambda s: s.abs().idxmax())]
    for col in ("change", "low", "high"):
        best[col] = best[col].round(4)
    notes = []
    if scripts:
        notes.append("Scripts read from the corpus text: " + ", ".join(f"{k} {v}" for k, v in scripts.items())
                     + f". Non-Latin-script languages romanized: {', '.join(romanized)}"
                     + (f" (the Latin-script reference {', '.join(refs)} goes through uroman too)." if refs else "."))
    section = Section("transliteration", "Transliteration: original vs romanized text", TRANSLITERATION_TEXT,
                      list(figs.items()), ["tables/transliteration.csv"], notes=notes,
                      finding=describe_transliteration(table),
                      tables=[("Largest change of the gap per pair (romanized − original, interval)", best)])
    return section, {"transliteration": table}, figs


__all__ = ["MAX_LANGUAGES", "TABLES", "TRANSLITERATION_TEXT", "describe_transliteration", "run_transliteration_analysis",
           "transliteration_plan", "transliteration_section"]
