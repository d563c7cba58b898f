"""``xling-probe report``: the main job, one self-contained HTML report of every analysis."""

from __future__ import annotations

import argparse

from ._common import add_data_options, add_model_options, add_out_options, parse_pairs, split_list


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="run extraction, similarity, neutrality and language drift and write an HTML report",
        description="Runs every analysis on a model and a parallel corpus (defaults: the offline Gemma 3 270M, the "
                    "bundled sample sentences and word list) and writes DIR/index.html (self-contained, opens offline), "
                    "static figures (PNG + SVG, needs Chromium), CSV tables and manifest.json.",
    )
    add_model_options(p)
    add_data_options(p)
    p.set_defaults(limit=None)
    g = p.add_argument_group("report")
    g.add_argument("--pairs", default=None,
                   help="source-target pairs of the language-drift section, e.g. fr-zh,de-fr (default: fr-zh,de-fr)")
    g.add_argument("--words", default=None, help="word list CSV for the drift (default: the bundled one)")
    g.add_argument("--drift-items", type=int, default=16, help="prompts per drift pair (default: 16)")
    g.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples of the intervals (default: 100)")
    g.add_argument("--null-permutations", type=int, default=20, help="shuffled pairings of the null (default: 20)")
    g.add_argument("--dpi", type=int, default=200, help="resolution of the PNG figures (default: 200)")
    g.add_argument("--no-static", action="store_true", help="skip the PNG/SVG export (HTML only)")
    g.add_argument("--seed", type=int, default=0, help="seed of splits, nulls, bootstraps and prompts (default: 0)")
    add_out_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import DEFAULT_LIMIT, build_report
    from ._common import prepare_out

    prepare_out(args.out, force=args.force)  # refuse a non-empty folder before the slow model load
    corpus = None
    if args.data:
        from ..corpus import load_corpus

        corpus = load_corpus(args.data)
    result = build_report(
        args.out, model=args.model, corpus=corpus, langs=split_list(args.langs),
        pairs=parse_pairs(args.pairs, keywords=False), limit=args.limit or DEFAULT_LIMIT, words=args.words,
        null_permutations=args.null_permutations, bootstrap=args.bootstrap, drift_items=args.drift_items,
        static=not args.no_static, dpi=args.dpi, seed=args.seed, force=args.force,
        load_options={"backend": args.backend, "device": args.device, "dtype": args.dtype},
    )
    for note in result.notes:
        print(f"note: {note}")
    print("stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    print(f"wrote {len(result.files)} files; open {result.index}")
    return 0
