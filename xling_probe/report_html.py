"""The self-contained HTML page of ``xling-probe report``: plotly.js embedded once, no remote script.

Each figure is a ``<div>`` from ``fig.to_html(include_plotlyjs=False)``; plotly.js itself is
inlined once in ``<head>`` (``plotly.offline.get_plotlyjs()``), so the page opens with the network off.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: What each section's figure shows and how to read it (the report's text).
TEXTS: dict[str, str] = {
    "similarity": (
        "Cross-lingual similarity of translation pairs at every layer (x: residual-stream layer, 0 = embeddings, "
        "l = output of block l-1). Each line is one language pair; its shaded band is the bootstrap interval over "
        "sentences. The grey band is the shuffled-pairing null (chance level): a value above it beats every shuffled "
        "pairing. Multilingual models typically 'first align, then predict': similarity rises through the middle "
        "layers and falls in the last ones."),
    "retrieval": (
        "Retrieval P@1 per layer: the share of sentences whose nearest neighbour (cosine) among the other language's "
        "sentences is their own translation. Arrows give the direction (query language → searched language)."),
    "heatmap": (
        "All language pairs at one layer (the layer where the mean over pairs peaks). Row = language a, column = "
        "language b; brighter = more similar. Pairs of related languages or scripts usually stand out."),
    "cross_layer": (
        "Layer i of the first language against layer j of the second. A bright diagonal means the two languages are "
        "processed in step; off-diagonal mass means one language reaches a representation at a later layer."),
    "neutrality": (
        "Language neutrality on held-out sentences before (raw, dashed) and after subtracting each language's mean "
        "vector (centered, solid; means estimated on a separate fit split). Left: retrieval P@1 (band = range over "
        "pairs). Middle: accuracy of a linear language-ID probe (dotted = chance). Right: share of variance explained "
        "by the language means. Centering removes the language identity while keeping the meaning: retrieval should "
        "stay high or rise, language ID and variance share should drop."),
    "embedding": (
        "Sentences of every language at one layer projected to 2-D (PCA), one colour per language. Left: raw; right: "
        "after language centering. Separate clusters per language on the left that merge on the right are the "
        "language-specific offset that centering removes."),
    "drift": (
        "The latent-language figure (Wendler et al. 2024): the logit lens decodes the last position of a few-shot "
        "translation prompt at every layer. Lines are the mean probability of the target word, the English word "
        "and the source word (bands: 95% interval over items); the strip above is the entropy of the lens "
        "distribution (bits). On multilingual decoders P(English) often rises in the middle layers before "
        "P(target) takes over in the last ones."),
    "lens": (
        "Logit lens on one prompt: cell (layer, position) shows the token the lens predicts after that position "
        "(colour = its probability; hover for the top-5). Read a column bottom-up to see when the model settles "
        "on its next token."),
}

_CSS = """
body{font-family:'Noto Sans',Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
.note{background:#fff7e0;border-left:4px solid #E69F00;padding:.5em 1em;margin:1em 0}
.files{font-size:.9em;color:#444}table{border-collapse:collapse;font-size:.9em}td,th{padding:2px 8px;text-align:left}
"""


@dataclass
class Section:
    """One report section: a title, its explanatory text, figures (id, Figure) and file links."""

    key: str
    title: str
    text: str
    figures: list[tuple[str, Any]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def render(title: str, intro: Sequence[tuple[str, str]], sections: Sequence[Section], notes: Sequence[str]) -> str:
    """The whole page as a string (plotly.js inlined once, figures without their own copy)."""
    from plotly.offline import get_plotlyjs

    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
             f"<style>{_CSS}</style>", f'<script type="text/javascript">{get_plotlyjs()}</script>', "</head><body>",
             f"<h1>{esc(title)}</h1>", "<table>"]
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in intro]
    parts.append("</table>")
    for note in notes:
        parts.append(f'<div class="note">{esc(note)}</div>')
    parts.append("<ul>" + "".join(f'<li><a href="#{s.key}">{esc(s.title)}</a></li>' for s in sections) + "</ul>")
    for s in sections:
        parts += [f'<h2 id="{s.key}">{esc(s.title)}</h2>', f"<p>{esc(s.text)}</p>"]
        parts += [f'<div class="note">{esc(n)}</div>' for n in s.notes]
        for div_id, fig in s.figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                     config={"displaylogo": False, "responsive": True}))
        if s.links:
            parts.append('<p class="files">files: ' + " · ".join(
                f'<a href="{esc(link)}">{esc(link)}</a>' for link in s.links) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
