"""``xling-probe steer``: language steering vectors (mean of B - mean of A per layer), swept over layer x alpha."""

from __future__ import annotations

import argparse

from .options import (
    LAYERS_HELP,
    add_data_options,
    add_model_options,
    add_out_options,
    count,
    layers_arg,
    load_corpus_from,
    load_model_from,
    number_list,
    positive_int,
    prepare_out,
    seed_int,
    write_figures_page,
    write_json,
)


def register(sub) -> None:
    p = sub.add_parser(
        "steer",
        help="steer the output language: add mean(target) - mean(source) at a layer, sweep layer x alpha",
        description="Fits v_l(A -> B) = mean state of B - mean state of A (mean-pooled, per layer) on the first "
                    "--fit sentences of the corpus, adds alpha * v_l at one layer (every position) and measures on "
                    "later, held-out sentences: the language of greedy continuations of source prefixes (language "
                    "detector), the log-probability of the reference translation and its change from alpha = 0 "
                    "(switching the language vs breaking the model), and on word-list repetition prompts whether "
                    "the target-language word beats the source one. A random vector of the same norm per layer is "
                    "the control. Writes steering.csv, steering.json, summary.json and figures.html.",
    )
    add_model_options(p)
    add_data_options(p, limit_help="use only the first N sentences, before the fit/held-out split (default: all)")
    g = p.add_argument_group("steering")
    g.add_argument("--source", required=True, help="the prompts' language (A)")
    g.add_argument("--target", required=True, help="the language to steer toward (B)")
    g.add_argument("--layers", type=layers_arg, default=None,
                   help=f"layers to steer at (default: every third layer from 1); {LAYERS_HELP}")
    g.add_argument("--alphas", type=number_list(float, "strengths"), default=[0.0, 1.0, 2.0, 4.0],
                   help="strengths; 0 is always added as the baseline (default: 0,1,2,4)")
    g.add_argument("--fit", type=positive_int, default=200,
                   help="sentences (the first ones) the vectors are fitted on (default: 200, at most all but --items)")
    g.add_argument("--items", type=positive_int, default=16, help="held-out sentences and word prompts (default: 16)")
    g.add_argument("--words", default=None, help="word list CSV of the repetition prompts (default: the bundled one)")
    g.add_argument("--max-new-tokens", type=positive_int, default=16,
                   help="tokens generated per continuation (default: 16)")
    g.add_argument("--shots", type=count(0, "zero-shot"), default=3, help="examples per word prompt (default: 3)")
    g.add_argument("--no-control", action="store_true", help="skip the random-vector control")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of the control and the prompts (default: 0)")
    g.add_argument("--batch-size", type=positive_int, default=8, help="prompts per forward pass (default: 8)")
    g.add_argument("--max-length", type=positive_int, default=128,
                   help="truncate the fit sentences to this many tokens (default: 128)")
    add_out_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import plots
    from ..errors import InterventionError
    from ..extraction.extract import extract
    from ..interventions import steer, steering_vectors
    from ..labels import select_layers

    out = prepare_out(args.out, force=args.force)
    corpus = load_corpus_from(args)
    src, tgt = corpus.resolve_language(args.source), corpus.resolve_language(args.target)  # typos fail here
    if src == tgt:
        raise InterventionError(f"--source and --target are both {src!r}: steering needs two languages")
    corpus = corpus.select_languages([src, tgt])
    n_fit = min(args.fit, len(corpus) - args.items)
    if n_fit < 2:
        raise InterventionError(f"the corpus has {len(corpus)} sentences: --items {args.items} held out leaves "
                                f"{max(n_fit, 0)} to fit the vectors (at least 2 needed); lower --items")
    model = load_model_from(args)
    acts = extract(model, corpus.head(n_fit), pooling="mean", batch_size=args.batch_size,
                   max_length=args.max_length)
    vectors = steering_vectors(acts, src, tgt)
    layers = None
    if args.layers is not None:
        layers = [acts.layers[i] for i in select_layers(args.layers, acts.layers, error=InterventionError)]
    res = steer(model, vectors, corpus=corpus, words=args.words, layers=layers, alphas=args.alphas,
                control=not args.no_control, n_items=args.items, max_new_tokens=args.max_new_tokens,
                shots=args.shots, seed=args.seed, batch_size=args.batch_size)
    res.save(out)
    measures = set(res.table["measure"])
    figs = {}
    for m in ("continuation_target", "translation_cost", "word_switch", "p_target_word"):
        if m in measures:
            figs[f"{m}_curves"] = plots.intervention_curves(res, m)
    key = "continuation_target" if "continuation_target" in measures else "word_switch"
    figs[f"{key}_grid"] = plots.intervention_heatmap(res, key, kind="vector")
    write_figures_page(out / "figures.html", f"{model.name}: steering {src} -> {tgt}", figs)
    best = res.best(key, kind="vector")
    summary = {"source": src, "target": tgt, "fit_sentences": n_fit, "best_by": key,
               "best": {k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()}}
    if "translation_cost" in measures:
        cost = res.sel("translation_cost", kind="vector", layer=best["layer"], alpha=best["alpha"])
        summary["translation_cost_at_best"] = float(cost["mean"].iloc[0]) if len(cost) else None
    write_json(out / "summary.json", summary)
    print(res.grid(key, "layer", "alpha", kind="vector").round(3).to_string())
    print(f"best ({key}): layer {int(best['layer'])}, alpha {best['alpha']:g}: {best['mean']:.3f} "
          f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}]"
          + (f"; translation cost {summary['translation_cost_at_best']:+.3f} nats/token"
             if summary.get("translation_cost_at_best") is not None else ""))
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0
