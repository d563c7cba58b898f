"""The report's similarity heatmap section for many languages (more than :data:`MANY_LANGUAGES`).

A 402 x 402 matrix cannot be read cell by cell, so the section shows instead: the mean similarity
within and between language families at the peak layer, the :data:`TOP` most and least similar
pairs, the heatmap ordered by hierarchical clustering (family blocks labelled on the axes), and it
writes the full matrix as ``tables/similarity_matrix.csv`` (one row per computed pair and direction),
linked from the page. :func:`many_language_section` is pure (a result in; a Section, tables and
figures out), so it is called directly on synthetic results in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..data.families import language_family
from ..errors import XlingProbeError

if TYPE_CHECKING:
    from ..measures.result import SimilarityResult
    from .html import Section

#: Above this many languages the report uses this section instead of the plain heatmap.
MANY_LANGUAGES = 40
#: How many most / least similar pairs the section lists.
TOP = 20
MATRIX_CSV = "tables/similarity_matrix.csv"
FAMILIES_CSV = "tables/similarity_families.csv"
PAIRS_CSV = "tables/similarity_top_pairs.csv"


def matrix_table(sim: SimilarityResult, metric: str, layer: int) -> pd.DataFrame:
    """Every computed slot of ``metric`` at ``layer`` (each pair once for symmetric metrics, both
    directions for directional ones): lang_a, lang_b, their families, the value."""
    z = np.asarray(sim.sel(metric, layer), dtype=float)
    langs = list(sim.languages)
    pos = {c: i for i, c in enumerate(langs)}
    slots = sim.slots(metric)
    ia = np.array([pos[a] for a, _ in slots], dtype=int)
    ib = np.array([pos[b] for _, b in slots], dtype=int)
    fam = {c: language_family(c) for c in langs}
    return pd.DataFrame({"metric": metric, "layer": layer, "lang_a": [a for a, _ in slots],
                         "lang_b": [b for _, b in slots], "family_a": [fam[a] for a, _ in slots],
                         "family_b": [fam[b] for _, b in slots], "value": z[ia, ib]})


def family_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, count and spread of the values per (family_a, family_b), unordered for symmetric
    tables; ``within`` marks the diagonal blocks. Sorted: within-family blocks first, by mean."""
    a, b = table["family_a"], table["family_b"]
    lo, hi = np.where(a <= b, a, b), np.where(a <= b, b, a)
    grouped = table.assign(family_a=lo, family_b=hi).groupby(["family_a", "family_b"])["value"]
    out = grouped.agg(mean="mean", std="std", pairs="count").reset_index()
    out["within"] = out["family_a"] == out["family_b"]
    return out.sort_values(["within", "mean"], ascending=[False, False]).reset_index(drop=True)


def top_pairs(table: pd.DataFrame, k: int = TOP) -> pd.DataFrame:
    """The ``k`` highest and the ``k`` lowest slots (``rank`` = ``top`` / ``bottom``)."""
    valid = table.dropna(subset=["value"]).sort_values("value", ascending=False)
    top = valid.head(k).assign(rank="top")
    bottom = valid.tail(k).iloc[::-1].assign(rank="bottom")
    return pd.concat([top, bottom], ignore_index=True)[["rank", "lang_a", "lang_b", "family_a", "family_b", "value"]]


def _finding(fams: pd.DataFrame, table: pd.DataFrame, metric: str, layer: int) -> str:
    within = fams[fams["within"] & (fams["pairs"] > 0)]
    between = fams[~fams["within"]]
    w = np.average(within["mean"], weights=within["pairs"]) if len(within) else np.nan
    b = np.average(between["mean"], weights=between["pairs"]) if len(between) else np.nan
    n_fam = len(set(table["family_a"]) | set(table["family_b"]))
    return (f"This run, {metric} at layer {layer}: {len(table)} pairs of languages from {n_fam} families; "
            f"mean within a family {w:.3f} ({int(within['pairs'].sum())} pairs), between families {b:.3f} "
            f"({int(between['pairs'].sum())} pairs).")


def many_language_section(sim: SimilarityResult, metric: str, layer: int) -> tuple[Section, dict[str, Any],
                                                                                   dict[str, Any]]:
    """The heatmap section of a report with many languages: (Section, tables name -> DataFrame,
    figures id -> Figure). Table names match the linked files (``similarity_matrix`` ->
    :data:`MATRIX_CSV`)."""
    from .. import plots
    from .html import TEXTS, Section

    table = matrix_table(sim, metric, layer)
    fams = family_summary(table)
    pairs = top_pairs(table)
    fig = plots.language_heatmap(sim, metric, layer=layer, order="cluster", dendrogram=True, groups="family")
    shown = fams.head(TOP).round({"mean": 3, "std": 3})
    section = Section("heatmap", f"All {len(sim.languages)} languages at layer {layer}", TEXTS["heatmap_many"],
                      [("language_heatmap", fig)], [MATRIX_CSV, FAMILIES_CSV, PAIRS_CSV],
                      finding=_finding(fams, table, metric, layer),
                      tables=[(f"Mean similarity within and between families (first {len(shown)} of {len(fams)}; "
                               f"all in {FAMILIES_CSV})", shown),
                              (f"The {TOP} most and the {TOP} least similar pairs", pairs.round({"value": 3}))])
    tables = {"similarity_matrix": table, "similarity_families": fams, "similarity_top_pairs": pairs}
    return section, tables, {"language_heatmap": fig}


def similarity_stage(acts, metrics, pivot, *, null_permutations, bootstrap, seed, progress, max_memory_gb, many):
    """``(sim, grid)``: the scored result for the curves (nulls, intervals) and the one for every pair.

    Few languages: one result, every pair with its null and interval. Many: every pair's values in the
    batched path (metrics that have one), and the pivot pairs with null and interval."""
    from ..measures.allpairs import supports
    from ..measures.engine import similarity

    if not many:
        sim = similarity(acts, metrics=list(metrics), pairs="all", null_permutations=null_permutations,
                         bootstrap=bootstrap, seed=seed, progress=progress, max_memory_gb=max_memory_gb)
        return sim, sim
    batched = [m for m in metrics if supports([m])] or ["cka_debiased"]
    grid = similarity(acts, metrics=batched, pairs="all", null_permutations=0, bootstrap=0, seed=seed,
                      progress=progress, max_memory_gb=max_memory_gb)
    sim = similarity(acts, metrics=list(metrics), pairs=f"pivot:{pivot}", null_permutations=null_permutations,
                     bootstrap=bootstrap, seed=seed, progress=progress, max_memory_gb=max_memory_gb)
    return sim, grid


#: The many-language mode draws the sentence map of at most this many languages (a legend of 402 is no legend).
MAP_LANGUAGES = 20


def map_languages(langs: Sequence[str], pivot: str) -> list[str]:
    """The pivot and evenly spaced others, in corpus order, at most :data:`MAP_LANGUAGES` in all."""
    if len(langs) <= MAP_LANGUAGES:
        return list(langs)
    others = [x for x in langs if x != pivot]
    picks = {others[round(i * (len(others) - 1) / (MAP_LANGUAGES - 2))] for i in range(MAP_LANGUAGES - 1)}
    return [x for x in langs if x == pivot or x in picks]


def select_corpus(corpus, langs, limit, default_langs):
    """The report's languages and sentences: ``langs`` (``"all"``: every one), else the defaults present."""
    if langs == "all" or (langs is not None and not isinstance(langs, str) and list(langs) == ["all"]):
        pass  # every language of the corpus
    elif langs:
        corpus = corpus.select_languages(list(langs))
    else:
        present = [c for c in default_langs if c in corpus.languages]
        if len(present) >= 2:
            corpus = corpus.select_languages(present)
    if len(corpus.languages) < 2:
        raise XlingProbeError(f"the report compares languages: it needs at least 2, got {list(corpus.languages)}")
    if limit:
        corpus = corpus.head(limit)
    return corpus
