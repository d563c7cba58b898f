"""The linear map of the report's neutrality stage: held-out retrieval through a least-squares map into the
pivot's space, beside how close that map is to an orthogonal one (:func:`~xling_probe.centering.map_quality`).

:func:`linear_map_quality` fits a :class:`~xling_probe.centering.estimators.LinearProjection` (every source
language into the pivot) on the neutrality report's fit split and scores it on its held-out split, one layer
at a time (the maps of one layer in memory: ``sources x hidden^2`` floats), so the table equals
``map_quality(LinearProjection(pivot, sources).fit(acts.sel(ids=fit_ids)), acts.sel(ids=heldout_ids))``.
:func:`map_quality_section` is pure (table in, Section out); :func:`describe_map_quality` its sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .html import Section

#: At most this many source languages are mapped into the pivot (each map is hidden x hidden per layer).
MAX_SOURCES = 8

MAP_TEXT = (
    "Explicit projection into the pivot's space: per layer and language, an affine least-squares map from that "
    "language's sentence vectors to the pivot's translations, fitted on the same fit split as the neutrality "
    "figure and scored on its held-out split. P@1 raw: retrieval of the translation among the pivot's held-out "
    "sentences before the map; projected: after it (mean of both directions); R²: how much of the pivot's "
    "variance the mapped vectors explain. Map geometry (Vasilyev et al.: a good cross-lingual map is close to "
    "orthogonal): the orthogonality deviation is ||W̃ᵀW̃ − I||_F / √D with W̃ = W / mean singular value (0 for a "
    "scaled orthogonal map, unchanged by scaling W); the singular-value spread is s_max / s_min (∞ when the map "
    "is rank deficient) and std / mean of the singular values. With fewer fit pairs than hidden dimensions the "
    "least-squares map has rank below the width (the minimum-norm solution), and its zero singular values make "
    "the deviation large by construction; the rank column says when.")


def map_sources(languages: Sequence[str], pivot: str, max_sources: int = MAX_SOURCES) -> list[str]:
    """The source languages mapped into ``pivot``: every other language, evenly spaced down to ``max_sources``."""
    others = [x for x in languages if x != pivot]
    if len(others) <= max_sources:
        return others
    keep = {others[round(i * (len(others) - 1) / (max_sources - 1))] for i in range(max_sources)}
    return [x for x in others if x in keep]


def linear_map_quality(acts: Any, fit_ids: Sequence[str], heldout_ids: Sequence[str], pivot: str, *,
                       sources: Sequence[str] | None = None, method: str = "lstsq", alpha: float = 0.0
                       ) -> pd.DataFrame:
    """Per layer and source: :func:`~xling_probe.centering.map_quality` of the map fitted on ``fit_ids`` with its
    retrieval on ``heldout_ids`` (columns of :data:`~xling_probe.centering.quality.QUALITY_COLUMNS` plus
    ``p_at_1_raw``, ``p_at_1_projected``, ``r2``, ``n_fit``, ``n_heldout``)."""
    from ..centering.estimators import LinearProjection
    from ..centering.quality import map_quality

    src = list(sources) if sources is not None else map_sources(acts.languages, pivot)
    langs = [pivot] + src
    fit = acts.sel(languages=langs, ids=list(fit_ids))
    held = acts.sel(languages=langs, ids=list(heldout_ids))
    parts = []
    for layer in acts.layers:
        proj = LinearProjection(pivot, src, method=method, alpha=alpha).fit(fit.sel(layers=[layer]))
        parts.append(map_quality(proj, held.sel(layers=[layer])))
        del proj
    table = pd.concat(parts, ignore_index=True)
    table["n_fit"], table["n_heldout"] = len(fit_ids), len(heldout_ids)
    table.attrs.update(parts[0].attrs)
    return table


def per_layer(table: pd.DataFrame) -> pd.DataFrame:
    """The table averaged over source languages per layer (rank: the smallest), for the page."""
    cols = [c for c in ("p_at_1_raw", "p_at_1_projected", "r2", "orthogonality_deviation", "sv_cv") if c in table]
    out = table.groupby("layer", sort=True)[cols].mean()
    out["sv_ratio_median"] = table.groupby("layer")["sv_ratio"].median()
    out["rank_min"] = table.groupby("layer")["rank"].min()
    out["hidden"] = table.groupby("layer")["hidden"].first()
    return out.reset_index()


def _f(x: float) -> str:
    return "∞" if np.isinf(x) else f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.2g}"


def describe_map_quality(table: pd.DataFrame) -> str:
    """The layer where held-out P@1 after the map (mean over sources) is highest, with P@1 before it, R², the
    orthogonality deviation and the singular-value spread there, and whether the maps are rank deficient."""
    pl = per_layer(table)
    k = int(pl["p_at_1_projected"].to_numpy().argmax())
    row = pl.iloc[k]
    sources = list(dict.fromkeys(table["source"]))
    text = (f"This run ({table['method'].iloc[0]} maps of {', '.join(sources)} into {table['target'].iloc[0]}, "
            f"fitted on {int(table['n_fit'].iloc[0])} pairs, scored on {int(table['n_heldout'].iloc[0])} held-out "
            f"pairs, width {int(row['hidden'])}): held-out P@1 after the map is highest at layer {int(row['layer'])} "
            f"({_f(row['p_at_1_projected'])}, mean over sources; {_f(row['p_at_1_raw'])} before the map; R² "
            f"{_f(row['r2'])}). There the orthogonality deviation is {_f(row['orthogonality_deviation'])} (0 = scaled "
            f"orthogonal) and the singular values spread with std/mean {_f(row['sv_cv'])}, s_max/s_min "
            f"{_f(row['sv_ratio_median'])} (median over sources).")
    up = int((pl["p_at_1_projected"] > pl["p_at_1_raw"]).sum())
    text += f" The map raises held-out P@1 above that of the raw vectors at {up} of {len(pl)} layers."
    lo, hi = pl["orthogonality_deviation"].min(), pl["orthogonality_deviation"].max()
    text += f" Over layers the deviation ranges {_f(lo)}–{_f(hi)}."
    deficient = table["rank"] < table["hidden"]
    if deficient.any():
        text += (f" {int(deficient.sum())} of {len(table)} maps are rank deficient (rank as low as "
                 f"{int(table['rank'].min())} of {int(table['hidden'].max())}: fewer fit pairs than dimensions), so "
                 "their deviation is large by construction, not a finding about the geometry.")
    return text


def map_quality_section(table: pd.DataFrame) -> tuple[Section, dict[str, Any], dict[str, Any]]:
    """(Section, tables, figures) of :func:`linear_map_quality`: the per-source CSV and a per-layer table."""
    from .html import Section

    shown = per_layer(table)
    for col in shown.columns:
        if shown[col].dtype.kind == "f":
            shown[col] = shown[col].round(3)
    target = table["target"].iloc[0]
    section = Section("map_quality", f"Linear map into {target}: held-out retrieval and orthogonality", MAP_TEXT,
                      [], ["tables/map_quality.csv"], finding=describe_map_quality(table),
                      tables=[("Per layer, mean over source languages (rank: smallest; s_max/s_min: median)", shown)])
    return section, {"map_quality": table}, {}


__all__ = ["MAP_TEXT", "MAX_SOURCES", "describe_map_quality", "linear_map_quality", "map_quality_section",
           "map_sources", "per_layer"]
