"""Which similarity measures agree on the layer profile, on the offline model (issue 17, real-model check).

Offline Gemma 3 270M, PUD (``../shared/data/pud/pud_1000.tsv``; the bundled sample when absent), the
first ``--sentences`` sentences of ``--languages``, mean-pooled states at all 19 layers. Every
measure of the registry is computed for English with each other language (no nulls), averaged over
those pairs per layer, and the per-layer curves are compared by Spearman rank correlation: 1 means
two measures order the layers the same way (same "where do languages meet" answer), -1 the opposite.
Also recorded: each measure's peak layer and its curve.

Usage: python benchmarks/bench_measures_agreement.py [--sentences 200] [--languages en,de,...]
Writes benchmarks/results/measures_agreement.json and prints the rank-correlation matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PUD = HERE.parent.parent / "shared" / "data" / "pud" / "pud_1000.tsv"
LANGS = "en,de,fr,ru,zh,ja,ar,hi"
MEASURES = ("cka", "cka_debiased", "anc", "p@1", "mexa", "mknn@10", "svcca", "pwcca", "cknna@10", "procrustes",
            "p_procrustes@1", "p_cent@1", "rsa")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--languages", default=LANGS)
    args = ap.parse_args()
    from scipy.stats import spearmanr

    import xling_probe as xp

    load0 = os.getloadavg()[0]
    langs = args.languages.split(",")
    model = xp.load_model()
    if PUD.is_file():
        corpus, source = xp.ParallelCorpus.from_tsv(PUD, languages=langs).head(args.sentences), "PUD"
    else:
        corpus, source = xp.ParallelCorpus.sample(languages=langs), "bundled sample"
    t = time.perf_counter()
    acts = xp.extract(model, corpus, progress=False)
    extract_s = time.perf_counter() - t
    pairs = [("en", c) for c in corpus.languages if c != "en"]
    curves, seconds = {}, {}
    for m in MEASURES:
        t = time.perf_counter()
        sim = xp.similarity(acts, [m], pairs=pairs, null_permutations=0, bootstrap=0, progress=False)
        seconds[m] = time.perf_counter() - t
        curves[m] = np.mean([[sim.sel(m, layer, a, b) for layer in sim.layers] for a, b in pairs], axis=0)
        print(f"{m:>15}: peak layer {int(np.argmax(curves[m]))}, {seconds[m]:.1f} s")
    names = list(curves)
    rho = np.array([[spearmanr(curves[a], curves[b])[0] for b in names] for a in names])
    print("\nSpearman rank correlation of the per-layer curves (mean over en-X pairs):")
    print(" " * 15 + "".join(f"{n[:8]:>9}" for n in names))
    for n, row in zip(names, rho):
        print(f"{n:>15}" + "".join(f"{v:9.2f}" for v in row))
    ref = "cka_debiased"
    agree = [n for n in names if n != ref and rho[names.index(ref), names.index(n)] >= 0.7]
    disagree = [n for n in names if n != ref and rho[names.index(ref), names.index(n)] <= 0.0]
    out = {
        "what": "rank agreement of per-layer similarity curves between measures (mean over en-X pairs)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_1min_start_end": [load0, os.getloadavg()[0]]},
        "data": {"corpus": source, "languages": list(corpus.languages), "sentences": len(corpus.ids),
                 "pairs": [f"{a}-{b}" for a, b in pairs], "pooling": "mean", "layers": list(map(int, sim.layers))},
        "extract_seconds": extract_s, "seconds_per_measure": seconds,
        "curves": {m: np.round(c, 5).tolist() for m, c in curves.items()},
        "peak_layer": {m: int(np.argmax(c)) for m, c in curves.items()},
        "spearman": {"measures": names, "matrix": np.round(rho, 3).tolist()},
        "agree_with_cka_debiased_rho_ge_0.7": agree, "disagree_with_cka_debiased_rho_le_0": disagree,
    }
    path = HERE / "results" / "measures_agreement.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
