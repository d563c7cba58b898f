"""The held-out evaluation of a :class:`~xling_probe.centering.estimators.LinearProjection`: :class:`ProjectionScores`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MetricError
from ..labels import layer_position, resolve_language
from ..measures.frozen import json_safe, readonly
from ..measures.registry import metric_spec

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ProjectionScores:
    """Held-out evaluation of a :class:`LinearProjection`.

    ``p_at_1[layer, source, direction, stage]``: retrieval P@1 between a source language and the
    target, direction 0 = source -> target, 1 = target -> source; stage 0 = before the map (raw
    source vs target), 1 = after it. ``r2[layer, source]``: 1 - ||mapped - target||^2 /
    ||target - mean target||^2 over the held-out pairs (1 = the map predicts the target exactly).
    """

    layers: tuple[int, ...]
    sources: tuple[str, ...]
    target: str
    method: str
    p_at_1: np.ndarray
    r2: np.ndarray
    ids: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    #: Axis 2 of ``p_at_1`` (``forward`` = source -> target) and axis 3 (before / after the map).
    DIRECTIONS = ("source->target", "target->source")
    STAGES = ("raw", "projected")

    def __post_init__(self) -> None:
        object.__setattr__(self, "p_at_1", readonly(self.p_at_1))
        object.__setattr__(self, "r2", readonly(self.r2))

    def sel(self, metric: str = "p@1", layer: int | None = None, source: str | None = None, *,
            direction: str | None = None, stage: str | None = None) -> float | np.ndarray:
        """Values by name: ``metric`` ``"p@1"`` (any spelling) or ``"r2"``; ``layer`` (residual-stream label,
        negative from the end), ``source`` (any spelling), ``direction`` (``"forward"`` /
        ``"source->target"``, ``"backward"`` / ``"target->source"``) and ``stage`` (``"raw"``,
        ``"projected"``) select; ``None`` keeps the axis, in the order (layer, source, direction, stage)."""
        li: Any = slice(None) if layer is None else layer_position(layer, self.layers, error=MetricError)
        si: Any = slice(None) if source is None else self.sources.index(
            resolve_language(source, self.sources, error=MetricError, what="these scores"))
        if metric == "r2":
            out = self.r2[li, si]
        elif metric_spec(metric).name == "p@1":
            names = {"forward": 0, "backward": 1, **{d: i for i, d in enumerate(self.DIRECTIONS)}}
            if direction is not None and direction not in names:
                raise MetricError(f"direction must be one of {list(names)}, got {direction!r}")
            if stage is not None and stage not in self.STAGES:
                raise MetricError(f"stage must be one of {self.STAGES}, got {stage!r}")
            di: Any = slice(None) if direction is None else names[direction]
            ki: Any = slice(None) if stage is None else self.STAGES.index(stage)
            out = self.p_at_1[li, si, di, ki]
        else:
            raise MetricError(f"ProjectionScores hold 'p@1' and 'r2', not {metric!r}")
        return float(out) if np.ndim(out) == 0 else out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (NaN -> None): labels, ``p@1`` [layer][source][direction][stage], ``r2`` [layer][source]."""
        return json_safe({"layers": list(self.layers), "sources": list(self.sources), "target": self.target,
                          "method": self.method, "directions": list(self.DIRECTIONS), "stages": list(self.STAGES),
                          "p@1": self.p_at_1, "r2": self.r2, "ids": list(self.ids), "meta": dict(self.meta)})

    def to_xarray(self):
        """An ``xarray.Dataset``: ``p_at_1`` (layer, source, direction, stage) and ``r2`` (layer, source)."""
        import xarray as xr

        return xr.Dataset(
            {"p_at_1": (("layer", "source", "direction", "stage"), np.array(self.p_at_1)),
             "r2": (("layer", "source"), np.array(self.r2))},
            coords={"layer": list(self.layers), "source": list(self.sources), "direction": list(self.DIRECTIONS),
                    "stage": list(self.STAGES)},
            attrs={"target": self.target, "method": self.method})

    def summary(self) -> "pd.DataFrame":
        """Per layer and source: P@1 before and after the map (mean of both directions; columns ``p_at_1_raw``,
        ``p_at_1_projected``) and R^2."""
        import pandas as pd

        m = metric_spec("p@1").ident  # a safe identifier in column names: p_at_1_raw
        rows = [{"layer": layer, "source": src, "target": self.target, "method": self.method,
                 f"{m}_raw": float(self.p_at_1[li, si, :, 0].mean()),
                 f"{m}_projected": float(self.p_at_1[li, si, :, 1].mean()), "r2": float(self.r2[li, si])}
                for li, layer in enumerate(self.layers) for si, src in enumerate(self.sources)]
        return pd.DataFrame(rows)

    def to_dataframe(self):
        """Tidy table: one row per (layer, source, metric, direction, stage) value."""
        import pandas as pd

        rows = []
        for li, layer in enumerate(self.layers):
            for si, src in enumerate(self.sources):
                for di, direction in enumerate(self.DIRECTIONS):
                    for ki, stage in enumerate(self.STAGES):
                        rows.append((layer, src, self.target, self.method, "p@1", direction, stage,
                                     float(self.p_at_1[li, si, di, ki])))
                rows.append((layer, src, self.target, self.method, "r2", None, "projected",
                             float(self.r2[li, si])))
        return pd.DataFrame(rows, columns=["layer", "source", "target", "method", "metric", "direction",
                                           "stage", "value"])
