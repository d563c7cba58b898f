"""The figure of :func:`~xling_probe.distances.mantel.distance_correlations`: correlation vs layer, one line per
distance kind (filled markers where the Mantel p-value is below ``alpha``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..errors import MetricError


def distance_correlation_figure(table: pd.DataFrame, *, value: str = "r", alpha: float = 0.05,
                                title: str | None = None) -> Any:
    """A plotly figure of ``table[value]`` (``"r"`` or ``"partial_r"``) against the layer, one line per kind.

    Markers are filled where the matching p-value (``p`` / ``partial_p``) is below ``alpha`` and hollow
    elsewhere; the hover text gives r, p and the number of pairs."""
    import plotly.graph_objects as go

    if value not in ("r", "partial_r"):
        raise MetricError(f"value must be 'r' or 'partial_r', got {value!r}")
    need = {"layer", "kind", value, "p" if value == "r" else "partial_p", "n_pairs"}
    if not need <= set(table.columns):
        raise MetricError(f"the table lacks columns {sorted(need - set(table.columns))}; pass distance_correlations()")
    pcol = "p" if value == "r" else "partial_p"
    fig = go.Figure()
    for kind, sub in table.groupby("kind", sort=False):
        sub = sub.sort_values("layer")
        if sub[value].isna().all():
            continue
        filled = (sub[pcol] < alpha).tolist()
        fig.add_trace(go.Scatter(
            x=sub["layer"], y=sub[value], mode="lines+markers", name=str(kind),
            marker={"symbol": ["circle" if f else "circle-open" for f in filled], "size": 8},
            customdata=sub[[pcol, "n_pairs"]].to_numpy(),
            hovertemplate=f"{kind}<br>layer %{{x}}<br>{value} %{{y:.3f}}<br>p %{{customdata[0]:.3g}}"
                          "<br>pairs %{customdata[1]}<extra></extra>"))
    metric = str(table["metric"].iloc[0]) if "metric" in table.columns and len(table) else ""
    label = "Mantel r" if value == "r" else "partial Mantel r (| script)"
    fig.update_layout(title=title or f"{metric}: similarity vs language distance by layer",
                      xaxis_title="layer", yaxis_title=label, template="plotly_white")
    fig.add_hline(y=0, line_width=1, line_color="grey")
    return fig
