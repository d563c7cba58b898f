"""Per-layer curves: similarity with interval and null bands, neutrality before/after centering,
and the latent-language figure of Wendler et al. (2024).

Every builder is pure: a result object in, a ``plotly.graph_objects.Figure`` out (nothing is
computed but slicing). Bands are single closed polygons (``fill="toself"``) whose ``y`` runs
along the upper edge and back along the lower edge, so a band trace holds its interval exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import MetricError
from ..labels import check_direction, pair_label
from ..measures.registry import metric_spec
from .ordering import language_label
from .style import CONDITION_STYLE, HEATMAP_SCALE, LANGUAGE_COLORS, PALETTE, TEMPLATE, language_color, register, rgba

if TYPE_CHECKING:
    from ..centering.result import NeutralityReport
    from ..lens.drift import DriftResult
    from ..measures.result import SimilarityResult


def metric_label(metric: str) -> str:
    """The display label of ``metric`` from the registry (``spec.label``); an unknown name is shown as written."""
    try:
        return metric_spec(metric).label
    except MetricError:
        return metric


def band(x: Sequence[float], low: Sequence[float], high: Sequence[float], color: str, name: str,
         *, alpha: float = 0.2, legendgroup: str | None = None, showlegend: bool = False, **kw: Any) -> go.Scatter:
    """A filled band between ``low`` and ``high`` over ``x``: one closed polygon, upper edge first."""
    x = list(x)
    return go.Scatter(x=x + x[::-1], y=list(np.asarray(high, float)) + list(np.asarray(low, float)[::-1]),
                      fill="toself", fillcolor=rgba(color, alpha), line=dict(width=0), mode="lines",
                      name=name, legendgroup=legendgroup, showlegend=showlegend, hoverinfo="skip", **kw)


def pair_colors(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """One colour per pair: the colour of its second language (the first is usually the shared pivot),
    or of its first when that colour is already taken (pairs may share a colour: the grouped curves of
    the widget draw one trace per colour)."""
    out: dict[tuple[str, str], str] = {}
    for a, b in pairs:
        taken = set(out.values())
        out[(a, b)] = language_color(b) if language_color(b) not in taken else language_color(a)
    return out


def distinct_pair_colors(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """:func:`pair_colors`, but a pair whose two language colours are both taken gets the first free
    colour of the palette (``ru-ar``, ``ru-zh``, ``ar-zh`` are three colours, not two): the colours of
    :func:`similarity_curves`, where every pair is one line. Shared only past the palette's size."""
    out: dict[tuple[str, str], str] = {}
    spare = list(dict.fromkeys((*PALETTE, *LANGUAGE_COLORS.values())))
    for a, b in pairs:
        taken = set(out.values())
        options = [language_color(b), language_color(a), *spare]
        out[(a, b)] = next((c for c in options if c not in taken), options[0])
    return out


def similarity_curves(result: SimilarityResult, metric: str | None = None,
                      pairs: Sequence[tuple[str, str]] | None = None, *, intervals: bool = True, null: bool = True,
                      title: str | None = None) -> go.Figure:
    """Per-layer curves of one metric of a :class:`~xling_probe.measures.result.SimilarityResult`.

    One line per language pair (a -> b for directional metrics), its bootstrap interval as a
    band of the same colour, and the shuffled-pairing null as a grey band from the lowest null
    mean to the highest null maximum over the plotted pairs: values above the band beat every
    shuffled pairing. x = residual-stream layer (0 = embeddings, l = output of block l-1).
    ``pairs`` (default: the result's pairs as written) in the grammar of :mod:`xling_probe.labels`.
    """
    register()
    metric = result.spec(metric or result.metrics[0]).name
    pairs = result.pair_slots(metric, pairs)
    for a, b in pairs:
        if (a, b) not in result.slots(metric):
            raise MetricError(f"pair {a}-{b} has no {metric} value; pairs of this result: "
                              f"{', '.join(pair_label(p) for p in result.pairs)}")
    layers = list(result.layers)
    directed = result.spec(metric).directional
    fig = go.Figure()
    if null and result.has_null:
        lo = result.pair_curves(metric, pairs, field="null_mean").min(axis=1).to_numpy()
        hi = result.pair_curves(metric, pairs, field="null_max").max(axis=1).to_numpy()
        fig.add_trace(band(layers, lo, hi, "#808080", "shuffled-pairing null", alpha=0.3, showlegend=True,
                           legendgroup="null"))
    colors = distinct_pair_colors(pairs)
    for a, b in pairs:
        name = pair_label((a, b), directed) if directed else f"{a}–{b}"
        if intervals and result.has_ci:
            fig.add_trace(band(layers, result.sel(metric, None, a, b, field="ci_low"),
                               result.sel(metric, None, a, b, field="ci_high"),
                               colors[(a, b)], f"{name} {int(100 * result.settings.get('ci', 0.95))}% CI",
                               legendgroup=name))
        between = (f"query {language_label(a)} → searched {language_label(b)}" if directed
                   else f"{language_label(a)} – {language_label(b)}")
        fig.add_trace(go.Scatter(x=layers, y=result.sel(metric, None, a, b), mode="lines+markers", name=name,
                                 legendgroup=name, line=dict(color=colors[(a, b)], width=2), marker=dict(size=5),
                                 hovertemplate=f"{between}<br>layer %{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=title or f"{metric_label(metric)} per layer",
                      xaxis_title="layer (residual stream)", yaxis_title=metric_label(metric),
                      legend_title_text=language_key([c for pair in pairs for c in pair]))
    return fig


def language_key(codes: Sequence[str], per_line: int = 2) -> str:
    """The names of the codes a legend uses (trace names stay codes, ``en–fr``: widgets and reports
    find traces by them), as the legend's title: ``en (English) · fr (French)<br>zh (Chinese)``."""
    seen = list(dict.fromkeys(codes))
    labels = [language_label(c) for c in seen]
    lines = [" · ".join(labels[i:i + per_line]) for i in range(0, len(labels), per_line)]
    return "<br>".join(lines)


def neutrality_curves(report: NeutralityReport, *, title: str | None = None, direction: str = "both") -> go.Figure:
    """Three panels per layer for a :class:`~xling_probe.centering.evaluate.NeutralityReport`, one line per
    condition (raw, centered, projected): held-out retrieval P@k (mean over pairs in ``direction``:
    'both' = mean of a -> b and b -> a, 'forward' = a -> b, 'backward' = b -> a; band = min to max
    over pairs and the chosen directions; black dash-dot line = chance P@k of a random ranking of the
    held-out sentences, from the registry's ``spec.chance``), language-ID probe accuracy (black
    dash-dot line = chance, 1 / languages; one "chance" legend entry for both, each line labelled in its
    panel) and the share of variance explained by the language means. Every panel has a y-axis title;
    the figure title sits in the top margin (``yref="container"``), above the subplot titles.

    A value that is fixed by construction (``report.by_construction``: a linear probe after
    centering or projection, the variance share with ``centering="self"``) is not drawn as a
    finding: its line is grey and dotted, its legend entry and an annotation in its panel name
    the label (e.g. "chance by construction")."""
    register()
    layers = list(report.layers)
    k = report.settings.get("k", 1)
    which = {"both": "both directions", "forward": "a→b", "backward": "b→a"}
    check_direction(direction)
    probe = {"knn": "k-NN", "logistic": "linear"}.get(getattr(report, "probe", "logistic"), "")
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.09,
                        subplot_titles=(f"retrieval P@{k} (held-out, {which[direction]})",
                                        f"language ID ({probe} probe)", "language variance share"))
    mean = report.retrieval_direction(direction)
    fixed_of = getattr(report, "fixed", lambda q, c: None)
    notes: list[tuple[int, str, str, float]] = []
    for ci, cond in enumerate(report.conditions):
        color, dash = CONDITION_STYLE.get(cond, ("#000000", "solid"))
        per_pair = report.retrieval[ci] if direction == "both" else \
            report.retrieval[ci][..., [("forward", "backward").index(direction)]]
        flat = per_pair.reshape(len(layers), -1)
        fig.add_trace(band(layers, flat.min(1), flat.max(1), color, f"{cond} pair range", legendgroup=cond), 1, 1)
        for col, quantity, y in ((1, "retrieval", mean[ci]), (2, "language_id", report.language_id[ci]),
                                 (3, "variance_share", report.variance_share[ci])):
            fixed = fixed_of(quantity, cond) if quantity != "retrieval" else None
            if fixed is None:
                fig.add_trace(go.Scatter(x=layers, y=y, mode="lines+markers", name=cond, legendgroup=cond,
                                         showlegend=col == 1, line=dict(color=color, dash=dash, width=2),
                                         marker=dict(size=4)), 1, col)
                continue
            fig.add_trace(go.Scatter(x=layers, y=y, mode="lines+markers", name=f"{cond}: {fixed.label}",
                                     legendgroup=f"fixed {cond} {quantity}", opacity=0.8,
                                     line=dict(color="#9a9a9a", dash="dot", width=1.5),
                                     marker=dict(size=4, color="#9a9a9a", symbol="x"),
                                     hovertemplate=f"{cond}: %{{y:.3f}} ({fixed.label})<extra></extra>"), 1, col)
            notes.append((col, cond, fixed.label, float(fixed.value)))
    # chance lines: black dash-dot, drawn over the data (the grey dotted "by construction" lines sit on
    # the language-ID chance value, so a grey dotted chance line would vanish under them)
    chance_line = dict(color="#000000", dash="dashdot", width=1.5)
    fig.add_trace(go.Scatter(x=[layers[0], layers[-1]], y=[report.chance] * 2, mode="lines", name="chance",
                             legendgroup="chance", line=chance_line,
                             hovertemplate=f"chance: %{{y:.3f}} (1/{len(report.languages)} languages)<extra></extra>"),
                  1, 2)
    fig.add_annotation(x=layers[0], y=report.chance, xref="x2", yref="y2", showarrow=False, xanchor="left",
                       yanchor="top", yshift=-3, text=f"chance 1/{len(report.languages)}",
                       font=dict(size=11, color="#000000"))
    retrieval_chance = _retrieval_chance(report, k)
    if retrieval_chance is not None:
        value, n_test = retrieval_chance
        fig.add_trace(go.Scatter(x=[layers[0], layers[-1]], y=[value] * 2, mode="lines", name=f"chance P@{k}",
                                 legendgroup="chance", line=chance_line, showlegend=False,
                                 hovertemplate=f"chance: %{{y:.3f}} (P@{k} among {n_test} sentences)<extra></extra>"),
                      1, 1)
        fig.add_annotation(x=layers[0], y=value, xref="x", yref="y", showarrow=False, xanchor="left",
                           yanchor="bottom", yshift=3, text=f"chance {min(k, n_test)}/{n_test}",
                           font=dict(size=11, color="#000000"))
    merged: dict[tuple[int, float, str], list[str]] = {}
    for col, cond, label, value in notes:  # one annotation per panel and fixed value
        merged.setdefault((col, value, label), []).append(cond)
    for (col, value, label), conds in merged.items():
        axis = "" if col == 1 else str(col)
        fig.add_annotation(x=layers[-1], y=value, xref=f"x{axis}", yref=f"y{axis}", showarrow=False,
                           text=f"{', '.join(conds)}: {label}", xanchor="right", yanchor="bottom", yshift=4,
                           font=dict(size=11, color="#606060"))
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_yaxes(title_text=f"P@{k}", row=1, col=1)
    fig.update_yaxes(title_text="accuracy (held-out)", row=1, col=2)
    fig.update_yaxes(title_text="between / total variance", row=1, col=3)
    fig.update_layout(template=TEMPLATE, width=1000, height=430, margin=dict(t=105),
                      title=dict(text=title or "Language neutrality before/after centering", x=0.01, xanchor="left",
                                 y=0.97, yanchor="top", yref="container"),
                      legend=dict(orientation="h", y=-0.25, x=0))
    return fig


def _retrieval_chance(report: NeutralityReport, k: int) -> tuple[float, int] | None:
    """(chance P@k, held-out sentences) of the report's retrieval, from the metric registry
    (``spec.chance``: a random ranking of the held-out sentences), None when it has none."""
    n_test = len(getattr(report, "heldout_ids", ()) or ())
    if n_test < 1:
        return None
    try:
        value = metric_spec(f"p@{k}").chance(n_test)
    except MetricError:
        return None
    return None if value is None else (float(value), n_test)


def latent_language(drift: DriftResult, *, interval: str = "gaussian", title: str | None = None) -> go.Figure:
    """The latent-language figure of Wendler et al. for a :class:`~xling_probe.lens.DriftResult`.

    Bottom: mean P(target), P(latent) (English) and P(source) per layer, each with its 95% band
    (``interval="gaussian"``: mean +- 1.96 sd/sqrt(n); ``"bootstrap"``: percentile bootstrap).
    Top: a strip coloured by the mean entropy of the lens distribution (bits) at each layer.
    Lines take the fixed colour of their language; a role whose language repeats another's
    (repetition task: source = target) is drawn once.
    """
    register()
    lo_key, hi_key = {"gaussian": ("ci_low", "ci_high"), "bootstrap": ("boot_low", "boot_high")}.get(interval, (None, None))
    if lo_key is None:
        raise MetricError(f"interval must be 'gaussian' or 'bootstrap', got {interval!r}")
    layers = list(drift.layers)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.12, 0.88], vertical_spacing=0.03)
    ent = np.asarray(drift.curve("entropy_bits"), float)
    fig.add_trace(go.Heatmap(x=layers, y=["entropy"], z=[ent], colorscale=HEATMAP_SCALE, name="entropy (bits)",
                             colorbar=dict(title=dict(text="entropy<br>(bits)", side="right"), len=0.3, y=0.9,
                                           thickness=10),
                             hovertemplate="layer %{x}<br>entropy %{z:.2f} bits<extra></extra>"), 1, 1)
    drawn: set[str] = set()
    level = int(round(100 * drift.level))
    for metric in ("p_target", "p_latent", "p_source"):
        lang = drift.language_of(metric)
        if lang in drawn:
            continue
        drawn.add(lang)
        color = language_color(lang)
        role = metric[2:]
        name = f"P({lang}) {role}"
        fig.add_trace(band(layers, drift.curve(metric, lo_key), drift.curve(metric, hi_key), color,
                           f"{name} {level}% band", legendgroup=name), 2, 1)
        fig.add_trace(go.Scatter(x=layers, y=drift.curve(metric), mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=color, width=2), marker=dict(size=4)), 2, 1)
    fig.update_yaxes(showticklabels=False, showgrid=False, ticks="", row=1, col=1)
    fig.update_yaxes(title_text="probability", range=[0, 1], row=2, col=1)
    fig.update_xaxes(title_text="layer (residual stream)", row=2, col=1)
    fig.update_layout(template=TEMPLATE, height=480,
                      title=title or f"Latent language: {drift.source} → {drift.target} ({drift.task}, {drift.n_items} items)",
                      legend=dict(orientation="h", y=-0.18, x=0))
    return fig
