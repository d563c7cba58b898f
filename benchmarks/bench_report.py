"""Wall time of `xling-probe report` on the defaults (offline Gemma 3 270M, bundled sample and word
list), per stage. Prints and saves benchmarks/results/report.json. Run: python benchmarks/bench_report.py"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

from xling_probe.report import build_report


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = build_report(Path(tmp) / "report")
        total = time.perf_counter() - t0
        files = len(res.files)
    out = {"command": "xling-probe report --out DIR (defaults)", "total_s": round(total, 1),
           "stages_s": res.timings, "files": files, "notes": res.notes,
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "load_avg_1min_at_end": os.getloadavg()[0]}}
    path = Path(__file__).parent / "results" / "report.json"
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
