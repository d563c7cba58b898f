"""Labeled results of the intervention experiments: one long table of per-item means with intervals.

Every experiment measures per-item values (a prompt, a sentence, a pair of items) in cells of its grid
(layer x strength x kind, or layer x position). :class:`InterventionResult` keeps them as a
:class:`pandas.DataFrame` with one row per (cell, measure): ``mean``, the bootstrap percentile interval
``ci_low``/``ci_high`` (``level``, 1000 resamples of the items, seeded) and ``n``; plus the settings
that produced them. It is a plain result: the figures in :mod:`xling_probe.plots.interventions` and the
CLI read it; ``save``/``load`` write CSV + JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InterventionError


def summarise(cells: Sequence[tuple[dict[str, Any], str, np.ndarray]], *, level: float = 0.95,
              seed: int = 0) -> pd.DataFrame:
    """Rows ``{**labels, measure, mean, ci_low, ci_high, n}`` from ``(labels, measure, per-item values)``."""
    rows = []
    rng = np.random.default_rng(seed)
    for labels, measure, values in cells:
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        n = len(x)
        mean = float(x.mean()) if n else float("nan")
        lo = hi = float("nan")
        if n >= 2:
            boots = x[rng.integers(0, n, size=(1000, n))].mean(axis=1)
            lo, hi = (float(v) for v in np.quantile(boots, [(1 - level) / 2, (1 + level) / 2]))
        rows.append({**labels, "measure": measure, "mean": mean, "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows)


@dataclass(frozen=True, eq=False)
class InterventionResult:
    """What one experiment measured: ``table`` (long format, see the module docstring) and ``settings``.

    ``kind`` names the experiment (``"steering"``, ``"incline"``, ``"patching"``); ``measures`` describes
    each measure in words (the captions of the figures use them).
    """

    kind: str
    table: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    measures: Mapping[str, str] = field(default_factory=dict)

    def sel(self, measure: str, **labels: Any) -> pd.DataFrame:
        """The rows of ``measure`` (and of the given label values)."""
        if measure not in set(self.table["measure"]):
            raise InterventionError(f"no measure {measure!r} in this {self.kind} result; measures: "
                                    f"{sorted(set(self.table['measure']))}")
        t = self.table[self.table["measure"] == measure]
        for k, v in labels.items():
            t = t[t[k] == v]
        return t.reset_index(drop=True)

    def grid(self, measure: str, rows: str, cols: str, **labels: Any) -> pd.DataFrame:
        """``measure``'s means as a ``rows`` x ``cols`` table (e.g. layer x alpha)."""
        return self.sel(measure, **labels).pivot_table(index=rows, columns=cols, values="mean")

    def best(self, measure: str, *, by: str = "max", **labels: Any) -> pd.Series:
        """The row with the largest (``by="max"``) or smallest mean of ``measure``."""
        t = self.sel(measure, **labels).dropna(subset=["mean"])
        if t.empty:
            raise InterventionError(f"no finite value of {measure!r} to choose from")
        return t.loc[t["mean"].idxmax() if by == "max" else t["mean"].idxmin()]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(folder / f"{self.kind}.csv", index=False)
        (folder / f"{self.kind}.json").write_text(json.dumps(
            {"kind": self.kind, "settings": self.settings, "measures": dict(self.measures)}, indent=1, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path, kind: str) -> InterventionResult:
        folder = Path(folder)
        meta = json.loads((folder / f"{kind}.json").read_text())
        return cls(kind=meta["kind"], table=pd.read_csv(folder / f"{kind}.csv", keep_default_na=False,
                                                        na_values=["nan", "NaN", ""]),
                   settings=meta["settings"], measures=meta["measures"])

    def __repr__(self) -> str:
        return (f"InterventionResult({self.kind!r}, {len(self.table)} rows, measures="
                f"{sorted(set(self.table['measure'])) if len(self.table) else []})")
