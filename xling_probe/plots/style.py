"""One paper style for every figure: a registered plotly template and a fixed colour per language.

The template ``"xling_paper"`` uses the Okabe-Ito palette (distinguishable under the common forms
of colour blindness), Noto Sans fonts (they cover Latin, Cyrillic, CJK, Arabic and Devanagari when
``fonts-noto-core`` and ``fonts-noto-cjk`` are installed) and font sizes chosen so that a figure
exported at 700 px width and shrunk to one column of a two-column PDF (~3.3 in) keeps ~8 pt text.

Every builder colours a language with :func:`language_color`, so ``fr`` is the same colour in
the similarity curves, the embedding map and the latent-language figure.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE = "xling_paper"

#: Okabe & Ito (2008), "Color Universal Design": 8 colours safe for colour-blind readers.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
#: Paul Tol's "muted" scheme (also colour-blind safe), for languages past the first eight.
TOL_MUTED = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499")
PALETTE = OKABE_ITO[1:] + (OKABE_ITO[0],) + TOL_MUTED

#: Fixed colours of the languages used most often (English black: it is the usual latent language).
#: The 21 languages of PUD (ar cs de en es fi fr gl hi id is it ja ko pl pt ru sv th tr zh) keep the
#: Okabe-Ito colours of en, fr, de, zh, ja, es, ru; the other 14 were chosen greedily (max-min
#: CIEDE2000 over a 16-step sRGB grid, lightness 25-78, far from the white background), so that
#: every pair of the 21 differs by CIEDE2000 >= 19.5 (CIE76 >= 26): see :func:`delta_e_2000`
#: and ``tests/test_plot_labels.py`` (ru green vs ar wine red: ~70).
LANGUAGE_COLORS: dict[str, str] = {
    "en": "#000000", "fr": "#0072B2", "de": "#E69F00", "zh": "#D55E00", "zh-Hans": "#D55E00",
    "zh-Hant": "#882255", "ja": "#CC79A7", "ru": "#009E73", "es": "#56B4E9", "ar": "#880022",
    "hi": "#555500", "ko": "#661199", "it": "#005555", "pt": "#00CCCC", "pl": "#BB1177",
    "tr": "#FF0044", "id": "#AACC33", "cs": "#8866FF", "fi": "#CCAAFF", "is": "#776666",
    "sv": "#999977", "th": "#663300", "gl": "#EE9988", "sw": "#F0E442",
}
#: The 21 languages of the PUD parallel treebanks (the colour-distance check covers every pair of them).
PUD_LANGUAGES = ("ar", "cs", "de", "en", "es", "fi", "fr", "gl", "hi", "id", "is", "it", "ja", "ko", "pl", "pt",
                 "ru", "sv", "th", "tr", "zh")
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


def srgb_to_lab(color: str) -> tuple[float, float, float]:
    """``#RRGGBB`` (sRGB, D65) -> CIELAB (L*, a*, b*) with the D65 white point."""
    h = color.lstrip("#")
    rgb = [int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    xyz = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b, 0.2126729 * r + 0.7151522 * g + 0.0721750 * b,
           0.0193339 * r + 0.1191920 * g + 0.9503041 * b)
    fx, fy, fz = (t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
                  for t in (xyz[0] / 0.95047, xyz[1] / 1.0, xyz[2] / 1.08883))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e_76(lab1: Sequence[float], lab2: Sequence[float]) -> float:
    """CIE76 colour difference: the Euclidean distance in CIELAB (about 2.3 is a just-noticeable difference)."""
    return math.dist(lab1, lab2)


def delta_e_2000(lab1: Sequence[float], lab2: Sequence[float]) -> float:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005, with kL = kC = kH = 1)."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    d_l, d_c = l2 - l1, c2p - c1p
    dh = 0.0
    if c1p * c2p:
        dh = h2p - h1p
        dh = dh - 360 if dh > 180 else dh + 360 if dh < -180 else dh
    d_h = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    if not c1p * c2p:
        h_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_bar = (h1p + h2p) / 2
    else:
        h_bar = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_bar - 30)) + 0.24 * math.cos(math.radians(2 * h_bar))
         + 0.32 * math.cos(math.radians(3 * h_bar + 6)) - 0.20 * math.cos(math.radians(4 * h_bar - 63)))
    d_theta = 30 * math.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * math.sqrt(cp_bar ** 7 / (cp_bar ** 7 + 25 ** 7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * cp_bar, 1 + 0.015 * cp_bar * t
    r_t = -math.sin(math.radians(2 * d_theta)) * r_c
    return math.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h))


def color_distance(color1: str, color2: str, formula: str = "ciede2000") -> float:
    """Perceptual distance of two ``#RRGGBB`` colours: ``"ciede2000"`` (default) or ``"cie76"``."""
    lab1, lab2 = srgb_to_lab(color1), srgb_to_lab(color2)
    return delta_e_2000(lab1, lab2) if formula == "ciede2000" else delta_e_76(lab1, lab2)


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


def add_caption(fig: go.Figure, text: str, *, size: int = 12) -> go.Figure:
    """A grey caption just under the title (an annotation named ``"caption"``, top left of the plot area).

    Not plotly's ``title.subtitle``: a FigureWidget rebuilt after a page reload stopped applying later
    updates to a figure with a subtitle (seen in Chromium; tests/test_browser_workbench.py)."""
    if text:
        fig.add_annotation(text=text, name="caption", xref="paper", yref="paper", x=0, y=1, xanchor="left",
                           yanchor="bottom", yshift=8, showarrow=False, align="left",
                           font=dict(size=size, color="#555555"))
    return fig


def caption_of(fig: Any) -> str:
    """The text of :func:`add_caption`'s annotation ("" without one)."""
    return next((a.text for a in (fig.layout.annotations or ()) if a.name == "caption"), "")
