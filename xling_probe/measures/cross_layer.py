"""The layer x layer result of one language pair: :class:`CrossLayerResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MetricError
from ..labels import layer_position, select_layers
from .frozen import json_safe, readonly
from .registry import MetricSpec, metric_spec


@dataclass(frozen=True, eq=False)
class CrossLayerResult:
    """``matrix[i, j]`` = metric between layer ``layers_a[i]`` of ``lang_a`` and ``layers_b[j]`` of ``lang_b``
    (read-only)."""

    metric: str
    lang_a: str
    lang_b: str
    layers_a: tuple[int, ...]
    layers_b: tuple[int, ...]
    matrix: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrix", readonly(self.matrix))

    @property
    def spec(self) -> MetricSpec:
        return metric_spec(self.metric)

    def sel(self, layer_a: Any = None, layer_b: Any = None) -> float | np.ndarray:
        """The value at (``layer_a``, ``layer_b``) (residual-stream labels, negative from the end); a
        ``None`` or a list keeps that axis: a float when both are single layers."""
        out = self.matrix
        ia = _pick(layer_a, self.layers_a)
        ib = _pick(layer_b, self.layers_b)
        out = out[ia][..., ib] if not isinstance(ia, int) else out[ia, ib]
        return float(out) if np.ndim(out) == 0 else out

    def to_dataframe(self) -> pd.DataFrame:
        """Tidy table: metric, lang_a, layer_a, lang_b, layer_b, value."""
        ia, ib = np.meshgrid(np.arange(len(self.layers_a)), np.arange(len(self.layers_b)), indexing="ij")
        return pd.DataFrame({
            "metric": self.metric, "lang_a": self.lang_a, "layer_a": np.asarray(self.layers_a)[ia.ravel()],
            "lang_b": self.lang_b, "layer_b": np.asarray(self.layers_b)[ib.ravel()], "value": self.matrix.ravel(),
        })

    def to_xarray(self):
        import xarray as xr

        return xr.DataArray(np.array(self.matrix), dims=("layer_a", "layer_b"),
                            coords={"layer_a": list(self.layers_a), "layer_b": list(self.layers_b)},
                            name=self.metric, attrs={"lang_a": self.lang_a, "lang_b": self.lang_b})

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the labels, ``matrix`` as nested lists [layer_a][layer_b] (NaN -> None), the settings."""
        return json_safe({"metric": self.metric, "lang_a": self.lang_a, "lang_b": self.lang_b,
                          "layers_a": list(self.layers_a), "layers_b": list(self.layers_b),
                          "matrix": self.matrix, "settings": dict(self.settings)})

    def best_match(self) -> pd.Series:
        """For each layer of ``lang_a``, the layer of ``lang_b`` it is most similar to."""
        return pd.Series(np.asarray(self.layers_b)[np.nanargmax(self.matrix, axis=1)],
                         index=pd.Index(self.layers_a, name=f"layer_{self.lang_a}"), name=f"best_layer_{self.lang_b}")

    def __repr__(self) -> str:
        return (f"CrossLayerResult(metric={self.metric!r}, {self.lang_a} x {self.lang_b}, "
                f"{len(self.layers_a)} x {len(self.layers_b)} layers)")


def _pick(layer: Any, available: tuple[int, ...]) -> int | list[int]:
    if layer is None or isinstance(layer, (str, list, tuple, range)):
        return select_layers(layer, available, error=MetricError)
    return layer_position(layer, available, error=MetricError)
