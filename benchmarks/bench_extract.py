"""Extraction throughput and memory on the offline Gemma 3 270M (issue: foundation).

Measures, on 5 PUD languages x N sentences, all 19 residual states, mean pooling:
1. tokens/s of ``extract`` (hooks + pooling + storage) vs a bare ``model.model(**batch)`` loop over
   the very same batches (target: ratio >= 0.9);
2. vs a MEXA-style loop: one sentence at a time with ``output_hidden_states=True`` and a pooled
   vector per layer (target: >= 3x faster);
3. peak resident memory for 200 and 1000 sentences per language, each in a fresh process, and how it
   grows compared with the size of the pooled states themselves.

Usage: python benchmarks/bench_extract.py [--sentences 200] [--memory-sizes 200,1000]
Writes benchmarks/results/extract.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _memory import PeakRSS  # noqa: E402

PUD = HERE.parent.parent / "shared" / "data" / "pud" / "pud_1000.tsv"
LANGS = ["en", "de", "zh", "ru", "ar"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load(n: int):
    import xling_probe as xp

    model = xp.load_model(device="cpu")
    corpus = xp.ParallelCorpus.from_tsv(PUD, languages=LANGS).head(n)
    return xp, model, corpus


def throughput(n: int, batch_size: int, repeats: int) -> dict:
    import importlib

    import torch

    xp, model, corpus = load(n)
    ex = importlib.import_module("xling_probe.extraction.runners")
    layers = list(range(model.n_states))
    # The exact batches extract() builds: tokenized, sorted by length, padded.
    batches, n_tokens = [], 0
    for lang in corpus.languages:
        tok = ex.tokenize(model.tokenizer, corpus.sentences[lang], 512)
        order = sorted(range(len(corpus)), key=lambda k: -len(tok.ids[k]))
        n_tokens += sum(len(r) for r in tok.ids)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            batches.append(ex.pad_batch([tok.ids[k] for k in idx], [tok.special[k] for k in idx],
                                        model.tokenizer.pad_token_id, model.tokenizer.padding_side))

    def bare():
        with torch.inference_mode():
            for b in batches:
                model.parts.runner(**ex.model_inputs(model, b))

    def ours():
        xp.extract(model, corpus, layers=layers, batch_size=batch_size, cache=False, progress=False)

    def mexa_style():
        """Strict variant: one sentence at a time through the base model (no LM head), all hidden
        states, a position-weighted mean per layer."""
        out = []
        with torch.inference_mode():
            for lang in corpus.languages:
                for text in corpus.sentences[lang]:
                    enc = model.tokenizer(text, return_tensors="pt")
                    hs = model.parts.runner(**enc, output_hidden_states=True).hidden_states
                    T = enc["input_ids"].shape[1]
                    w = torch.arange(1, T + 1, dtype=torch.float32)
                    out.append(torch.stack([(h[0] * w[:, None]).sum(0) / w.sum() for h in hs]).numpy())
        return out

    def mexa_published():
        """As MEXA's published extractor works: the causal-LM object called on one sentence at a time
        with output_hidden_states=True (so the vocabulary head runs too), then for every layer the
        position-weighted mean and the last-token vector, each stored as float16 numpy."""
        out = []
        with torch.no_grad():
            for lang in corpus.languages:
                for text in corpus.sentences[lang]:
                    enc = model.tokenizer(text, return_tensors="pt", padding=True)
                    mask = enc["attention_mask"]
                    layers_out = model.model(**enc, output_hidden_states=True)["hidden_states"]
                    per_layer = []
                    for h in layers_out:
                        w = mask * torch.arange(1, h.shape[1] + 1).unsqueeze(0)
                        weighted = (h * w.unsqueeze(-1)).sum(1) / w.sum(-1, keepdim=True)
                        last = h[0, int(mask.sum()) - 1]
                        per_layer.append((weighted.squeeze().to(torch.float16).numpy(), last.to(torch.float16).numpy()))
                    out.append(per_layer)
        return out

    bare()  # warm-up (allocator, kernels)
    timings = {}
    loops = (("bare_forward", bare), ("extract", ours), ("mexa_style_loop", mexa_style),
             ("mexa_published_loop", mexa_published))
    for name, fn in loops:
        best = float("inf")
        for _ in range(repeats if not name.startswith("mexa") else 1):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        timings[name] = best
    return {
        "sentences_per_language": n,
        "languages": LANGS,
        "states": len(layers),
        "batch_size": batch_size,
        "tokens": n_tokens,
        "seconds": timings,
        "tokens_per_s": {k: n_tokens / v for k, v in timings.items()},
        "extract_vs_bare_ratio": timings["bare_forward"] / timings["extract"],
        "speedup_vs_mexa_style": timings["mexa_style_loop"] / timings["extract"],
        "speedup_vs_mexa_published_style": timings["mexa_published_loop"] / timings["extract"],
        "loops": {
            "mexa_published_loop": "MEXA's published extractor style: AutoModelForCausalLM called on one sentence at a "
                                   "time with output_hidden_states=True (the 262k-vocabulary head runs too), weighted "
                                   "and last-token vectors per layer as float16 numpy",
            "mexa_style_loop": "stricter: the same loop through the base model only (no vocabulary head), weighted "
                               "mean per layer",
        },
    }


def tl_vs_bare(n: int, batch_size: int, rounds: int) -> dict:
    """Issue 19 item 1: ``backend="transformer_lens"`` extraction vs a bare eager forward, interleaved.

    Units are extract()'s batches (all languages, sorted by length, ``batch_size`` sentences); per unit,
    in a rotating order: ``bare_eager`` (a copy of the HF base model with eager attention, not wrapped by
    the bridge: the floor), ``tl_extract_batch`` (exactly what ``extract`` runs per batch on the TL backend:
    pooling weights, the bridge's hooked forward with all 19 states pooled in the hooks, stopped after the
    last block) and ``tl_whole_forward`` (the same without the stop: the final norm and the
    262k-vocabulary head run on every position, as before the fix). Units of one batch keep the variants
    of a unit seconds apart, so the load of other processes hits them alike. ``extract_end_to_end`` is
    ``extract`` itself per language (coarse, also interleaved), for the tokenization and storage on top.
    """
    import importlib

    import torch

    sys.path.insert(0, str(HERE))
    from _interleave import bare_eager_runner, interleaved

    xp, hf, corpus = load(n)
    tl = xp.load_model(hf, backend="transformer_lens", device="cpu")  # a copy of the model, eager attention
    floor = bare_eager_runner(hf)  # another copy, eager, not wrapped by the bridge
    ex = importlib.import_module("xling_probe.extraction.runners")
    pooling = importlib.import_module("xling_probe.extraction.pooling")
    layers = list(range(tl.n_states))
    batches, n_tokens = [], 0
    for lang in corpus.languages:
        tok = ex.tokenize(tl.tokenizer, corpus.sentences[lang], 512)
        order = sorted(range(len(corpus)), key=lambda k: -len(tok.ids[k]))
        n_tokens += sum(len(r) for r in tok.ids)
        batches += [ex.pad_batch([tok.ids[k] for k in order[s:s + batch_size]],
                                 [tok.special[k] for k in order[s:s + batch_size]],
                                 tl.tokenizer.pad_token_id, tl.tokenizer.padding_side)
                    for s in range(0, len(order), batch_size)]

    def bare(b):
        with torch.inference_mode():
            floor(**ex.model_inputs(tl, b))

    def pooled(early_stop):
        runner = ex.TLRunner(tl, layers, early_stop=early_stop)

        def go(b):
            with torch.inference_mode():
                w = pooling.pooling_weights(b["attention_mask"], b["special_tokens_mask"], "mean")
                runner(b, w).cpu().numpy()
        return go

    res = interleaved(batches, {"bare_eager": bare, "tl_extract_batch": pooled(True),
                                "tl_whole_forward": pooled(False)}, floor="bare_eager", rounds=rounds)

    def bare_lang(lang):
        for b in per_lang[lang]:
            bare(b)

    per_lang = {}
    for lang in corpus.languages:
        tok = ex.tokenize(tl.tokenizer, corpus.sentences[lang], 512)
        order = sorted(range(len(corpus)), key=lambda k: -len(tok.ids[k]))
        per_lang[lang] = [ex.pad_batch([tok.ids[k] for k in order[s:s + batch_size]],
                                       [tok.special[k] for k in order[s:s + batch_size]],
                                       tl.tokenizer.pad_token_id, tl.tokenizer.padding_side)
                          for s in range(0, len(order), batch_size)]
    end = interleaved(list(corpus.languages), {
        "bare_eager": bare_lang,
        "extract_end_to_end": lambda lang: xp.extract(tl, corpus.select_languages([lang]), batch_size=batch_size,
                                                      cache=False, progress=False)}, floor="bare_eager", warmup=False)
    res.update(sentences_per_language=n, batch_size=batch_size, states=len(layers), tokens=n_tokens,
               extract_end_to_end_per_language=end,
               attention={"tl": getattr(tl.model.config, "_attn_implementation", None),
                          "bare": getattr(floor.config, "_attn_implementation", None)},
               target="tl_extract_batch speed_vs_floor >= 0.9 (issue 19 item 1)")
    return res


def bare_forward_memory(model, corpus, batch_size: int) -> float:
    """Peak RSS above start (MiB) of a bare forward loop over extract()'s batches (chunks of 256
    sentences, sorted by length): the memory the model's own forward passes keep on this machine."""
    import importlib

    import torch

    ex = importlib.import_module("xling_probe.extraction.runners")
    chunk = importlib.import_module("xling_probe.extraction.extract").CHUNK
    with PeakRSS() as mem, torch.inference_mode():
        for lang in corpus.languages:
            tok = ex.tokenize(model.tokenizer, corpus.sentences[lang], 512)
            for s in range(0, len(corpus), chunk):
                order = sorted(range(s, min(s + chunk, len(corpus))), key=lambda k: -len(tok.ids[k]))
                for b in range(0, len(order), batch_size):
                    idx = order[b : b + batch_size]
                    batch = ex.pad_batch([tok.ids[k] for k in idx], [tok.special[k] for k in idx],
                                         model.tokenizer.pad_token_id, model.tokenizer.padding_side)
                    model.parts.runner(**ex.model_inputs(model, batch))
    return (mem.peak - mem.before) / 2**20


def memory_child(n: int, batch_size: int, bare: bool = False) -> dict:
    xp, model, corpus = load(n)
    after_load = peak_rss_mb()
    if bare:
        return {"sentences_per_language": n, "bare_forward_peak_above_start_mb": bare_forward_memory(model, corpus, batch_size)}
    with PeakRSS() as mem:
        acts = xp.extract(model, corpus, batch_size=batch_size, cache=False, progress=False)
    pooled = acts.data.nbytes / 2**20
    above = (mem.peak - mem.before) / 2**20
    return {
        "sentences_per_language": n,
        "peak_rss_of_model_load_mb": after_load,
        "rss_before_extract_mb": mem.before / 2**20,
        "peak_rss_during_extract_mb": mem.peak / 2**20,
        "peak_rss_mb": max(after_load, mem.peak / 2**20),
        "extract_peak_above_start_mb": above,
        "pooled_states_mb": pooled,
        "working_memory_mb": above - pooled,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--memory-sizes", default="200,1000")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--throughput-only", action="store_true",
                    help="re-measure throughput only, keeping the memory figures of benchmarks/results/extract.json")
    ap.add_argument("--memory-only", action="store_true",
                    help="re-measure memory only, keeping the throughput figures of benchmarks/results/extract.json")
    ap.add_argument("--tl", action="store_true",
                    help="only the interleaved TransformerLens-vs-bare-eager ratios (issue 19), merged into extract.json")
    ap.add_argument("--rounds", type=int, default=1, help="with --tl: passes over the languages")
    args = ap.parse_args()
    if not PUD.is_file():
        sys.exit(f"needs {PUD} (../shared/data next to the repository)")
    if args.tl:
        sys.path.insert(0, str(HERE))
        from _interleave import merge_json

        res = tl_vs_bare(args.sentences, args.batch_size, args.rounds)
        res["load_average_1min_at_end"] = os.getloadavg()[0]
        print(json.dumps({k: v for k, v in res.items() if k not in ("seconds", "orders")}, indent=1))
        merge_json(HERE / "results" / "extract.json", "tl_vs_bare_eager", res)
        print(f"merged tl_vs_bare_eager into {HERE / 'results' / 'extract.json'}")
        return
    if args.child is not None:
        print(json.dumps(memory_child(args.child, args.batch_size, bare=args.bare)))
        return
    result = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "load_average_1min_at_start": os.getloadavg()[0]}}
    import torch

    result["machine"]["torch"] = torch.__version__
    result["machine"]["torch_threads"] = torch.get_num_threads()
    previous = HERE / "results" / "extract.json"
    if args.memory_only and previous.is_file():
        result["throughput"] = json.loads(previous.read_text())["throughput"]
    else:
        result["throughput"] = throughput(args.sentences, args.batch_size, args.repeats)
    print(json.dumps(result["throughput"], indent=1))
    if args.throughput_only and previous.is_file():
        kept = json.loads(previous.read_text())
        result["memory"], result["memory_growth"] = kept["memory"], kept.get("memory_growth")
    else:
        mem = []
        for n in [int(x) for x in args.memory_sizes.split(",")]:
            out = subprocess.run([sys.executable, __file__, "--child", str(n), "--batch-size", str(args.batch_size)],
                                 capture_output=True, text=True, check=True)
            mem.append(json.loads(out.stdout.strip().splitlines()[-1]))
            bare = subprocess.run([sys.executable, __file__, "--child", str(n), "--bare", "--batch-size", str(args.batch_size)],
                                  capture_output=True, text=True, check=True)
            mem[-1].update(json.loads(bare.stdout.strip().splitlines()[-1]))
            mem[-1]["extract_working_minus_bare_forward_mb"] = (mem[-1]["working_memory_mb"]
                                                                - mem[-1]["bare_forward_peak_above_start_mb"])
            print(json.dumps(mem[-1]))
        result["memory"] = mem
        if len(mem) >= 2:
            a, b = mem[0], mem[-1]
            result["memory_growth"] = {
                "extract_peak_growth_mb": b["extract_peak_above_start_mb"] - a["extract_peak_above_start_mb"],
                "pooled_states_growth_mb": b["pooled_states_mb"] - a["pooled_states_mb"],
                "working_memory_mb": [m["working_memory_mb"] for m in mem],
                "bare_forward_peak_above_start_mb": [m["bare_forward_peak_above_start_mb"] for m in mem],
                "extract_working_minus_bare_forward_mb": [m["extract_working_minus_bare_forward_mb"] for m in mem],
                "note": "extract_peak_above_start = peak RSS during extract() minus RSS just before it (sampled every 5 ms); "
                        "it should grow like the pooled states (layers x languages x sentences x 640 x 4 B, preallocated "
                        "once); the rest (working memory) is compared with a bare forward loop over the same batches in a fresh "
                        "process: PyTorch's CPU allocator keeps memory for each new sequence length, so both grow with "
                        "the number of distinct batch shapes, and extract() should add nothing to that; "
                        "peak_rss_of_model_load is the transient of loading the model, before any extraction",
            }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "extract.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out_dir / 'extract.json'}")


if __name__ == "__main__":
    main()
