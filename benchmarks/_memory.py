"""Peak resident memory of a block of code, for the benchmark scripts (run them from the repository
root: ``python benchmarks/bench_*.py`` puts this folder on ``sys.path``)."""

from __future__ import annotations

import threading
import time

import psutil


class PeakRSS:
    """Peak resident memory while the block runs, sampled every ``interval`` seconds by a thread.

    ``before`` and ``peak`` are bytes; ``mib`` is the peak above the level at entry, in MiB.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval

    def __enter__(self) -> PeakRSS:
        self.proc, self._stop = psutil.Process(), threading.Event()
        self.before = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.mib = (self.peak - self.before) / 2**20
