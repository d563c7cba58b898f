"""Wall time of `xling-probe report` on the defaults (offline Gemma 3 270M, bundled sample and word
list), per stage: once with an empty activation cache (what a new user waits for, after the one-off
model conversion) and once more with the cache filled; then the same two runs of the command itself
in a fresh process (what the README's main job costs: Python start-up and imports included).
Prints and saves benchmarks/results/report.json. Run: python benchmarks/bench_report.py

The time depends on: the CPU and how loaded it is (the 1-minute load average is recorded at the start
and end of each run), whether activations are cached (extraction is; the drift stage is not, so a warm
run still pays for the logit lens), and whether Chromium is there for the static PNG/SVG export.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xling_probe.paths import cache_root


def run_once(out: Path) -> dict:
    from xling_probe.report import build_report

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = build_report(out, progress=False)
    return {"total_s": round(time.perf_counter() - t0, 1), "stages_s": res.timings, "files": len(res.files),
            "notes": res.notes, "load_avg_1min": [round(load, 2), round(os.getloadavg()[0], 2)]}


def run_cli(out: Path) -> dict:
    exe = shutil.which("xling-probe") or str(Path(sys.executable).with_name("xling-probe"))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run([exe, "report", "--out", str(out)], check=True, capture_output=True)
    return {"total_s": round(time.perf_counter() - t0, 1),
            "load_avg_1min": [round(load, 2), round(os.getloadavg()[0], 2)]}


def main() -> None:
    user_models = cache_root() / "models"  # the converted model is reused: conversion is a one-off (~1 min)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for mode in ("in_process", "command"):
            cache = Path(tmp) / f"cache-{mode}"
            cache.mkdir()
            if user_models.is_dir():
                (cache / "models").symlink_to(user_models, target_is_directory=True)
            os.environ["XLING_PROBE_CACHE"] = str(cache)
            run = run_once if mode == "in_process" else run_cli
            results[mode] = {"cold_activation_cache": run(Path(tmp) / f"{mode}-cold"),
                             "warm_activation_cache": run(Path(tmp) / f"{mode}-warm")}
    out = {"command": "xling-probe report --out DIR (defaults)", **results,
           "note": "cold = empty activation cache (extraction runs); the GGUF -> HF conversion of the model is "
                   "done once per machine (about a minute) and not counted here. 'command' runs the CLI in a "
                   "fresh process (imports and model load included); drift is not cached, so warm runs pay for it",
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    path = Path(__file__).parent / "results" / "report.json"
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
