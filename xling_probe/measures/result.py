"""The result of the similarity engine: metric x layer x language a x language b.

:class:`SimilarityResult` holds every value with its shuffled-pairing null (mean, spread, max,
permutation p-value) and its bootstrap interval, selection by name (:meth:`~SimilarityResult.sel`,
:meth:`~SimilarityResult.matrix`, :meth:`~SimilarityResult.pair_curves`), THE peak layer
(:meth:`~SimilarityResult.peak_layer`) and the summaries a paper needs: the per-layer mean over
pairs, the peak layer per pair, and the "first align, then predict" profile (cross-lingual
similarity rises through the middle layers and falls in the last ones; docs/science.md, "Layer profiles").
Metric names are read by :mod:`~xling_probe.measures.registry`, layers, languages, pairs and
directions by :mod:`xling_probe.labels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MetricError
from ..labels import (
    DIRECTIONS,
    check_direction,
    layer_position,
    pair_label,
    parse_pairs,
    resolve_language,
    resolve_pairs,
    select_layers,
)
from .cross_layer import CrossLayerResult
from .frozen import FrozenArrays, json_safe, readonly
from .registry import DEFAULT_METRICS, MetricSpec, metric_spec, parse_metrics
from .summaries import SYMMETRIC, format_summary, null_z, shape_of

#: The arrays a result may hold, each ``(metric, layer, lang_a, lang_b)``.
FIELDS = ("value", "null_mean", "null_std", "null_max", "p_value", "ci_low", "ci_high")

__all__ = ["DEFAULT_METRICS", "DIRECTIONS", "FIELDS", "SYMMETRIC", "CrossLayerResult", "SimilarityResult",
           "parse_metrics"]


@dataclass(frozen=True, eq=False)
class SimilarityResult:
    """Cross-lingual similarity of every requested metric, layer and language pair.

    Every array of ``arrays`` (read-only) has shape ``(metric, layer, lang_a, lang_b)``:

    - ``value``: the metric on the true pairing. Symmetric metrics (CKA, ANC, MEXA, mutual k-NN)
      are mirrored, ``[a, b] == [b, a]``; directional ones (``p@k``) hold a -> b at ``[a, b]`` (a
      queries, b is searched) and b -> a at ``[b, a]``. Pairs that were not requested are NaN.
    - ``null_mean``, ``null_std``, ``null_max``: the shuffled-pairing null (rows of b permuted,
      ``null_permutations`` seeded draws): chance level, its spread and its largest draw.
    - ``p_value``: (1 + #{null >= value}) / (1 + permutations), one-sided.
    - ``ci_low``, ``ci_high``: percentile bootstrap interval over sentences (``settings['ci']``).

    ``anc_excluded`` ``(layer, lang_a, lang_b)`` counts the zero-variance neurons left out of ANC.
    Read values by name with :meth:`sel` / :meth:`field`; ``result.value``, ``result.null_max``, ...
    are the whole arrays.
    """

    metrics: tuple[str, ...]
    layers: tuple[int, ...]
    languages: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    arrays: Mapping[str, np.ndarray]
    anc_excluded: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.arrays) - set(FIELDS)
        if unknown or "value" not in self.arrays:
            raise MetricError(f"a SimilarityResult holds 'value' and optionally {FIELDS[1:]}, got {sorted(self.arrays)}")
        object.__setattr__(self, "arrays", FrozenArrays(self.arrays))
        if self.anc_excluded is not None:
            object.__setattr__(self, "anc_excluded", readonly(self.anc_excluded))

    # ------------------------------------------------------------------ arrays
    def field(self, name: str = "value") -> np.ndarray:
        """The read-only array ``name`` (one of :data:`FIELDS`) ``[metric, layer, lang_a, lang_b]``."""
        if name not in FIELDS:
            raise MetricError(f"unknown field {name!r}; fields are {FIELDS}")
        if name not in self.arrays:
            why = "null_permutations=20" if name in ("null_mean", "null_std", "null_max", "p_value") else "bootstrap=200"
            raise MetricError(f"this result has no {name!r}: rerun similarity(..., {why})")
        return self.arrays[name]

    value = property(lambda self: self.field("value"), doc="``field('value')``")
    null_mean = property(lambda self: self.field("null_mean"), doc="``field('null_mean')``")
    null_std = property(lambda self: self.field("null_std"), doc="``field('null_std')``")
    null_max = property(lambda self: self.field("null_max"), doc="``field('null_max')``")
    p_value = property(lambda self: self.field("p_value"), doc="``field('p_value')``")
    ci_low = property(lambda self: self.field("ci_low"), doc="``field('ci_low')``")
    ci_high = property(lambda self: self.field("ci_high"), doc="``field('ci_high')``")

    @property
    def meta(self) -> dict[str, Any]:
        """The settings of the run (``n_sentences``, ``null_permutations``, ``model``, ...)."""
        return self.settings

    @property
    def has_null(self) -> bool:
        return int(self.settings.get("null_permutations", 0)) > 0 and "null_max" in self.arrays

    @property
    def has_ci(self) -> bool:
        return int(self.settings.get("bootstrap", 0)) > 0 and "ci_low" in self.arrays

    # ------------------------------------------------------------------ labels
    def spec(self, metric: str) -> MetricSpec:
        """The :class:`~xling_probe.measures.registry.MetricSpec` of ``metric`` (any spelling)."""
        return metric_spec(metric)

    def _mi(self, metric: str) -> int:
        name = metric_spec(metric).name
        if name not in self.metrics:
            raise MetricError(f"metric {metric!r} was not computed; this result has {list(self.metrics)}")
        return self.metrics.index(name)

    def _li(self, lang: str) -> int:
        return self.languages.index(resolve_language(lang, self.languages, error=MetricError, what="this result"))

    def slots(self, metric: str) -> list[tuple[str, str]]:
        """The (lang_a, lang_b) entries holding a value for ``metric``: each pair, plus its reverse
        direction for directional metrics."""
        out = list(self.pairs)
        return out + [(b, a) for a, b in self.pairs] if metric_spec(metric).directional else out

    def direction_of(self, metric: str, lang_a: str, lang_b: str) -> str:
        """``"forward"`` when (a, b) is a requested pair as written, ``"backward"`` when it is one
        reversed, ``"symmetric"`` for symmetric metrics."""
        if not metric_spec(metric).directional:
            return SYMMETRIC
        return "forward" if (lang_a, lang_b) in self.pairs else "backward"

    def directed_slots(self, metric: str, direction: str = "both") -> list[tuple[str, str]]:
        """The (lang_a, lang_b) entries that ``direction`` selects: the pairs as written
        (``forward``), reversed (``backward``) or both; every pair for symmetric metrics."""
        check_direction(direction)
        if not metric_spec(metric).directional or direction == "forward":
            return list(self.pairs)
        if direction == "backward":
            return [(b, a) for a, b in self.pairs]
        return self.slots(metric)

    def pair_slots(self, metric: str, pairs: Any = None, direction: str = "forward") -> list[tuple[str, str]]:
        """Canonical (lang_a, lang_b) entries of ``pairs`` in the :mod:`xling_probe.labels` grammar
        (``None`` = every pair of the result, ``"all"``, ``"pivot:en"``, ``"en-de,fr-zh"``, tuples).
        For directional metrics ``direction`` picks a -> b as written (``forward``), b -> a
        (``backward``) or both; symmetric metrics take the pairs as written."""
        check_direction(direction)
        if pairs is None:
            base = list(self.pairs)
        elif isinstance(parse_pairs(pairs), str):
            base = list(resolve_pairs(pairs, self.languages))
        else:
            base = []
            for a, b in parse_pairs(pairs):
                s = (self.languages[self._li(a)], self.languages[self._li(b)])
                if s not in base:
                    base.append(s)
        if not metric_spec(metric).directional or direction == "forward":
            return base
        back = [(b, a) for a, b in base]
        return back if direction == "backward" else base + [s for s in back if s not in base]

    # ------------------------------------------------------------------ selection
    def sel(self, metric: str, layer: Any = None, lang_a: str | None = None, lang_b: str | None = None, *,
            field: str = "value") -> float | np.ndarray:
        """Values by name: a float when ``layer``, ``lang_a`` and ``lang_b`` are all given.

        ``layer``: a residual-stream label (negative from the end), a list, or ``None`` (every layer of
        :attr:`layers`); languages in any spelling (``None`` = every language of :attr:`languages`).
        The array keeps the axes left open, in the order (layer, lang_a, lang_b). For directional
        metrics (a, b) is a -> b: a queries, b is searched.
        """
        arr = self.field(field)[self._mi(metric)]
        if layer is None or isinstance(layer, (str, list, tuple, range)):
            li: Any = select_layers(layer, self.layers, error=MetricError)
        else:
            li = layer_position(layer, self.layers, error=MetricError)
        ia: Any = slice(None) if lang_a is None else self._li(lang_a)
        ib: Any = slice(None) if lang_b is None else self._li(lang_b)
        out = arr[li][..., ia, ib] if isinstance(li, list) else arr[li, ia, ib]
        return float(out) if np.ndim(out) == 0 else out

    def matrix(self, metric: str, layer: int, *, field: str = "value") -> pd.DataFrame:
        """Language x language at one layer: rows = lang_a (the query side of directional metrics),
        columns = lang_b; NaN on the diagonal and for pairs that were not computed."""
        z = self.sel(metric, layer, field=field)
        langs = list(self.languages)
        return pd.DataFrame(np.array(z), index=pd.Index(langs, name="lang_a"), columns=pd.Index(langs, name="lang_b"))

    def curve(self, metric: str, lang_a: str, lang_b: str, field_name: str = "value") -> pd.Series:
        """One metric over layers for one pair (a -> b for directional metrics), indexed by layer."""
        arr = self.sel(metric, None, lang_a, lang_b, field=field_name)
        return pd.Series(np.array(arr), index=pd.Index(self.layers, name="layer"), name=f"{metric} {lang_a}-{lang_b}")

    def pair_curves(self, metric: str, pairs: Any = None, *, field: str = "value") -> pd.DataFrame:
        """Index = layer, one column per slot, named by :func:`~xling_probe.labels.pair_label`
        (``en→de`` for directional metrics). ``pairs=None``: every slot of :meth:`slots`; given pairs
        are taken as written (a -> b)."""
        slots = self.slots(metric) if pairs is None else self.pair_slots(metric, pairs)
        arr, directed = self.field(field)[self._mi(metric)], metric_spec(metric).directional
        data = {pair_label(s, directed): arr[:, self._li(s[0]), self._li(s[1])] for s in slots}
        return pd.DataFrame(data, index=pd.Index(self.layers, name="layer"))

    def peak_layer(self, metric: str, *, pairs: Any = None, direction: str = "both") -> int:
        """THE peak: the layer where the mean of ``metric`` over the given pairs (default: every slot
        that ``direction`` selects) is highest; the first such layer on ties. ``direction="forward"``
        with ``pairs`` takes the pairs exactly as written."""
        slots = self.directed_slots(metric, direction) if pairs is None else self.pair_slots(metric, pairs, direction)
        arr = self.field("value")[self._mi(metric)]
        v = np.array([arr[:, self._li(a), self._li(b)] for a, b in slots], dtype=float)
        with np.errstate(all="ignore"):
            mean = np.nanmean(v, axis=0) if len(v) else np.full(len(self.layers), np.nan)
        if np.isnan(mean).all():
            raise MetricError(f"{metric} has no value for {slots or 'these pairs'}: no peak layer")
        return int(self.layers[int(np.nanargmax(mean))])

    def above_null_count(self, metric: str, layer: int, pairs: Any = None) -> tuple[int, int]:
        """(#slots whose value beats every shuffled pairing (> ``null_max``) at ``layer``, #slots);
        slots = every slot of :meth:`slots`, or ``pairs`` as written."""
        slots = self.slots(metric) if pairs is None else self.pair_slots(metric, pairs)
        v, nm = (self.sel(metric, layer, field=f) for f in ("value", "null_max"))
        above = sum(bool(v[self._li(a), self._li(b)] > nm[self._li(a), self._li(b)]) for a, b in slots)
        return above, len(slots)

    @property
    def above_null(self) -> np.ndarray:
        """Boolean ``(metric, layer, lang_a, lang_b)``: the value beats every shuffled pairing.

        With the default 20 permutations this is a one-sided permutation test at p = 1/21 < 0.05.
        """
        if not self.has_null:
            raise MetricError("this result was computed without a null; rerun similarity(..., null_permutations=20)")
        with np.errstate(invalid="ignore"):
            return self.arrays["value"] > self.arrays["null_max"]

    # ------------------------------------------------------------------ tables
    def to_dataframe(self) -> pd.DataFrame:
        """Tidy table, one row per (metric, layer, lang_a, lang_b) value, with null and interval columns.

        ``direction``: ``forward`` (a -> b for a requested pair as written), ``backward`` (the pair
        reversed) or ``symmetric``.
        """
        rows = []
        fields = [f for f in FIELDS if f in self.arrays]
        for mi, metric in enumerate(self.metrics):
            anc = metric_spec(metric).family == "anc" and self.anc_excluded is not None
            for a, b in self.slots(metric):
                ia, ib = self._li(a), self._li(b)
                block = {f: self.arrays[f][mi, :, ia, ib] for f in fields}
                for li, layer in enumerate(self.layers):
                    row = {"metric": metric, "layer": layer, "lang_a": a, "lang_b": b,
                           "direction": self.direction_of(metric, a, b)}
                    row.update({f: float(block[f][li]) for f in fields})
                    if anc:
                        row["excluded_neurons"] = int(self.anc_excluded[li, ia, ib])
                    rows.append(row)
        df = pd.DataFrame(rows)
        if self.has_null and len(df):
            if {"null_mean", "null_std"} <= set(self.arrays):
                df["null_z"] = null_z(df["value"].to_numpy(), df["null_mean"].to_numpy(), df["null_std"].to_numpy())
            df["above_null"] = df["value"] > df["null_max"]
        return df

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims (metric, layer, lang_a, lang_b); one variable per field."""
        import xarray as xr

        dims = ("metric", "layer", "lang_a", "lang_b")
        coords = {"metric": list(self.metrics), "layer": list(self.layers),
                  "lang_a": list(self.languages), "lang_b": list(self.languages)}
        data = {name: (dims, np.array(arr)) for name, arr in self.arrays.items()}
        if self.has_null:
            data["above_null"] = (dims, self.above_null)
        if self.anc_excluded is not None:
            data["anc_excluded"] = (dims[1:], np.array(self.anc_excluded))
        attrs = {k: v for k, v in self.settings.items() if isinstance(v, (str, int, float, bool))}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (``json.dumps`` works; NaN and +-inf are ``None``): the labels, the settings and the
        tables ``values`` (:meth:`to_dataframe`), ``layer_mean``, ``peaks`` and ``profile`` as records."""
        tables = {"layer_mean": self.layer_mean(), "peaks": self.peak_layers(), "profile": self.profile(),
                  "values": self.to_dataframe()}
        return json_safe({
            "settings": dict(self.settings), "metrics": list(self.metrics), "layers": list(self.layers),
            "languages": list(self.languages), "pairs": [list(p) for p in self.pairs],
            **{k: df.to_dict(orient="records") for k, df in tables.items()},
        })

    # ------------------------------------------------------------------ summaries
    def layer_mean(self, direction: str = "both") -> pd.DataFrame:
        """Per metric and layer: mean and std of the value over pairs, the mean null, and the share
        of pairs above the null.

        For directional metrics (``p@k``) ``direction`` picks the values: ``"both"`` (every pair in
        both directions: the mean of a -> b and b -> a), ``"forward"`` (a -> b, the pairs as
        written) or ``"backward"`` (b -> a); ``n_pairs`` counts the values averaged. Column
        ``direction`` says which was used (``"symmetric"`` for symmetric metrics).
        """
        check_direction(direction)
        df = self.to_dataframe()
        if direction != "both":
            df = df[df["direction"].isin((direction, SYMMETRIC))]
        df = df.assign(direction=np.where(df["direction"] == SYMMETRIC, SYMMETRIC, direction))
        agg: dict[str, Any] = {"mean": ("value", "mean"), "std": ("value", "std"), "n_pairs": ("value", "size")}
        if self.has_null:
            if "null_mean" in self.arrays:
                agg.update(null_mean=("null_mean", "mean"))
            agg.update(share_above_null=("above_null", "mean"))
        if self.has_ci:
            agg.update(ci_low_mean=("ci_low", "mean"), ci_high_mean=("ci_high", "mean"))
        return df.groupby(["metric", "direction", "layer"], sort=False).agg(**agg).reset_index()

    def peak_layers(self) -> pd.DataFrame:
        """Per metric and pair: the peak layer and value, and the mean and max over layers (as MEXA
        reports them across layers)."""
        rows = []
        for metric in self.metrics:
            for a, b in self.slots(metric):
                v = self.sel(metric, None, a, b)
                k = int(np.nanargmax(v))
                rows.append({"metric": metric, "lang_a": a, "lang_b": b, "direction": self.direction_of(metric, a, b),
                             "peak_layer": self.layers[k],
                             "peak_value": float(v[k]), "mean_over_layers": float(np.nanmean(v)),
                             "max_over_layers": float(np.nanmax(v))})
        return pd.DataFrame(rows)

    def profile(self, tol: float = 0.02, direction: str = "both") -> pd.DataFrame:
        """The "first align, then predict" profile of each metric's per-layer mean over pairs, and of
        each pair: value at the first layer, peak layer and value, value at the last layer,
        ``rise`` = peak - first, ``drop`` = peak - last, ``peak_position`` (0 = first layer,
        1 = last), and ``first_align_then_predict``: the peak is an interior layer and both the rise
        and the drop exceed ``tol``.

        ``direction`` (directional metrics only): ``"both"`` profiles the mean of a -> b and b -> a
        (per pair: the mean of its two curves), ``"forward"`` the pairs as written (a -> b),
        ``"backward"`` the pairs reversed (rows then read lang_a = b, lang_b = a). Column
        ``direction`` says which (``"symmetric"`` for symmetric metrics).
        """
        check_direction(direction)
        rows = []
        mean = self.layer_mean(direction)
        for metric in self.metrics:
            curve = mean.loc[mean["metric"] == metric, "mean"].to_numpy()
            label = direction if metric_spec(metric).directional else SYMMETRIC
            rows.append({"metric": metric, "lang_a": "mean", "lang_b": "mean", "direction": label,
                         **shape_of(curve, self.layers, tol)})
            for a, b in self.directed_slots(metric, "forward" if direction == "both" else direction):
                v = self.sel(metric, None, a, b)
                if label == "both":
                    v = (v + self.sel(metric, None, b, a)) / 2
                rows.append({"metric": metric, "lang_a": a, "lang_b": b, "direction": label,
                             **shape_of(v, self.layers, tol)})
        return pd.DataFrame(rows)

    def summary(self, direction: str = "both") -> pd.DataFrame:
        """Per metric and layer: the mean over pairs with its null (:meth:`layer_mean`); the text form
        is :meth:`format_summary` (``str(result)``)."""
        return self.layer_mean(direction)

    def format_summary(self, direction: str = "both") -> str:
        """A short text table (:func:`~xling_probe.measures.summaries.format_summary`): per metric and layer,
        the mean over pairs, the chance level and how many pairs are above it."""
        return format_summary(self, direction)

    def __str__(self) -> str:
        return self.format_summary()

    def __repr__(self) -> str:
        return (f"SimilarityResult(metrics={list(self.metrics)}, layers={len(self.layers)}, "
                f"pairs={len(self.pairs)}, sentences={self.settings.get('n_sentences', '?')}, "
                f"null_permutations={self.settings.get('null_permutations', 0)}, "
                f"bootstrap={self.settings.get('bootstrap', 0)})")
