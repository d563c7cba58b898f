"""The computed captions of the report: the sentence under each figure, from the figure's numbers.

Each function turns the numbers of one figure into the sentences printed under it
(``Section.finding`` of :mod:`.html`), so every interpretation on the page follows from the values
shown; nothing is asserted from the literature without saying so. They are pure: a result in, a
string out, and they read results only through their public API (:meth:`SimilarityResult.sel`,
:meth:`~SimilarityResult.peak_layer`, :meth:`~SimilarityResult.above_null_count`,
:meth:`~SimilarityResult.spec`, :meth:`DriftResult.sel`). Definitions: docs/science.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: the captions need no torch at import
    from ..lens.drift import DriftResult
    from ..measures.result import SimilarityResult

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


def _pair_name(result: SimilarityResult, metric: str, a: str, b: str) -> str:
    """``a→b`` for a directional metric (a queries, b is searched), ``a–b`` otherwise (as in the legends)."""
    return f"{a}→{b}" if result.spec(metric).directional else f"{a}–{b}"


def _pair_values(result: SimilarityResult, metric: str, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """``[pair, layer]`` values of ``metric`` for ``pairs`` (a -> b for directional metrics)."""
    return np.array([result.sel(metric, None, a, b) for a, b in pairs], dtype=float)


def curve_shape(values: Sequence[float], tol: float = FLAT_TOL) -> str:
    """The shape of one per-layer curve ``[layer]``: ``"rise_fall"`` (peak at an interior layer,
    at least ``tol`` above both the first and the last layer: the 'first align, then predict'
    profile), ``"rise"`` (rises by more than ``tol`` and does not fall by more than ``tol`` after its
    peak), ``"fall"`` (highest at the start, falls by more than ``tol``) or ``"flat"``."""
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


def describe_curve(result: SimilarityResult, metric: str, pairs: Sequence[tuple[str, str]], *,
                   tol: float = FLAT_TOL) -> str:
    """What the per-layer curve of ``metric`` shows, from the mean over the plotted ``pairs``.

    States the value of that mean at the first layer, at its peak and at the last layer, the
    :func:`curve_shape` it has, and (with a null) how many of the pairs beat every shuffled
    pairing at the peak layer (:meth:`SimilarityResult.peak_layer` of the pairs as written).
    """
    mean = np.nanmean(_pair_values(result, metric, pairs), axis=0)
    layers = list(result.layers)
    peak = result.peak_layer(metric, pairs=list(pairs), direction="forward")
    k = layers.index(peak)
    who = f"{_pair_name(result, metric, *pairs[0])}" if len(pairs) == 1 else f"the mean over the {len(pairs)} pairs shown"
    if k == len(layers) - 1:
        where = f"is {_f(mean[0])} at layer {layers[0]} and peaks at {_f(mean[k])} at the last layer ({layers[k]})"
    elif k == 0:
        where = f"peaks at {_f(mean[0])} at the first layer ({layers[0]}) and is {_f(mean[-1])} at layer {layers[-1]}"
    else:
        where = (f"is {_f(mean[0])} at layer {layers[0]}, peaks at {_f(mean[k])} at layer {layers[k]} and is "
                 f"{_f(mean[-1])} at layer {layers[-1]}")
    text = (f"This run: {result.spec(metric).label} of {who} {where}: "
            + _SHAPE_TEXT[curve_shape(mean, tol)].format(tol=tol) + ".")
    if result.has_null:
        above, _ = result.above_null_count(metric, peak, pairs=list(pairs))
        text += (f" At layer {layers[k]}, {above} of {len(pairs)} pair{'s' if len(pairs) > 1 else ''} "
                 f"{'is' if above == 1 else 'are'} above every shuffled pairing.")
    return text


def describe_heatmap(result: SimilarityResult, metric: str, layer: int) -> str:
    """The most and the least similar language pair of ``metric`` at ``layer`` (over every computed
    pair, both directions for directional metrics), with their values and the spread."""
    slots = result.slots(metric)
    vals = np.array([result.sel(metric, layer, a, b) for a, b in slots], float)
    hi, lo = int(np.nanargmax(vals)), int(np.nanargmin(vals))
    return (f"This run, layer {layer}: the highest pair is {_pair_name(result, metric, *slots[hi])} ({_f(vals[hi])}), "
            f"the lowest {_pair_name(result, metric, *slots[lo])} ({_f(vals[lo])}); {len(slots)} pairs, spread "
            f"{_f(vals[hi] - vals[lo])}.")


def describe_mexa(result: SimilarityResult, pairs: Sequence[tuple[str, str]], metric: str = "mexa") -> str:
    """MEXA's own summary, per plotted pair: the mean and the maximum of the alignment score over
    layers (the two numbers Kargaran et al. report), with the layer of the maximum."""
    v = _pair_values(result, metric, pairs)
    layers = list(result.layers)
    parts = [f"{_pair_name(result, metric, a, b)} mean {_f(np.nanmean(row))}, max {_f(np.nanmax(row))} "
             f"(layer {layers[int(np.nanargmax(row))]})" for (a, b), row in zip(pairs, v)]
    avg = np.nanmean(v, axis=0)
    return (f"This run, MEXA alignment over layers {layers[0]}–{layers[-1]}: " + "; ".join(parts)
            + f". Averaged over these pairs: mean over layers {_f(np.nanmean(avg))}, max over layers "
            f"{_f(np.nanmax(avg))} (layer {layers[int(np.nanargmax(avg))]}).")


def describe_drift(result: DriftResult, *, floor: float = DRIFT_FLOOR) -> str:
    """What the latent-language figure of one :class:`~xling_probe.lens.DriftResult` shows.

    From the per-layer means: the peak of P(latent) and of P(source) with their layers, the layer
    where P(target) first reaches half of its maximum (its "rise") and its value at the last layer.
    The textbook shape of Wendler et al. holds when P(latent) is above P(target) and at least
    ``floor`` at some layer before that rise, and P(target) ends above P(latent). When P(target)
    never reaches ``floor`` it has no rise and the shape does not hold.
    """
    layers = list(result.layers)
    pt, pl, ps = (np.asarray(result.sel(m), float) for m in ("p_target", "p_latent", "p_source"))
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
    for pattern, short in ((r"^no word in (.+)$", r"no \1 word"), (r"^empty token set in (.+)$", r"no \1 token"),
                           (r"^not a single token in (.+)$", r"\1 not one token"),
                           (r"^latent \((.+)\) and target \((.+)\) token sets overlap$", r"\1/\2 token overlap"),
                           (r"^latent \((.+)\) word is a substring of the target \((.+)\) word$", r"\1 word inside \2 word")):
        if re.match(pattern, reason):
            return re.sub(pattern, short, reason)
    return reason


def describe_items(result: DriftResult, requested: int | None) -> str:
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
