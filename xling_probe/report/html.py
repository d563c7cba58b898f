"""The self-contained HTML page of ``xling-probe report``: plotly.js embedded once, no remote script.

Each figure is a ``<div>`` from ``fig.to_html(include_plotlyjs=False)``; plotly.js itself is
inlined once in ``<head>`` (``plotly.offline.get_plotlyjs()``), so the page opens with the network off.
Section headings carry ``sec-<key>`` ids, never a figure's div id (see :attr:`Section.anchor`).

Text: :data:`TEXTS` says how to read each figure and what the literature reports; the
``describe_*`` functions (:func:`describe_curve`, :func:`describe_heatmap`, :func:`describe_mexa`,
:func:`describe_drift`, :func:`describe_items`) compute, from the numbers of the figure, what this
run shows; that sentence is printed under the figure (``Section.finding``).
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
        if s.links:
            parts.append('<p class="files">files: ' + " · ".join(
                f'<a href="{esc(link)}">{esc(link)}</a>' for link in s.links) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------ captions
# Each function below turns the numbers of one figure into the sentences printed under it, so every
# interpretation on the page follows from the values shown (nothing is asserted from the literature
# without saying so). They are pure: a result in, a string out.

#: A change smaller than this (in the metric's units) counts as flat in :func:`describe_curve`.
FLAT_TOL = 0.02
#: In :func:`describe_drift`, P(English) must reach this to count as "rising" (a few percent of lens
#: mass on the English word is not a latent language), and P(target) must reach it to count as decoded.
DRIFT_FLOOR = 0.1


def _f(x: float) -> str:
    """Two decimals, or three significant digits for small non-zero values (0.0031, not 0.00)."""
    x = float(x)
    return f"{x:.2f}" if x == 0 or abs(x) >= 0.01 else f"{x:.2g}"


def _span(layers: Sequence[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3–5, 9"`` (runs of consecutive layers collapsed)."""
    runs: list[list[int]] = []
    for layer in layers:
        if runs and layer == runs[-1][-1] + 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def _pair_name(metric: str, a: str, b: str) -> str:
    return f"{a}→{b}" if metric.startswith("p@") else f"{a}–{b}"


def _pair_values(result: Any, metric: str, pairs: Sequence[tuple[str, str]]) -> "np.ndarray":
    """``[pair, layer]`` values of ``metric`` for ``pairs`` (a -> b for directional metrics)."""
    import numpy as np

    mi = result._metric_index(metric)
    return np.array([result.arrays["value"][mi, :, result._lang_index(a), result._lang_index(b)] for a, b in pairs],
                    dtype=float)


def curve_shape(values: Sequence[float], tol: float = FLAT_TOL) -> str:
    """The shape of one per-layer curve ``[layer]``: ``"rise_fall"`` (peak at an interior layer,
    at least ``tol`` above both the first and the last layer: the 'first align, then predict'
    profile), ``"rise"`` (rises by more than ``tol`` and does not fall by more than ``tol`` after its
    peak), ``"fall"`` (highest at the start, falls by more than ``tol``) or ``"flat"``."""
    import numpy as np

    v = np.asarray(values, float)
    k = int(np.nanargmax(v))
    rise, drop = v[k] - v[0], v[k] - v[-1]
    if 0 < k < len(v) - 1 and rise > tol and drop > tol:
        return "rise_fall"
    if rise > tol:
        return "rise"
    if drop > tol:
        return "fall"
    return "flat"


_SHAPE_TEXT = {
    "rise_fall": "it rises through the middle layers and falls in the last ones (the 'first align, then predict' shape)",
    "rise": "it rises and does not fall again by more than {tol} after its peak, so it does not show the "
            "'first align, then predict' shape",
    "fall": "it is highest at the first layers and falls, so it does not show the 'first align, then predict' shape",
    "flat": "it stays within {tol} of its peak at both ends (flat), so it does not show the "
            "'first align, then predict' shape",
}


def describe_curve(result: Any, metric: str, pairs: Sequence[tuple[str, str]], *, tol: float = FLAT_TOL) -> str:
    """What the per-layer curve of ``metric`` shows, from the mean over the plotted ``pairs``.

    States the value of that mean at the first layer, at its peak and at the last layer, the
    :func:`curve_shape` it has, and (with a null) how many of the pairs beat every shuffled
    pairing at the peak layer.
    """
    import numpy as np

    from ..plots.curves import metric_label

    v = _pair_values(result, metric, pairs)
    mean = np.nanmean(v, axis=0)
    layers = list(result.layers)
    k = int(np.nanargmax(mean))
    who = f"{_pair_name(metric, *pairs[0])}" if len(pairs) == 1 else f"the mean over the {len(pairs)} pairs shown"
    if k == len(layers) - 1:
        where = f"is {_f(mean[0])} at layer {layers[0]} and peaks at {_f(mean[k])} at the last layer ({layers[k]})"
    elif k == 0:
        where = f"peaks at {_f(mean[0])} at the first layer ({layers[0]}) and is {_f(mean[-1])} at layer {layers[-1]}"
    else:
        where = (f"is {_f(mean[0])} at layer {layers[0]}, peaks at {_f(mean[k])} at layer {layers[k]} and is "
                 f"{_f(mean[-1])} at layer {layers[-1]}")
    text = (f"This run: {metric_label(metric)} of {who} {where}: "
            + _SHAPE_TEXT[curve_shape(mean, tol)].format(tol=tol) + ".")
    if result.has_null:
        mi = result._metric_index(metric)
        above = sum(bool(result.arrays["value"][mi, k, result._lang_index(a), result._lang_index(b)]
                         > result.arrays["null_max"][mi, k, result._lang_index(a), result._lang_index(b)])
                    for a, b in pairs)
        text += (f" At layer {layers[k]}, {above} of {len(pairs)} pair{'s' if len(pairs) > 1 else ''} "
                 f"{'is' if above == 1 else 'are'} above every shuffled pairing.")
    return text


def describe_heatmap(result: Any, metric: str, layer: int) -> str:
    """The most and the least similar language pair of ``metric`` at ``layer`` (over every computed
    pair, both directions for directional metrics), with their values and the spread."""
    import numpy as np

    slots = result.slots(metric)
    li = list(result.layers).index(layer)
    vals = np.array([result.arrays["value"][result._metric_index(metric), li, result._lang_index(a),
                                            result._lang_index(b)] for a, b in slots], float)
    hi, lo = int(np.nanargmax(vals)), int(np.nanargmin(vals))
    return (f"This run, layer {layer}: the highest pair is {_pair_name(metric, *slots[hi])} ({_f(vals[hi])}), the "
            f"lowest {_pair_name(metric, *slots[lo])} ({_f(vals[lo])}); {len(slots)} pairs, spread "
            f"{_f(vals[hi] - vals[lo])}.")


def describe_mexa(result: Any, pairs: Sequence[tuple[str, str]], metric: str = "mexa") -> str:
    """MEXA's own summary, per plotted pair: the mean and the maximum of the alignment score over
    layers (the two numbers Kargaran et al. report), with the layer of the maximum."""
    import numpy as np

    v = _pair_values(result, metric, pairs)
    layers = list(result.layers)
    parts = [f"{_pair_name(metric, a, b)} mean {_f(np.nanmean(row))}, max {_f(np.nanmax(row))} "
             f"(layer {layers[int(np.nanargmax(row))]})" for (a, b), row in zip(pairs, v)]
    avg = np.nanmean(v, axis=0)
    return (f"This run, MEXA alignment over layers {layers[0]}–{layers[-1]}: " + "; ".join(parts)
            + f". Averaged over these pairs: mean over layers {_f(np.nanmean(avg))}, max over layers "
            f"{_f(np.nanmax(avg))} (layer {layers[int(np.nanargmax(avg))]}).")


def describe_drift(result: Any, *, floor: float = DRIFT_FLOOR) -> str:
    """What the latent-language figure of one :class:`~xling_probe.lens.DriftResult` shows.

    From the per-layer means: the peak of P(latent) and of P(source) with their layers, the layer
    where P(target) first reaches half of its maximum (its "rise") and its value at the last layer.
    The textbook shape of Wendler et al. holds when P(latent) is above P(target) and at least
    ``floor`` at some layer before that rise, and P(target) ends above P(latent). When P(target)
    never reaches ``floor`` it has no rise and the shape does not hold.
    """
    import numpy as np

    layers = list(result.layers)
    pt, pl, ps = (np.asarray(result.curve(m), float) for m in ("p_target", "p_latent", "p_source"))
    tgt, lat, src = result.target, result.latent, result.source
    head = (f"Wendler et al. (2024) report, for Llama-2, that P(English) rises in the middle layers, above "
            f"P(target), before P(target) rises in the last layers. This run ({result.n_items} items): ")
    if lat == tgt:
        return head + (f"the target is the latent language ({tgt}), so the two cannot be told apart; P({tgt}) peaks "
                       f"at {_f(pt.max())} at layer {layers[int(pt.argmax())]} and ends at {_f(pt[-1])}.")
    kl = int(pl.argmax())
    facts = [f"P({lat}) peaks at {_f(pl[kl])} at layer {layers[kl]}"]
    if src not in (tgt, lat):
        ks = int(ps.argmax())
        facts.append(f"P({src}) (source) peaks at {_f(ps[ks])} at layer {layers[ks]}")
    if pt.max() < floor:
        rise = None
        facts.append(f"P({tgt}) (target) stays below {floor} at every layer (ends at {_f(pt[-1])})")
    else:
        rise = int(np.argmax(pt >= 0.5 * pt.max()))
        facts.append(f"P({tgt}) (target) reaches half its maximum at layer {layers[rise]} and ends at {_f(pt[-1])} "
                     f"at layer {layers[-1]}")
    text = head + "; ".join(facts) + ". "
    before = [j for j in range(rise if rise is not None else 0) if pl[j] > pt[j] and pl[j] >= floor]
    if before and pt[-1] > pl[-1]:
        return text + (f"P({lat}) is above P({tgt}) at layer{'s' if len(before) > 1 else ''} "
                       f"{_span([layers[j] for j in before])}, before P({tgt}) rises: this model shows the textbook shape.")
    why = []
    if rise is None:
        why.append(f"P({tgt}) never reaches {floor}, so the target word does not rise at any layer")
    elif not before:
        why.append(f"before P({tgt}) rises, P({lat}) is never both above P({tgt}) and at least {floor}")
    if rise is not None and pt[-1] <= pl[-1]:
        why.append(f"at the last layer P({lat}) ({_f(pl[-1])}) is not below P({tgt}) ({_f(pt[-1])})")
    text += "This model does not show the textbook shape: " + "; ".join(why) + "."
    if src not in (tgt, lat) and ps.max() > pl.max():
        text += f" Its middle layers favour the source word ({src}) over English."
    return text


def _short_reason(reason: str) -> str:
    """A filter's reason (xling_probe.lens.tokensets) in a few words."""
    import re

    for pattern, short in ((r"^no word in (.+)$", r"no \1 word"), (r"^empty token set in (.+)$", r"no \1 token"),
                           (r"^not a single token in (.+)$", r"\1 not one token"),
                           (r"^latent \((.+)\) and target \((.+)\) token sets overlap$", r"\1/\2 token overlap"),
                           (r"^latent \((.+)\) word is a substring of the target \((.+)\) word$", r"\1 word inside \2 word")):
        if re.match(pattern, reason):
            return re.sub(pattern, short, reason)
    return reason


def describe_items(result: Any, requested: int | None) -> str:
    """Which count is which in a drift section: word-list items, items dropped by the filters
    (per reason; an item can fail several), usable items, and the items used (``requested`` =
    the ``drift_items`` limit, None = no limit)."""
    drop = result.dropped
    per: dict[str, set[str]] = {}
    for concept, _, reason in drop.entries:
        per.setdefault(_short_reason(reason), set()).add(concept)
    n_drop, usable, used = len(drop), drop.n_total - len(drop), result.n_items
    parts = [f"{drop.n_total} word-list items"]
    if n_drop:
        reasons = ", ".join(f"{r}: {len(c)}" for r, c in per.items())
        several = "; an item can fail several" if sum(map(len, per.values())) > n_drop else ""
        parts.append(f"{n_drop} dropped by the filters ({reasons}{several})")
    else:
        parts.append("none dropped by the filters")
    parts.append(f"{usable} usable")
    if requested is None or used == usable:
        parts.append(f"all {used} used" + (f" (drift_items={requested})" if requested is not None else ""))
    else:
        parts.append(f"the first {used} used (drift_items={requested})")
    return "; ".join(parts) + "."
