"""The self-contained HTML page of ``xling-probe report``: plotly.js embedded once, no remote script.

Each figure is a ``<div>`` from ``fig.to_html(include_plotlyjs=False)``; plotly.js itself is
inlined once in ``<head>`` (``plotly.offline.get_plotlyjs()``), so the page opens with the network off.
Section headings carry ``sec-<key>`` ids, never a figure's div id (see :attr:`Section.anchor`).

Text: :data:`TEXTS` says how to read each figure and what the literature reports; the
``describe_*`` functions of :mod:`.captions` compute, from the numbers of the figure, what this run
shows; that sentence is printed under the figure (``Section.finding``).
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
        "pairing. Multilingual models are often reported to 'first align, then predict': similarity rises through "
        "the middle layers and falls in the last ones. The line under the figure says whether this curve does."),
    "retrieval": (
        "Retrieval P@1 per layer: the share of sentences whose nearest neighbour (cosine) among the other language's "
        "sentences is their own translation. Arrows give the direction (query language → searched language). The "
        "grey band is the shuffled-pairing null (chance level, about 1/N)."),
    "mexa": (
        "MEXA alignment per layer (Kargaran et al. 2024): the share of sentences whose cosine similarity to their own "
        "translation is higher than to every other sentence, in both the row and the column of the similarity "
        "matrix. The grey band is the shuffled-pairing null. MEXA summarises a language by the mean and the "
        "maximum of this score over layers; the line under the figure gives both."),
    "anc": (
        "Average neuron-wise correlation (ANC, Del & Fishel 2022) per layer: for each neuron, the Pearson "
        "correlation of its activations on the two languages' translations over sentences, averaged over neurons "
        "(signed: chance is about 0; zero-variance neurons are left out). Unlike CKA it is not invariant to "
        "rotations: it asks whether the same neurons carry the same sentence. The grey band is the shuffled-pairing "
        "null."),
    "heatmap": (
        "All language pairs at one layer (the layer where the mean over pairs peaks). Row = language a, column = "
        "language b; brighter = more similar. Related languages or shared scripts are often expected to stand out; "
        "the line under the figure names the highest and the lowest pair."),
    "heatmap_many": (
        "All language pairs at one layer (the layer where the mean over pairs peaks), for a run with many "
        "languages: rows and columns are ordered by hierarchical clustering (average linkage on 1 - similarity; "
        "the tree is on the left), so languages that the model represents alike sit together; the axis labels name "
        "the language family of each long enough block (families: the bundled table xling_probe/data/families.tsv, "
        "after Glottolog's top-level families). Hover a cell for both languages and the value. The tables below "
        "summarise the matrix by family and list the extreme pairs; the full matrix is in the linked CSV."),
    "cross_layer": (
        "Layer i of the first language against layer j of the second. A bright diagonal means the two languages are "
        "processed in step; off-diagonal mass means one language reaches a representation at a later layer."),
    "neutrality": (
        "Language neutrality on held-out sentences before (raw, dashed) and after subtracting each language's mean "
        "vector (centered, solid; means estimated on a separate fit split). Left: retrieval P@1, the mean of both "
        "directions (a→b and b→a) over language pairs (band = range over pairs and directions). Middle: held-out "
        "accuracy of a k-NN language-ID probe (each sentence takes the majority language of its 5 most "
        "cosine-similar fit sentences; dotted line = chance, 1 / number of languages). Right: share of variance "
        "explained by the language means. Fixed by construction, so not shown as findings: a linear probe after "
        "centering is at chance whatever the data (every language has the same mean on the fit split), which is "
        "why the k-NN probe is plotted; the variance share would be 0 if the held-out split were centered on its "
        "own means, but here it is measured with the fit split's means, so it is a measurement. Any value that is "
        "fixed by construction is drawn grey and dotted and named in the legend. What the centered curves show is "
        "what the language means do not explain: a centered k-NN accuracy above chance is language identity that "
        "is not a mean offset, and the retrieval change is what removing the offsets does to translation matching."),
    "embedding": (
        "Sentences of every language at one layer projected to 2-D (PCA), one colour per language. Left: raw; right: "
        "after language centering. Separate clusters per language on the left that merge on the right are the "
        "language-specific offset that centering removes."),
    "drift": (
        "The latent-language figure (Wendler et al. 2024): the logit lens decodes the last position of a few-shot "
        "translation prompt at every layer. Lines are the mean probability of the target word, the English word "
        "and the source word (bands: 95% interval over items); the strip above is the entropy of the lens "
        "distribution (bits). The line under the figure compares what this model shows with what Wendler et al. "
        "report."),
    "lens": (
        "Logit lens on one prompt: cell (layer, position) shows the token the lens predicts after that position "
        "(colour = its probability; hover for the top-5). Read a column bottom-up to see when the model settles "
        "on its next token."),
}

_CSS = """
body{font-family:'Noto Sans',Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
.note{background:#fff7e0;border-left:4px solid #E69F00;padding:.5em 1em;margin:1em 0}
.finding{border-left:4px solid #0072B2;padding:.2em 1em;margin:.5em 0}
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
    #: what this run's numbers show (computed by a ``describe_*`` function), printed under the figure
    finding: str = ""
    #: small tables printed under the finding: (caption, DataFrame)
    tables: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        """The heading's HTML id: ``sec-<key>``. It must differ from every figure's div id: plotly draws
        into ``document.getElementById(div_id)``, so a heading with the same id would receive the plot
        and leave the figure's own (fixed-height) div empty, a blank gap on the page."""
        return f"sec-{self.key}"


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
    parts.append("<ul>" + "".join(f'<li><a href="#{s.anchor}">{esc(s.title)}</a></li>' for s in sections) + "</ul>")
    for s in sections:
        parts.append(f'<h2 id="{s.anchor}">{esc(s.title)}</h2>')
        if s.text:
            parts.append(f"<p>{esc(s.text)}</p>")
        parts += [f'<div class="note">{esc(n)}</div>' for n in s.notes]
        for div_id, fig in s.figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                     config={"displaylogo": False, "responsive": True}))
        if s.finding:
            parts.append(f'<p class="finding">{esc(s.finding)}</p>')
        for caption, df in s.tables:
            parts.append(f"<p><b>{esc(caption)}</b></p>" + df.to_html(index=False, border=0, na_rep="–"))
        if s.links:
            parts.append('<p class="files">files: ' + " · ".join(
                f'<a href="{esc(link)}">{esc(link)}</a>' for link in s.links) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
