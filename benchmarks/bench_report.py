"""Wall time of `xling-probe report` on the defaults (offline Gemma 3 270M, bundled sample and word
list), per stage: once with an empty activation cache (what a new user waits for, after the one-off
model conversion) and once more with the cache filled. Prints and saves benchmarks/results/report.json.
Run: python benchmarks/bench_report.py"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

from xling_probe.paths import cache_root


def run_once(out: Path) -> dict:
    from xling_probe.report.build import build_report

    t0 = time.perf_counter()
    res = build_report(out)
    return {"total_s": round(time.perf_counter() - t0, 1), "stages_s": res.timings, "files": len(res.files),
            "notes": res.notes}


def main() -> None:
    user_models = cache_root() / "models"  # the converted model is reused: conversion is a one-off (~1 min)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        if user_models.is_dir():
            (cache / "models").symlink_to(user_models, target_is_directory=True)
        os.environ["XLING_PROBE_CACHE"] = str(cache)
        cold = run_once(Path(tmp) / "report-cold")
        warm = run_once(Path(tmp) / "report-warm")
    out = {"command": "xling-probe report --out DIR (defaults)",
           "cold_activation_cache": cold, "warm_activation_cache": warm,
           "note": "cold = empty activation cache (extraction runs); the GGUF -> HF conversion of the model is "
                   "done once per machine (about a minute) and not counted here",
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "load_avg_1min_at_start": load_start, "load_avg_1min_at_end": os.getloadavg()[0]}}
    path = Path(__file__).parent / "results" / "report.json"
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
