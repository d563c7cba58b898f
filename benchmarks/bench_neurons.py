"""Language neurons (LAPE) on the offline Gemma 3 270M and PUD (issue 15).

Measures:
(a) the activation-probability pass (hooks counting > 0 and summing values in every FFN) in tokens/s vs a
    bare forward of the same base model over the very same batches (target: >= 0.8x), and its peak RSS;
(b) perplexity evaluation with and without an intervention hook (a language's neurons set to 0)
    (target: the hook costs <= 10%);
(c) the perplexity-change matrix for >= 8 languages of different scripts: neurons selected on the first
    ``--fit`` sentences, perplexity on ``--heldout`` later sentences; diagonal vs off-diagonal mean, and the
    same for the random control (same count per block).

Timings take the best of ``--repeats`` interleaved runs (the machine may be shared). The fit pass uses the
neuron cache (a second run of the script reuses it; ``--no-cache`` recomputes).

Usage: python benchmarks/bench_neurons.py [--fit 200] [--heldout 8] [--langs en,de,ru,zh,ja,ar,hi,ko]
Writes benchmarks/results/neurons.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _memory import PeakRSS  # noqa: E402

PUD = HERE.parent.parent / "shared" / "data" / "pud" / "pud_1000.tsv"
LANGS = "en,de,ru,zh,ja,ar,hi,ko"


def batches_of(model, texts, batch_size, max_length):
    from xling_probe.extraction.runners import pad_batch, tokenize

    tok = tokenize(model.tokenizer, texts, max_length)
    order = sorted(range(len(texts)), key=lambda k: -len(tok.ids[k]))
    side = model.tokenizer.padding_side or "right"
    return [pad_batch([tok.ids[k] for k in order[s:s + batch_size]], [tok.special[k] for k in order[s:s + batch_size]],
                      model.tokenizer.pad_token_id, side) for s in range(0, len(order), batch_size)]


def speed(model, corpus, args) -> dict:
    import torch

    from xling_probe.extraction.runners import model_inputs
    from xling_probe.neurons.probabilities import count_texts

    texts = {lang: list(corpus.sentences[lang][: args.speed_sentences]) for lang in ("en", "zh")}
    batches = [b for t in texts.values() for b in batches_of(model, t, args.batch_size, args.max_length)]
    n_tokens = sum(int((b["attention_mask"].bool() & ~b["special_tokens_mask"].bool()).sum()) for b in batches)
    n_all = sum(int(b["attention_mask"].sum()) for b in batches)
    def run_bare():
        with torch.inference_mode():
            for b in batches:
                model.parts.runner(**model_inputs(model, b))

    def run_hooked():
        for lang, tx in texts.items():
            count_texts(model, tx, lang, batch_size=args.batch_size, max_length=args.max_length)

    # interleaved, the order rotating per repeat; the ratio is the median of per-repeat ratios (a shared
    # machine changes speed between repeats, not within one pair of runs)
    bare, hooked, loads = [], [], []
    with PeakRSS() as mem:
        for r in range(args.repeats):
            times = {}
            for name in (("bare", "hooked") if r % 2 == 0 else ("hooked", "bare")):
                t = time.perf_counter()
                (run_bare if name == "bare" else run_hooked)()
                times[name] = time.perf_counter() - t
            bare.append(times["bare"]), hooked.append(times["hooked"]), loads.append(os.getloadavg()[0])
    ratios = [b / h for b, h in zip(bare, hooked)]
    return {"sentences": sum(len(t) for t in texts.values()), "languages": list(texts), "tokens_counted": n_tokens,
            "tokens_in_batches": n_all, "bare_forward_s": float(np.median(bare)),
            "probabilities_s": float(np.median(hooked)),
            "bare_tokens_per_s": n_all / float(np.median(bare)), "probabilities_tokens_per_s": n_all / float(np.median(hooked)),
            "ratio": float(np.median(ratios)), "ratio_per_repeat": ratios, "target_ratio": 0.8,
            "note": "the probabilities pass includes its own tokenization and batching; the bare forward gets "
                    "pre-tokenized batches", "load_average_1min": loads,
            "peak_rss_above_start_mib": round(mem.mib, 1),
            "peak_rss_mib": round(mem.peak / 2**20, 1), "all_runs_s": {"bare": bare, "probabilities": hooked}}


def hook_cost(model, held, sel, args) -> dict:
    from xling_probe.neurons import neuron_intervention
    from xling_probe.neurons.perplexity import nll

    lang = "en" if len(sel.index("en")) else next(x for x in sel.languages if len(sel.index(x)))
    texts = list(held.sentences[lang])
    plain, hooked = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        _, n = nll(model, texts, batch_size=args.batch_size, max_length=args.max_length)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        with neuron_intervention(model, sel, language=lang):
            nll(model, texts, batch_size=args.batch_size, max_length=args.max_length)
        hooked.append(time.perf_counter() - t)
    return {"language": lang, "sentences": len(texts), "tokens": n, "neurons_hooked": int(len(sel.index(lang))),
            "plain_s": min(plain), "hooked_s": min(hooked), "overhead": min(hooked) / min(plain) - 1.0,
            "target_overhead": 0.10, "all_runs_s": {"plain": plain, "hooked": hooked}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langs", default=LANGS)
    ap.add_argument("--fit", type=int, default=200, help="sentences per language the neurons are selected on")
    ap.add_argument("--heldout", type=int, default=8, help="held-out sentences per language for the perplexity")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--speed-sentences", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--only-speed", action="store_true",
                    help="rerun (a) only and update that entry of an existing --out file")
    ap.add_argument("--out", default=str(HERE / "results" / "neurons.json"))
    args = ap.parse_args()
    import torch

    import xling_probe as xp

    started = time.perf_counter()
    model = xp.load_model(device="cpu")
    langs = args.langs.split(",")
    corpus = xp.ParallelCorpus.from_tsv(PUD, languages=langs)
    fit = corpus.head(args.fit)
    held = corpus.take(corpus.ids[args.fit:args.fit + args.heldout])
    result = {"model": model.name, "fingerprint": model.fingerprint, "corpus": "PUD (../shared/data/pud/pud_1000.tsv)",
              "languages": langs, "fit_sentences": len(fit), "heldout_sentences": len(held),
              "max_length": args.max_length, "batch_size": args.batch_size,
              "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "platform": platform.platform(), "torch": torch.__version__}}
    print("(a) activation-probability pass vs bare forward ...", flush=True)
    result["probabilities_speed"] = speed(model, fit, args)
    print(json.dumps({k: v for k, v in result["probabilities_speed"].items() if k != "all_runs_s"}, indent=1))
    if args.only_speed:
        old = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
        old["probabilities_speed"] = result["probabilities_speed"]
        Path(args.out).write_text(json.dumps(old, indent=1, default=float))
        print(f"updated probabilities_speed in {args.out}")
        return
    print(f"(c) fit: activation probabilities on {len(fit)} sentences x {len(langs)} languages ...", flush=True)
    t = time.perf_counter()
    with PeakRSS() as mem:
        probs = xp.activation_probabilities(model, fit, batch_size=args.batch_size, max_length=args.max_length,
                                            cache=not args.no_cache)
    fit_s = time.perf_counter() - t
    sel = xp.select_language_neurons(probs)
    result["selection"] = {"fit_s": fit_s, "fit_peak_rss_above_start_mib": round(mem.mib, 1),
                           "tokens": {k: int(v) for k, v in zip(probs.languages, probs.tokens)},
                           "counts": sel.counts(), "thresholds": sel.thresholds, "settings": sel.settings,
                           "per_layer": sel.per_layer().to_dict(orient="list"),
                           "overlap": sel.overlap().to_dict(orient="index")}
    print(sel)
    print("(b) perplexity with and without the hook ...", flush=True)
    result["hook_cost"] = hook_cost(model, held, sel, args)
    print(json.dumps({k: v for k, v in result["hook_cost"].items() if k != "all_runs_s"}, indent=1))
    print(f"(c) perplexity-change matrix on {len(held)} held-out sentences (with the random control) ...", flush=True)
    t = time.perf_counter()
    ppl = xp.perplexity_change(model, held, sel, batch_size=args.batch_size, max_length=args.max_length)
    summary = ppl.summary()
    result["perplexity_change"] = {"seconds": time.perf_counter() - t, "summary": summary,
                                   "ppl_before": dict(zip(ppl.evaluated, ppl.base.tolist())),
                                   "tokens": dict(zip(ppl.evaluated, ppl.tokens.tolist())),
                                   "ratio": ppl.matrix().round(4).to_dict(orient="index"),
                                   "random_ratio": ppl.matrix(control=True).round(4).to_dict(orient="index"),
                                   "diagonal_is_row_max": {a: bool(ppl.matrix().loc[a].idxmax() == a) for a in ppl.off}}
    print(ppl.matrix().round(3).to_string())
    print(ppl.matrix(control=True).round(3).to_string())
    print(json.dumps(summary, indent=1))
    result["total_s"] = time.perf_counter() - started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print(f"total {result['total_s']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
