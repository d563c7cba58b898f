"""Language distance as an explanation, and the transliteration gap, on the offline model (issue 17, items 3-4).

Offline Gemma 3 270M (``xp.load_model()``), PUD (``../shared/data/pud/pud_1000.tsv``), the first
``--sentences`` sentences of ``--languages``. Per layer:

1. representation similarity (``cka_debiased`` and ``p@1``, no null / bootstrap) for every pair;
2. URIEL+ distances (``source="urielplus"``: integrated databases, cached) and script identity;
3. ``distance_correlations``: Spearman Mantel r with each distance kind, permutation p (999, seed 0),
   partial r controlling for script;
4. the transliteration gap (matched - random cosine) for English with each non-Latin-script language,
   original vs romanized (uroman), with 95% bootstrap intervals.

Usage: python benchmarks/bench_distances.py [--sentences 60] [--languages en,de,...] [--permutations 999]
Writes benchmarks/results/distances.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import xling_probe as xp
from xling_probe.distances import distance_correlations, language_distances
from xling_probe.transliteration import romanize, transliteration_gap

HERE = Path(__file__).resolve().parent
PUD = HERE.parent.parent / "shared" / "data" / "pud" / "pud_1000.tsv"
LANGS = "en,de,fr,es,pt,it,pl,ru,fi,tr,zh,ja,ko,ar,hi"


def _records(frame):
    return json.loads(frame.to_json(orient="records"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=60)
    ap.add_argument("--languages", default=LANGS)
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument("--source", default="urielplus")
    ap.add_argument("--out", default=str(HERE / "results" / "distances.json"))
    args = ap.parse_args()
    langs = args.languages.split(",")
    timings = {}

    t = time.perf_counter()
    model = xp.load_model()
    timings["load_model_s"] = time.perf_counter() - t
    corpus = xp.ParallelCorpus.from_tsv(PUD, languages=langs).head(args.sentences)

    t = time.perf_counter()
    acts = xp.extract(model, corpus, progress=False)
    timings["extract_s"] = time.perf_counter() - t

    t = time.perf_counter()
    sim = xp.similarity(acts, ["cka_debiased", "p@1"], null_permutations=0, bootstrap=0, progress=False)
    timings["similarity_s"] = time.perf_counter() - t

    t = time.perf_counter()
    dist = language_distances(list(corpus.languages), source=args.source)
    timings["distances_s"] = time.perf_counter() - t
    print(dist)
    print(dist.coverage().to_string(index=False))

    t = time.perf_counter()
    tables = {m: distance_correlations(sim, dist, m, permutations=args.permutations, seed=0)
              for m in ("cka_debiased", "p@1")}
    timings["mantel_s"] = time.perf_counter() - t
    for m, table in tables.items():
        print(f"\n== {m}: Spearman r (p) with each distance, by layer; partial r controlling for script")
        wide = table.pivot(index="layer", columns="kind", values="r").round(2)
        print(wide.to_string())
        print("p-values:")
        print(table.pivot(index="layer", columns="kind", values="p").round(3).to_string())
        print("partial r | script:")
        print(table.pivot(index="layer", columns="kind", values="partial_r").round(2).to_string())

    # transliteration: English with each language not written in Latin script
    non_latin = [c for c in corpus.languages if dist.scripts.get(c) not in (None, "Latn")]
    # only English and the non-Latin languages are romanized and re-extracted (Latin text barely changes;
    # this keeps the run short on 2 shared cores)
    sub = corpus.select_languages(["en", *non_latin])
    t = time.perf_counter()
    roman = romanize(sub)
    timings["romanize_s"] = time.perf_counter() - t
    t = time.perf_counter()
    acts_r = xp.extract(model, roman, progress=False)
    timings["extract_romanized_s"] = time.perf_counter() - t
    gap = transliteration_gap(acts.sel(languages=list(sub.languages)), acts_r, pairs=[("en", c) for c in non_latin],
                              n_boot=1000, seed=0)
    change = gap[gap["version"] == "romanized - original"]
    print("\n== transliteration: change of the matched - random gap (romanized - original), by layer")
    print(change.pivot(index="layer", columns="lang_b", values="gap").round(3).to_string())
    examples = {c: [corpus.sentences[c][0], roman.sentences[c][0]] for c in non_latin}

    summary = {}
    for m, table in tables.items():
        per_kind = {}
        for kind, sub in table.groupby("kind"):
            best = sub.loc[sub["r"].idxmin()]
            per_kind[kind] = {"mean_r": float(sub["r"].mean()), "most_negative_layer": int(best["layer"]),
                              "most_negative_r": float(best["r"]), "p_there": float(best["p"]),
                              "layers_p_below_0.05": int((sub["p"] < 0.05).sum())}
        summary[m] = per_kind
    out = {
        "what": "Spearman Mantel correlation of representation similarity with URIEL+ distances, per layer; "
                "transliteration gap en-X original vs romanized",
        "model": model.name if hasattr(model, "name") else str(model),
        "corpus": "../shared/data/pud/pud_1000.tsv", "languages": list(corpus.languages), "n_sentences": len(corpus),
        "permutations": args.permutations, "seed": 0, "source": args.source,
        "distances": {"iso639_3": dist.iso639_3, "unmapped": list(dist.unmapped), "missing": dist.missing,
                      "scripts": dist.scripts, "coverage": _records(dist.coverage())},
        "correlations": {m: _records(t) for m, t in tables.items()},
        "summary": summary,
        "transliteration": {"pairs": [["en", c] for c in non_latin], "table": _records(gap), "examples": examples,
                            "mean_change_by_layer": {int(k): float(v) for k, v in
                                                     change.groupby("layer")["gap"].mean().items()}},
        "timings_s": timings, "machine": platform.platform(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=lambda x: None if x is None or
                                         (isinstance(x, float) and np.isnan(x)) else str(x)))
    print("\nsummary:", json.dumps(summary, indent=1))
    print("timings:", json.dumps(timings))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
