"""A tuned lens trained on multilingual text, on the offline Gemma 3 270M (issue 17, item 5).

1. Trains :func:`xling_probe.train_tuned_lens` from scratch (no cache) on the first ``--sentences``
   PUD sentences of 8 languages (the bundled sample when ../shared is absent) and records the
   wall-clock time of each phase.
2. Evaluates it against the logit lens with the exact full-vocabulary KL to the final layer on
   sentences it never saw: the last PUD sentences of two training languages and of three
   languages it was not trained on.
3. Runs the fr -> zh drift of Wendler et al. (bundled word list) through both lenses.

Usage: python benchmarks/bench_tuned_lens.py [--sentences 100] [--eval-tokens 48] [--items 40]
Writes benchmarks/results/tuned_lens.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PUD = HERE.parents[1] / "shared" / "data" / "pud" / "pud_1000.tsv"
TRAIN = ["en", "de", "fr", "es", "ru", "zh", "ar", "hi"]
HELD_OUT = ["ja", "ko", "fi"]


def read_pud() -> dict[str, list[str]] | None:
    if not PUD.is_file():
        return None
    with open(PUD, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return {lang: [r[lang] for r in rows] for lang in rows[0] if lang not in ("id", "orig_lang")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=100)
    ap.add_argument("--eval-tokens", type=int, default=48)
    ap.add_argument("--items", type=int, default=40)
    args = ap.parse_args()

    import numpy as np
    import torch

    import xling_probe as xp

    torch.set_num_threads(os.cpu_count() or 1)
    load0 = os.getloadavg()[0]
    model = xp.load_model()
    texts = read_pud()
    source = "PUD (../shared/data/pud/pud_1000.tsv)"
    if texts is None:
        corpus = xp.ParallelCorpus.sample()
        texts = {lang: list(corpus.texts(lang)) for lang in corpus.languages}
        source = "bundled sample"
    held_langs = [lang for lang in HELD_OUT if lang in texts]
    t0 = time.perf_counter()
    lens = xp.train_tuned_lens(model, {lang: texts[lang] for lang in TRAIN}, n_sentences=args.sentences,
                               cache=False, progress=False)
    train_seconds = time.perf_counter() - t0
    print(f"trained in {train_seconds:.0f} s (states {lens.meta['seconds_states']:.0f} s); "
          f"identity layers {lens.meta['identity_layers']}; vocabulary coverage {lens.meta['vocab_coverage']:.3f}")

    evaluation = {lang: texts[lang][-20:] for lang in ["en", "zh"] + held_langs}
    t1 = time.perf_counter()
    cmp = xp.compare_lenses(model, lens, evaluation, max_tokens=args.eval_tokens)
    eval_seconds = time.perf_counter() - t1
    curves = {}
    for group, langs in (("trained_languages_held_out_sentences", ["en", "zh"]),
                         ("held_out_languages", held_langs)):
        mask = np.isin(np.asarray(cmp.groups), langs)
        curves[group] = {"languages": langs, "positions": int(mask.sum()),
                         "kl_bits_logit": cmp.kl_logit[mask].mean(0).round(4).tolist(),
                         "kl_bits_tuned": cmp.kl_tuned[mask].mean(0).round(4).tolist()}
        lo, tu = np.asarray(curves[group]["kl_bits_logit"]), np.asarray(curves[group]["kl_bits_tuned"])
        print(f"{group}: KL logit/tuned at layers 3, 9, 15: "
              + ", ".join(f"{lo[l]:.2f}/{tu[l]:.2f}" for l in (3, 9, 15)))
    per_language = {lang: {"logit": cmp.curve("logit", lang).round(4).tolist(),
                           "tuned": cmp.curve("tuned", lang).round(4).tolist()} for lang in evaluation}

    drift = {}
    t2 = time.perf_counter()
    for name, tuned in (("logit", None), ("tuned", lens)):
        r = xp.language_drift(model, source="fr", target="zh", limit=args.items, tuned=tuned, progress=False,
                              cache=False)
        drift[name] = {m: r.curve(m).round(5).tolist() for m in ("p_target", "p_latent", "p_source", "kl_to_final_bits")}
        pl = np.asarray(drift[name]["p_latent"])
        pt = np.asarray(drift[name]["p_target"])
        drift[name]["latent_peak_layer"] = int(pl.argmax())
        drift[name]["latent_peak"] = float(pl.max())
        drift[name]["first_layer_target_above_latent"] = next((int(l) for l in range(len(pt)) if pt[l] > pl[l]), None)
        print(f"fr->zh {name}: P(en) peaks at layer {pl.argmax()} ({pl.max():.3f}); P(zh) passes P(en) at layer "
              f"{drift[name]['first_layer_target_above_latent']}")
    drift_seconds = time.perf_counter() - t2

    out = {
        "what": "multilingual tuned lens on Gemma 3 270M: training time, exact KL to the final layer vs the logit lens, fr->zh drift through both",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "load_average_1min_start_end": [load0, os.getloadavg()[0]],
                    "note": "2 shared CPU cores, no GPU; times are wall clock of one run"},
        "training": {"corpus": source, "languages": TRAIN, "sentences_per_language": args.sentences,
                     "tokens": lens.meta["n_tokens"], "validation_tokens": lens.meta["n_validation"],
                     "steps": lens.meta["steps"], "lr": lens.meta["lr"], "init": lens.meta["init"],
                     "vocab_top": lens.meta["vocab_top"], "vocab_tail_sampled": lens.meta["vocab_tail_sampled"],
                     "vocab_coverage": lens.meta["vocab_coverage"], "identity_layers": lens.meta["identity_layers"],
                     "seconds_total": train_seconds, "seconds_states": lens.meta["seconds_states"],
                     "validation_kl_bits_logit": lens.meta["validation_kl_bits_logit"],
                     "validation_kl_bits_fitted": lens.meta["validation_kl_bits_fitted"]},
        "evaluation": {"sentences": "the last 20 of each language (never trained on)", "tokens_per_language": args.eval_tokens,
                       "seconds": eval_seconds, **curves, "per_language": per_language},
        "drift_fr_zh": {"items": args.items, "seconds_both": drift_seconds, **drift},
    }
    path = HERE / "results" / "tuned_lens.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
