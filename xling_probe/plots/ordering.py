"""Language order, groups and filters of the language x language heatmap (views of many languages).

- :func:`select_languages`: the languages a view keeps (an explicit subset, or by family / script / region).
- :func:`order_languages`: the order of the rows and columns: as in the result (``None``), by
  hierarchical clustering of the shown matrix (``"cluster"``: scipy average linkage on
  1 - similarity, leaves order), grouped by family or script (``"family"``, ``"script"``), or an
  explicit list of languages.
- :func:`group_runs`: consecutive blocks of one family/script along an order (the axis labels of a big heatmap).

Families are read by :func:`xling_probe.data.families.language_family` (a bundled hand-made table
after Glottolog's top-level families), scripts and regions by langcodes.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.families import language_family, language_region, language_script
from ..errors import MetricError

ORDERS = ("cluster", "family", "script")
GROUPINGS = {"family": language_family, "script": language_script, "region": language_region}

__all__ = ["GROUPINGS", "ORDERS", "cluster_order", "dendrogram_lines", "group_of", "group_runs", "language_label", "language_name", "order_languages",
           "select_languages"]


def language_name(code: str) -> str:
    """The English name of ``code`` (langcodes), or the code itself when langcodes does not know it."""
    import langcodes

    try:
        return langcodes.Language.get(code.replace("_", "-")).display_name()
    except (LookupError, ValueError):
        return code


@functools.lru_cache(maxsize=4096)
def language_label(code: str) -> str:
    """``code (English name)`` for axes, legends and hovers: ``ru`` -> ``ru (Russian)``. The name is
    :func:`xling_probe.data.languages.language_name` (variants named after the base), else langcodes'
    display name; a code that neither knows stays as written."""
    from ..data.languages import language_name as data_name
    from ..errors import XlingProbeError

    try:
        name = data_name(code)
    except (XlingProbeError, LookupError, ValueError):
        name = language_name(code)
    if not name or name == code or name.startswith("Unknown language"):
        return code
    if name.endswith(")") and " (" in name:  # Chinese (Simplified) -> Chinese, Simplified
        name = name.replace(" (", ", ", 1)[:-1]
    return f"{code} ({name})"


def group_of(languages: Sequence[str], by: str) -> list[str]:
    """The ``by`` (``"family"``, ``"script"`` or ``"region"``) of each language."""
    if by not in GROUPINGS:
        raise MetricError(f"languages are grouped by {', '.join(GROUPINGS)}, got {by!r}")
    return [GROUPINGS[by](code) for code in languages]


def _as_set(value: str | Sequence[str] | None) -> set[str] | None:
    if value is None:
        return None
    return {value.lower()} if isinstance(value, str) else {v.lower() for v in value}


def select_languages(languages: Sequence[str], subset: Sequence[str] | None = None, *,
                     family: str | Sequence[str] | None = None, script: str | Sequence[str] | None = None,
                     region: str | Sequence[str] | None = None) -> list[str]:
    """The languages of ``languages`` (in their order) that are in ``subset`` (None = all) and whose
    family, script and region are among the given ones (a name or a list; case-insensitive; None =
    any). Raises :class:`MetricError` when ``subset`` names a language that is not there or when
    nothing is left."""
    langs = list(languages)
    if subset is not None:
        missing = [c for c in subset if c not in langs]
        if missing:
            raise MetricError(f"languages {missing} are not in this result; it has {len(langs)} languages")
        keep = set(subset)
        langs = [c for c in langs if c in keep]
    for by, wanted in (("family", family), ("script", script), ("region", region)):
        allowed = _as_set(wanted)
        if allowed is not None:
            langs = [c for c, g in zip(langs, group_of(langs, by)) if g.lower() in allowed]
    if not langs:
        raise MetricError(f"no language is left after the filters (family={family!r}, script={script!r}, "
                          f"region={region!r})")
    return langs


def _distance(matrix: np.ndarray) -> np.ndarray:
    """1 - similarity, symmetrised (directional metrics: the mean of both directions), NaN filled
    with the largest distance, a zero diagonal."""
    m = np.asarray(matrix, dtype=float)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # the empty diagonal: "mean of empty slice"
        sym = np.nanmean(np.stack([m, m.T]), axis=0)
    d = 1.0 - sym
    fill = np.nanmax(d) if np.isfinite(d).any() else 1.0
    d = np.where(np.isfinite(d), d, fill)
    d = d - min(0.0, float(d.min()))  # distances must be >= 0 (similarities above 1)
    np.fill_diagonal(d, 0.0)
    return d


def cluster_order(matrix: np.ndarray) -> tuple[list[int], np.ndarray | None]:
    """Leaves order of scipy's average linkage on 1 - ``matrix`` (rows = columns = languages) and the
    linkage (None for fewer than 3 languages)."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    n = len(matrix)
    if n < 3:
        return list(range(n)), None
    cond = squareform(_distance(matrix), checks=False)
    link = linkage(cond, method="average")
    if n <= 500:  # neighbouring leaves as similar as possible; deterministic, ~0.1 s at 400 languages
        link = optimal_leaf_ordering(link, cond)
    return [int(i) for i in leaves_list(link)], link


def order_languages(languages: Sequence[str], order: str | Sequence[str] | None = None,
                    matrix: np.ndarray | None = None) -> list[int]:
    """Positions (into ``languages``) in display order: a permutation of ``range(len(languages))``.

    ``order``: ``None`` (as given), ``"cluster"`` (needs ``matrix``, the shown similarity matrix of
    these languages), ``"family"`` / ``"script"`` (groups by size, largest first, then by name; the
    given order inside a group), or a list naming every language once."""
    langs = list(languages)
    if order is None:
        return list(range(len(langs)))
    if isinstance(order, str):
        if order == "cluster":
            if matrix is None:
                raise MetricError("order='cluster' needs the similarity matrix")
            return cluster_order(matrix)[0]
        if order in ("family", "script"):
            groups = group_of(langs, order)
            size: dict[str, int] = {}
            for g in groups:
                size[g] = size.get(g, 0) + 1
            return sorted(range(len(langs)), key=lambda i: (groups[i] == "unclassified", -size[groups[i]], groups[i], i))
        raise MetricError(f"order must be None, {', '.join(map(repr, ORDERS))} or a list of languages, got {order!r}")
    given = list(order)
    if sorted(given) != sorted(langs) or len(set(given)) != len(given):
        missing, extra = sorted(set(langs) - set(given)), sorted(set(given) - set(langs))
        raise MetricError(f"an explicit order names every shown language once; missing {missing[:10]}, "
                          f"unknown {extra[:10]}")
    pos = {c: i for i, c in enumerate(langs)}
    return [pos[c] for c in given]


def group_runs(groups: Sequence[str]) -> list[tuple[str, int, int]]:
    """Consecutive runs of one group along an order: ``(group, first position, last position)``."""
    runs: list[tuple[str, int, int]] = []
    for i, g in enumerate(groups):
        if runs and runs[-1][0] == g:
            runs[-1] = (g, runs[-1][1], i)
        else:
            runs.append((g, i, i))
    return runs


def dendrogram_lines(link: np.ndarray, n: int) -> tuple[list[Any], list[Any]]:
    """x (height) and y (leaf position 0..n-1) polylines of the dendrogram of ``link``, None-separated,
    for one scatter trace drawn beside the heatmap's rows."""
    from scipy.cluster.hierarchy import dendrogram

    d = dendrogram(link, no_plot=True)
    xs: list[Any] = []
    ys: list[Any] = []
    for icoord, dcoord in zip(d["icoord"], d["dcoord"]):
        ys += [(c - 5.0) / 10.0 for c in icoord] + [None]  # scipy puts leaf k at 10 k + 5
        xs += list(dcoord) + [None]
    return xs, ys
