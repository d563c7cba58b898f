"""Heatmaps: language x language at one layer, layer x layer for one pair, and the logit-lens
layer x position table of one prompt.

Pure builders: a result in, a Figure out; each heatmap's ``z`` is the result's matrix unchanged.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from ..errors import MetricError
from ..labels import layer_position
from ..measures.registry import metric_spec
from .curves import metric_label
from .ordering import (cluster_order, dendrogram_lines, group_of, group_runs, language_label, language_name,
                       order_languages, select_languages)
from .style import HEATMAP_SCALE, TEMPLATE, add_caption, register

if TYPE_CHECKING:
    from ..lens.positions import PositionTable
    from ..measures.cross_layer import CrossLayerResult
    from ..measures.result import SimilarityResult

#: Widest figure the report page holds (its column is 1100 px with padding).
COLUMN_PX = 1080


def _range(metric: str) -> dict[str, float]:
    """The fixed colour range of ``metric`` (the registry's ``spec.scale``; none = fit the data)."""
    scale = metric_spec(metric).scale
    return {"zmin": scale[0], "zmax": scale[1]} if scale else {}


#: Above this many languages the heatmap drops per-language tick labels for group labels (one per
#: family/script block), per-cell text and full-precision z (float32 rounded to 3 decimals).
TICK_LIMIT = 60
#: Up to this many languages every cell shows its value as text.
TEXT_LIMIT = 20


def language_heatmap(result: SimilarityResult, metric: str | None = None, layer: int | None = None, *,
                     field: str = "value", title: str | None = None, order: str | Sequence[str] | None = None,
                     languages: Sequence[str] | None = None, family: str | Sequence[str] | None = None,
                     script: str | Sequence[str] | None = None, region: str | Sequence[str] | None = None,
                     groups: str | None = None, dendrogram: bool = False, compact: bool | None = None) -> go.Figure:
    """Language x language matrix of one metric at one layer of a SimilarityResult.

    ``z[i][j]`` = ``result.matrix(metric, layer, field=field)`` of the shown languages in the shown
    order: row = language a (the query language for directional metrics), column = language b.
    Pairs that were not computed and the diagonal are empty (NaN). ``layer`` is a residual-stream
    index (default: ``result.peak_layer(metric)``, the layer where the mean over pairs peaks).

    Views of many languages (:mod:`.ordering`): ``languages`` (a subset) and ``family`` / ``script`` /
    ``region`` (a name or a list) select the languages shown; ``order`` is ``None`` (the result's
    order), ``"cluster"`` (average linkage on 1 - similarity at this layer, leaves order; with
    ``dendrogram=True`` the tree is drawn left of the rows), ``"family"``, ``"script"`` or a list of
    the shown languages. Above :data:`TICK_LIMIT` languages the axes carry one label per block of
    ``groups`` (default: the ``order`` when it is family/script, else family) instead of one per
    language, the hover names both languages, and ``z`` is float32 rounded to 3 decimals
    (``compact``; None = above :data:`TICK_LIMIT`). ``fig.layout.meta`` holds the shown languages in
    order (``"languages"``) and their groups (``"groups"``).

    Labels: the categories of x and y stay the codes (clicks and the data use them); up to
    :data:`TICK_LIMIT` languages the ticks and the hover name them (``ru (Russian)``,
    :func:`.ordering.language_label`). For a directional metric (``metric_spec(metric).directional``,
    e.g. ``p@1``) the axes read "query language (row)" / "searched language (column)": cell [a, b] is
    a -> b, a's sentences query, b's are searched. The caption under the title says so and that the blank
    diagonal is a language with itself (not computed); the hover of a blank cell says why it is blank.
    """
    register()
    metric = result.spec(metric or result.metrics[0]).name
    if layer is None:
        layer = result.peak_layer(metric)
    full = np.asarray(result.sel(metric, layer, field=field), dtype=float)
    layer = result.layers[layer_position(layer, result.layers, error=MetricError)]
    every = list(result.languages)
    shown = select_languages(every, languages, family=family, script=script, region=region)
    idx = [every.index(c) for c in shown]
    sub = full[np.ix_(idx, idx)]
    link = None
    if isinstance(order, str) and order == "cluster":
        perm, link = cluster_order(sub)
    else:
        perm = order_languages(shown, order, sub)
    langs = [shown[i] for i in perm]
    z = sub[np.ix_(perm, perm)]
    n, big = len(langs), len(langs) > TICK_LIMIT
    if compact if compact is not None else big:
        z = np.round(z, 3).astype(np.float32)
    by = groups or (order if isinstance(order, str) and order in ("family", "script") else "family")
    group = group_of(langs, by)
    labels = [f"{c} · {language_name(c)}" for c in langs] if big else langs
    directed = metric_spec(metric).directional
    row_side, col_side = ("query language", "searched language") if directed else ("language a", "language b")
    hover_extra: dict[str, Any] = {}
    if big:  # no per-cell customdata at hundreds of languages: the labels already carry the names
        hovertemplate = f"{row_side} → {col_side}<br>%{{y}} → %{{x}}<br>%{{z:.3f}}<extra></extra>"
    else:
        named = [language_label(c) for c in langs]
        notes = [["<br>a language with itself: not computed" if i == j else
                  ("<br>no value: pair not computed" if not np.isfinite(z[i, j]) else "")
                  for j in range(n)] for i in range(n)]
        hover_extra["customdata"] = [[[named[i], named[j], notes[i][j]] for j in range(n)] for i in range(n)]
        hovertemplate = (f"{row_side} (row): %{{customdata[0]}}<br>{col_side} (column): %{{customdata[1]}}"
                         f"<br>{metric_label(metric)}: %{{z:.3f}}%{{customdata[2]}}<extra></extra>")
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=labels, colorscale=HEATMAP_SCALE,
        **({"texttemplate": "%{z:.2f}", "textfont": dict(size=11)} if n <= TEXT_LIMIT else {}),
        colorbar=dict(title=dict(text=metric_label(metric))), **_range(metric),
        hovertemplate=hovertemplate, hoverongaps=True, **hover_extra,
    ))
    xaxis: dict[str, Any] = dict(title=f"{col_side} (column)" if directed else col_side, showgrid=False, tickangle=0)
    yaxis: dict[str, Any] = dict(title=f"{row_side} (row)" if directed else row_side, showgrid=False,
                                 autorange="reversed")
    if not big:  # codes stay the categories (clicks and the data use them), the tick labels name the language
        alias = {c: label for c, label in zip(langs, named) if label != c}
        xaxis.update(labelalias=alias, tickangle=-45 if n > 3 else 0)
        yaxis.update(labelalias=alias)
    if big:
        side = 700 if dendrogram and link is not None else 760
        ticks = _group_ticks(labels, group, side / n)
        xaxis.update(tickmode="array", tickvals=[t[0] for t in ticks], ticktext=[t[1] for t in ticks],
                     tickangle=-60, tickfont=dict(size=10), ticks="", title=f"{col_side} (by {by})")
        yaxis.update(tickmode="array", tickvals=[t[0] for t in ticks], ticktext=[t[1] for t in ticks],
                     tickfont=dict(size=10), ticks="", title=f"{row_side} (by {by})")
        extra = 140 if link is not None and dendrogram else 0  # room for the tree
        layout: dict[str, Any] = dict(width=min(COLUMN_PX, side + 240 + extra), height=side + 200,
                                      margin=dict(l=160, r=40, t=60, b=160))
    else:  # square cells; "domain" shrinks the plot instead of widening an axis past the last language
        yaxis.update(scaleanchor="x", constrain="domain")
        xaxis["constrain"] = "domain"
        for axis in (xaxis, yaxis):
            axis.update(automargin=True, title=dict(text=axis["title"], standoff=10))
        layout = dict(width=720, height=700) if n <= 20 else dict(width=860, height=840)
        layout["margin"] = dict(l=150, r=20, t=100, b=130)  # room for "xx (Name)" ticks and the caption
    runs = group_runs(group)
    if 1 < len(runs) == len({g for g, _, _ in runs}) and order is not None:  # contiguous blocks: lines between
        layout["shapes"] = _block_lines(group, n)
    if link is not None and dendrogram:
        yaxis.pop("scaleanchor", None)
        xs, ys = dendrogram_lines(link, n)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#555555", width=0.8), xaxis="x2",
                                 yaxis="y2", hoverinfo="skip", showlegend=False, name="dendrogram"))
        xaxis["domain"] = [0.16, 1.0]
        layout.update(xaxis2=dict(domain=[0.0, 0.14], autorange="reversed", visible=False),
                      yaxis2=dict(range=[n - 0.5, -0.5], visible=False, anchor="x2"))
    caption = ("directional: row = query language, column = searched language (a → b)" if directed else
               "symmetric metric: row a, column b") + "<br>blank diagonal: a language with itself, not computed"
    if big:
        layout["margin"]["t"] = 100
    fig.update_layout(template=TEMPLATE,
                      title=dict(text=title or f"{metric_label(metric)} at layer {layer}"),
                      xaxis=xaxis, yaxis=yaxis, meta={"languages": langs, "groups": group, "grouped_by": by},
                      **layout)
    add_caption(fig, caption, size=12)
    return fig


def _group_ticks(labels: Sequence[str], group: Sequence[str], cell_px: float) -> list[tuple[str, str]]:
    """(category at the middle of the block, group name) for every block of one group along the
    axis that is tall enough for a label (12 px), so labels never overlap."""
    need = max(1, math.ceil(12 / max(cell_px, 1e-6)))
    return [(labels[(a + b) // 2], g) for g, a, b in group_runs(group) if b - a + 1 >= need]


#: Blocks smaller than this are not separated from each other by lines.
MIN_BLOCK = 3


def _block_lines(group: Sequence[str], n: int) -> list[dict[str, Any]]:
    """Thin white lines between the blocks of a grouped order (both axes). A boundary between two
    blocks of fewer than :data:`MIN_BLOCK` languages each gets no line: a tail of one- and two-language
    families would otherwise be a grid of lines that hides the cells."""
    out = []
    runs = group_runs(group)
    for prev, (_g, a, b) in zip(runs, runs[1:]):
        if b - a + 1 < MIN_BLOCK and prev[2] - prev[1] + 1 < MIN_BLOCK:
            continue
        pos = a - 0.5
        line = dict(color="white", width=1)
        out.append(dict(type="line", xref="x", yref="y", x0=pos, x1=pos, y0=-0.5, y1=n - 0.5, line=line))
        out.append(dict(type="line", xref="x", yref="y", x0=-0.5, x1=n - 0.5, y0=pos, y1=pos, line=line))
    return out


def cross_layer_heatmap(cross: CrossLayerResult, *, title: str | None = None) -> go.Figure:
    """Layer x layer matrix of a CrossLayerResult: ``z[i][j]`` = metric between layer
    ``layers_a[i]`` of language a (y axis) and layer ``layers_b[j]`` of language b (x axis).

    Both axes show exactly the cells of the layers (range half a cell past the first and the last
    label) with ticks at layer labels only (at most :data:`MAX_LAYER_TICKS`, the last always shown)."""
    register()
    fig = go.Figure(go.Heatmap(
        z=cross.matrix, x=list(cross.layers_b), y=list(cross.layers_a), colorscale=HEATMAP_SCALE,
        colorbar=dict(title=dict(text=metric_label(cross.metric))), **_range(cross.metric),
        hovertemplate=f"{cross.lang_a} layer %{{y}}<br>{cross.lang_b} layer %{{x}}<br>%{{z:.3f}}<extra></extra>",
    ))
    fig.update_layout(template=TEMPLATE, width=560, height=520,
                      title=title or f"{metric_label(cross.metric)}: {cross.lang_a} × {cross.lang_b} layers",
                      # the axes stop at the first and last layer: with scaleanchor alone plotly widens the
                      # taller axis's range (it showed layer 20 of 19 states); "domain" shrinks the plot instead
                      xaxis=dict(title=f"layer of {cross.lang_b}", showgrid=False, constrain="domain",
                                 range=_cells(cross.layers_b), **_layer_ticks(cross.layers_b)),
                      yaxis=dict(title=f"layer of {cross.lang_a}", showgrid=False, scaleanchor="x",
                                 constrain="domain", range=_cells(cross.layers_a), **_layer_ticks(cross.layers_a)))
    return fig


def _cells(layers) -> list[float]:
    """Axis range that shows exactly the cells of ``layers``: half a cell beyond the first and the last
    (plotly's cell edges are the midpoints between neighbouring labels, so a cell is as wide as its gap)."""
    v = sorted(float(x) for x in layers)
    lo = (v[1] - v[0]) / 2 if len(v) > 1 else 0.5
    hi = (v[-1] - v[-2]) / 2 if len(v) > 1 else 0.5
    return [v[0] - lo, v[-1] + hi]


#: At most this many tick labels on a layer axis.
MAX_LAYER_TICKS = 12


def _layer_ticks(layers) -> dict[str, Any]:
    """Ticks at the layer labels themselves (every k-th, the last always included): the axis never
    names a layer that has no state."""
    v = [int(x) if float(x).is_integer() else float(x) for x in sorted(layers)]
    step = max(1, math.ceil(len(v) / MAX_LAYER_TICKS))
    vals = v[::step]
    if vals[-1] != v[-1]:
        vals = vals[:-1] + [v[-1]] if len(vals) > 1 and (v.index(v[-1]) - v.index(vals[-1])) < step / 2 else vals + [v[-1]]
    return dict(tickmode="array", tickvals=vals, ticktext=[str(x) for x in vals])


def _printable(token: str) -> str:
    """Control characters (byte tokens) escaped as \\xNN: they are invalid in SVG/XML and break PNG export."""
    t = token.replace("\n", "\\n").replace("\t", "\\t")
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) in ("Cc", "Cs") else c for c in t)


#: A byte-fallback token of a SentencePiece/BPE vocabulary (``<0xE4>``): one UTF-8 byte, not a character.
_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
#: A special or markup token written as a tag (``<bos>``, ``<start_of_turn>``, ``</s>``, ``<b>``).
_TAG = re.compile(r"^</?[^<>\s]{1,40}/?>$")
#: The marks around a byte or special token, so that it is never read (or rendered) as text or HTML.
MARK_OPEN, MARK_CLOSE = "‹", "›"


def token_kind(token: str) -> str:
    """``"byte"`` (``<0xE4>``, or text holding U+FFFD: a partial UTF-8 character), ``"special"``
    (a tag such as ``<bos>`` or ``</s>``) or ``"text"``."""
    if _BYTE.match(token) or "\ufffd" in token:
        return "byte"
    return "special" if _TAG.match(token) else "text"


def _html(text: str) -> str:
    """Escape what plotly would read as its HTML subset (``<b>``, ``<br>``, ``&amp;``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell_text(token: str, width: int = 8) -> str:
    """A token as it fits a cell: leading space shown as '␣', control characters escaped, byte and
    special tokens marked ``‹0xE4›`` / ``‹bos›``, long tokens cut, then HTML-escaped (a token ``<b>``
    is shown, not rendered)."""
    kind = token_kind(token)
    if kind == "byte" and _BYTE.match(token):
        t = f"{MARK_OPEN}0x{_BYTE.match(token).group(1).upper()}{MARK_CLOSE}"
    elif kind == "byte":
        t = f"{MARK_OPEN}{_printable(token).replace(chr(0xFFFD), '?')}{MARK_CLOSE}"
    elif kind == "special":
        t = f"{MARK_OPEN}{token[1:-1]}{MARK_CLOSE}"
    else:
        t = _printable(token)
        t = ("␣" + t[1:]) if t.startswith(" ") else t
    t = t if len(t) <= width else t[: width - 1] + "…"
    return _html(t)


def _hover_token(token: str) -> str:
    """The full token in the hover: its repr (control characters escaped), HTML-escaped, with its kind."""
    kind = token_kind(token)
    return _html(_printable(repr(token))) + ("" if kind == "text" else f" ({kind} token)")


_CHAR_PX = 6.5  # width of one character at font size 9-10, for fitting cell and tick text
#: Longest prompt the lens heatmap shows whole; a longer one shows its last this-many tokens.
MAX_TOKENS = 40


def lens_heatmap(table: PositionTable, *, color: str = "prob", max_chars: int = 8, tick_chars: int = 8,
                 width: int | None = None, title: str | None = None, max_tokens: int | None = MAX_TOKENS) -> go.Figure:
    """Logit-lens layer x position heatmap of a :class:`~xling_probe.lens.PositionTable`.

    Cell (layer l, position t) shows the lens' top-1 token for the token after position t and is
    coloured by its probability (``color="prob"``) or by the entropy in bits (``"entropy"``);
    the hover lists the top-k tokens with probabilities. Axes are numeric (layer, position) with
    the input tokens as x tick labels, so repeated tokens stay separate columns.

    The figure fits a page column (a notebook tab): a prompt longer than ``max_tokens`` shows its
    last ``max_tokens`` positions (x keeps the prompt's position numbers; the caption says which
    part is shown; ``None`` = every position); ``width`` defaults to 60 px per position, at most
    :data:`COLUMN_PX`; cell text is cut to what a cell holds (at most ``max_chars``), tick labels to
    ``tick_chars`` (the hover keeps the full tokens), ticks are slanted when the columns are narrow,
    and the bottom margin, the x title's distance and the colorbar are sized to stay inside. Byte
    tokens (``<0xE4>``) and special/markup tokens (``<bos>``) are marked ``‹0xE4›`` / ``‹bos›`` and
    every token is HTML-escaped, so a token is never rendered as markup.
    """
    register()
    if color not in ("prob", "entropy"):
        raise MetricError(f"color must be 'prob' or 'entropy', got {color!r}")
    if max_tokens is not None and max_tokens < 1:
        raise MetricError(f"max_tokens must be >= 1 or None, got {max_tokens!r}")
    tokens = table.top_tokens  # [layer, position, k]
    n_l, n_all, k = tokens.shape
    first = max(0, n_all - max_tokens) if max_tokens is not None else 0
    tokens = tokens[:, first:]
    n_t = n_all - first
    probs = np.asarray(table.top_probs)[:, first:]
    margin = dict(l=70, r=110, t=90)
    fig_w = int(width or min(COLUMN_PX, max(600, 60 * n_t + margin["l"] + margin["r"])))
    cell_px = (fig_w - margin["l"] - margin["r"]) / max(n_t, 1)
    cell_chars = max(1, min(max_chars, int(cell_px // _CHAR_PX)))
    z = probs[:, :, 0] if color == "prob" else np.asarray(table.entropy_bits)[:, first:]
    text = [[_cell_text(tokens[i, j, 0], cell_chars) for j in range(n_t)] for i in range(n_l)]
    hover = [["<br>".join(f"{r + 1}. {_hover_token(tokens[i, j, r])} {probs[i, j, r]:.3f}" for r in range(k))
              for j in range(n_t)] for i in range(n_l)]
    positions = list(range(first, n_all))
    inputs = list(table.input_tokens)[first:]
    ticks = [_cell_text(t, tick_chars) for t in inputs]
    longest = max((len(_unescape(t)) for t in ticks), default=1)
    angle = 0 if longest * _CHAR_PX * 1.1 <= cell_px else (-45 if cell_px >= 14 else -90)
    tick_px = longest * _CHAR_PX * abs(math.sin(math.radians(angle))) + 16  # height the labels take
    margin["b"] = int(tick_px + 50)  # labels, then the x title below them (standoff)
    notes = []
    if first:
        notes.append(f"last {n_t} of {n_all} tokens shown (positions {first}–{n_all - 1}); the hover names the top-{k}")
    kinds = {token_kind(t) for t in inputs} | {token_kind(t) for t in tokens[:, :, 0].ravel()}
    marks = [w for w, kind in (("byte", "byte"), ("special", "special")) if kind in kinds]
    notes.append("␣ = leading space" + (f"; {MARK_OPEN}…{MARK_CLOSE} = {' or '.join(marks)} token" if marks else ""))
    fig = go.Figure(go.Heatmap(
        z=z, x=positions, y=list(table.layers), text=text, customdata=hover, texttemplate="%{text}",
        textfont=dict(size=10 if cell_px >= 30 else 9), colorscale=HEATMAP_SCALE if color == "prob" else "Cividis",
        colorbar=dict(title=dict(text="P(top-1)" if color == "prob" else "entropy<br>(bits)", side="top"),
                      x=1.01, xanchor="left", thickness=12, len=0.9),
        **({"zmin": 0.0, "zmax": 1.0} if color == "prob" else {}),
        hovertemplate="layer %{y}, position %{x}<br>%{customdata}<extra></extra>", xgap=1, ygap=1,
    ))
    fig.update_layout(
        template=TEMPLATE, width=fig_w, height=max(400, 20 * n_l) + margin["t"] + margin["b"], margin=margin,
        title=dict(text=title or "Logit lens: top token per layer and position"),
        xaxis=dict(title=dict(text="input token (the cell predicts the next one)", standoff=12), tickmode="array",
                   tickvals=positions, ticktext=ticks, tickangle=angle, tickfont=dict(size=10), showgrid=False,
                   automargin=True, range=[first - 0.5, n_all - 0.5]),
        yaxis=dict(title="layer", showgrid=False, tickmode="array",
                   tickvals=list(table.layers)[::max(1, math.ceil(n_l / 20))]),
        meta={"first_position": first, "n_tokens": n_all, "shown_tokens": n_t},
    )
    add_caption(fig, "<br>".join(notes), size=11)
    return fig


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
