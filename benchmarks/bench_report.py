"""Wall time of `xling-probe report` on the defaults (offline Gemma 3 270M, bundled sample and word
list), per stage: once with an empty activation cache (what a new user waits for, after the one-off
model conversion) and once more with the cache filled; then the same two runs of the command itself
in a fresh process (what the README's main job costs: Python start-up and imports included).
Prints and saves benchmarks/results/report.json. Run: python benchmarks/bench_report.py
(``--issue19 [--rounds N]``: only the interleaved warm-report and CLI cache-hit ratios of issue 19, merged
into report.json.)

The time depends on: the CPU and how loaded it is (the 1-minute load average is recorded at the start
and end of each run), whether activations are cached (extraction is; the drift stage is not, so a warm
run still paid for the logit lens before issue 19; now lens results are cached too), and whether Chromium is there for the static PNG/SVG export.
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

sys.path.insert(0, str(Path(__file__).parent))


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


def _fresh(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def issue19(rounds: int) -> dict:
    """Issue 19 items 4 and 6, interleaved (benchmarks/_interleave.py), on one filled cache:

    - the warm report (activations cached) with the lens results cached (``lens_cached``) vs with the lens
      cache emptied before the run (``lens_recomputed``, as before the lens cache: the floor the cache
      removes), per stage;
    - ``xling-probe extract`` answered from the cache in a fresh process without loading the weights
      (``cli_hit_weightless``) vs the same hit after loading them (``cli_hit_loading_weights``, the old
      path) vs the floor of a fresh process that only imports the command (``import_floor``).
    """
    sys.path.insert(0, str(Path(__file__).parent))
    from _interleave import interleaved

    user_models = cache_root() / "models"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        if user_models.is_dir():
            (cache / "models").symlink_to(user_models, target_is_directory=True)
        os.environ["XLING_PROBE_CACHE"] = str(cache)
        cold = run_once(Path(tmp) / "cold")
        runs: list[dict] = []

        def report(lens_cached: bool):
            def go(k):
                if not lens_cached:
                    shutil.rmtree(cache / "lens", ignore_errors=True)
                r = run_once(Path(tmp) / f"warm-{len(runs)}")
                r["variant"] = "lens_cached" if lens_cached else "lens_recomputed"
                runs.append(r)
            return go

        warm = interleaved(list(range(rounds)), {"lens_recomputed": report(False), "lens_cached": report(True)},
                           floor="lens_cached", warmup=False)
        cached_runs = [r for r in runs if r["variant"] == "lens_cached"]
        stages = {st: sorted(r["stages_s"][st] for r in cached_runs)[len(cached_runs) // 2] for st in cached_runs[0]["stages_s"]}
        args = ["extract", "--langs", "en,fr,zh", "--limit", "40", "--out"]
        main_call = "from xling_probe.cli.main import main; import sys; sys.exit(main({!r}))"
        subprocess.run([sys.executable, "-c", main_call.format([*args, str(Path(tmp) / "fill")])], check=True,
                       capture_output=True)
        outs = iter(range(10_000))
        cli = interleaved(list(range(max(2, rounds + 1))), {
            "import_floor": lambda _u: _fresh("import torch, transformers, xling_probe.cli.main, xling_probe.extraction.extract"),
            "cli_hit_weightless": lambda _u: _fresh(main_call.format([*args, str(Path(tmp) / f"o{next(outs)}")])),
            "cli_hit_loading_weights": lambda _u: _fresh(
                "import xling_probe.cli.extract as e; e.cached = lambda *a: None; "
                + main_call.format([*args, str(Path(tmp) / f"o{next(outs)}")])),
        }, floor="import_floor", warmup=False)
    return {"cold_report": cold, "warm_report": warm, "warm_report_lens_cached_median_stages_s": stages,
            "warm_report_lens_cached_median_total_s": warm["median_seconds"]["lens_cached"],
            "warm_runs": runs, "cli_extract_cache_hit": cli, "target": "warm report <= 22 s (issue 19 item 4)"}


def main() -> None:
    if "--issue19" in sys.argv:
        from _interleave import merge_json

        rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 2
        res = issue19(rounds)
        print(json.dumps({k: v for k, v in res.items() if k != "warm_runs"}, indent=1))
        merge_json(Path(__file__).parent / "results" / "report.json", "issue19_interleaved", res)
        print("merged issue19_interleaved into benchmarks/results/report.json")
        return
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
