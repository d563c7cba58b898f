"""``xling-probe tuned-lens``: train a tuned lens on multilingual text and compare it with the logit lens."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import XlingProbeError
from .options import add_model_options, count, load_model_from, positive_int, prepare_out, seed_int, write_json


def register(sub) -> None:
    p = sub.add_parser(
        "tuned-lens",
        help="train per-layer translators (the tuned-lens objective) on text in many languages",
        description="Train a tuned lens (affine translator per layer, KL to the final layer) on parallel text "
                    "(default: the bundled sample, 16 languages), evaluate the exact KL to the final layer of it "
                    "and of the logit lens on held-out sentences of --eval-langs, and write lens.npz (read it "
                    "with `xling-probe drift --tuned-lens DIR/lens.npz` or TunedLens.load), kl.csv, "
                    "validation.csv and tuned_lens.json. A lens trained before with the same inputs is loaded "
                    "from the cache.",
    )
    add_model_options(p)
    g = p.add_argument_group("training")
    g.add_argument("--corpus", default=None, help="parallel TSV (one column per language; default: the bundled sample)")
    g.add_argument("--langs", default=None, help="comma-separated training languages (default: every corpus language)")
    g.add_argument("--sentences", type=positive_int, default=100, help="training sentences per language (default: 100)")
    g.add_argument("--tokens", type=positive_int, default=4096, help="training token positions (default: 4096)")
    g.add_argument("--steps", type=count(0, "the regression start only"), default=20,
                   help="KL steps after the regression start (default: 20)")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of the position sample and the steps (default: 0)")
    g.add_argument("--eval-langs", default=None,
                   help="comma-separated languages to evaluate on, their sentences after --sentences (default: 3 "
                        "training languages)")
    g.add_argument("--eval-tokens", type=positive_int, default=48, help="evaluation positions per language (default: 48)")
    g.add_argument("--no-cache", action="store_true", help="train again instead of loading a cached lens")
    p.add_argument("--out", required=True, help="output folder (must be new or empty unless --force)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    p.set_defaults(func=run)


def _codes(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def run(args: argparse.Namespace) -> int:
    from ..data.corpus import ParallelCorpus, load_corpus
    from ..lens import compare_lenses, train_tuned_lens

    corpus = ParallelCorpus.sample() if args.corpus is None else load_corpus(args.corpus)
    langs = _codes(args.langs) or list(corpus.languages)
    eval_langs = _codes(args.eval_langs) or langs[:3]
    missing = [c for c in langs + eval_langs if c not in corpus.languages]
    if missing:
        raise XlingProbeError(f"languages {missing} are not in the corpus ({', '.join(corpus.languages)})")
    held = {c: list(corpus.texts(c))[args.sentences:] for c in eval_langs}
    short = [c for c, t in held.items() if not t]
    if short:
        raise XlingProbeError(f"no sentences left after the first {args.sentences} for {short}: use fewer --sentences")
    out = prepare_out(args.out, force=args.force)
    model = load_model_from(args)
    lens = train_tuned_lens(model, corpus, languages=langs, n_sentences=args.sentences, max_tokens=args.tokens,
                            steps=args.steps, seed=args.seed, cache=not args.no_cache)
    lens.save(Path(out) / "lens.npz")
    cmp = compare_lenses(model, lens, held, max_tokens=args.eval_tokens, seed=args.seed)
    cmp.to_dataframe().to_csv(out / "kl.csv", index=False)
    lens.validation_table().to_csv(out / "validation.csv", index=False)
    logit, tuned = cmp.curve("logit"), cmp.curve("tuned")
    write_json(out / "tuned_lens.json", {"model": model.name, "digest": lens.digest, "meta": dict(lens.meta),
                                         "eval_languages": eval_langs, "kl_bits_logit": logit.tolist(),
                                         "kl_bits_tuned": tuned.tolist()})
    print(f"{lens!r}\nKL to the final layer (bits), held-out sentences of {','.join(eval_langs)}:")
    print("layer  logit   tuned")
    for layer, (a, b) in enumerate(zip(logit, tuned)):
        print(f"{layer:>5} {a:7.2f} {b:7.2f}")
    print(f"wrote lens.npz, kl.csv, validation.csv and tuned_lens.json to {out}")
    return 0
