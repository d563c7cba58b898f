"""Interventions on the offline Gemma 3 270M: hook overhead, and the real-model checks of steering, INCLINE, patching.

Measures (PUD from ../shared/data; fit on the first --fit sentences, evaluate on later ones):

1. ``overhead``: a plain forward pass vs the same pass with a steering edit installed at a middle layer
   (interleaved, rotating order, medians of per-unit ratios; load average recorded). Target <= 1.10.
2. ``steering``: fr -> zh and en -> de vectors (mean-pooled states, fit split), layer x alpha with the
   random-direction control: continuation language (lingua), word switch on repetition prompts, the
   reference translation's log-probability and its cost; the best cell by continuation share.
3. ``incline``: maps into English from fr, de, zh, ar (last-token states of the fit split, ridge 1.0),
   layer x sigma: the reference log-probability gain and the English word's probability on word
   translation prompts, with intervals.
4. ``patching``: de->it translation prompts patched into fr->zh ones at the last position, every third
   layer, with the unrelated-sentence control.

Usage: python benchmarks/bench_interventions.py [--cases overhead,steering,incline,patching] [--items 16]
Writes benchmarks/results/interventions.json (cases not run keep their previous entry).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "interventions.json"
PUD = HERE.parent.parent / "shared" / "data" / "pud" / "pud_1000.tsv"


def _rows(res, measure, **labels):
    t = res.sel(measure, **labels)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in t.to_dict("records")]


def case_overhead(model, corpus, reps: int = 7) -> dict:
    import torch

    from xling_probe.interventions.mechanism import AddVector, intervene
    from xling_probe.interventions.run import encode, left_pad, logits

    rows = encode(model, list(corpus.sentences["en"][:8]))
    ids, mask = left_pad(rows, model.tokenizer.pad_token_id)
    v = torch.randn(model.d_model)
    variants = {"plain": [], "steered": [AddVector(model.n_blocks // 2, vector=v, alpha=1.0)]}
    times = {k: [] for k in variants}
    logits(model, ids, mask, keep=1)  # warm-up
    for r in range(reps):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for name in order:
            t = time.perf_counter()
            with intervene(model, variants[name]):
                logits(model, ids, mask, keep=1)
            times[name].append(time.perf_counter() - t)
    ratios = [s / p for s, p in zip(times["steered"], times["plain"])]
    return {"batch": list(ids.shape), "plain_s_median": float(np.median(times["plain"])),
            "steered_s_median": float(np.median(times["steered"])), "ratio_median": float(np.median(ratios)),
            "target": "<= 1.10", "load_average": os.getloadavg()}


def case_steering(model, corpus, acts, items: int, pairs=(("fr", "zh"), ("en", "de")), layers=(3, 6, 9, 12, 15),
                  alphas=(1.0, 2.0, 4.0, 8.0), max_new_tokens: int = 16) -> dict:
    import xling_probe as xp

    out = {}
    for a, b in pairs:
        v = xp.steering_vectors(acts, a, b, ids=list(acts.ids))
        t = time.perf_counter()
        res = xp.steer(model, v, corpus=corpus, layers=list(layers), alphas=list(alphas),
                       n_items=items, max_new_tokens=max_new_tokens, progress=False)
        best = res.best("continuation_target", kind="vector")
        L, al = int(best["layer"]), float(best["alpha"])
        pick = {m: _rows(res, m, layer=L, alpha=al) for m in ("continuation_target", "word_switch",
                                                              "translation_cost", "p_target_word")}
        out[f"{a}->{b}"] = {
            "seconds": round(time.perf_counter() - t, 1), "best_layer": L, "best_alpha": al,
            "at_best": pick,
            "baseline": {m: _rows(res, m, layer=L, alpha=0.0, kind="vector")
                         for m in ("continuation_target", "word_switch", "translation_logprob")},
            "grid_continuation_vector": res.grid("continuation_target", "layer", "alpha", kind="vector").round(3)
            .to_dict(),
            "grid_continuation_random": res.grid("continuation_target", "layer", "alpha", kind="random").round(3)
            .to_dict(),
            "grid_cost_vector": res.grid("translation_cost", "layer", "alpha", kind="vector").round(3).to_dict(),
            "grid_word_switch_vector": res.grid("word_switch", "layer", "alpha", kind="vector").round(3).to_dict(),
            "vector_norms": res.settings["vector_norms"],
        }
        print(a, b, json.dumps(out[f"{a}->{b}"]["at_best"])[:600], flush=True)
    return out


def case_incline(model, corpus, items: int, fit: int) -> dict:
    import xling_probe as xp

    out = {}
    langs = ["fr", "de", "zh", "ar"]
    sub = corpus.select_languages(["en", *langs])
    acts = xp.extract(model, sub.head(fit), pooling="last", progress=False)
    for s in langs:
        maps = xp.fit_incline(acts, s, "en", alpha=1.0)
        t = time.perf_counter()
        res = xp.incline(model, maps, sub, layers=[3, 6, 9, 12, 15], sigmas=[0.25, 0.5, 1.0], n_items=items,
                         progress=False)
        out[s] = {"seconds": round(time.perf_counter() - t, 1),
                  "reference_gain": res.grid("reference_gain", "layer", "sigma").round(4).to_dict(),
                  "reference_gain_rows": _rows(res, "reference_gain"),
                  "word_gain": res.grid("word_gain", "layer", "sigma").round(4).to_dict()
                  if "word_gain" in set(res.table["measure"]) else None,
                  "baseline_reference_logprob": _rows(res, "reference_logprob", sigma=0.0, layer=3)}
        print("incline", s, json.dumps(out[s]["reference_gain"])[:400], flush=True)
    return out


def case_patching(model, items: int) -> dict:
    import xling_probe as xp

    t = time.perf_counter()
    res = xp.concept_patching(model, source=("de", "it"), target=("fr", "zh"), layers=list(range(0, 19, 3)),
                              positions=[-1], n_pairs=items, progress=False)
    grid = {kind: {m: res.grid(m, "layer", "position", kind=kind).round(4).to_dict() for m in res.measures}
            for kind in ("translation", "unrelated")}
    return {"seconds": round(time.perf_counter() - t, 1), "pairs": res.settings["n_pairs"], "grid": grid,
            "rows": [_rows(res, m) for m in res.measures]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="overhead,steering,incline,patching")
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--fit", type=int, default=200)
    ap.add_argument("--steer-pairs", default="fr-zh,en-de", help="steering pairs, e.g. fr-zh,en-de")
    ap.add_argument("--steer-layers", default="3,6,9,12,15")
    ap.add_argument("--steer-alphas", default="1,2,4,8")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()
    if not PUD.is_file():
        sys.exit(f"needs {PUD} (../shared/data next to the repository)")
    import xling_probe as xp

    model = xp.load_model(device="cpu")
    corpus = xp.ParallelCorpus.from_tsv(PUD, languages=["en", "fr", "de", "zh", "ar", "it"])
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    cases = args.cases.split(",")
    results["model"] = model.name
    results["corpus"] = "PUD (../shared/data/pud/pud_1000.tsv)"
    if "overhead" in cases:
        results["overhead"] = case_overhead(model, corpus)
        print("overhead", results["overhead"], flush=True)
    if "steering" in cases:
        acts = xp.extract(model, corpus.head(args.fit), progress=False)
        pairs = [tuple(p.split("-")) for p in args.steer_pairs.split(",")]
        part = case_steering(model, corpus, acts, args.items, pairs=pairs,
                             layers=[int(x) for x in args.steer_layers.split(",")],
                             alphas=[float(x) for x in args.steer_alphas.split(",")],
                             max_new_tokens=args.max_new_tokens)
        results.setdefault("steering", {}).update(part)  # one pair per run keeps the others' entries
    if "incline" in cases:
        results["incline"] = case_incline(model, corpus, args.items, args.fit)
    if "patching" in cases:
        results["patching"] = case_patching(model, args.items)
        print("patching", json.dumps(results["patching"]["grid"])[:800], flush=True)
    results.setdefault("settings", {})[",".join(cases)] = {
        "items": args.items, "fit": args.fit, "load_average_end": os.getloadavg(),
        **({"steer_layers": args.steer_layers, "steer_alphas": args.steer_alphas,
            "max_new_tokens": args.max_new_tokens} if "steering" in cases else {})}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
