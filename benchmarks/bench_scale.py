"""Hundreds of languages: all-pairs similarity, the out-of-core store, Dask, and real UDHR extraction.

Measures (each case in a fresh process, so its peak RSS is its own):

1. ``allpairs``: P@1, MEXA and debiased CKA for every pair of G languages at all 19 layers, on random
   activations of the offline model's shape (50 sentences x 640; timing does not depend on the
   values), read from an on-disk store (the streaming path), for G = 50, 100, 200, 402: wall time and
   peak RSS, and the exponents of both in G (pairs grow as G^2).
2. ``store``: write and read throughput of the zarr store against numpy in memory, and the same
   analysis (all pairs of 100 languages) on the store and in memory: time ratio and peak RSS.
3. ``dask``: the same extraction (UDHR, 8 languages x 50 paragraphs, offline Gemma 3 270M) in one
   process and on a LocalCluster of 2 single-threaded workers: overhead ratio, bitwise equality.
4. ``real``: extraction of as many UDHR languages as fit in ``--real-minutes`` on the offline model,
   into a store, then all pairs on them (the real numbers: P@1 by layer).

5. ``budget``: all pairs of 200 languages at max_memory_gb = 0.25, 0.5, 1, 2: peak RSS follows the budget.
6. ``dask_similarity``: all pairs of 100 languages from one store, in one process and as layer x
   language-block tasks on a LocalCluster of 2 single-threaded workers: overhead ratio, max difference.

Usage: python benchmarks/bench_scale.py [--cases allpairs,store,dask,real,budget,dask_similarity] [--real-minutes 10]
Writes benchmarks/results/scale.json (cases not run keep their previous entry).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "scale.json"
UDHR = HERE.parent.parent / "shared" / "data" / "udhr" / "udhr_402x50.tsv"
METRICS = ["p_at_1", "mexa", "cka_debiased"]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_store(path: Path, G: int, L: int = 19, n: int = 50, d: int = 640):
    """A store of random activations [L, G, n, d], written language by language (never all in memory)."""
    from xling_probe.extraction.activations import Activations
    from xling_probe.extraction.zarr_store import ActivationStore

    langs = [f"x{i:03d}" for i in range(G)]
    st = ActivationStore.open_or_create(path, fields={"bench": "random", "G": G}, labels={}, shape=(L, G, n, d),
                                        block=256)
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((L, n, d), dtype=np.float32)
    for g in range(G):
        st.write_piece(g, 0, (shared + 1.5 * rng.standard_normal((L, n, d), dtype=np.float32)).astype(np.float32))
    return Activations(data=st.view(), layers=tuple(range(L)), languages=tuple(langs), ids=tuple(map(str, range(n))))


def case_allpairs(G: int, source: str = "store", budget_gb: float = 2.0) -> dict:
    import xling_probe as xp

    with tempfile.TemporaryDirectory() as tmp:
        acts = random_store(Path(tmp) / "r.zarr", G)
        if source == "memory":
            acts = acts.in_memory()
        before = peak_mb()
        t = time.perf_counter()
        res = xp.similarity(acts, metrics=METRICS, null_permutations=0, bootstrap=0, progress=False, client=False,
                            max_memory_gb=budget_gb)
        wall = time.perf_counter() - t
    return {"languages": G, "pairs": G * (G - 1) // 2, "layers": 19, "source": source, "seconds": round(wall, 2),
            "peak_rss_mb": round(peak_mb(), 1), "rss_before_mb": round(before, 1), "max_memory_gb": budget_gb,
            "language_block": res.settings["language_block"],
            "mean_p_at_1_layer_9": float(np.nanmean(res.value[0, 9]))}


def case_dask_similarity(G: int) -> dict:
    """All pairs of G languages from one store: this process vs layer x language-block tasks on 2 workers."""
    import xling_probe as xp
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        acts = random_store(Path(tmp) / "r.zarr", G)
        t = time.perf_counter()
        one = xp.similarity(acts, metrics=METRICS, null_permutations=0, bootstrap=0, progress=False, client=False)
        single = time.perf_counter() - t
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                Client(cl) as client:
            client.run(lambda: __import__("torch").set_num_threads(1))
            t = time.perf_counter()
            many = xp.similarity(acts, metrics=METRICS, null_permutations=0, bootstrap=0, progress=False,
                                 client=client)
            multi = time.perf_counter() - t
    diff = float(np.nanmax(np.abs(many.value - one.value)))
    return {"languages": G, "pairs": G * (G - 1) // 2, "layers": 19, "single_process_s": round(single, 2),
            "local_cluster_2_workers_s": round(multi, 2), "cluster_over_single_time": round(multi / single, 3),
            "tasks": many.settings["distributed"], "max_abs_difference": diff,
            "note": "the single process uses both cores through torch's threads; each worker one thread"}


def case_store_io() -> dict:
    from xling_probe.extraction.zarr_store import ActivationStore

    L, G, n, d = 19, 100, 50, 640
    rng = np.random.default_rng(0)
    data = rng.standard_normal((L, G, n, d), dtype=np.float32)
    out = {"shape": [L, G, n, d], "mb": round(data.nbytes / 2**20, 1)}
    for storage in ("float32", "float16", "bfloat16"):
        with tempfile.TemporaryDirectory() as tmp:
            st = ActivationStore.open_or_create(Path(tmp) / "s.zarr", fields={}, labels={}, shape=data.shape,
                                                storage=storage, block=256)
            t = time.perf_counter()
            for g in range(G):
                st.write_piece(g, 0, data[:, g])
            write = time.perf_counter() - t
            t = time.perf_counter()
            back = np.asarray(st.view())
            read = time.perf_counter() - t
            t = time.perf_counter()
            one_layer = st.view()[9]
            read_layer = time.perf_counter() - t
            disk = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        out[storage] = {"write_mb_s": round(data.nbytes / 2**20 / write, 1), "read_mb_s": round(data.nbytes / 2**20 / read, 1),
                        "read_one_layer_s": round(read_layer, 3), "disk_mb": round(disk / 2**20, 1),
                        "max_rel_error": float(np.abs(back - data).max() / np.abs(data).max())}
        assert one_layer.shape == (G, n, d)
    t = time.perf_counter()
    copy = data.copy()
    out["numpy_copy_mb_s"] = round(data.nbytes / 2**20 / (time.perf_counter() - t), 1)
    del copy
    return out


def case_dask(mode: str) -> dict:
    import xling_probe as xp

    corpus = xp.ParallelCorpus.from_tsv(UDHR, conventions="udhr")
    corpus = corpus.select_languages(list(corpus.languages[:8]))
    model = xp.load_model(device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        if mode == "single":
            acts = xp.extract(model, corpus, store=Path(tmp) / "s.zarr", progress=False)
        else:
            from distributed import Client, LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                    Client(cl) as client:
                acts = xp.extract(model, corpus, store=Path(tmp) / "s.zarr", progress=False, client=client)
        wall = time.perf_counter() - t
        data = np.asarray(acts.data)
        np.save(Path(os.environ["XLING_BENCH_OUT"]) / f"dask_{mode}.npy", data)
    return {"mode": mode, "seconds": round(wall, 2), "languages": 8, "sentences": len(corpus)}


def case_real(minutes: float) -> dict:
    import xling_probe as xp

    corpus = xp.ParallelCorpus.from_tsv(UDHR, conventions="udhr")
    model = xp.load_model(device="cpu")
    t0 = time.perf_counter()
    done: list[str] = []
    per_lang = None
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XLING_PROBE_CACHE"] = tmp  # a fresh cache: every language is really extracted
        for lang in corpus.languages:  # language by language until the time budget is spent
            if per_lang is not None and time.perf_counter() - t0 + per_lang > minutes * 60:
                break
            t = time.perf_counter()
            xp.extract(model, corpus.select_languages([lang]), progress=False)
            took = time.perf_counter() - t
            per_lang = took if per_lang is None else 0.8 * per_lang + 0.2 * took
            done.append(lang)
        extract_s = time.perf_counter() - t0
        acts = xp.extract(model, corpus.select_languages(done), progress=False)  # from the cache parts
        t = time.perf_counter()
        res = xp.similarity(acts, metrics=METRICS, null_permutations=0, bootstrap=0, progress=False)
        sim_s = time.perf_counter() - t
    p1 = res.value[0]
    return {"languages": len(done), "of": len(corpus.languages), "sentences": len(corpus),
            "extract_seconds": round(extract_s, 1), "seconds_per_language": round(extract_s / max(1, len(done)), 2),
            "similarity_seconds": round(sim_s, 2), "pairs": len(done) * (len(done) - 1) // 2,
            "mean_p_at_1_by_layer": [round(float(np.nanmean(p1[j])), 4) for j in range(p1.shape[0])],
            "mean_mexa_by_layer": [round(float(np.nanmean(res.value[1][j])), 4) for j in range(p1.shape[0])],
            "mean_cka_debiased_by_layer": [round(float(np.nanmean(res.value[2][j])), 4) for j in range(p1.shape[0])],
            "peak_rss_mb": round(peak_mb(), 1)}


def spawn(case: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", case, *args], capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{case} {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def slope(xs, ys) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="allpairs,store,dask,real")
    ap.add_argument("--real-minutes", type=float, default=10.0)
    ap.add_argument("--sizes", default="50,100,200,402")
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        case, *rest = args.child
        fn = {"allpairs": lambda: case_allpairs(int(rest[0]), rest[1], float(rest[2]) if len(rest) > 2 else 2.0),
              "dask_similarity": lambda: case_dask_similarity(int(rest[0])), "store": case_store_io,
              "dask": lambda: case_dask(rest[0]), "real": lambda: case_real(float(rest[0]))}[case]
        print("RESULT " + json.dumps(fn()), flush=True)
        return
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    cases = args.cases.split(",")
    if "allpairs" in cases:
        sizes = [int(x) for x in args.sizes.split(",")]
        runs = []
        for G in sizes:
            r = spawn("allpairs", str(G), "store")
            print("allpairs", r, flush=True)
            runs.append(r)
        results["allpairs"] = {
            "runs": runs,
            "time_exponent": round(slope([r["languages"] for r in runs], [r["seconds"] for r in runs]), 2),
            "peak_exponent": round(slope([r["languages"] for r in runs], [r["peak_rss_mb"] for r in runs]), 3),
            "peak_growth_100_to_402": round(
                next(r["peak_rss_mb"] for r in runs if r["languages"] == max(sizes))
                / next(r["peak_rss_mb"] for r in runs if r["languages"] == sorted(sizes)[1]), 3) if len(sizes) > 1 else None,
            "targets": "402 languages within 30 min and 8 GB; peak independent of G within 20%",
        }
    if "budget" in cases:
        runs = [spawn("allpairs", "200", "store", str(b)) for b in (0.25, 0.5, 1.0, 2.0)]
        results["budget"] = {"runs": runs, "note": "all pairs of 200 languages from the store at four working-memory "
                                                   "budgets (max_memory_gb): the budget, not the corpus, sets the peak"}
        print("budget", results["budget"], flush=True)
    if "dask_similarity" in cases:
        results["dask_similarity"] = spawn("dask_similarity", "100")
        print("dask_similarity", results["dask_similarity"], flush=True)
    if "store" in cases:
        io = spawn("store")
        mem = spawn("allpairs", "100", "memory")
        sto = spawn("allpairs", "100", "store")
        results["store"] = {"io": io, "analysis_in_memory": mem, "analysis_on_store": sto,
                            "store_over_memory_time": round(sto["seconds"] / mem["seconds"], 3),
                            "target": "store-backed analysis within 1.3x of in-memory time"}
        print("store", results["store"], flush=True)
    if "dask" in cases:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["XLING_BENCH_OUT"] = tmp
            single, multi = spawn("dask", "single"), spawn("dask", "cluster")
            same = bool(np.array_equal(np.load(Path(tmp) / "dask_single.npy"), np.load(Path(tmp) / "dask_cluster.npy")))
        results["dask"] = {"single_process": single, "local_cluster_2_workers": multi,
                           "cluster_over_single_time": round(multi["seconds"] / single["seconds"], 3),
                           "bitwise_equal": same}
        print("dask", results["dask"], flush=True)
    if "real" in cases:
        results["real_udhr"] = spawn("real", str(args.real_minutes))
        print("real", results["real_udhr"], flush=True)
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
