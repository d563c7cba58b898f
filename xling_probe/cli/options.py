"""Options and helpers shared by several sub-commands.

Every integer option of every command goes through :func:`count` (so ``--limit 0`` or
``--limit -5`` is refused by argparse with exit 2 instead of being ignored or read as a Python
slice), and every ``--layers`` option through :func:`layers_arg`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ExtractionError, XlingProbeError


def count(minimum: int = 1, meaning_of_minimum: str | None = None) -> Callable[[str], int]:
    """An argparse ``type=``: an integer >= ``minimum``; anything else is an argparse error (exit 2).

    ``meaning_of_minimum`` names what the smallest value does when it is allowed to mean
    something special (e.g. 0 bootstrap resamples = no intervals); it is only used in messages.
    """

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            extra = f" ({minimum} = {meaning_of_minimum})" if meaning_of_minimum else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{extra}, got {value}")
        return value

    parse.__name__ = "positive_int" if minimum == 1 else f"int>={minimum}"
    return parse


#: An argparse ``type=`` for counts that must be >= 1 (sentences, batch size, tokens, items...).
positive_int = count(1)
#: An argparse ``type=`` for seeds: numpy's generators refuse negative seeds.
seed_int = count(0)


def layers_arg(text: str) -> str | list[int]:
    """An argparse ``type=`` for ``--layers``: ``all``, ``1,5,9``, ``1-5`` (inclusive), ``0,3-5,18``, ``-1``.

    Parsing is :func:`xling_probe.labels.parse_layers` (the library accepts the same strings);
    whether the layers exist is checked later against the model or the saved activations.
    """
    from ..labels import parse_layers

    try:
        return parse_layers(text)
    except ExtractionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


LAYERS_HELP = ("'all', or layer indices and inclusive ranges, e.g. 1,5,9 or 0,3-5,18; negative indices count "
               "from the end (0 = embeddings, l = output of block l-1)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None,
                   help="hub id, local HF folder or .gguf file (default: the offline Gemma 3 270M)")
    g.add_argument("--backend", default="hf", choices=["hf", "transformer_lens"], help="hooking backend (default: hf)")
    g.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda when available)")
    g.add_argument("--dtype", default=None, help="float32 (default), bfloat16 or float16")


def add_data_options(p: argparse.ArgumentParser, *, langs_help: str | None = None,
                     limit_help: str | None = None) -> None:
    """--data, --langs and --limit; a command whose defaults differ states them in ``*_help``."""
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None,
                   help="parallel corpus: .tsv (header = id + language codes, no quoting), .jsonl or .csv "
                        "(default: the bundled sample)")
    g.add_argument("--langs", default=None,
                   help=langs_help or "comma-separated language codes to use (default: all in the data)")
    g.add_argument("--limit", type=positive_int, default=None,
                   help=limit_help or "use only the first N sentences (default: all)")


POOLINGS = ["mean", "last", "first", "weighted_mean"]


def add_extraction_options(p: argparse.ArgumentParser, title: str = "extraction") -> argparse._ArgumentGroup:
    """--pooling, --batch-size and --max-length (the options every command that runs a model shares)."""
    g = p.add_argument_group(title)
    g.add_argument("--pooling", default="mean", choices=POOLINGS,
                   help="sentence pooling (default: mean over real tokens, special tokens excluded)")
    g.add_argument("--batch-size", type=positive_int, default=16, help="sentences per forward pass (default: 16)")
    g.add_argument("--max-length", type=positive_int, default=512,
                   help="truncate sentences to this many tokens (default: 512)")
    return g


def add_acts_options(p: argparse.ArgumentParser) -> None:
    """Input of the analysis commands: a saved activation folder (--acts) or a model run on a corpus."""
    src = p.add_argument_group("input (either --acts, or the model and data options)")
    src.add_argument("--acts", default=None, help="activation folder written by 'xling-probe extract'")
    add_model_options(p)
    add_data_options(p)
    add_extraction_options(p, "extraction (only without --acts)")


def add_out_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (must be new or empty unless --force)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty --out folder (files with the same names are overwritten, "
                        "nothing else is deleted)")


def acts_from(args: argparse.Namespace):
    """The activations an analysis command works on: ``--acts`` (with --langs/--limit applied) or a fresh
    extraction of --model on --data."""
    from ..extraction.activations import Activations

    if args.acts:
        if args.model or args.data:
            raise XlingProbeError("pass either --acts or --model/--data, not both")
        folder = Path(args.acts).expanduser()
        if not folder.is_dir():
            raise XlingProbeError(f"--acts {folder} is not a folder; pass a folder written by 'xling-probe extract'")
        acts = Activations.load(folder)
        langs = split_list(args.langs)
        if langs or args.limit:
            acts = acts.sel(languages=langs, ids=acts.ids[: args.limit] if args.limit else None)
        return acts
    from ..extraction.extract import extract

    corpus = load_corpus_from(args)  # data and language typos fail here, before the slow model load
    return extract(load_model_from(args), corpus, pooling=args.pooling,
                   batch_size=args.batch_size, max_length=args.max_length)


def parse_pairs(text: str | None, *, keywords: bool = True) -> str | list[tuple[str, str]] | None:
    """``--pairs`` in the one pair grammar, :func:`xling_probe.labels.parse_pairs`: 'en-de,en-zh' ->
    [('en', 'de'), ('en', 'zh')] ('en-zh-Hant', 'zh-Hant/en', 'fr:de' work too); with ``keywords``,
    'all', 'pivot' and 'pivot:en' pass through. None stays None.
    """
    from ..labels import parse_pairs as parse

    if text is None:
        return None
    if not split_list(text):
        hint = "'all', 'pivot:en' or " if keywords else ""
        raise XlingProbeError(f"--pairs is empty; use {hint}pairs like en-de,en-zh")
    parsed = parse(text) if keywords else parse(split_list(text))
    return parsed if isinstance(parsed, str) else list(parsed)


def split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    return items or None


def load_model_from(args: argparse.Namespace):
    from ..models.loading import load_model

    return load_model(args.model, backend=args.backend, device=args.device, dtype=args.dtype)


def load_corpus_from(args: argparse.Namespace):
    """--data (or the bundled sample) restricted to --langs and --limit. Cheap: call it before
    :func:`load_model_from` so a wrong file or language code fails at once."""
    from ..data.corpus import ParallelCorpus, load_corpus

    langs = split_list(args.langs)
    if args.data and Path(args.data).expanduser().is_dir():
        raise XlingProbeError(f"--data {args.data} is a folder; pass a corpus file (.tsv, .jsonl or .csv)")
    corpus = load_corpus(args.data) if args.data else ParallelCorpus.sample()
    if langs:
        corpus = corpus.select_languages(langs)
    if args.limit is not None:
        corpus = corpus.head(args.limit)
    return corpus


def prepare_out(path: str | Path, *, force: bool = False) -> Path:
    """Create the --out folder; refuse a non-empty one unless --force (never deletes anything).

    A thin wrapper of :func:`xling_probe.paths.prepare_output_folder` whose messages name the flags.
    """
    from ..paths import prepare_output_folder

    return prepare_output_folder(path, force=force, what="--out folder", force_hint="pass --force")


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
