"""Figures of language-specific neurons (LAPE; docs/neurons.md): pure builders, a result in, a Figure out.

- :func:`neurons_per_layer`: how many neurons of each language sit in each block (one line per language,
  in its fixed colour; ``languages=`` highlights a subset, the rest grey);
- :func:`neuron_overlap`: language x language count of shared neurons (the diagonal: each language's total);
- :func:`perplexity_change_heatmap`: the perplexity-change matrix (rows: neurons switched off, columns: the
  language evaluated) beside the same matrix for random neurons, on one colour scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import HEATMAP_SCALE, TEMPLATE, language_color, register

if TYPE_CHECKING:
    from ..neurons.perplexity import PerplexityChange
    from ..neurons.selection import LanguageNeurons

_MEASURE_LABEL = {"ratio": "PPL after / before", "difference": "PPL after − before", "ppl": "PPL after"}


def neurons_per_layer(neurons: LanguageNeurons, *, languages: Sequence[str] | None = None,
                      title: str | None = None) -> go.Figure:
    """Lines: number of each language's neurons per block (``languages`` in colour, the others grey)."""
    register()
    table = neurons.per_layer()
    shown = {neurons.language(x) for x in languages} if languages else set(neurons.languages)
    fig = go.Figure()
    for lang in neurons.languages:
        on = lang in shown
        fig.add_trace(go.Scatter(
            x=list(table.index), y=table[lang].to_numpy(), mode="lines+markers", name=lang,
            line=dict(color=language_color(lang) if on else "#BBBBBB", width=2.5 if on else 1),
            marker=dict(size=6 if on else 3), opacity=1.0 if on else 0.6,
            hovertemplate=f"{lang}, block %{{x}}: %{{y}} neurons<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=title or "Language-specific neurons per block (LAPE)",
                      xaxis=dict(title="block (FFN of block l)", dtick=max(1, neurons.n_layers // 9)),
                      yaxis=dict(title="neurons", rangemode="tozero"))
    return fig


def neuron_overlap(neurons: LanguageNeurons, *, title: str | None = None) -> go.Figure:
    """Heatmap language x language: neurons assigned to both (diagonal = each language's count)."""
    register()
    ov = neurons.overlap()
    labels = list(ov.index)
    fig = go.Figure(go.Heatmap(
        z=ov.to_numpy(), x=labels, y=labels, colorscale=HEATMAP_SCALE, texttemplate="%{z}", textfont=dict(size=11),
        colorbar=dict(title=dict(text="shared<br>neurons")),
        hovertemplate="%{y} & %{x}: %{z} shared neurons<extra></extra>"))
    side = min(700, 220 + 38 * len(labels))
    fig.update_layout(template=TEMPLATE, width=side + 80, height=side,
                      title=title or "Neurons shared between languages",
                      xaxis=dict(title="language", showgrid=False), yaxis=dict(title="language", showgrid=False,
                                                                               autorange="reversed"))
    return fig


def perplexity_change_heatmap(result: PerplexityChange, *, measure: str = "ratio", control: bool = True,
                              title: str | None = None) -> go.Figure:
    """The perplexity-change matrix (and, with ``control``, the random-neuron control beside it, same scale)."""
    register()
    mats = [("language neurons off", result.values(measure))]
    if control and result.control is not None:
        mats.append(("random neurons off (same count per block)", result.values(measure, control=True)))
    fig = make_subplots(rows=1, cols=len(mats), subplot_titles=[m[0] for m in mats], horizontal_spacing=0.12)
    finite = np.concatenate([m[1][np.isfinite(m[1])] for m in mats]) if mats else np.zeros(0)
    center = 1.0 if measure == "ratio" else 0.0
    if measure == "ppl" or not finite.size:
        rng = {}
    else:
        span = float(np.max(np.abs(finite - center))) or 1.0
        rng = {"zmin": center - span, "zmax": center + span, "colorscale": "RdBu_r"}
    for k, (_, z) in enumerate(mats):
        fig.add_trace(go.Heatmap(
            z=z, x=list(result.evaluated), y=list(result.off), texttemplate="%{z:.2f}", textfont=dict(size=10),
            colorscale=rng.get("colorscale", HEATMAP_SCALE), zmin=rng.get("zmin"), zmax=rng.get("zmax"),
            showscale=k == len(mats) - 1, colorbar=dict(title=dict(text=_MEASURE_LABEL[measure])),
            hovertemplate="neurons of %{y} off<br>evaluated on %{x}: %{z:.3f}<extra></extra>"), row=1, col=k + 1)
        fig.update_xaxes(title_text="evaluated language", showgrid=False, row=1, col=k + 1)
        fig.update_yaxes(title_text="neurons switched off" if k == 0 else None, showgrid=False, autorange="reversed",
                         row=1, col=k + 1)
    n = len(result.off)
    fig.update_layout(template=TEMPLATE, width=min(1080, 300 + 2 * 45 * max(n, 4) * len(mats) / 2),
                      height=max(380, 160 + 40 * n),
                      title=title or f"Perplexity change when a language's neurons are switched off ({_MEASURE_LABEL[measure]})")
    return fig
