"""The report's language-distance section: does URIEL+ language distance explain the run's similarity, per layer?

:func:`run_distance_analysis` takes the run's every-pair :class:`~xling_probe.measures.result.SimilarityResult`,
computes :func:`~xling_probe.distances.language_distances` for its languages and, per metric,
:func:`~xling_probe.distances.distance_correlations` (Spearman r over language pairs per layer and distance
kind, seeded Mantel permutation p-values, partial r controlling for script). :func:`distance_section` is pure:
those tables in; a Section, tables (name -> DataFrame, written as ``tables/<name>.csv``) and figures out.
:func:`describe_distances` is the sentence under the figures, computed from the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import MetricError

if TYPE_CHECKING:
    from ..distances.uriel import LanguageDistances
    from .html import Section

#: The similarity metrics correlated with the distances, those of them the run has (else its first metric).
DISTANCE_METRICS = ("cka_debiased", "p@1")
#: A Mantel test over language pairs needs at least this many languages (4 languages: 6 pairs, 24 orderings).
MIN_LANGUAGES = 4
ALPHA = 0.05
TABLES = ("distance_correlations", "distance_summary", "language_distances")

DISTANCE_TEXT = (
    "Language distance as an explanation of representation similarity. For every layer, the similarity of each "
    "pair of the run's languages (both directions averaged for directional metrics) is correlated with the "
    "distance between the two languages in URIEL+ (syntactic, phonological, inventory, genetic, geographic and "
    "featural: angular distances between the languages' URIEL+ feature vectors; the urielplus package, offline) "
    "and with script identity (1 when the two are written in different scripts). The correlation is Spearman's r "
    "over language pairs; its p-value is a Mantel permutation test (languages permuted jointly, seeded), and the "
    "partial r controls for script (does the distance explain similarity beyond a shared script?). Negative r: "
    "closer languages have more similar representations. Filled markers: Mantel p < 0.05; hollow: not. With few "
    "languages there are few pairs and few distinct permutations, so p-values are coarse; they are not corrected "
    "for the number of layers and kinds tested.")


def analysis_metrics(sim: Any, metrics: Sequence[str] | None = None) -> list[str]:
    """The metrics of ``sim`` to correlate: ``metrics`` (default :data:`DISTANCE_METRICS`) that it has, else its first."""
    from ..measures.registry import metric_spec

    wanted = [metric_spec(m).name for m in (metrics or DISTANCE_METRICS)]
    have = [m for m in wanted if m in sim.metrics]
    return have or [sim.metrics[0]]


def run_distance_analysis(sim: Any, *, kinds: Sequence[str] | None = None, source: str = "urielplus",
                          permutations: int = 999, seed: int = 0, metrics: Sequence[str] | None = None,
                          method: str = "spearman") -> tuple[LanguageDistances, pd.DataFrame]:
    """``(distances, correlations)``: :func:`language_distances` of ``sim``'s languages (``kinds``, default
    :data:`~xling_probe.distances.DEFAULT_KINDS`, plus script) and :func:`distance_correlations` per metric of
    :func:`analysis_metrics`, concatenated (column ``metric``). Every test uses ``seed``."""
    from ..distances import DEFAULT_KINDS, distance_correlations, language_distances

    if len(sim.languages) < MIN_LANGUAGES:
        raise MetricError(f"a Mantel test over language pairs needs at least {MIN_LANGUAGES} languages, this run "
                          f"has {len(sim.languages)} ({', '.join(sim.languages)})")
    dist = language_distances(sim.languages, tuple(kinds) if kinds is not None else DEFAULT_KINDS, source=source)
    parts = [distance_correlations(sim, dist, metric, permutations=permutations, seed=seed, method=method)
             for metric in analysis_metrics(sim, metrics)]
    table = pd.concat(parts, ignore_index=True)
    table.attrs.update(parts[0].attrs)
    return dist, table


def summary_table(table: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per metric and distance kind: the layer of the strongest |r|, r and p there, partial r and p there, and at
    how many layers p < ``alpha``. Kinds whose r is undefined at every layer get NaN."""
    rows = []
    for (metric, kind), sub in table.groupby(["metric", "kind"], sort=False):
        defined = sub.dropna(subset=["r"])
        n_sig = int((defined["p"] < alpha).sum())
        if defined.empty:
            rows.append({"metric": metric, "kind": kind, "layer": np.nan, "r": np.nan, "p": np.nan,
                         "partial_r": np.nan, "partial_p": np.nan, "layers_p_below_alpha": 0, "layers": len(sub)})
            continue
        best = defined.loc[defined["r"].abs().idxmax()]
        rows.append({"metric": metric, "kind": kind, "layer": int(best["layer"]), "r": float(best["r"]),
                     "p": float(best["p"]), "partial_r": float(best["partial_r"]), "partial_p": float(best["partial_p"]),
                     "layers_p_below_alpha": n_sig, "layers": len(sub)})
    return pd.DataFrame(rows, columns=["metric", "kind", "layer", "r", "p", "partial_r", "partial_p",
                                       "layers_p_below_alpha", "layers"])


def _label(metric: str) -> str:
    from ..plots.curves import metric_label

    return metric_label(metric)


def describe_distances(table: pd.DataFrame, alpha: float = ALPHA) -> str:
    """What the correlation-vs-layer figures show, from the table of :func:`run_distance_analysis`: per metric, each
    distance kind's strongest |r| with its layer, p-value and partial r (script controlled); how many
    (layer, kind) tests reach p < ``alpha``; and plainly when none does."""
    if table.empty:
        return "This run: no correlation was computed."
    n_lang = int(table["n_languages"].max())
    n_pairs = int(table["n_pairs"].max())
    perms = table.attrs.get("permutations")
    head = (f"This run ({n_lang} languages, up to {n_pairs} language pairs per layer"
            + (f", {perms} Mantel permutations" if perms is not None else "") + f", {str(table['method'].iloc[0]).capitalize()} r): ")
    summary = summary_table(table, alpha)
    parts = []
    for metric, sub in summary.groupby("metric", sort=False):
        items = []
        for _, row in sub.sort_values("r", key=lambda r: -r.abs(), na_position="last").iterrows():
            if not np.isfinite(row["r"]):
                items.append(f"{row['kind']} undefined (too few pairs with a distance)")
                continue
            text = f"{row['kind']} r {row['r']:+.2f} at layer {int(row['layer'])} (p = {row['p']:.3g}"
            if np.isfinite(row["partial_r"]):
                text += f"; controlling for script {row['partial_r']:+.2f}, p = {row['partial_p']:.3g}"
            text += f"; p < {alpha} at {int(row['layers_p_below_alpha'])} of {int(row['layers'])} layers)"
            items.append(text)
        parts.append(f"{_label(metric)}, strongest |r| per distance: " + "; ".join(items))
    tests = table.dropna(subset=["p"])
    n_sig = int((tests["p"] < alpha).sum())
    if n_sig == 0:
        tail = (f" No correlation reaches p < {alpha} at any layer ({len(tests)} tests): with these languages, "
                "language distance does not detectably explain the similarity.")
    else:
        tail = (f" {n_sig} of {len(tests)} (layer, distance, metric) tests reach p < {alpha}, uncorrected for "
                "multiple testing.")
    return head + ". ".join(parts) + "." + tail


def distance_section(dist: LanguageDistances, table: pd.DataFrame, *, alpha: float = ALPHA,
                     source: str | None = None) -> tuple[Section, dict[str, Any], dict[str, Any]]:
    """(Section, tables name -> DataFrame, figures id -> Figure) of the distance correlations."""
    from ..distances import distance_correlation_figure
    from ..measures.registry import metric_spec
    from ..plots.style import add_caption
    from .html import Section

    figs: dict[str, Any] = {}
    perms = table.attrs.get("permutations", "?")
    for metric, sub in table.groupby("metric", sort=False):
        sub = sub.reset_index(drop=True)
        ident = metric_spec(metric).ident
        n_pairs = int(sub["n_pairs"].max())
        for value, key in (("r", f"distances_{ident}"), ("partial_r", f"distances_{ident}_partial")):
            title = (f"{_label(metric)} vs language distance per layer" if value == "r"
                     else f"{_label(metric)} vs language distance, script controlled (partial r)")
            fig = distance_correlation_figure(sub, value=value, alpha=alpha, title=title)
            add_caption(fig, f"Spearman {'partial ' if value != 'r' else ''}r over up to {n_pairs} language pairs; "
                             f"filled markers: Mantel p < {alpha} ({perms} permutations, uncorrected)")
            fig.update_layout(margin=dict(t=100))
            figs[key] = fig
    summary = summary_table(table, alpha)
    tables: dict[str, Any] = {"distance_correlations": table, "distance_summary": summary,
                              "language_distances": dist.to_dataframe()}
    notes = []
    if dist.unmapped:
        notes.append(f"URIEL+ has no entry for {', '.join(dist.unmapped)}: their pairs are left out of the URIEL+ "
                     "kinds (script identity still counts them).")
    gaps = {k: v for k, v in dist.missing.items() if v}
    if gaps:
        notes.append("Languages without data of a kind (their pairs are left out of it): "
                     + "; ".join(f"{k}: {', '.join(v)}" for k, v in gaps.items()) + ".")
    shown = summary.copy()
    for col in ("r", "p", "partial_r", "partial_p"):
        shown[col] = shown[col].round(3)
    src = source or dist.source
    title = f"Language distance (URIEL+{'' if src == 'urielplus' else ', original URIEL arrays'}) vs similarity"
    section = Section("distances", title, DISTANCE_TEXT, list(figs.items()), [f"tables/{t}.csv" for t in TABLES],
                      notes=notes, finding=describe_distances(table, alpha),
                      tables=[("Strongest |r| per metric and distance (layer, Mantel p, partial r | script)", shown)])
    return section, tables, figs


__all__ = ["ALPHA", "DISTANCE_METRICS", "DISTANCE_TEXT", "MIN_LANGUAGES", "TABLES", "analysis_metrics",
           "describe_distances", "distance_section", "run_distance_analysis", "summary_table"]
