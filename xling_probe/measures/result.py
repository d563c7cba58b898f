"""Labels and results of the similarity engine: metric x layer x language a x language b.

Labels: metric names (:func:`parse_metrics`), language pairs (:func:`resolve_pairs`) and layers.

:class:`SimilarityResult` holds every value with its shuffled-pairing null (mean, spread, max,
permutation p-value) and its bootstrap interval, and the summaries a paper needs: the per-layer
mean over pairs, the peak layer per pair, and the "first align, then predict" profile
(cross-lingual similarity rises through the middle layers and falls in the last ones).
:class:`CrossLayerResult` is the layer x layer matrix of one language pair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..extraction.activations import Activations
from ..errors import MetricError

#: Metrics whose value depends on the direction: entry [a, b] is a -> b (a queries, b is searched).
DIRECTIONAL_PREFIXES = ("p@",)

FIELDS = ("value", "null_mean", "null_std", "null_max", "p_value", "ci_low", "ci_high")


def is_directional(metric: str) -> bool:
    """True for metrics whose value depends on the direction (retrieval: a -> b differs from b -> a)."""
    return metric.startswith(DIRECTIONAL_PREFIXES)


#: ``direction=`` of the summaries: "both" = the mean of a -> b and b -> a (every value of both
#: directions pooled), "forward" = a -> b as the pair is written (a queries, b is searched),
#: "backward" = b -> a. Symmetric metrics ignore it; their rows say ``"symmetric"``.
DIRECTIONS = ("both", "forward", "backward")
SYMMETRIC = "symmetric"


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise MetricError(f"direction must be one of {DIRECTIONS} (forward = a -> b as the pair is written, "
                          f"a queries), got {direction!r}")
    return direction


# ---------------------------------------------------------------------------------- labels
DEFAULT_METRICS = ("cka", "cka_debiased", "anc", "p@1", "mexa")
KNOWN = "cka, cka_debiased, anc, anc_abs, p@K (retrieval, e.g. p@1, p@5), mexa, mknn@K (mutual k-NN, e.g. mknn@10)"
_PATTERN = re.compile(r"^(cka|cka_debiased|anc|anc_abs|mexa|p@(\d+)|mknn(?:@(\d+))?)$")


def parse_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """Canonical metric names (lower case, ``mknn`` -> ``mknn@10``, duplicates dropped)."""
    items = [metrics] if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for item in items:
        name = str(item).strip().lower().replace(" ", "")
        m = _PATTERN.match(name)
        if not m or (m.group(2) is not None and int(m.group(2)) < 1) or (m.group(3) is not None and int(m.group(3)) < 1):
            raise MetricError(f"unknown metric {item!r}; known metrics: {KNOWN}")
        name = "mknn@10" if name == "mknn" else name
        if name not in out:
            out.append(name)
    if not out:
        raise MetricError(f"no metric requested; choose from: {KNOWN}")
    return tuple(out)


def language_of(acts: Activations, lang: str) -> str:
    """The canonical code of ``lang`` in ``acts`` (any accepted spelling), or a MetricError naming the options."""
    try:
        return acts.languages[acts.language_index(lang)]
    except Exception:  # noqa: BLE001 - any lookup failure is the same user mistake
        raise MetricError(f"language {lang!r} was not extracted; these activations have: "
                          f"{', '.join(acts.languages)}") from None


def resolve_pairs(acts: Activations, pairs: str | Sequence[Sequence[str]] = "all") -> tuple[tuple[str, str], ...]:
    """Language pairs as canonical codes: ``"all"`` (every unordered pair), ``"pivot:en"`` (en with
    every other language) or explicit ``[(a, b), ...]`` (duplicates and reversed repeats dropped)."""
    langs = acts.languages
    if isinstance(pairs, str):
        spec = pairs.strip()
        if spec == "all":
            out = [(a, b) for i, a in enumerate(langs) for b in langs[i + 1:]]
        elif spec.startswith("pivot:"):
            pivot = language_of(acts, spec.split(":", 1)[1].strip())
            out = [(pivot, b) for b in langs if b != pivot]
        else:
            raise MetricError(f"pairs must be 'all', 'pivot:<language>' or a list of (a, b), got {pairs!r}")
    else:
        out = []
        for item in pairs:
            if isinstance(item, str) or len(item) != 2:
                raise MetricError(f"each pair must be two language codes (a, b), got {item!r}")
            a, b = (language_of(acts, x) for x in item)
            if a == b:
                raise MetricError(f"pair ({item[0]}, {item[1]}) compares a language with itself")
            out.append((a, b))
    seen, unique = set(), []
    for a, b in out:
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            unique.append((a, b))
    if not unique:
        raise MetricError(f"no language pair to score (languages: {list(langs)}); extract at least two languages")
    return tuple(unique)


def layer_indices(acts: Activations, layers: Any) -> list[int]:
    """Axis-0 indices of ``"all"`` or residual-stream layer numbers (negative ones count from the end)."""
    if isinstance(layers, str):
        if layers != "all":
            raise MetricError(f"layers must be 'all' or a list of layer indices, got {layers!r}")
        return list(range(len(acts.layers)))
    items = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    try:
        idx = [acts.layer_index(x) for x in items]
    except Exception as exc:  # noqa: BLE001 - re-raised as a metric error with the same message
        raise MetricError(str(exc)) from None
    if not idx:
        raise MetricError("no layers requested")
    return sorted(set(idx))


@dataclass(frozen=True, eq=False)
class SimilarityResult:
    """Cross-lingual similarity of every requested metric, layer and language pair.

    Every array in ``arrays`` has shape ``(metric, layer, lang_a, lang_b)``:

    - ``value``: the metric on the true pairing. Symmetric metrics (CKA, ANC, MEXA, mutual k-NN)
      are mirrored, ``[a, b] == [b, a]``; directional ones (``p@k``) hold a -> b at ``[a, b]`` (a
      queries, b is searched) and b -> a at ``[b, a]``. Pairs that were not requested are NaN.
    - ``null_mean``, ``null_std``, ``null_max``: the shuffled-pairing null (rows of b permuted,
      ``null_permutations`` seeded draws): chance level, its spread and its largest draw.
    - ``p_value``: (1 + #{null >= value}) / (1 + permutations), one-sided.
    - ``ci_low``, ``ci_high``: percentile bootstrap interval over sentences (``settings['ci']``).

    ``anc_excluded`` ``(layer, lang_a, lang_b)`` counts the zero-variance neurons left out of ANC.
    Each array is also an attribute: ``result.value``, ``result.null_mean``, ...
    """

    metrics: tuple[str, ...]
    layers: tuple[int, ...]
    languages: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    arrays: dict[str, np.ndarray]
    anc_excluded: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ access
    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @property
    def has_null(self) -> bool:
        return int(self.settings.get("null_permutations", 0)) > 0

    @property
    def has_ci(self) -> bool:
        return int(self.settings.get("bootstrap", 0)) > 0

    def _metric_index(self, metric: str) -> int:
        if metric not in self.metrics:
            raise MetricError(f"metric {metric!r} was not computed; this result has {list(self.metrics)}")
        return self.metrics.index(metric)

    def _lang_index(self, lang: str) -> int:
        if lang not in self.languages:
            raise MetricError(f"language {lang!r} is not in this result; languages: {list(self.languages)}")
        return self.languages.index(lang)

    def slots(self, metric: str) -> list[tuple[str, str]]:
        """The (lang_a, lang_b) entries holding a value for ``metric``: each pair, plus its reverse
        direction for directional metrics."""
        out = list(self.pairs)
        return out + [(b, a) for a, b in self.pairs] if is_directional(metric) else out

    def direction_of(self, metric: str, lang_a: str, lang_b: str) -> str:
        """``"forward"`` when (a, b) is a requested pair as written, ``"backward"`` when it is one
        reversed, ``"symmetric"`` for symmetric metrics."""
        if not is_directional(metric):
            return SYMMETRIC
        return "forward" if (lang_a, lang_b) in self.pairs else "backward"

    def directed_slots(self, metric: str, direction: str = "both") -> list[tuple[str, str]]:
        """The (lang_a, lang_b) entries that ``direction`` selects: the pairs as written
        (``forward``), reversed (``backward``) or both; every pair for symmetric metrics."""
        check_direction(direction)
        if not is_directional(metric) or direction == "forward":
            return list(self.pairs)
        if direction == "backward":
            return [(b, a) for a, b in self.pairs]
        return self.slots(metric)

    def curve(self, metric: str, lang_a: str, lang_b: str, field_name: str = "value") -> pd.Series:
        """One metric over layers for one pair (a -> b for directional metrics), indexed by layer."""
        arr = self.arrays[field_name][self._metric_index(metric), :, self._lang_index(lang_a), self._lang_index(lang_b)]
        return pd.Series(arr, index=pd.Index(self.layers, name="layer"), name=f"{metric} {lang_a}-{lang_b}")

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
            for a, b in self.slots(metric):
                ia, ib = self._lang_index(a), self._lang_index(b)
                block = {f: self.arrays[f][mi, :, ia, ib] for f in fields}
                for li, layer in enumerate(self.layers):
                    row = {"metric": metric, "layer": layer, "lang_a": a, "lang_b": b,
                           "direction": self.direction_of(metric, a, b)}
                    row.update({f: float(block[f][li]) for f in fields})
                    if self.anc_excluded is not None and metric.startswith("anc"):
                        row["excluded_neurons"] = int(self.anc_excluded[li, ia, ib])
                    rows.append(row)
        df = pd.DataFrame(rows)
        if self.has_null and len(df):
            df["null_z"] = _z(df["value"].to_numpy(), df["null_mean"].to_numpy(), df["null_std"].to_numpy())
            df["above_null"] = df["value"] > df["null_max"]
        return df

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims (metric, layer, lang_a, lang_b); one variable per field."""
        import xarray as xr

        dims = ("metric", "layer", "lang_a", "lang_b")
        coords = {"metric": list(self.metrics), "layer": list(self.layers),
                  "lang_a": list(self.languages), "lang_b": list(self.languages)}
        data = {name: (dims, arr) for name, arr in self.arrays.items()}
        if self.has_null:
            data["above_null"] = (dims, self.above_null)
        if self.anc_excluded is not None:
            data["anc_excluded"] = (dims[1:], self.anc_excluded)
        attrs = {k: v for k, v in self.settings.items() if isinstance(v, (str, int, float, bool))}
        return xr.Dataset(data, coords=coords, attrs=attrs)

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
            agg.update(null_mean=("null_mean", "mean"), share_above_null=("above_null", "mean"))
        if self.has_ci:
            agg.update(ci_low_mean=("ci_low", "mean"), ci_high_mean=("ci_high", "mean"))
        return df.groupby(["metric", "direction", "layer"], sort=False).agg(**agg).reset_index()

    def peak_layers(self) -> pd.DataFrame:
        """Per metric and pair: the peak layer and value, and the mean and max over layers (as MEXA
        reports them across layers)."""
        rows = []
        for mi, metric in enumerate(self.metrics):
            for a, b in self.slots(metric):
                v = self.arrays["value"][mi, :, self._lang_index(a), self._lang_index(b)]
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
            label = direction if is_directional(metric) else SYMMETRIC
            rows.append({"metric": metric, "lang_a": "mean", "lang_b": "mean", "direction": label,
                         **_shape(curve, self.layers, tol)})
            mi = self._metric_index(metric)
            value = self.arrays["value"][mi]
            for a, b in self.directed_slots(metric, "forward" if direction == "both" else direction):
                v = value[:, self._lang_index(a), self._lang_index(b)]
                if label == "both":
                    v = (v + value[:, self._lang_index(b), self._lang_index(a)]) / 2
                rows.append({"metric": metric, "lang_a": a, "lang_b": b, "direction": label,
                             **_shape(v, self.layers, tol)})
        return pd.DataFrame(rows)

    def summary(self, direction: str = "both") -> str:
        """A short text table: per metric and layer, the mean over pairs, the chance level and how
        many pairs are above it (``*`` marks layers where every pair is). Each line names the
        retrieval direction it averages (``direction``: both, forward = a -> b, backward = b -> a)
        or says ``symmetric``."""
        lm = self.layer_mean(direction)
        names = {"both": "both directions", "forward": "forward, a->b", "backward": "backward, b->a",
                 SYMMETRIC: SYMMETRIC}
        lines = [repr(self)]
        for metric in self.metrics:
            part = lm[lm["metric"] == metric]
            cells = []
            for _, r in part.iterrows():
                mark = ""
                if self.has_null:
                    mark = "*" if r["share_above_null"] == 1 else ""
                    cells.append(f"L{r['layer']}:{r['mean']:.3f}{mark} (null {r['null_mean']:.3f})")
                else:
                    cells.append(f"L{r['layer']}:{r['mean']:.3f}")
            lines.append(f"{metric} ({names[part['direction'].iloc[0]]}): " + ", ".join(cells))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"SimilarityResult(metrics={list(self.metrics)}, layers={len(self.layers)}, "
                f"pairs={len(self.pairs)}, sentences={self.settings.get('n_sentences', '?')}, "
                f"null_permutations={self.settings.get('null_permutations', 0)}, "
                f"bootstrap={self.settings.get('bootstrap', 0)})")


def assemble(names: Sequence[str], layers: tuple[int, ...], langs: tuple[str, ...], pairs: Sequence[tuple[str, str]],
             slots: dict, excluded: dict, R: int, B: int, ci: float, settings: dict[str, Any]) -> SimilarityResult:
    """Build a :class:`SimilarityResult` from the engine's per-slot arrays.

    ``slots[(metric, a, b)]`` holds ``value`` [layer], ``null`` [layer, R] and ``boot`` [layer, B];
    ``excluded[(a, b)]`` the zero-variance neuron counts of ANC [layer].
    """
    shape = (len(names), len(layers), len(langs), len(langs))
    arrays = {f: np.full(shape, np.nan) for f in FIELDS}
    if not R:
        for f in ("null_mean", "null_std", "null_max", "p_value"):
            del arrays[f]
    if not B:
        del arrays["ci_low"], arrays["ci_high"]
    li = {x: i for i, x in enumerate(langs)}
    for (m, a, b), res in slots.items():
        targets = [(li[a], li[b])] + ([] if is_directional(m) else [(li[b], li[a])])
        v = res["value"]
        stats = {"value": v}
        if R:
            null = res["null"]
            stats.update(null_mean=null.mean(1), null_std=null.std(1, ddof=1) if R > 1 else np.zeros(len(v)),
                         null_max=null.max(1), p_value=(1 + (null >= v[:, None] - 1e-12).sum(1)) / (1 + R))
        if B:
            lo, hi = np.nanpercentile(res["boot"], [50 * (1 - ci), 50 * (1 + ci)], axis=1)
            stats.update(ci_low=lo, ci_high=hi)
        for f, arr in stats.items():
            for ia, ib in targets:
                arrays[f][names.index(m), :, ia, ib] = arr
    exc = None
    if any(m.startswith("anc") for m in names):
        exc = np.zeros((len(layers), len(langs), len(langs)), dtype=np.int64)
        for (a, b), e in excluded.items():
            exc[:, li[a], li[b]] = exc[:, li[b], li[a]] = e
    return SimilarityResult(metrics=tuple(names), layers=layers, languages=langs, pairs=tuple(pairs),
                            arrays=arrays, anc_excluded=exc, settings=settings)


def _z(value: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(value - null mean) / null std; +-inf when the null has no spread and the value differs, 0 when equal."""
    diff = value - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / std
        return np.where(std > 0, z, np.where(diff == 0, 0.0, np.sign(diff) * np.inf))


def _shape(v: np.ndarray, layers: tuple[int, ...], tol: float) -> dict[str, Any]:
    k = int(np.nanargmax(v))
    rise, drop = float(v[k] - v[0]), float(v[k] - v[-1])
    return {"first": float(v[0]), "peak_layer": layers[k], "peak_value": float(v[k]), "last": float(v[-1]),
            "rise": rise, "drop": drop, "peak_position": k / max(len(v) - 1, 1),
            "first_align_then_predict": bool(0 < k < len(v) - 1 and rise > tol and drop > tol)}


@dataclass(frozen=True, eq=False)
class CrossLayerResult:
    """``matrix[i, j]`` = metric between layer ``layers_a[i]`` of ``lang_a`` and ``layers_b[j]`` of ``lang_b``."""

    metric: str
    lang_a: str
    lang_b: str
    layers_a: tuple[int, ...]
    layers_b: tuple[int, ...]
    matrix: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dataframe(self) -> pd.DataFrame:
        """Tidy table: metric, lang_a, layer_a, lang_b, layer_b, value."""
        ia, ib = np.meshgrid(np.arange(len(self.layers_a)), np.arange(len(self.layers_b)), indexing="ij")
        return pd.DataFrame({
            "metric": self.metric, "lang_a": self.lang_a, "layer_a": np.asarray(self.layers_a)[ia.ravel()],
            "lang_b": self.lang_b, "layer_b": np.asarray(self.layers_b)[ib.ravel()], "value": self.matrix.ravel(),
        })

    def to_xarray(self):
        import xarray as xr

        return xr.DataArray(self.matrix, dims=("layer_a", "layer_b"),
                            coords={"layer_a": list(self.layers_a), "layer_b": list(self.layers_b)},
                            name=self.metric, attrs={"lang_a": self.lang_a, "lang_b": self.lang_b})

    def best_match(self) -> pd.Series:
        """For each layer of ``lang_a``, the layer of ``lang_b`` it is most similar to."""
        return pd.Series(np.asarray(self.layers_b)[np.nanargmax(self.matrix, axis=1)],
                         index=pd.Index(self.layers_a, name=f"layer_{self.lang_a}"), name=f"best_layer_{self.lang_b}")

    def __repr__(self) -> str:
        return (f"CrossLayerResult(metric={self.metric!r}, {self.lang_a} x {self.lang_b}, "
                f"{len(self.layers_a)} x {len(self.layers_b)} layers)")
