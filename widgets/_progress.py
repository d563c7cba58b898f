"""Per-stage progress bars for the Workbench pipeline.

One row per stage: a bar and a note. A waiting stage is empty, a running one blue ("running…"), a
finished one full and green with its time in seconds, a failed one red with the error, a skipped
one grey with the reason.
"""

from __future__ import annotations

import time
from html import escape
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import ipywidgets as W


class StageProgress(W.VBox):
    """Bars for ``stages``; ``with progress.stage(name):`` marks one running, then done or failed.

    ``state[name]`` is ``"waiting"``, ``"running"``, ``"done"``, ``"failed"`` or ``"skipped"``;
    ``seconds[name]`` the duration of a finished stage.
    """

    def __init__(self, stages: Sequence[str]) -> None:
        self.stages = tuple(stages)
        self.bars = {s: W.IntProgress(value=0, min=0, max=1, description=s, layout=W.Layout(width="420px"),
                                      style={"description_width": "90px"}) for s in self.stages}
        self.notes = {s: W.HTML("") for s in self.stages}
        self.state: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.reset()
        super().__init__([W.HBox([self.bars[s], self.notes[s]]) for s in self.stages])

    def reset(self) -> None:
        """Every stage back to waiting."""
        for s in self.stages:
            self._set(s, "waiting", 0, "", "")
        self.seconds.clear()

    def _set(self, name: str, state: str, value: int, style: str, note: str) -> None:
        self.state[name] = state
        self.bars[name].value = value
        self.bars[name].bar_style = style
        self.notes[name].value = note

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Mark ``name`` running for the block; done (green, seconds) when it ends, failed (red) on an error."""
        self._set(name, "running", 0, "info", "running…")
        start = time.perf_counter()
        try:
            yield
        except BaseException as err:
            self._set(name, "failed", 1, "danger", f"<span style='color:#b00'>failed: {type(err).__name__}</span>")
            raise
        self.seconds[name] = time.perf_counter() - start
        self._set(name, "done", 1, "success", f"{self.seconds[name]:.1f} s")

    def skip(self, name: str, why: str) -> None:
        """Mark ``name`` skipped, with the reason."""
        self._set(name, "skipped", 0, "", f"<span style='color:#777'>skipped: {escape(why, quote=False)}</span>")
