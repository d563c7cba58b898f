"""``xling-probe report``: the main job, one self-contained HTML report of every analysis."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import XlingProbeError

from .options import (
    add_data_options,
    add_model_options,
    add_out_options,
    add_seq2seq_options,
    count,
    extract_options,
    load_corpus_from,
    load_options,
    positive_float,
    positive_int,
    seed_int,
    split_list,
)


def _report_defaults() -> dict:
    """The defaults of :func:`xling_probe.report.build.build_report`, read from its signature so the help
    can never state another number than the one used (xling_probe.report.build imports nothing heavy)."""
    import inspect

    from ..report.build import build_report

    return {name: p.default for name, p in inspect.signature(build_report).parameters.items()
            if p.default is not inspect.Parameter.empty}


def register(sub) -> None:
    from ..report.build import DEFAULT_LANGS, DEFAULT_LIMIT, DEFAULT_PAIRS, REPORT_METRICS

    d = _report_defaults()
    pairs = ",".join(f"{a}-{b}" for a, b in DEFAULT_PAIRS)
    p = sub.add_parser(
        "report",
        help="run extraction, similarity, neutrality and language drift and write an HTML report",
        description="Runs every analysis on a model and a parallel corpus (defaults: the offline Gemma 3 270M, the "
                    "bundled sample sentences and word list) and writes DIR/index.html (self-contained, opens offline), "
                    "static figures (PNG + SVG, needs Chromium), CSV tables and manifest.json. Sentences are "
                    f"mean-pooled over their first {d['max_length']} tokens; the similarity metrics are "
                    f"{', '.join(REPORT_METRICS)}.",
    )
    add_model_options(p)
    add_data_options(
        p,
        langs_help=f"comma-separated language codes to use (default: {','.join(DEFAULT_LANGS)}, those of them that "
                   "are in the data; all languages of the data when fewer than 2 of them are; 'all': every "
                   "language of the data)",
        limit_help=f"use only the first N sentences (default: {DEFAULT_LIMIT})",
    )
    g = p.add_argument_group("report")
    g.add_argument("--pairs", default=None, metavar="DRIFT_PAIRS",
                   help="the language-drift pairs, source-target (translate source into target through the logit "
                        f"lens), e.g. fr-zh,de-fr (default: {pairs}); not similarity pairs: the similarity "
                        "sections score every pair of --langs")
    g.add_argument("--words", default=None, help="word list CSV for the drift (default: the bundled one)")
    g.add_argument("--drift-items", type=positive_int, default=d["drift_items"],
                   help=f"prompts per drift pair (default: {d['drift_items']})")
    g.add_argument("--shots", type=count(0, "zero-shot"), default=d["shots"],
                   help=f"examples per drift prompt, 0 = zero-shot (default: {d['shots']})")
    g.add_argument("--bootstrap", type=positive_int, default=d["bootstrap"],
                   help=f"bootstrap resamples of the intervals (default: {d['bootstrap']})")
    g.add_argument("--null-permutations", type=positive_int, default=d["null_permutations"],
                   help=f"shuffled pairings of the null (default: {d['null_permutations']})")
    g.add_argument("--batch-size", type=positive_int, default=d["batch_size"],
                   help=f"sentences per forward pass (default: {d['batch_size']})")
    g.add_argument("--max-length", type=positive_int, default=d["max_length"],
                   help=f"truncate sentences to this many tokens (default: {d['max_length']}; the other "
                        "commands default to 512)")
    g.add_argument("--dpi", type=positive_int, default=d["dpi"],
                   help=f"resolution of the PNG figures (default: {d['dpi']})")
    g.add_argument("--no-static", action="store_true", help="skip the PNG/SVG export (HTML only)")
    g.add_argument("--store", default=None, metavar="PATH_OR_URL",
                   help="keep the activations in an on-disk zarr store (a folder, or s3://... with its fsspec "
                        "package) that every analysis streams from; resumes an interrupted run. For hundreds of "
                        "languages (docs/scale.md)")
    g.add_argument("--store-dtype", choices=("float32", "float16", "bfloat16"), default=d["store_dtype"],
                   help=f"precision of the stored values; computation stays float32 (default: {d['store_dtype']})")
    g.add_argument("--max-memory-gb", type=positive_float, default=d["max_memory_gb"],
                   help=f"working-memory budget of the similarity stage, in GB (default: {d['max_memory_gb']})")
    g.add_argument("--seed", type=seed_int, default=d["seed"],
                   help=f"seed of splits, nulls, bootstraps and prompts (default: {d['seed']})")
    g.add_argument("--no-cache", action="store_true",
                   help="compute the activations and the drift again instead of reading (or writing) the cache")
    g.add_argument("--neurons", action="store_true",
                   help="add the language-neuron section: LAPE neurons on 80%% of the sentences, the perplexity "
                        "change when each language's neurons are switched off (and as many random ones) on the "
                        "other 20%% (costs two more passes over the corpus)")
    g.add_argument("--distances", action="store_true",
                   help="add the language-distance section: per layer, the Spearman correlation of every pair's "
                        "similarity (debiased CKA, P@1) with URIEL+ distances and script identity, Mantel p-values "
                        "and the partial r controlling for script (needs at least 4 languages)")
    g.add_argument("--distance-source", choices=("urielplus", "uriel"), default="urielplus",
                   help="the distances of --distances: urielplus, URIEL with its integrated databases (the first "
                        "run integrates them once, 1-4 min, then cached); uriel, the original arrays, fast "
                        "(default: urielplus)")
    g.add_argument("--distance-permutations", type=positive_int, default=999,
                   help="Mantel permutations of --distances (default: 999)")
    g.add_argument("--transliteration", action="store_true",
                   help="add the transliteration section: translation vs random pairs for the original and the "
                        "romanized (uroman) text of the non-Latin-script languages, per layer with bootstrap "
                        "intervals (one more pass over those languages' sentences)")
    g.add_argument("--tuned-lens", nargs="?", const=True, default=False, metavar="PATH",
                   help="add each drift pair read through a tuned lens: a lens.npz from `xling-probe tuned-lens`, "
                        "or without PATH the default lens trained on the bundled 16-language sample (about 2.5 min "
                        "on 2 CPU cores for Gemma 3 270M the first time, then cached)")
    add_seq2seq_options(p)
    add_out_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report.build import DEFAULT_LIMIT, build_report, drift_pairs
    from .options import prepare_out

    pairs = drift_pairs(args.pairs)  # the labels grammar (fr-zh, fra/zho); a typo fails before the model load
    # The data file and the language codes are checked here, before build_report loads the model;
    # build_report applies its own language default when --langs is not given.
    every = (args.langs or "").strip().lower() == "all"
    corpus = load_corpus_from(argparse.Namespace(data=args.data, langs=None if every else args.langs, limit=None))
    limit = DEFAULT_LIMIT if args.limit is None else args.limit
    model_options = load_options(args)  # conflicting model options fail before the model load
    if args.stack == "decoder" and args.langs:
        # the decoder stack's encoder may read a language that --langs leaves out (--source-language en)
        corpus = load_corpus_from(argparse.Namespace(data=args.data, langs=None, limit=None))
    seq2seq = extract_options(args, corpus)
    if isinstance(args.tuned_lens, str) and not Path(args.tuned_lens).is_file():
        raise XlingProbeError(f"--tuned-lens {args.tuned_lens}: no such file (write one with `xling-probe tuned-lens`)")
    prepare_out(args.out, force=args.force)  # refuse a non-empty folder before the slow model load
    result = build_report(
        args.out, model=args.model, corpus=corpus, langs="all" if every else split_list(args.langs), pairs=pairs,
        limit=limit, store=args.store, store_dtype=args.store_dtype, max_memory_gb=args.max_memory_gb,
        words=args.words, null_permutations=args.null_permutations, bootstrap=args.bootstrap,
        drift_items=args.drift_items, shots=args.shots, batch_size=args.batch_size, max_length=args.max_length,
        static=not args.no_static, dpi=args.dpi, seed=args.seed, force=args.force,
        load_options=model_options, extract_options=seq2seq, neurons=args.neurons,
        distances={"source": args.distance_source, "permutations": args.distance_permutations} if args.distances
        else False,
        transliteration=args.transliteration, tuned_lens=args.tuned_lens,
        cache=not args.no_cache,
    )
    for note in result.notes:
        print(f"note: {note}")
    print("stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    print(f"wrote {len(result.files)} files; open {result.index}")
    return 0
