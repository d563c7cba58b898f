"""One paper style for every figure: a registered plotly template and a fixed colour per language.

The template ``"xling_paper"`` uses the Okabe-Ito palette (distinguishable under the common forms
of colour blindness), Noto Sans fonts (they cover Latin, Cyrillic, CJK, Arabic and Devanagari when
``fonts-noto-core`` and ``fonts-noto-cjk`` are installed) and font sizes chosen so that a figure
exported at 700 px width and shrunk to one column of a two-column PDF (~3.3 in) keeps ~8 pt text.

Every builder colours a language with :func:`language_color`, so ``fr`` is the same colour in
the similarity curves, the embedding map and the latent-language figure.
"""

from __future__ import annotations

import zlib

import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE = "xling_paper"

#: Okabe & Ito (2008), "Color Universal Design": 8 colours safe for colour-blind readers.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
#: Paul Tol's "muted" scheme (also colour-blind safe), for languages past the first eight.
TOL_MUTED = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499")
PALETTE = OKABE_ITO[1:] + (OKABE_ITO[0],) + TOL_MUTED

#: Fixed colours of the languages used most often (English black: it is the usual latent language).
LANGUAGE_COLORS: dict[str, str] = {
    "en": "#000000", "fr": "#0072B2", "de": "#E69F00", "zh": "#D55E00", "zh-Hans": "#D55E00",
    "zh-Hant": "#882255", "ja": "#CC79A7", "ru": "#009E73", "es": "#56B4E9", "ar": "#117733",
    "hi": "#999933", "ko": "#332288", "it": "#44AA99", "pt": "#88CCEE", "pl": "#AA4499",
    "tr": "#CC6677", "id": "#DDCC77", "sw": "#F0E442",
}
#: Colours of the roles of the latent-language figure (Wendler et al.): target, latent, source.
ROLE_COLORS = {"target": "#D55E00", "latent": "#0072B2", "source": "#009E73", "entropy": "#000000"}
#: Before/after centering: raw dashed grey-blue, centered solid vermillion.
CONDITION_STYLE = {"raw": ("#0072B2", "dash"), "centered": ("#D55E00", "solid"), "projected": ("#009E73", "dot")}
#: Sequential scale for heatmaps of values in [0, 1] (perceptually uniform, colour-blind safe).
HEATMAP_SCALE = "Viridis"
FONT_FAMILY = "Noto Sans, Noto Sans CJK SC, Noto Sans Arabic, Noto Sans Devanagari, DejaVu Sans, Arial, sans-serif"


def language_color(code: str) -> str:
    """The colour of a language code: a fixed table, else a stable hash into :data:`PALETTE`
    (the same code gets the same colour in every figure and every session)."""
    if code in LANGUAGE_COLORS:
        return LANGUAGE_COLORS[code]
    base = code.split("-")[0]
    if base in LANGUAGE_COLORS:
        return LANGUAGE_COLORS[base]
    return PALETTE[zlib.crc32(code.encode("utf-8")) % len(PALETTE)]


def rgba(color: str, alpha: float) -> str:
    """``#RRGGBB`` -> ``rgba(r, g, b, alpha)`` (bands are the line colour, translucent)."""
    h = color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _template() -> go.layout.Template:
    axis = dict(showline=True, linecolor="black", linewidth=1, ticks="outside", ticklen=4, mirror=False,
                showgrid=True, gridcolor="#E5E5E5", zeroline=False, title=dict(font=dict(size=15)),
                tickfont=dict(size=13))
    return go.layout.Template(layout=go.Layout(
        font=dict(family=FONT_FAMILY, size=14, color="black"),
        title=dict(font=dict(size=16), x=0.02, xanchor="left"),
        colorway=list(PALETTE),
        paper_bgcolor="white", plot_bgcolor="white",
        xaxis=axis, yaxis=axis,
        legend=dict(font=dict(size=12), bgcolor="rgba(255,255,255,0.8)"),
        margin=dict(l=70, r=20, t=60, b=60),
        width=700, height=450,
        hoverlabel=dict(font=dict(family=FONT_FAMILY)),
    ))


def register() -> str:
    """Register the paper template with plotly (idempotent) and return its name."""
    if TEMPLATE not in pio.templates:
        pio.templates[TEMPLATE] = _template()
    return TEMPLATE


register()
