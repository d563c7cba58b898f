"""Logit-lens drift throughput and memory on the offline Gemma 3 270M (issue: logit-lens drift).

Measures, on fr -> zh 5-shot translation prompts from the bundled word list, all 19 layers, the
262,144-token vocabulary:

1. prompts/s of ``language_drift`` end to end (forward pass with hooks, chunked lens, statistics,
   the first-batch check against the model's logits), 100 prompts, batch size 8;
2. peak resident memory of the lens phase, chunked (``lens_stats``: never layers x positions x
   vocabulary at once) vs a naive lens that materialises float32 logits and softmax for all layers
   and all positions of a prompt (what ``output_hidden_states`` + ``lm_head`` on everything gives),
   each in a fresh process, on the same few prompts one at a time; the naive path is ~100x more
   work (every position instead of the last), so it runs on fewer prompts.

Peak memory: the Linux high-water mark VmHWM, reset (``/proc/self/clear_refs``) once the model is
loaded, so ``peak - rss_before`` is what the lens phase (warm-up included) adds on top of the loaded
model; ``ru_maxrss`` is the fallback where the reset is not allowed.

Usage: python benchmarks/bench_lens.py [--prompts 100] [--naive-prompts 3]
Writes benchmarks/results/lens.json.
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
SOURCE, TARGET, SHOTS = "fr", "zh", 5


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset the peak-RSS counter (Linux); False when the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    value = _status_kb("VmRSS")
    return value / 1024 if value is not None else float("nan")


def prompts_and_model(n: int):
    import torch

    from xling_probe import load_model
    from xling_probe.lens import build_item_sets, build_prompts, load_words

    torch.manual_seed(0)
    model = load_model(device="cpu")
    words = load_words()
    sets = build_item_sets(model.tokenizer, words, [SOURCE, TARGET, "en"], latent="en", target=TARGET)
    kept = list(sets.kept)[:n]
    prompts = build_prompts(words, source=SOURCE, target=TARGET, shots=SHOTS, indices=kept)
    target_sets = [sets.sets[TARGET][j].ids for j in range(len(kept))]
    return model, words, prompts, target_sets


def run_drift(n: int, batch_size: int) -> dict:
    from xling_probe.lens import language_drift

    model, words, prompts, _ = prompts_and_model(n)
    reset_ok = reset_peak()
    base = rss_mb()  # the loaded model
    language_drift(model, words, source=SOURCE, target=TARGET, limit=2, shots=SHOTS, progress=False)  # warm-up
    t0 = time.perf_counter()
    result = language_drift(model, words, source=SOURCE, target=TARGET, limit=n, shots=SHOTS, batch_size=batch_size,
                            progress=False)
    wall = time.perf_counter() - t0
    return {"variant": "language_drift (chunked lens)", "prompts": result.n_items, "batch_size": batch_size,
            "seconds": wall, "prompts_per_s": result.n_items / wall, "rss_before_mb": base,
            "peak_mb": peak_mb(), "peak_reset": reset_ok,
            "p_target_last_layer": float(result.curve("p_target")[-1]),
            "p_en_max": float(result.curve("p_latent").max())}


def run_lens_phase(n: int, naive: bool) -> dict:
    """Forward + lens statistics at the last position, one prompt at a time, chunked or naive."""
    import torch

    from xling_probe.lens.core import DEFAULT_CHUNK_ELEMENTS, Lens, encode, lens_stats, run_batches

    model, _, prompts, target_sets = prompts_and_model(n)
    lens = Lens(model)
    layers = list(range(model.n_states))
    rows = encode(model, [p.text for p in prompts])
    n_tokens = sum(len(r) for r in rows)

    def one(k: int) -> float:
        (_, _, states), = list(run_batches(model, [rows[k]], layers, keep="all" if naive else "last", batch_size=1))
        if naive:
            resid = torch.stack([states[layer][0] for layer in layers])  # [L, T, d]
            logits = lens.logits(resid)  # [L, T, V] float32: every layer, every position, the full vocabulary
            probs = torch.softmax(logits, dim=-1)
            return float(probs[:, -1, list(target_sets[k])].sum(-1)[-1])
        resid = torch.stack([states[layer] for layer in layers])  # [L, 1, d]
        stats = lens_stats(lens, resid, states[layers[-1]], sets={"t": [target_sets[k]]}, rank_of="t")
        return float(stats.sets["t"][-1, 0])

    reset_ok = reset_peak()
    base = rss_mb()  # the loaded model
    one(0)  # warm-up
    t0 = time.perf_counter()
    p_last = [one(k) for k in range(len(rows))]
    wall = time.perf_counter() - t0
    return {"variant": "naive full materialisation" if naive else "chunked lens_stats", "prompts": len(rows),
            "batch_size": 1, "tokens": n_tokens, "seconds": wall, "prompts_per_s": len(rows) / wall,
            "rss_before_mb": base, "peak_mb": peak_mb(), "peak_reset": reset_ok,
            "p_target_last_layer_per_prompt": p_last,
            # the largest logits tensor alive: all layers x positions x vocabulary, or one chunk
            "largest_logits_tensor_mb": (len(layers) * max(len(r) for r in rows) * lens.vocab_size * 4 / 2**20) if naive
            else DEFAULT_CHUNK_ELEMENTS * 4 / 2**20}


def interleaved_ratios(n: int, batch_size: int, rounds: int) -> dict:
    """Issue 19 items 1 and 4, interleaved in one process (see benchmarks/_interleave.py).

    1. the lens' forward passes through the TransformerLens bridge vs a bare eager forward of the same
       batches (the floor): ``tl_lens_forward`` (``run_batches``, all 19 states, stopped after the last
       block) and ``tl_whole_forward`` (the same without the stop: final norm + 262k head on every position);
    2. ``lens_stats`` on those states with the final layer's logits reused as the KL reference
       (``final_is_last=True``, the floor) vs computed a second time (as before);
    3. ``language_drift`` answered from the cache vs computed (cache=False, the floor) on the same items.
    Units are batches of ``batch_size`` prompts (drift: ``rounds`` repetitions of ``n`` prompts).
    """
    import tempfile

    import torch

    from xling_probe import load_model
    from xling_probe.extraction.runners import TLRunner, model_inputs, pad_batch
    from xling_probe.lens import language_drift
    from xling_probe.lens.core import Lens, encode, lens_stats, run_batches

    sys.path.insert(0, str(HERE))
    from _interleave import bare_eager_runner, interleaved

    model, words, prompts, target_sets = prompts_and_model(n)
    tl = load_model(model, backend="transformer_lens", device="cpu")
    floor = bare_eager_runner(model)  # eager attention, not wrapped by the bridge
    layers = list(range(tl.n_states))
    rows = encode(tl, [p.text for p in prompts])
    units = [list(range(s, min(s + batch_size, len(rows)))) for s in range(0, len(rows), batch_size)]

    def bare(idx):
        batch = pad_batch([rows[k] for k in idx], [[0] * len(rows[k]) for k in idx], tl.tokenizer.pad_token_id, "left")
        with torch.inference_mode():
            floor(**model_inputs(tl, batch))

    def tl_lens(idx):
        list(run_batches(tl, [rows[k] for k in idx], layers, batch_size=len(idx)))

    def tl_whole(idx):
        batch = pad_batch([rows[k] for k in idx], [[0] * len(rows[k]) for k in idx], tl.tokenizer.pad_token_id, "left")
        with torch.inference_mode():
            TLRunner(tl, layers, early_stop=False).run(batch, lambda _l, h: h[:, -1].clone())

    forward = interleaved(units, {"bare_eager": bare, "tl_lens_forward": tl_lens, "tl_whole_forward": tl_whole},
                          floor="bare_eager", rounds=rounds)
    lens = Lens(model)
    states = {}
    for u, idx in enumerate(units):
        (_, _, st), = list(run_batches(model, [rows[k] for k in idx], layers, batch_size=len(idx)))
        states[u] = torch.stack([st[layer] for layer in layers])

    def stats(final_is_last):
        def go(u):
            resid = states[u]
            lens_stats(lens, resid, resid[-1], sets={"t": [target_sets[k] for k in units[u]]}, rank_of="t",
                       final_is_last=final_is_last)
        return go

    kl = interleaved(list(range(len(units))), {"kl_reference_reused": stats(True), "kl_reference_again": stats(False)},
                     floor="kl_reference_reused", rounds=rounds)
    with tempfile.TemporaryDirectory() as root:
        kw = dict(source=SOURCE, target=TARGET, limit=n, shots=SHOTS, batch_size=batch_size, progress=False)
        language_drift(model, words, cache_root=root, **kw)  # fills the cache
        drift = interleaved(list(range(max(2, rounds + 1))),
                            {"computed": lambda _u: language_drift(model, words, cache=False, **kw),
                             "cache_hit": lambda _u: language_drift(model, words, cache_root=root, **kw)},
                            floor="computed", warmup=False)
    return {"prompts": len(rows), "batch_size": batch_size, "states": len(layers), "lens_forward_vs_bare_eager": forward,
            "kl_reference": kl, "drift_cache": drift}


def child(args: argparse.Namespace) -> None:
    if args.child == "drift":
        out = run_drift(args.prompts, args.batch_size)
    else:
        out = run_lens_phase(args.naive_prompts, naive=args.child == "naive")
    print("RESULT " + json.dumps(out))


def spawn(kind: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--prompts", str(args.prompts), "--naive-prompts",
           str(args.naive_prompts), "--batch-size", str(args.batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"benchmark child {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--naive-prompts", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--interleaved", action="store_true",
                        help="only the interleaved ratios of issue 19 (TL lens forward, KL reference, drift cache), "
                             "merged into lens.json")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.interleaved:
        from _interleave import merge_json

        t0 = time.perf_counter()
        res = interleaved_ratios(args.prompts, args.batch_size, args.rounds)
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        short = {k: ({kk: vv for kk, vv in v.items() if kk not in ("seconds", "orders")} if isinstance(v, dict) else v)
                 for k, v in res.items()}
        print(json.dumps(short, indent=1))
        merge_json(HERE / "results" / "lens.json", "issue19_interleaved", res)
        print(f"merged issue19_interleaved into {HERE / 'results' / 'lens.json'}")
        return
    import torch

    results = {}
    for kind in ("drift", "chunked", "naive"):
        t0 = time.perf_counter()
        results[kind] = spawn(kind, args)
        print(f"{kind}: {json.dumps(results[kind])} ({time.perf_counter() - t0:.0f} s)", flush=True)
    chunked, naive = results["chunked"], results["naive"]
    same = max(abs(a - b) for a, b in zip(chunked["p_target_last_layer_per_prompt"],
                                          naive["p_target_last_layer_per_prompt"]))
    summary = {
        "model": "gemma3-270m (offline, float32, CPU)",
        "task": f"{SOURCE} -> {TARGET}, {SHOTS}-shot translation, bundled word list, 19 layers, vocab 262144",
        "drift_prompts_per_s": results["drift"]["prompts_per_s"],
        "drift_prompts": results["drift"]["prompts"],
        "lens_phase_peak_over_loaded_model_mb": {"chunked": chunked["peak_mb"] - chunked["rss_before_mb"],
                               "naive": naive["peak_mb"] - naive["rss_before_mb"]},
        "process_peak_mb": {"chunked": chunked["peak_mb"], "naive": naive["peak_mb"]},
        "prompts_per_s_one_at_a_time": {"chunked": chunked["prompts_per_s"], "naive": naive["prompts_per_s"]},
        "max_abs_diff_p_target_chunked_vs_naive": same,
        "runs": results,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "platform": platform.platform()},
    }
    out = HERE / "results" / "lens.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
