"""``xling-probe extract``: pooled residual-stream activations of a parallel corpus."""

from __future__ import annotations

from pathlib import Path

import argparse

from .options import (
    LAYERS_HELP,
    add_data_options,
    add_extraction_options,
    add_model_options,
    add_out_options,
    add_seq2seq_options,
    corpus_for_extract,
    extract_options,
    layers_arg,
    load_model_from,
    load_options,
    prepare_out,
)


def register(sub) -> None:
    p = sub.add_parser(
        "extract",
        help="extract pooled residual-stream activations of a parallel corpus",
        description="Run a parallel corpus through a model and save pooled residual-stream states of every "
                    "layer (0 = embeddings, l = output of block l-1) as activations.npy + manifest.json.",
    )
    add_model_options(p)
    add_data_options(p)
    g = add_extraction_options(p)
    g.add_argument("--layers", type=layers_arg, default="all", help=f"{LAYERS_HELP} (default: all)")
    g.add_argument("--include-special", action="store_true", help="include BOS/CLS/SEP/EOS in mean pooling")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")
    add_seq2seq_options(p)
    add_out_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..extraction.extract import extract

    # a wrong file, language or decoder-stack option fails here, before the slow model load
    corpus, languages = corpus_for_extract(args)
    options = extract_options(args, corpus)
    load_kw = load_options(args)  # conflicting model options fail before the --out folder is made
    out = prepare_out(args.out, force=args.force)
    settings = dict(languages=languages, layers=args.layers, pooling=args.pooling, include_special=args.include_special,
                    batch_size=args.batch_size, max_length=args.max_length, cache=not args.no_cache, **options)
    acts = None if args.no_cache else cached(args.model, load_kw, corpus, settings)
    if acts is None:
        acts = extract(load_model_from(args), corpus, **settings)
    acts.save(out)
    print(f"wrote {acts!r} to {out}")
    return 0


def cached(model: str | None, load_kw: dict, corpus, settings: dict):
    """The activations from the cache without loading the weights, or ``None`` (then the model is loaded).

    The handle is built without weights (:func:`~xling_probe.models.weightless.weightless_handle`: the
    config, the tokenizer and a fingerprint computed from the files, equal to the loaded model's), so
    a cache hit costs about a second instead of a model load; a miss, or a model whose fingerprint
    cannot be computed from its files, returns ``None``.
    """
    from ..extraction.extract import extract
    from ..models.weightless import WeightsNotLoaded, weightless_handle

    if model is not None and not Path(str(model)).expanduser().exists():
        return None  # a hub id: only a local folder or file has a fingerprint to compute (and no network probe here)
    handle = weightless_handle(model, **load_kw)
    if handle is None:
        return None
    try:
        return extract(handle, corpus, progress=False, **settings)
    except WeightsNotLoaded:
        return None
