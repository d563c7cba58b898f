"""The labeled result of :func:`xling_probe.neutrality.neutrality`: per-layer language neutrality,
raw vs centered (vs projected), measured on a held-out split, with tidy tables and summaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import MetricError

CONDITIONS = ("raw", "centered", "projected")
DIRECTIONS = ("a->b", "b->a")


@dataclass(frozen=True)
class NeutralityReport:
    """Per-layer language neutrality, measured on a held-out split.

    Attributes
    ----------
    conditions:
        ``raw``, ``centered`` and, when asked, ``projected`` (axis 0 of every array).
    retrieval:
        ``(condition, layer, pair, direction)`` retrieval P@k on the held-out split; direction 0
        = a -> b (each sentence of a retrieves among b), 1 = b -> a.
    language_id:
        ``(condition, layer)`` held-out accuracy of the language-ID probe trained on the fit split.
    variance_share:
        ``(condition, layer)`` between-language variance / total variance on the held-out split.
    chance:
        chance accuracy of the language-ID probe, ``1 / n_languages``.
    fit_ids, heldout_ids:
        the disjoint sentence ids of the two splits.
    settings:
        centering mode, projection method, pivot, seed, k, model meta.
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

    @property
    def metric(self) -> str:
        return f"p_at_{self.settings.get('k', 1)}"

    @property
    def retrieval_mean(self) -> np.ndarray:
        """``(condition, layer)``: retrieval P@k averaged over language pairs and both directions."""
        return self.retrieval.mean(axis=(2, 3))

    def value(self, quantity: str, condition: str, layer: int) -> float:
        """One number: ``quantity`` in {'retrieval', 'language_id', 'variance_share'}."""
        ci, li = self.conditions.index(condition), self.layers.index(layer)
        table = {"retrieval": self.retrieval_mean, "language_id": self.language_id,
                 "variance_share": self.variance_share}
        if quantity not in table:
            raise MetricError(f"unknown quantity {quantity!r}; choose one of {sorted(table)}")
        return float(table[quantity][ci, li])

    def to_dataframe(self):
        """Tidy table, one row per value: condition, layer, metric, lang_a, lang_b, direction, value.

        Metrics: ``p_at_k`` (one row per pair and direction), ``p_at_k_mean`` (over pairs and
        directions), ``language_id_accuracy``, ``language_variance_share``.
        """
        import pandas as pd

        rows = []
        for ci, cond in enumerate(self.conditions):
            for li, layer in enumerate(self.layers):
                for pi, (a, b) in enumerate(self.pairs):
                    for di, direction in enumerate(DIRECTIONS):
                        rows.append((cond, layer, self.metric, a, b, direction, float(self.retrieval[ci, li, pi, di])))
                rows.append((cond, layer, f"{self.metric}_mean", None, None, None,
                             float(self.retrieval_mean[ci, li])))
                rows.append((cond, layer, "language_id_accuracy", None, None, None, float(self.language_id[ci, li])))
                rows.append((cond, layer, "language_variance_share", None, None, None,
                             float(self.variance_share[ci, li])))
        return pd.DataFrame(rows, columns=["condition", "layer", "metric", "lang_a", "lang_b", "direction", "value"])

    def summary(self):
        """Per layer: mean retrieval, probe accuracy and variance share per condition, and the gains.

        ``centering_gain`` = centered - raw mean retrieval; ``projection_gain`` = projected - raw.
        """
        import pandas as pd

        m = self.metric
        out: dict[str, Any] = {"layer": list(self.layers)}
        for ci, cond in enumerate(self.conditions):
            out[f"{m}_{cond}"] = self.retrieval_mean[ci]
        raw = self.retrieval_mean[0]
        out["centering_gain"] = self.retrieval_mean[self.conditions.index("centered")] - raw
        if "projected" in self.conditions:
            out["projection_gain"] = self.retrieval_mean[self.conditions.index("projected")] - raw
        for ci, cond in enumerate(self.conditions):
            out[f"language_id_{cond}"] = self.language_id[ci]
        for ci, cond in enumerate(self.conditions):
            out[f"variance_share_{cond}"] = self.variance_share[ci]
        out["language_id_chance"] = self.chance
        return pd.DataFrame(out)

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims (condition, layer, pair, direction)."""
        import xarray as xr

        coords = {"condition": list(self.conditions), "layer": list(self.layers),
                  "pair": [f"{a}-{b}" for a, b in self.pairs], "direction": list(DIRECTIONS)}
        return xr.Dataset(
            {
                "retrieval": (("condition", "layer", "pair", "direction"), self.retrieval),
                "language_id": (("condition", "layer"), self.language_id),
                "variance_share": (("condition", "layer"), self.variance_share),
            },
            coords=coords,
            attrs={"chance": self.chance, "metric": self.metric},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: settings, splits and the per-layer summary."""
        return {
            "settings": self.settings,
            "languages": list(self.languages),
            "pairs": [list(p) for p in self.pairs],
            "fit_ids": list(self.fit_ids),
            "heldout_ids": list(self.heldout_ids),
            "summary": self.summary().to_dict(orient="records"),
        }

    def __str__(self) -> str:
        return self.summary().to_string(index=False, float_format=lambda v: f"{v:.3f}")

    def __repr__(self) -> str:
        return (
            f"NeutralityReport(conditions={list(self.conditions)}, layers={len(self.layers)}, "
            f"languages={list(self.languages)}, fit={len(self.fit_ids)}, held-out={len(self.heldout_ids)})"
        )
