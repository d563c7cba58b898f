"""``xling-probe drift``: logit-lens language drift of a translation task (Wendler et al. 2024)."""

from __future__ import annotations

import argparse

from ..errors import XlingProbeError

from .options import add_model_options, count, load_model_from, positive_int, prepare_out, seed_int, write_json


def register(sub) -> None:
    p = sub.add_parser(
        "drift",
        help="per-layer P(target), P(English), P(source) of k-shot word translation through the logit lens",
        description="Build k-shot word-translation prompts (Français: \"fleur\" - Deutsch: \"Blume\" ...), read the "
                    "last position at every layer through the logit lens (unembed(final_norm(h_l)), float32 softmax) "
                    "and write per-layer means with 95% intervals (curves.csv), per-item values (items.csv), "
                    "dropped items (dropped.csv) and a summary (drift.json).",
    )
    add_model_options(p)
    g = p.add_argument_group("task")
    g.add_argument("--source", default=None, help="language of the given word, e.g. fr (required for translation)")
    g.add_argument("--target", required=True, help="language the model should answer in, e.g. zh")
    g.add_argument("--latent", default="en", help="the candidate latent language (default: en)")
    g.add_argument("--task", default="translation", choices=["translation", "repetition", "cloze"],
                   help="prompt type (default: translation)")
    g.add_argument("--words", default=None,
                   help="word list CSV with one column per language code (default: the bundled list)")
    g.add_argument("--shots", type=count(0, "zero-shot"), default=5,
                   help="examples per prompt, 0 = zero-shot (default: 5)")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of the shot choice and the bootstrap (default: 0)")
    g.add_argument("--limit", type=positive_int, default=None,
                   help="use only the first N items that pass the filters (default: all)")
    g.add_argument("--single-token", action="store_true", help="keep only words that are one token; sets = that token")
    g.add_argument("--keep-overlap", action="store_true",
                   help="keep items whose latent and target token sets overlap or whose latent word is inside the "
                        "target word (dropped by default)")
    g.add_argument("--batch-size", type=positive_int, default=8, help="prompts per forward pass (default: 8)")
    g.add_argument("--n-boot", type=positive_int, default=1000, help="bootstrap resamples (default: 1000)")
    g.add_argument("--no-cache", action="store_true",
                   help="compute the drift again instead of reading (or writing) the cached result")
    g.add_argument("--lens", choices=["logit", "tuned"], default="logit",
                   help="read the layers through the logit lens or a tuned lens (default: logit). 'tuned' trains one "
                        "on the bundled multilingual sample (cached after the first time) unless --tuned-lens names one")
    g.add_argument("--tuned-lens", default=None, metavar="PATH",
                   help="a lens.npz written by `xling-probe tuned-lens` (implies --lens tuned)")
    p.add_argument("--out", required=True, help="output folder (must be new or empty unless --force)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..lens import language_drift, load_words

    # The word list and the language codes are checked before the slow model load.
    words = load_words(args.words)
    target = words.resolve_language(args.target)
    words.resolve_language(args.latent)
    if args.task == "translation":
        if args.source is None:
            raise XlingProbeError("--task translation needs --source (the language of the given word), e.g. --source fr")
        if words.resolve_language(args.source) == target:
            raise XlingProbeError(
                f"--source and --target are both {target!r}: translating a language into itself is the "
                "repetition task; use --task repetition --target " + target
            )
    tuned_path = None
    if args.tuned_lens is not None:
        from pathlib import Path

        tuned_path = Path(args.tuned_lens)
        if not tuned_path.is_file():
            raise XlingProbeError(f"--tuned-lens {tuned_path}: no such file (write one with `xling-probe tuned-lens`)")
    out = prepare_out(args.out, force=args.force)
    model = load_model_from(args)
    tuned = None
    if tuned_path is not None:
        from ..lens import TunedLens

        tuned = TunedLens.load(tuned_path)
    elif args.lens == "tuned":
        from ..lens import train_tuned_lens

        tuned = train_tuned_lens(model)
    result = language_drift(
        model, words, source=args.source, target=args.target, latent=args.latent, task=args.task,
        shots=args.shots, seed=args.seed, single_token=args.single_token, drop_overlap=not args.keep_overlap,
        drop_substring=not args.keep_overlap, limit=args.limit, batch_size=args.batch_size, n_boot=args.n_boot,
        cache=not args.no_cache, tuned=tuned,
    )
    result.to_dataframe().to_csv(out / "curves.csv", index=False)
    result.items_dataframe().to_csv(out / "items.csv", index=False)
    result.dropped.to_dataframe().to_csv(out / "dropped.csv", index=False)
    write_json(out / "drift.json", result.to_dict())
    print(result.format_curves())
    print(f"wrote curves.csv, items.csv, dropped.csv and drift.json to {out}")
    return 0
