"""Figures of the intervention experiments (docs/interventions.md): pure builders, a result in, a Figure out.

- :func:`intervention_curves`: one measure against the strength (alpha, sigma) or the layer, one line per
  value of another label (e.g. per layer), with the bootstrap interval as a band; the control
  (``kind="random"`` / ``"unrelated"``) dashed in grey;
- :func:`intervention_heatmap`: one measure as a grid (layer x alpha, layer x position), the interval in
  the hover text;
- :func:`next_token_bars`: the top next tokens of one prompt with and without an intervention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from .style import HEATMAP_SCALE, PALETTE, TEMPLATE, register, rgba

if TYPE_CHECKING:
    from ..interventions.results import InterventionResult

#: Values of ``kind`` that are controls, not the intervention under test.
CONTROLS = ("random", "unrelated")


def _label(result: InterventionResult, measure: str) -> str:
    return result.measures.get(measure, measure)


def intervention_curves(result: InterventionResult, measure: str, *, x: str | None = None, by: str = "layer",
                        title: str | None = None, **labels: Any) -> go.Figure:
    """``measure`` (mean and interval) against ``x`` (default: the strength label ``alpha``/``sigma``),
    one line per value of ``by``; rows of a control kind are drawn dashed grey with the same ``by`` value."""
    register()
    t = result.sel(measure, **labels)
    if x is None:
        x = next((c for c in ("alpha", "sigma", "position") if c in t.columns), "layer")
    fig = go.Figure()
    kinds = list(dict.fromkeys(t["kind"])) if "kind" in t.columns else [None]
    groups = list(dict.fromkeys(t[by])) if by in t.columns else [None]
    for kind in kinds:
        control = kind in CONTROLS
        for k, g in enumerate(groups):
            part = t
            if kind is not None:
                part = part[part["kind"] == kind]
            if g is not None:
                part = part[part[by] == g]
            part = part.sort_values(x)
            if part.empty:
                continue
            color = "#999999" if control else PALETTE[k % len(PALETTE)]
            name = (f"{by} {g}" if g is not None else measure) + (f" ({kind})" if control else "")
            xs = part[x].to_numpy()
            lo, hi = part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float)
            if not control and np.isfinite(lo).any():
                fig.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                                         fill="toself", fillcolor=rgba(color, 0.15), line=dict(width=0),
                                         hoverinfo="skip", showlegend=False, legendgroup=name))
            fig.add_trace(go.Scatter(
                x=xs, y=part["mean"].to_numpy(float), mode="lines+markers", name=name, legendgroup=name,
                line=dict(color=color, dash="dash" if control else "solid", width=1.5 if control else 2.2),
                customdata=np.stack([lo, hi, part["n"].to_numpy(float)], -1),
                hovertemplate=(f"{name}, {x} %{{x}}: %{{y:.3f}} [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]"
                               " (n=%{customdata[2]:.0f})<extra></extra>")))
    fig.update_layout(template=TEMPLATE, title=title or f"{result.kind}: {_label(result, measure)}",
                      xaxis=dict(title=x), yaxis=dict(title=measure), legend=dict(title=by))
    return fig


def intervention_heatmap(result: InterventionResult, measure: str, *, rows: str = "layer", cols: str | None = None,
                         title: str | None = None, **labels: Any) -> go.Figure:
    """``measure``'s means as a ``rows`` x ``cols`` grid (default cols: alpha / sigma / position)."""
    register()
    t = result.sel(measure, **labels)
    if cols is None:
        cols = next(c for c in ("alpha", "sigma", "position", "kind") if c in t.columns and c != rows)
    mean = t.pivot_table(index=rows, columns=cols, values="mean")
    lo = t.pivot_table(index=rows, columns=cols, values="ci_low").reindex_like(mean)
    hi = t.pivot_table(index=rows, columns=cols, values="ci_high").reindex_like(mean)
    z = mean.to_numpy(float)
    text = np.vectorize(lambda m, a, b: f"{m:.3f} [{a:.3f}, {b:.3f}]")(z, lo.to_numpy(float), hi.to_numpy(float))
    diverging = np.nanmin(z) < 0 < np.nanmax(z) if np.isfinite(z).any() else False
    span = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    scale = dict(colorscale="RdBu_r", zmin=-span, zmax=span, zmid=0.0) if diverging else dict(colorscale=HEATMAP_SCALE)
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(c) for c in mean.columns], y=[str(r) for r in mean.index], text=text, **scale,
        texttemplate="%{z:.2f}", textfont=dict(size=10), colorbar=dict(title=dict(text=measure)),
        hovertemplate=f"{rows} %{{y}}, {cols} %{{x}}: %{{text}}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=title or f"{result.kind}: {_label(result, measure)}",
                      xaxis=dict(title=cols, type="category", showgrid=False),
                      yaxis=dict(title=rows, type="category", showgrid=False))
    return fig


def next_token_bars(distributions: Mapping[str, Sequence[tuple[str, float]]], *, title: str | None = None
                    ) -> go.Figure:
    """Horizontal bars of the most likely next tokens, one group per condition (``{"without": [(token, p)],
    "with": [...]}``); tokens are shown with their spaces visible (``␣``)."""
    register()
    order: list[str] = []
    for pairs in distributions.values():
        order.extend(tok for tok, _ in pairs if tok not in order)
    fig = go.Figure()
    for k, (name, pairs) in enumerate(distributions.items()):
        probs = dict(pairs)
        fig.add_trace(go.Bar(
            y=[t.replace(" ", "␣") or "∅" for t in order], x=[probs.get(t, 0.0) for t in order], name=name,
            orientation="h", marker_color=PALETTE[k % len(PALETTE)],
            hovertemplate=f"{name}: %{{y}} %{{x:.3f}}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, barmode="group", title=title or "Next-token probabilities",
                      xaxis=dict(title="probability", rangemode="tozero"),
                      yaxis=dict(title="token", autorange="reversed", type="category"),
                      height=max(320, 60 + 24 * len(order) * max(1, len(distributions))))
    return fig


__all__ = ["CONTROLS", "intervention_curves", "intervention_heatmap", "next_token_bars"]
