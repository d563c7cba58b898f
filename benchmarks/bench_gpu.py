"""Extraction and similarity on a GPU, with randomly initialised models of real sizes.

Weights cannot travel to the GPU machine (and it has no network), so each preset builds its model
from a config, straight on the device in the requested dtype (torch.device context + default
dtype, Hugging Face's own normal(0, 0.02) init), so an 8B model never passes through CPU RAM:

- ``llama3-8b``: LlamaConfig, hidden 4096, 32 layers, 32 heads / 8 KV heads, MLP 14336, vocab 128256, rope 500000;
- ``gemma3-4b``: Gemma3TextConfig, hidden 2560, 34 layers, 8 heads / 4 KV heads, head_dim 256, MLP 10240,
  vocab 262144, sliding window 1024, 5 sliding : 1 full attention layers;
- ``tiny`` (Llama-style) and ``tiny-gemma3``: hidden 64, 2 layers, for CPU smoke runs.

The tokenizer is a small Unigram one trained here (as tests/tiny.py does; token ids only need to be
below the vocabulary size); the sentences are synthetic, 20-60 tokens each, drawn from its training
text, or read from ``--data`` (a parallel TSV; all languages, round robin).

Measured per preset:
1. extraction: tokens/s of ``extract_texts(handle, texts, all states, pooling="mean")`` against a bare
   ``handle.parts.runner(**model_inputs(handle, batch))`` loop over the very same padded batches
   (sorted by length, as extract_texts builds them) under torch.inference_mode; warm-up excluded,
   minimum of interleaved repeats, torch.cuda.synchronize() around each timing; peak GPU memory
   (torch.cuda.max_memory_allocated) of both;
2. similarity: random float32 activations of the model's shape (21 languages x 1000 sentences x
   n_states x hidden, fewer states when the data would not fit in --sim-max-gb / the free RAM), the
   engine (``xling_probe.measures.engine.similarity``, device="cuda" on a GPU, no null, no bootstrap)
   for CKA, P@1 and both, on 41 pairs (en with the 20 others + all pairs among 8 languages, as
   bench_similarity.py), against the bare float32 torch.matmul products those metrics need per
   layer (CKA: one Gram matrix per language, or the D x D products of the feature form when the
   engine picks it; P@1: one N x N cosine matrix per pair), with the data already on the device
   (one batched matmul per state and product kind, outputs preallocated).
   Also shown: the same products in float64 (the engine accumulates in float64) and the time of
   moving the whole data set to the device once (the engine has to).

Usage: python benchmarks/bench_gpu.py --preset llama3-8b --preset gemma3-4b [--batch-size 16] [--sentences 256] [--out PATH]
       python benchmarks/bench_gpu.py --preset tiny --device cpu          (CPU smoke run)
Without a visible GPU, real presets are not run: the script prints "not run: no GPU", writes a JSON
with that status and exits 0. Writes benchmarks/results/gpu.json (or --out).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # run from anywhere: the package of this checkout

NO_GPU = "not run: no GPU"

# 21 languages and 41 pairs, as benchmarks/bench_similarity.py
LANGS = ("en", "ar", "cs", "de", "es", "fi", "fr", "gl", "hi", "id", "is", "it", "ja", "ko", "pl", "pt", "ru",
         "sv", "th", "tr", "zh")
EIGHT = ("en", "de", "fr", "es", "ru", "zh", "ja", "ar")


def benchmark_pairs() -> list[tuple[str, str]]:
    pairs = [("en", b) for b in LANGS if b != "en"]
    pairs += [(a, b) for i, a in enumerate(EIGHT) for b in EIGHT[i + 1:] if "en" not in (a, b)]
    return pairs


# ------------------------------------------------------------------ presets
def _gemma_layer_types(n: int) -> list[str]:
    return ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]


PRESETS = {
    "llama3-8b": {"family": "llama", "real": True, "config": dict(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        intermediate_size=14336, vocab_size=128256, max_position_embeddings=8192, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0}, tie_word_embeddings=False)},
    "gemma3-4b": {"family": "gemma3", "real": True, "config": dict(
        hidden_size=2560, num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
        intermediate_size=10240, vocab_size=262144, sliding_window=1024, layer_types=_gemma_layer_types(34),
        max_position_embeddings=131072, query_pre_attn_scalar=256, rms_norm_eps=1e-6,
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}},
        tie_word_embeddings=True)},
    "tiny": {"family": "llama", "real": False, "config": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
        vocab_size=4096, max_position_embeddings=512, rope_parameters={"rope_type": "default", "rope_theta": 500000.0})},
    "tiny-gemma3": {"family": "gemma3", "real": False, "config": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        intermediate_size=128, vocab_size=4096, sliding_window=16, layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=512, tie_word_embeddings=True)},
}


def build_model(preset: str, tok, device: torch.device, dtype: torch.dtype):
    """The preset's causal LM, randomly initialised directly on ``device`` in ``dtype``."""
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    spec = PRESETS[preset]
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    assert len(tok) <= spec["config"]["vocab_size"], "token ids must stay below the model's vocabulary"
    if spec["family"] == "llama":
        cfg, cls = LlamaConfig(**spec["config"], **ids), LlamaForCausalLM
    else:
        cfg, cls = Gemma3TextConfig(**spec["config"], **ids), Gemma3ForCausalLM
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are created in dtype (rotary inv_freq stays float32)
    try:
        with torch.device(device):
            model = cls(cfg)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


# ------------------------------------------------------------------ tokenizer and sentences
TRAIN_TEXT = [
    "The cat sleeps on the sofa while the dog runs in the garden, and I read books about flowers and rivers.",
    "Le chat dort sur le canapé pendant que le chien court dans le jardin ; je lis des livres sur les fleurs.",
    "Die Katze schläft auf dem Sofa, während der Hund im Garten läuft, und ich lese Bücher über Blumen.",
    "El gato duerme en el sofá mientras el perro corre en el jardín, y yo leo libros sobre flores y ríos.",
    "Кошка спит на диване, пока собака бегает в саду, а я читаю книги о цветах и реках.",
    "猫在沙发上睡觉，狗在花园里跑，我在读关于花和河流的书。",
    "猫はソファで寝ていて、犬は庭で走っています。私は花と川についての本を読みます。",
    "고양이는 소파에서 자고 개는 정원에서 뛰며 나는 꽃과 강에 관한 책을 읽는다.",
    "القطة تنام على الأريكة بينما يجري الكلب في الحديقة، وأنا أقرأ كتبا عن الزهور والأنهار.",
    "बिल्ली सोफे पर सोती है, कुत्ता बगीचे में दौड़ता है, और मैं फूलों और नदियों के बारे में किताबें पढ़ता हूँ।",
    "Kot śpi na kanapie, a pies biega po ogrodzie; czytam książki o kwiatach i rzekach.",
    "Kedi kanepede uyurken köpek bahçede koşuyor ve ben çiçekler ile nehirler hakkında kitaplar okuyorum.",
    "The committee announced on Tuesday that the new railway between the two cities will open in 2027.",
    "Scientists measured the temperature of the ocean at several depths during the long expedition.",
]


def train_tokenizer(vocab_size: int = 2000):
    """A SentencePiece-style Unigram tokenizer (byte fallback, BOS, left padding) trained on TRAIN_TEXT."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram(byte_fallback=True))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="always")])
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials + [f"<0x{b:02X}>" for b in range(256)],
                                      unk_token="<unk>", max_piece_length=8,
                                      show_progress=False)
    tok.train_from_iterator(TRAIN_TEXT * 20, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                       special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>", padding_side="left")


def synthetic_sentences(tok, n: int, lo: int = 20, hi: int = 60, seed: int = 0) -> list[str]:
    """``n`` sentences of lo..hi tokens (uniform target length), words drawn from one training line each."""
    rng = random.Random(seed)
    lines = [line.split() for line in TRAIN_TEXT]
    cost = {w: len(tok(w, add_special_tokens=False)["input_ids"]) for ws in lines for w in ws}
    out = []
    for _ in range(n):
        words, target, used = rng.choice(lines), rng.randint(lo, hi), 1  # 1 = BOS
        sent = []
        while used < target:
            w = rng.choice(words)
            sent.append(w)
            used += cost[w]
        out.append(" ".join(sent))
    return out


def tsv_sentences(path: str, n: int) -> list[str]:
    from xling_probe import ParallelCorpus

    corpus = ParallelCorpus.from_tsv(path)
    rows = [corpus.sentences[lang][i] for i in range(len(corpus)) for lang in corpus.languages]
    return rows[:n]


# ------------------------------------------------------------------ timing helpers
def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def gib(b: float) -> float:
    return round(b / 2**30, 3)


class GPUPeak:
    """Peak allocated GPU memory of a block (``peak``), and the level at entry (``before``), bytes."""

    def __init__(self, dev: torch.device) -> None:
        self.dev = dev

    def __enter__(self) -> GPUPeak:
        self.before = self.peak = 0
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            torch.cuda.reset_peak_memory_stats(self.dev)
            self.before = torch.cuda.memory_allocated(self.dev)
        return self

    def __exit__(self, *exc) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            self.peak = torch.cuda.max_memory_allocated(self.dev)


def timed(fn, dev: torch.device) -> float:
    sync(dev)
    t = time.perf_counter()
    fn()
    sync(dev)
    return time.perf_counter() - t


# ------------------------------------------------------------------ 1. extraction
def bench_extraction(handle, texts: list[str], batch_size: int, repeats: int) -> dict:
    from xling_probe.extraction.extract import extract_texts
    from xling_probe.extraction.runners import model_inputs, pad_batch, tokenize

    dev = handle.device
    layers = list(range(handle.n_states))
    tok = tokenize(handle.tokenizer, texts, 512)
    side = handle.tokenizer.padding_side or "right"
    order = sorted(range(len(texts)), key=lambda k: -len(tok.ids[k]))  # as extract_texts
    batches = []
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        batches.append(pad_batch([tok.ids[k] for k in idx], [tok.special[k] for k in idx],
                                 handle.tokenizer.pad_token_id, side))
    n_tokens = sum(len(r) for r in tok.ids)
    padded = sum(int(b["input_ids"].numel()) for b in batches)

    def bare():
        with torch.inference_mode():
            for b in batches:
                handle.parts.runner(**model_inputs(handle, b))

    def ours():
        extract_texts(handle, texts, layers, pooling="mean", batch_size=batch_size)

    t0 = time.perf_counter()
    bare()  # warm-up: kernels, cuBLAS/SDPA selection, allocator
    ours()
    sync(dev)
    warmup_s = time.perf_counter() - t0
    seconds = {"bare_forward": [], "extract_texts": []}
    peaks = {"bare_forward": 0, "extract_texts": 0}
    before = 0
    for _ in range(repeats):
        for name, fn in (("bare_forward", bare), ("extract_texts", ours)):
            with GPUPeak(dev) as mem:
                seconds[name].append(timed(fn, dev))
            peaks[name], before = max(peaks[name], mem.peak), mem.before
    best = {k: min(v) for k, v in seconds.items()}
    # matmul FLOPs of the blocks (2 x parameters x padded tokens; embeddings and LM head excluded, attention scores ignored)
    block_params = sum(p.numel() for p in handle.parts.blocks.parameters())
    res = {
        "sentences": len(texts), "states": len(layers), "batch_size": batch_size, "batches": len(batches),
        "tokens": n_tokens, "padded_tokens": padded,
        "tokens_per_sentence": {"min": min(map(len, tok.ids)), "mean": round(n_tokens / len(texts), 1),
                                "max": max(map(len, tok.ids))},
        "warmup_seconds": warmup_s, "seconds": best, "seconds_all_repeats": seconds,
        "tokens_per_s": {k: n_tokens / v for k, v in best.items()},
        "extract_vs_bare_ratio": best["bare_forward"] / best["extract_texts"],
        "block_matmul_tflops_per_s": {k: 2 * block_params * padded / v / 1e12 for k, v in best.items()},
        "how": f"minimum of {repeats} interleaved repeats after one warm-up of each; extract_texts tokenizes, pools "
               "every state in hooks and copies the pooled states to host memory; the bare loop gets the same "
               "padded batches, pre-tokenized",
    }
    if dev.type == "cuda":
        res["peak_gpu_memory_gib"] = {k: gib(v) for k, v in peaks.items()}
        res["peak_gpu_memory_above_model_gib"] = {k: gib(v - before) for k, v in peaks.items()}
        res["model_memory_gib"] = gib(before)
    return res


# ------------------------------------------------------------------ 2. similarity vs the GEMM floor
def sim_plan(n_states: int, hidden: int, n: int, max_gb: float, dev: torch.device) -> tuple[list[int], float]:
    """States kept (evenly spaced) so that the float32 data fit in max_gb, in a third of the free RAM and, on
    a GPU, three times over in 80% of its free memory (the one-shot float32 + float64 copy timed below)."""
    per_state = len(LANGS) * n * hidden * 4
    budget = max_gb * 2**30
    try:
        import psutil

        budget = min(budget, psutil.virtual_memory().available / 3)
    except ImportError:
        pass
    if dev.type == "cuda":
        budget = min(budget, 0.8 * torch.cuda.mem_get_info(dev)[0] / 3)
    k = int(max(1, min(n_states, budget // per_state)))
    keep = sorted({round(i * (n_states - 1) / max(1, k - 1)) for i in range(k)}) if k > 1 else [n_states - 1]
    return keep, per_state * len(keep)


def make_acts(states: list[int], n: int, d: int, dev: torch.device):
    from xling_probe import Activations

    data = np.empty((len(states), len(LANGS), n, d), dtype=np.float32)
    g = torch.Generator(device=dev).manual_seed(0)
    for i in range(len(states)):  # generated on the device (fast), one state at a time
        t = torch.randn(len(LANGS), n, d, generator=g, device=dev, dtype=torch.float32)
        torch.from_numpy(data[i]).copy_(t)
        del t
    return data, Activations(data=data, layers=tuple(states), languages=LANGS, ids=tuple(f"s{i}" for i in range(n)),
                       meta={"model": "random activations, model shape"})


def gemm_floor(n_layers: int, n: int, d: int, pairs_idx, cka_form: str, dev: torch.device, dtype: torch.dtype,
               repeats: int) -> dict:
    """Seconds of the bare products per metric over all layers, inputs on the device, outputs preallocated,
    one batched torch.matmul per layer and product kind: CKA (N x N Gram per language, or in the feature
    form D x D X^T X per language + Y^T X per pair) and P@1 (one N x N cosine matrix per pair)."""
    g = torch.Generator(device=dev).manual_seed(1)
    x = torch.randn(len(LANGS), n, d, generator=g, device=dev, dtype=dtype)
    ai = torch.tensor([a for a, _ in pairs_idx], device=dev)
    bi = torch.tensor([b for _, b in pairs_idx], device=dev)
    xn = x / x.norm(dim=-1, keepdim=True)
    qa, kb = xn[ai].contiguous(), xn[bi].transpose(-1, -2).contiguous()  # [P, N, D], [P, D, N]
    s_out = torch.empty(len(pairs_idx), n, n, device=dev, dtype=dtype)
    xt = x.transpose(-1, -2).contiguous()  # [G, D, N]
    if cka_form == "feature":
        ya, yb = x[ai].contiguous(), xt[bi].contiguous()  # Y^T X per pair: [P, D, N] @ [P, N, D]
        g_out = torch.empty(len(LANGS), d, d, device=dev, dtype=dtype)
        p_out = torch.empty(len(pairs_idx), d, d, device=dev, dtype=dtype)
    else:
        g_out = torch.empty(len(LANGS), n, n, device=dev, dtype=dtype)

    def cka():
        for _ in range(n_layers):
            if cka_form == "feature":
                torch.matmul(xt, x, out=g_out)
                torch.matmul(yb, ya, out=p_out)
            else:
                torch.matmul(x, xt, out=g_out)

    def p1():
        for _ in range(n_layers):
            torch.matmul(qa, kb, out=s_out)

    cka(), p1()  # warm-up
    out = {"cka": min(timed(cka, dev) for _ in range(repeats)), "p@1": min(timed(p1, dev) for _ in range(repeats))}
    out["cka+p@1"] = out["cka"] + out["p@1"]
    return out


def bench_similarity(n_states: int, hidden: int, dev: torch.device, *, n: int, max_gb: float, engine_gb: float,
                     repeats: int) -> dict:
    from xling_probe.measures.engine import similarity

    states, nbytes = sim_plan(n_states, hidden, n, max_gb, dev)
    t0 = time.perf_counter()
    data, acts = make_acts(states, n, hidden, dev)  # data: the writable array behind acts.data
    make_s = time.perf_counter() - t0
    pairs = benchmark_pairs()
    pairs_idx = [(LANGS.index(a), LANGS.index(b)) for a, b in pairs]
    L = len(states)
    print(f"  similarity data {acts.data.shape} float32 ({nbytes / 2**30:.2f} GiB, {len(states)} of {n_states} states) "
          f"in {make_s:.1f} s; {len(pairs)} pairs x {L} states = {len(pairs) * L} pair-layers", flush=True)
    kw = dict(pairs=pairs, null_permutations=0, bootstrap=0, progress=False, max_memory_gb=engine_gb,
              device=str(dev) if dev.type == "cuda" else None)
    similarity(acts.sel(layers=[states[0]]), metrics=["cka", "p@1"], **kw)  # warm-up (CUDA context, cuBLAS)

    # the host -> device copy the engine has to make, once for the whole data set (float32 -> float64 on the device)
    def move():
        torch.as_tensor(data, device=dev).to(torch.float64)
    move_s = timed(move, dev)

    runs = {"cka": ("cka",), "p@1": ("p@1",), "cka+p@1": ("cka", "p@1")}
    engine = {k: float("inf") for k in runs}
    peak, settings = {}, {}
    for _ in range(repeats):
        for key, ms in runs.items():
            with GPUPeak(dev) as mem:
                t = time.perf_counter()
                res = similarity(acts, metrics=ms, **kw)
                engine[key] = min(engine[key], time.perf_counter() - t)
            peak[key] = max(peak.get(key, 0), mem.peak)
            settings[key] = {"cka_form": res.settings["cka_form"], "layer_chunk": res.settings["layer_chunk"]}
    form = settings["cka"]["cka_form"]
    acts = data = None  # free the host copy before the floors
    gc.collect()
    floor32 = gemm_floor(L, n, hidden, pairs_idx, form, dev, torch.float32, repeats)
    floor64 = gemm_floor(L, n, hidden, pairs_idx, form, dev, torch.float64, repeats)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    res = {
        "data": {"shape_state_language_sentence_hidden": [L, len(LANGS), n, hidden], "dtype": "float32",
                 "bytes": int(nbytes), "states_of_model": n_states, "states_used": states,
                 "scaled_down": L < n_states, "seconds_to_make": make_s},
        "pairs": {"count": len(pairs), "definition": "en with the 20 others + all pairs among " + ",".join(EIGHT),
                  "pair_layers": len(pairs) * L},
        "engine_seconds": engine, "engine_settings": settings, "engine_max_memory_gb": engine_gb,
        "engine_seconds_per_pair_layer": {k: v / (len(pairs) * L) for k, v in engine.items()},
        "gemm_floor_float32_seconds": floor32, "gemm_floor_float64_seconds": floor64,
        "engine_vs_float32_floor_ratio": {k: engine[k] / floor32[k] for k in runs},
        "engine_vs_float64_floor_ratio": {k: engine[k] / floor64[k] for k in runs},
        "host_to_device_float64_seconds": move_s,
        "engine_minus_transfer_vs_float32_floor_ratio": {k: max(engine[k] - move_s, 0.0) / floor32[k] for k in runs},
        "how": f"engine: one call per metric set on all pairs and states, no null, no bootstrap, minimum of {repeats} "
               "repeats after a one-state warm-up; floor: the torch.matmul products those metrics need per state "
               f"(CKA {form} form: " + ("X^T X per language + Y^T X per pair, D x N x D"
                                        if form == "feature" else "X X^T per language, N x D x N")
               + "; P@1: one N x D x N cosine product per pair), inputs already on the device, outputs preallocated, one batched "
               "torch.matmul per state and product kind, minimum of "
               f"{repeats}; host_to_device: the whole float32 data set moved to the device and made float64 once "
               "(the engine does this chunk by chunk, after a host-side copy of each chunk); "
               "ratios = engine seconds / floor seconds (1 = at the floor)",
    }
    if dev.type == "cuda":
        res["engine_peak_gpu_memory_gib"] = {k: gib(v) for k, v in peak.items()}
        res["tf32_matmul_allowed"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return res


# ------------------------------------------------------------------ environment and main
def git_commit() -> dict:
    def git(*a):
        try:
            out = subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, timeout=10)
            return out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment(dev: torch.device, dtype: torch.dtype, args) -> dict:
    import transformers

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
           "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "device": str(dev), "dtype": str(dtype).replace("torch.", ""),
           "presets": args.preset, "batch_size": args.batch_size, "sentences": args.sentences,
           "data": args.data or "synthetic", **git_commit()}
    if torch.cuda.is_available():
        i = (dev.index or 0) if dev.type == "cuda" else 0
        p = torch.cuda.get_device_properties(i)
        env.update(gpu=torch.cuda.get_device_name(i), gpu_memory_gib=gib(p.total_memory), gpu_count=torch.cuda.device_count(),
                   cudnn=torch.backends.cudnn.version())
    else:
        env["gpu"] = None
    return env


def run_preset(name: str, dev: torch.device, dtype: torch.dtype, args) -> dict:
    import xling_probe as xp

    print(f"[{name}] building on {dev} in {str(dtype).replace('torch.', '')}", flush=True)
    tok = train_tokenizer()
    texts = tsv_sentences(args.data, args.sentences) if args.data else synthetic_sentences(tok, args.sentences)
    t = time.perf_counter()
    model = build_model(name, tok, dev, dtype)
    sync(dev)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    handle = xp.load_model(model, tokenizer=tok, device=dev, dtype=dtype)
    load_s = time.perf_counter() - t
    n_params = sum(p.numel() for p in model.parameters())
    info = {"config": {k: v for k, v in PRESETS[name]["config"].items() if k != "layer_types"},
            "family": PRESETS[name]["family"], "parameters": n_params,
            "attn_implementation": getattr(model.config, "_attn_implementation", None),
            "n_blocks": handle.n_blocks, "n_states": handle.n_states, "d_model": handle.d_model,
            "build_seconds": build_s, "load_model_seconds": load_s, "tokenizer_vocab": len(tok)}
    if "layer_types" in PRESETS[name]["config"]:
        lt = PRESETS[name]["config"]["layer_types"]
        info["layer_types"] = {"sliding": lt.count("sliding_attention"), "full": lt.count("full_attention"),
                               "full_at_blocks": [i for i, x in enumerate(lt) if x == "full_attention"]}
    print(f"  {n_params / 1e9:.2f} B parameters, built in {build_s:.1f} s, load_model {load_s:.1f} s", flush=True)
    ext = bench_extraction(handle, texts, args.batch_size, args.repeats)
    mem = ext.get("peak_gpu_memory_gib", {})
    print(f"  extraction: {ext['tokens']} tokens; extract_texts {ext['tokens_per_s']['extract_texts']:.0f} tok/s, "
          f"bare forward {ext['tokens_per_s']['bare_forward']:.0f} tok/s, ratio {ext['extract_vs_bare_ratio']:.3f}"
          + (f"; peak GPU GiB {mem}" if mem else ""), flush=True)
    n_states, hidden = handle.n_states, handle.d_model
    del handle, model
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    sim = bench_similarity(n_states, hidden, dev, n=args.sim_sentences, max_gb=args.sim_max_gb,
                           engine_gb=args.sim_memory_gb if args.sim_memory_gb else (16.0 if dev.type == "cuda" else 2.0),
                           repeats=args.sim_repeats)
    print("  similarity seconds: engine " + ", ".join(f"{k} {v:.3f}" for k, v in sim["engine_seconds"].items())
          + "; float32 GEMM floor " + ", ".join(f"{k} {v:.3f}" for k, v in sim["gemm_floor_float32_seconds"].items())
          + "; ratio " + ", ".join(f"{k} {v:.1f}" for k, v in sim["engine_vs_float32_floor_ratio"].items())
          + f"; host->device {sim['host_to_device_float64_seconds']:.3f}", flush=True)
    return {"status": "ok", "model": info, "extraction": ext, "similarity": sim}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", action="append", choices=list(PRESETS), help="repeatable; default llama3-8b and gemma3-4b")
    ap.add_argument("--device", default=None, help="default: cuda when a GPU is visible, else cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on GPU, float32 on CPU")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--sentences", type=int, default=256, help="sentences of the extraction benchmark")
    ap.add_argument("--data", default=None, help="parallel TSV (id + language columns) instead of synthetic sentences")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the extraction timings (minimum kept)")
    ap.add_argument("--sim-repeats", type=int, default=2, help="repeats of the similarity timings (minimum kept)")
    ap.add_argument("--sim-sentences", type=int, default=1000)
    ap.add_argument("--sim-max-gb", type=float, default=12.0, help="cap on the float32 activations of the similarity part")
    ap.add_argument("--sim-memory-gb", type=float, default=None, help="engine max_memory_gb (default 16 on GPU, 2 on CPU)")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu.json"))
    args = ap.parse_args()
    args.preset = args.preset or ["llama3-8b", "gemma3-4b"]
    from xling_probe.models.loading import _resolve_device, _resolve_dtype

    gpu = torch.cuda.is_available()
    dev = torch.device(args.device) if args.device else torch.device("cuda" if gpu else "cpu")
    if dev.type == "cuda" and not gpu:
        dev = torch.device("cpu")  # asked for cuda without one: real presets are reported as not run
    else:
        dev = _resolve_device(dev)
    dtype = _resolve_dtype(args.dtype) or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    result = {"what": "extraction and similarity on randomly initialised models of real sizes (GPU benchmark)",
              "environment": environment(dev, dtype, args), "presets": {}}
    print(json.dumps(result["environment"]), flush=True)
    for name in args.preset:
        if PRESETS[name]["real"] and dev.type != "cuda":
            why = NO_GPU if not gpu else "not run: real presets need --device cuda"
            print(f"[{name}] {why}", flush=True)
            result["presets"][name] = {"status": why}
            continue
        result["presets"][name] = run_preset(name, dev, dtype, args)
    statuses = {r["status"] for r in result["presets"].values()}
    result["status"] = "ok" if statuses == {"ok"} else (statuses.pop() if len(statuses) == 1 else "partial")
    if result["status"] == NO_GPU:
        print(NO_GPU)
    result["total_seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"status {result['status']}; {result['total_seconds']:.1f} s; wrote {out}")


if __name__ == "__main__":
    main()
