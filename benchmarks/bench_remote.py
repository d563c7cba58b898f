"""Extraction through a real NDIF server against the same extraction run locally (issue: real models).

Needs a running server that serves the model folder ``--model`` (``scripts/ndif_loopback/start.sh``
starts one on loopback; see docs/models.md). Measures, for the same sentences and all states:

1. the largest relative difference between the pooled states from the server and from a local run
   of the same folder (the server's model process is single-threaded, so ``--threads 1`` makes the
   local run do the same arithmetic);
2. wall time per sentence of both (the remote one includes serialising the trace, the queue,
   the server's forward pass and the download of the pooled vectors: only ``[batch, d]`` per layer
   comes back, never ``[batch, seq, d]``);
3. what went over the wire: the bytes of the pooled result per batch, against the bytes of the full
   hidden states that a trace saving ``.output`` of every block would download.

Usage: python benchmarks/bench_remote.py --url http://127.0.0.1:8001 --model PATH [--sentences 48]
Writes benchmarks/results/remote.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

SENTENCES = [
    "The cat sleeps on the sofa.", "Le chat dort sur le canapé.", "Die Katze schläft auf dem Sofa.",
    "The dog runs in the garden every morning.", "Le chien court dans le jardin chaque matin.",
    "Der Hund läuft jeden Morgen im Garten.", "I like books and flowers.", "J'aime les livres et les fleurs.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True, help="the folder the server serves (its model key is this path)")
    ap.add_argument("--sentences", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "remote.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import nnsight

    import xling_probe as xp
    from xling_probe.extraction.extract import extract_texts

    texts = [SENTENCES[k % len(SENTENCES)] + ("" if k < len(SENTENCES) else f" ({k})") for k in range(args.sentences)]
    local = xp.load_model(args.model, device="cpu")
    t0 = time.perf_counter()
    remote = xp.load_model(args.model, backend="nnsight", remote=True, remote_url=args.url)
    connect_s = time.perf_counter() - t0
    layers = list(range(local.n_states))
    t0 = time.perf_counter()
    a, _ = extract_texts(local, texts, layers, batch_size=args.batch_size)
    local_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    b, _ = extract_texts(remote, texts, layers, batch_size=args.batch_size)
    remote_s = time.perf_counter() - t0
    tokens = sum(len(r) for r in local.tokenizer(texts)["input_ids"])
    rel = float(np.abs(a - b).max() / np.abs(a).max())
    per_batch_pooled = len(layers) * args.batch_size * local.d_model * 4
    per_batch_full = len(layers) * tokens / len(texts) * args.batch_size * local.d_model * 4
    out = {
        "benchmark": "remote",
        "server": args.url,
        "model": Path(args.model).name,
        "n_blocks": local.n_blocks,
        "d_model": local.d_model,
        "sentences": len(texts),
        "tokens": tokens,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "max_relative_difference": rel,
        "max_abs_difference": float(np.abs(a - b).max()),
        "bitwise_equal": bool(np.array_equal(a, b)),
        "connect_and_build_s": round(connect_s, 3),
        "local_s": round(local_s, 3),
        "remote_s": round(remote_s, 3),
        "remote_s_per_batch": round(remote_s / -(-len(texts) // args.batch_size), 3),
        "download_bytes_per_batch_pooled": per_batch_pooled,
        "download_bytes_per_batch_if_full_states": int(per_batch_full),
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "nnsight": nnsight.__version__, "xling_probe": xp.__version__},
    }
    print(json.dumps(out, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
