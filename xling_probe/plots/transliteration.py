"""The figure of :func:`~xling_probe.transliteration.transliteration_gap`: matched - random gap per layer for the
original and the romanized text (left), and the change romanized - original (right), with their intervals.

Pure: the gap table in, a plotly Figure out; every line is a column of the table (nothing is computed but slicing).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import MetricError
from .curves import band
from .style import TEMPLATE, language_color, register

VERSIONS = ("original", "romanized", "romanized - original")
_DASH = {"original": "dash", "romanized": "solid"}


def _pair_color(a: str, b: str, taken: set[str]) -> str:
    for code in (b, a):
        color = language_color(code)
        if color not in taken:
            return color
    return language_color(b)


def transliteration_curves(table: pd.DataFrame, *, title: str | None = None, caption: str | None = None) -> go.Figure:
    """Two panels over layers for a table of :func:`~xling_probe.transliteration.transliteration_gap`.

    Left: per language pair, the gap (matched - random mean cosine) of the original text (dashed) and of the
    romanized text (solid), each with its bootstrap interval (band). Right: the change of the gap, romanized -
    original, with its paired bootstrap interval; the grey line is 0 (no change). One colour per pair (the
    colour of its second language)."""
    need = {"layer", "lang_a", "lang_b", "version", "gap", "gap_low", "gap_high"}
    if not need <= set(table.columns):
        raise MetricError(f"the table lacks columns {sorted(need - set(table.columns))}; pass transliteration_gap()")
    if not set(table["version"]) >= set(VERSIONS):
        raise MetricError(f"the table needs the versions {list(VERSIONS)} (transliteration_gap of two versions), "
                          f"got {sorted(set(table['version']))}")
    register()
    ci = table.attrs.get("ci", 0.95)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("matched − random cosine (gap)", "change of the gap: romanized − original"))
    taken: set[str] = set()
    pairs = list(dict.fromkeys(zip(table["lang_a"], table["lang_b"])))
    for a, b in pairs:
        color = _pair_color(a, b, taken)
        taken.add(color)
        sub = table[(table["lang_a"] == a) & (table["lang_b"] == b)]
        name = f"{a}–{b}"
        for version in VERSIONS:
            rows = sub[sub["version"] == version].sort_values("layer")
            col = 2 if version == "romanized - original" else 1
            x = rows["layer"].tolist()
            fig.add_trace(band(x, rows["gap_low"], rows["gap_high"], color, f"{name} {version} interval",
                               legendgroup=name, alpha=0.15), 1, col)
            label = f"{name} {'change' if col == 2 else version}"
            fig.add_trace(go.Scatter(x=x, y=rows["gap"].tolist(), mode="lines+markers", name=label, legendgroup=name,
                                     showlegend=version != "romanized - original",
                                     line=dict(color=color, dash=_DASH.get(version, "solid"), width=2),
                                     marker=dict(size=4),
                                     customdata=rows[["gap_low", "gap_high"]].to_numpy(),
                                     hovertemplate=f"{name} {version}<br>layer %{{x}}<br>gap %{{y:.3f}} "
                                                   "[%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>"),
                          1, col)
    layers = sorted(table["layer"].unique())
    fig.add_trace(go.Scatter(x=[layers[0], layers[-1]], y=[0, 0], mode="lines", name="no change",
                             line=dict(color="#9a9a9a", width=1), hoverinfo="skip", showlegend=False), 1, 2)
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="gap (cosine)", row=1, col=1)
    fig.update_yaxes(title_text="Δ gap (romanized − original)", row=1, col=2)
    fig.update_layout(template=TEMPLATE, title=dict(text=title or "Transliteration: translation pairs vs random "
                                                     "pairs, original and romanized", yref="container", y=0.97),
                      height=500, width=1050, margin=dict(t=90, b=110))
    # the caption goes under the panels (add_caption's place, top left, is taken by the subplot titles); an
    # annotation named "caption" as add_caption makes (plots.style.caption_of reads it), not title.subtitle
    text = caption if caption is not None else (f"dashed: original script, solid: romanized (uroman); bands: "
                                                f"{round(100 * ci)}% bootstrap intervals over sentences")
    if text:
        fig.add_annotation(text=text, name="caption", xref="paper", yref="paper", x=0, y=-0.2, xanchor="left",
                           yanchor="top", showarrow=False, align="left", font=dict(size=12, color="#555555"))
    return fig


__all__ = ["transliteration_curves"]
