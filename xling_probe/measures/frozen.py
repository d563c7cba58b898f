"""What frozen results share: read-only arrays and JSON-safe dictionaries.

Every result dataclass (similarity, cross-layer, neutrality, projection scores) stores read-only
views of its arrays, so a frozen result cannot change under a figure or a table made from it, and
writes its ``to_dict()`` through :func:`json_safe` (strict JSON: NaN and +-inf become ``None``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


def readonly(arr: Any) -> np.ndarray:
    """A read-only view of ``arr`` (the caller's array stays writable; the result's copy cannot change)."""
    view = np.asarray(arr).view()
    view.setflags(write=False)
    return view


def json_safe(value: Any) -> Any:
    """``value`` with arrays as nested lists, numpy scalars as Python numbers and NaN/inf as ``None``."""
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class FrozenArrays(Mapping):
    """A read-only mapping of name -> read-only array view (unlike ``MappingProxyType``, it pickles)."""

    def __init__(self, arrays: Mapping[str, Any]) -> None:
        self._data = {str(k): readonly(v) for k, v in arrays.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __reduce__(self):
        return FrozenArrays, (self._data,)  # unpickled arrays are read-only again

    def __repr__(self) -> str:
        return "FrozenArrays(" + ", ".join(f"{k}: {v.shape}" for k, v in self._data.items()) + ")"
