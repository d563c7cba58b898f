"""Linked views and the status line of :class:`~xling_probe.widgets.similarity_explorer.SimilarityExplorer`.

- a click on a cell (a, b) of the language x language heatmap (plotly's ``on_click`` on the heatmap
  trace, re-attached after every full refresh) selects that pair for the layer x layer view and the
  curves: :meth:`LinkedViews.select_cell`; the diagonal and pairs that were not computed do nothing;
- ``.status`` says what a control change is computing while it runs (:meth:`LinkedViews._busy`);
  the figures are replaced only once the new ones are ready, so the old ones stay meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from typing import Any

from .curves_view import MANY_PAIRS


class LinkedViews:
    """Mixin of the explorer (needs ``figures``, ``view``, ``result``, the controls, ``select``)."""

    def _link_heatmap(self) -> None:
        """Clicks on the heatmap's cells select the pair (the trace is new after a full refresh)."""
        fw = self.figures["heatmap"]
        if fw.data and fw.data[0].type == "heatmap" and self._on_click not in fw.data[0]._click_callbacks:
            fw.data[0].on_click(self._on_click)

    def _on_click(self, _trace: Any, points: Any, _selector: Any = None) -> None:
        """plotly's click callback: the first clicked cell, by index ([row, column]) or by label."""
        inds = list(getattr(points, "point_inds", []) or [])
        if inds and isinstance(inds[0], (list, tuple)) and len(inds[0]) == 2:
            self.select_cell(int(inds[0][0]), int(inds[0][1]))
            return
        xs, ys = list(getattr(points, "xs", []) or []), list(getattr(points, "ys", []) or [])
        labels = list(self.figures["heatmap"].data[0].x)
        if xs and ys and xs[0] in labels and ys[0] in labels:
            self.select_cell(labels.index(ys[0]), labels.index(xs[0]))

    def cell_pair(self, row: int, col: int) -> tuple[str, str] | None:
        """The computed pair of heatmap cell (row = language a, column = language b), None on the diagonal."""
        langs = self.view.languages
        if not (0 <= row < len(langs) and 0 <= col < len(langs)) or row == col:
            return None
        a, b = langs[row], langs[col]
        computed = set(self.result.pairs)
        return (a, b) if (a, b) in computed else (b, a) if (b, a) in computed else None

    def select_cell(self, row: int, col: int) -> tuple[str, str] | None:
        """Select the pair of heatmap cell (row, col) for the layer x layer view and the curves
        (added to the drawn pairs when it is not among them); returns the pair (None: nothing)."""
        pair = self.cell_pair(row, col)
        if pair is None:
            return None
        drawn = tuple(self.pairs.value)
        self.select(pair=pair, pairs=drawn if pair in drawn or len(drawn) > MANY_PAIRS else drawn + (pair,))
        return pair

    @contextmanager
    def _busy(self, what: str) -> Iterator[None]:
        """``.status`` says what is computed while the block runs (the figures change at its end)."""
        text = f"computing {what}…"
        self.status_log.append(text)
        self.status.value = f"<span style='color:#1f5fa8'>⏳ {escape(text)}</span>"
        start = time.perf_counter()
        try:
            yield
        except Exception as err:
            self.status.value = f"<span style='color:#b00'>{escape(what)} failed: {escape(str(err))}</span>"
            raise
        ms = 1000 * (time.perf_counter() - start)
        self.status.value = f"<span style='color:#777'>{escape(what)}: {ms:.0f} ms</span>"

    def _what(self, control: str) -> str:
        (a, b), label = self.pair.value, self.result.spec(self.metric.value).label
        return {"metric": f"{label}: heatmap, curves and layer × layer",
                "pair": f"layer × layer {label} of {a}–{b}",
                "pairs": f"{label} curves of {len(self.pairs.value)} pairs",
                "order": f"the {self.order.value} order of {len(self.result.languages)} languages",
                "family": "the heatmap of the chosen family", "script": "the heatmap of the chosen script"}[control]

