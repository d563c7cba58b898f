"""The labeled result of :func:`xling_probe.centering.evaluate.neutrality`: per-layer language neutrality,
raw vs centered (vs projected), measured on a held-out split, with tidy tables and summaries.

Some values are fixed by construction rather than measured (docs/science.md, "Language
neutrality"); :func:`by_construction_facts` lists them and every table, text and figure labels
them instead of presenting them as findings:

- a linear (logistic) probe trained on the centered fit split: every language has the same mean
  there, so zero weights are the loss optimum and the probe scores chance, ``1 / n_languages``;
- the same probe after the affine projection: the maps are fitted on the fit split, where each
  mapped language's mean equals the pivot's mean (intercept ``b = mean_y - mean_x W``), so again
  every class has one mean and the probe scores chance;
- the variance share with ``centering="self"``: the held-out split is centered on its own
  language means, so the between-language variance is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MetricError
from ..labels import DIRECTIONS as DIRECTION_CHOICES
from ..labels import check_direction, layer_position, pair_label, resolve_language
from ..measures.frozen import json_safe, readonly
from ..measures.registry import metric_spec

CONDITIONS = ("raw", "centered", "projected")
#: Axis 3 of ``retrieval``: forward = a -> b (a queries, b is searched, the pair as written), backward = b -> a.
#: (``direction=`` of the summaries takes :data:`xling_probe.labels.DIRECTIONS`: both, forward, backward.)
DIRECTIONS = ("forward", "backward")
QUANTITIES = ("retrieval", "language_id", "variance_share")
#: Marks a value that is fixed by construction in printed tables.
MARK = "†"


@dataclass(frozen=True)
class FixedValue:
    """A value that the maths fixes before any data is seen: ``value`` (exact in theory), a short
    ``label`` to show next to it (``"chance by construction"``) and ``why``."""

    quantity: str
    condition: str
    value: float
    label: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"quantity": self.quantity, "condition": self.condition, "value": self.value, "label": self.label,
                "why": self.why}


def by_construction_facts(
    conditions: tuple[str, ...], *, probe: str, centering: str, n_languages: int
) -> dict[tuple[str, str], FixedValue]:
    """``{(quantity, condition): FixedValue}`` for every value of a report that is fixed by construction.

    ``probe`` is ``"logistic"`` or ``"knn"``, ``centering`` ``"fit"`` or ``"self"``. The k-NN probe
    and retrieval are never fixed; the variance share is fixed only for ``centering="self"`` (with
    ``"fit"`` it is measured on the held-out split, whose own language means are not removed).
    """
    chance = 1.0 / n_languages
    out: dict[tuple[str, str], FixedValue] = {}
    if probe == "logistic":
        if "centered" in conditions:
            out[("language_id", "centered")] = FixedValue(
                "language_id", "centered", chance, "chance by construction",
                "the linear probe is trained on the fit split centered on its own language means, so every "
                "language has the same mean; zero weights then minimise the loss and the probe predicts one "
                f"class for every row: accuracy 1/{n_languages} (docs/science.md)")
        if "projected" in conditions:
            out[("language_id", "projected")] = FixedValue(
                "language_id", "projected", chance, "chance by construction",
                "the affine maps are fitted on the fit split, where each mapped language's mean equals the "
                "pivot's mean (b = mean_y - mean_x W); with equal class means the linear probe scores "
                f"1/{n_languages} (docs/science.md)")
    if centering == "self" and "centered" in conditions:
        out[("variance_share", "centered")] = FixedValue(
            "variance_share", "centered", 0.0, "0 by construction",
            "centering='self' subtracts the held-out split's own language means, so the between-language "
            "variance is 0 by definition (docs/science.md)")
    return out


@dataclass(frozen=True)
class NeutralityReport:
    """Per-layer language neutrality, measured on a held-out split.

    Attributes
    ----------
    conditions:
        ``raw``, ``centered`` and, when asked, ``projected`` (axis 0 of every array).
    retrieval:
        ``(condition, layer, pair, direction)`` retrieval P@k on the held-out split; direction 0
        = forward, a -> b (each sentence of a retrieves among b), 1 = backward, b -> a.
    language_id:
        ``(condition, layer)`` held-out accuracy of the language-ID probe (``settings["probe"]``)
        trained on the fit split.
    variance_share:
        ``(condition, layer)`` between-language variance / total variance on the held-out split.
    chance:
        chance accuracy of the language-ID probe, ``1 / n_languages``.
    fit_ids, heldout_ids:
        the disjoint sentence ids of the two splits.
    settings:
        centering mode, projection method, pivot, seed, k, probe, model meta.
    by_construction:
        ``{(quantity, condition): FixedValue}``: the values that are fixed by construction (see
        :func:`by_construction_facts`); :meth:`fixed` looks one up.
    """

    conditions: tuple[str, ...]
    layers: tuple[int, ...]
    languages: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    retrieval: np.ndarray
    language_id: np.ndarray
    variance_share: np.ndarray
    chance: float
    fit_ids: tuple[str, ...]
    heldout_ids: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    by_construction: dict[tuple[str, str], FixedValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("retrieval", "language_id", "variance_share"):
            object.__setattr__(self, name, readonly(getattr(self, name)))

    @property
    def metric(self) -> str:
        """The retrieval metric's canonical name, ``p@k`` (wide-table columns use ``spec.ident``, ``p_at_k``)."""
        return metric_spec(f"p@{self.settings.get('k', 1)}").name

    def _quantity(self, quantity: str) -> str:
        if quantity == self.metric or quantity in ("p@k", "p_at_k"):
            return "retrieval"
        if quantity not in QUANTITIES:
            raise MetricError(f"unknown quantity {quantity!r}; choose one of {list(QUANTITIES)}")
        return quantity

    def _ci(self, condition: str) -> int:
        if condition not in self.conditions:
            raise MetricError(f"condition {condition!r} is not in this report; conditions: {list(self.conditions)}")
        return self.conditions.index(condition)

    def sel(self, quantity: str, condition: str | None = None, layer: int | None = None, *,
            direction: str = "both") -> float | np.ndarray:
        """Values by name: ``quantity`` in {'retrieval' (or ``p@k``), 'language_id', 'variance_share'};
        ``condition`` (raw, centered, projected) and ``layer`` (a residual-stream label, negative from the
        end) select, ``None`` keeps the axis: a float when both are given, else an array
        ``[condition, layer]`` / ``[layer]`` / ``[condition]``. Retrieval is the mean over pairs in
        ``direction`` (both = the mean of a -> b and b -> a)."""
        table = {"retrieval": lambda: self.retrieval_direction(direction), "language_id": lambda: self.language_id,
                 "variance_share": lambda: self.variance_share}[self._quantity(quantity)]()
        ci: Any = slice(None) if condition is None else self._ci(condition)
        li: Any = slice(None) if layer is None else layer_position(layer, self.layers, error=MetricError)
        out = table[ci, li]
        return float(out) if np.ndim(out) == 0 else readonly(out)

    def curve(self, quantity: str, condition: str, direction: str = "both") -> np.ndarray:
        """``quantity`` over :attr:`layers` under ``condition`` (retrieval = mean over pairs in ``direction``)."""
        return self.sel(quantity, condition, None, direction=direction)

    def pair_retrieval(self, lang_a: str, lang_b: str, condition: str, direction: str = "forward") -> np.ndarray:
        """Retrieval of one scored pair over layers: ``forward`` = a -> b as the pair is written."""
        check_direction(direction)
        a, b = (resolve_language(x, self.languages, error=MetricError, what="this report") for x in (lang_a, lang_b))
        if (a, b) in self.pairs:
            pi, di = self.pairs.index((a, b)), {"forward": 0, "backward": 1}.get(direction)
        elif (b, a) in self.pairs:
            pi, di = self.pairs.index((b, a)), {"forward": 1, "backward": 0}.get(direction)
        else:
            raise MetricError(f"pair {a}-{b} was not scored; pairs: {[f'{x}-{y}' for x, y in self.pairs]}")
        r = self.retrieval[self._ci(condition), :, pi]
        return readonly(r.mean(-1) if di is None else r[:, di])

    @property
    def probe(self) -> str:
        """Name of the language-ID probe: ``"knn"`` or ``"logistic"``."""
        return str(self.settings.get("probe", {}).get("name", "logistic"))

    def fixed(self, quantity: str, condition: str) -> FixedValue | None:
        """The :class:`FixedValue` of ``(quantity, condition)`` when it is fixed by construction, else None."""
        if quantity not in QUANTITIES:
            raise MetricError(f"unknown quantity {quantity!r}; choose one of {list(QUANTITIES)}")
        return self.by_construction.get((quantity, condition))

    @property
    def retrieval_mean(self) -> np.ndarray:
        """``(condition, layer)``: retrieval P@k averaged over language pairs and both directions."""
        return self.retrieval_direction("both")

    def retrieval_direction(self, direction: str = "both") -> np.ndarray:
        """``(condition, layer)``: retrieval P@k averaged over pairs, for ``direction`` in
        {'both' (mean of the two), 'forward' (a -> b), 'backward' (b -> a)}."""
        check_direction(direction)
        if direction == "both":
            return self.retrieval.mean(axis=(2, 3))
        return self.retrieval[..., DIRECTIONS.index(direction)].mean(axis=2)

    def value(self, quantity: str, condition: str, layer: int, direction: str = "both") -> float:
        """One number: ``quantity`` in {'retrieval', 'language_id', 'variance_share'} (``direction``:
        retrieval only)."""
        self._quantity(quantity)
        return float(self.sel(quantity, condition, layer, direction=direction))

    def to_dataframe(self):
        """Tidy table, one row per value: condition, layer, metric, lang_a, lang_b, direction, value,
        fixed_by_construction, why.

        Metrics: ``p@k`` (one row per pair and direction: ``forward`` = a -> b, ``backward`` =
        b -> a), ``p@k_mean`` (over pairs; one row per direction choice: both, forward,
        backward), ``language_id_accuracy`` and ``language_variance_share`` (direction
        ``symmetric``). ``fixed_by_construction`` is True where the value cannot be anything else
        (``why`` says why; see :func:`by_construction_facts`).
        """
        import pandas as pd

        means = {d: self.retrieval_direction(d) for d in DIRECTION_CHOICES}
        rows = []
        for ci, cond in enumerate(self.conditions):
            lid, var = self.fixed("language_id", cond), self.fixed("variance_share", cond)
            for li, layer in enumerate(self.layers):
                for pi, (a, b) in enumerate(self.pairs):
                    for di, direction in enumerate(DIRECTIONS):
                        rows.append((cond, layer, self.metric, a, b, direction, float(self.retrieval[ci, li, pi, di]),
                                     False, None))
                for d in DIRECTION_CHOICES:
                    rows.append((cond, layer, f"{self.metric}_mean", None, None, d, float(means[d][ci, li]),
                                 False, None))
                rows.append((cond, layer, "language_id_accuracy", None, None, "symmetric",
                             float(self.language_id[ci, li]), lid is not None, lid.why if lid else None))
                rows.append((cond, layer, "language_variance_share", None, None, "symmetric",
                             float(self.variance_share[ci, li]), var is not None, var.why if var else None))
        return pd.DataFrame(rows, columns=["condition", "layer", "metric", "lang_a", "lang_b", "direction", "value",
                                           "fixed_by_construction", "why"])

    def fixed_columns(self) -> dict[str, FixedValue]:
        """``{summary column: FixedValue}`` for the columns of :meth:`summary` that are fixed by construction."""
        names = {"language_id": "language_id_{}", "variance_share": "variance_share_{}"}
        return {names[q].format(c): f for (q, c), f in self.by_construction.items() if q in names}

    def summary(self, direction: str = "both"):
        """Per layer: mean retrieval (over pairs, in ``direction``), probe accuracy and variance share
        per condition, and the gains.

        ``centering_gain`` = centered - raw mean retrieval; ``projection_gain`` = projected - raw.
        Columns ``direction`` (of the retrieval columns), ``probe`` (of the language_id columns)
        and ``fixed_by_construction``: the names of the columns whose value is fixed by
        construction (``; ``-separated, empty when none; :meth:`fixed_columns` says why).
        """
        import pandas as pd

        check_direction(direction)
        mean = self.retrieval_direction(direction)
        m = metric_spec(self.metric).ident  # a safe identifier in column names: p_at_1_raw
        out: dict[str, Any] = {"layer": list(self.layers), "direction": direction}
        for ci, cond in enumerate(self.conditions):
            out[f"{m}_{cond}"] = mean[ci]
        raw = mean[0]
        out["centering_gain"] = mean[self.conditions.index("centered")] - raw
        if "projected" in self.conditions:
            out["projection_gain"] = mean[self.conditions.index("projected")] - raw
        out["probe"] = self.probe
        for ci, cond in enumerate(self.conditions):
            out[f"language_id_{cond}"] = self.language_id[ci]
        for ci, cond in enumerate(self.conditions):
            out[f"variance_share_{cond}"] = self.variance_share[ci]
        out["language_id_chance"] = self.chance
        out["fixed_by_construction"] = "; ".join(self.fixed_columns())
        return pd.DataFrame(out)

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims (condition, layer, pair, direction)."""
        import xarray as xr

        coords = {"condition": list(self.conditions), "layer": list(self.layers),
                  "pair": [pair_label(p) for p in self.pairs], "direction": list(DIRECTIONS)}
        fixed = {f"fixed_{q}_{c}": f.label for (q, c), f in self.by_construction.items()}
        return xr.Dataset(
            {
                "retrieval": (("condition", "layer", "pair", "direction"), np.array(self.retrieval)),
                "language_id": (("condition", "layer"), np.array(self.language_id)),
                "variance_share": (("condition", "layer"), np.array(self.variance_share)),
            },
            coords=coords,
            attrs={"chance": self.chance, "metric": self.metric, "probe": self.probe, **fixed},
        )

    def to_dict(self, direction: str = "both") -> dict[str, Any]:
        """JSON-safe (NaN -> None): settings, splits, the per-layer summary and the by-construction facts."""
        return json_safe({
            "settings": self.settings,
            "languages": list(self.languages),
            "pairs": [list(p) for p in self.pairs],
            "fit_ids": list(self.fit_ids),
            "heldout_ids": list(self.heldout_ids),
            "summary": self.summary(direction).to_dict(orient="records"),
            "by_construction": [dict(f.to_dict(), column=col) for col, f in self.fixed_columns().items()],
        })

    def __str__(self) -> str:
        """The summary table; values fixed by construction carry a † and a footnote says why."""
        table = self.summary().drop(columns=["fixed_by_construction"])
        fixed = self.fixed_columns()
        shown = table.astype(object)
        for col in table.columns:
            if table[col].dtype.kind == "f":
                shown[col] = [f"{v:.3f}{MARK if col in fixed else ''}" for v in table[col]]
        lines = [shown.to_string(index=False)]
        for col, f in fixed.items():
            lines.append(f"{MARK} {col}: {f.label} ({f.value:.3f}): {f.why}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"NeutralityReport(conditions={list(self.conditions)}, layers={len(self.layers)}, "
            f"languages={list(self.languages)}, probe={self.probe!r}, fit={len(self.fit_ids)}, "
            f"held-out={len(self.heldout_ids)})"
        )
