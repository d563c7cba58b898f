"""Options and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import XlingProbeError


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None,
                   help="hub id, local HF folder or .gguf file (default: the offline Gemma 3 270M)")
    g.add_argument("--backend", default="hf", choices=["hf", "transformer_lens"], help="hooking backend (default: hf)")
    g.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda when available)")
    g.add_argument("--dtype", default=None, help="float32 (default), bfloat16 or float16")


def add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None,
                   help="parallel corpus: .tsv (header = id + language codes, no quoting), .jsonl or .csv "
                        "(default: the bundled sample)")
    g.add_argument("--langs", default=None, help="comma-separated language codes to use (default: all in the data)")
    g.add_argument("--limit", type=int, default=None, help="use only the first N sentences")


def split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    return items or None


def load_model_from(args: argparse.Namespace):
    from ..models import load_model

    return load_model(args.model, backend=args.backend, device=args.device, dtype=args.dtype)


def load_corpus_from(args: argparse.Namespace):
    from ..corpus import ParallelCorpus, load_corpus

    langs = split_list(args.langs)
    corpus = load_corpus(args.data) if args.data else ParallelCorpus.sample()
    if langs:
        corpus = corpus.select_languages(langs)
    if args.limit:
        corpus = corpus.head(args.limit)
    return corpus


def prepare_out(path: str | Path, *, force: bool = False) -> Path:
    """Create the output folder; refuse a non-empty one unless ``force`` (never deletes anything)."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise XlingProbeError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise XlingProbeError(
            f"--out {out} exists and is not empty; choose another folder or pass --force "
            "(files with the same names are overwritten, nothing else is deleted)"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
