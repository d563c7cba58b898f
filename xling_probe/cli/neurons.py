"""``xling-probe neurons``: language-specific FFN neurons (LAPE), their overlaps and the perplexity-change matrix."""

from __future__ import annotations

import argparse

from .options import (
    add_data_options,
    add_model_options,
    add_out_options,
    count,
    heldout_size,
    load_corpus_from,
    load_model_from,
    positive_int,
    prepare_out,
    seed_int,
    write_figures_page,
    write_json,
)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1] like 0.01, got {text!r}")
    return value


def _percentile(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"expected a percentile between 0 and 100 like 95, got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "neurons",
        help="language-specific FFN neurons (LAPE, Tang et al. 2024) and what switching them off costs",
        description="Split the corpus by id into a fit and a held-out part. On the fit part: the activation "
                    "probability of every FFN neuron per language, the LAPE selection (lowest entropy over "
                    "languages) and each neuron's languages. On the held-out part (causal LMs): the perplexity of "
                    "every language with each language's neurons switched off, and with as many random neurons. "
                    "Writes neurons.csv, per_layer.csv, overlap.csv, perplexity.csv, perplexity_matrix.csv, "
                    "perplexity_random.csv, selection.json, neurons.json, probabilities/ and figures.html.",
    )
    add_model_options(p)
    add_data_options(p, limit_help="use only the first N sentences, before the split (default: all)")
    g = p.add_argument_group("neurons")
    g.add_argument("--fraction", type=_fraction, default=0.01,
                   help="share of all neurons kept, lowest entropy first (default: 0.01, the paper's)")
    g.add_argument("--filter-percentile", "--threshold-percentile", dest="filter_percentile", type=_percentile,
                   default=95.0, help="drop neurons no language activates above this percentile of all probabilities "
                                      "(default: 95)")
    g.add_argument("--assign-percentile", type=_percentile, default=95.0,
                   help="a kept neuron belongs to every language above this percentile (default: 95)")
    g.add_argument("--active", default="gate", choices=["gate", "input"],
                   help="gate: act_fn(gate(x)) > 0, as the paper counts (default); input: the down projection's input > 0")
    g.add_argument("--min-tokens", type=count(1), default=200,
                   help="refuse languages with fewer counted tokens on the fit split (default: 200)")
    g.add_argument("--heldout", "--eval-split", dest="heldout", type=heldout_size, default=0.2,
                   help="held-out split for the perplexity: a fraction (0.2) or a number of sentences (100); default 0.2")
    g.add_argument("--no-control", action="store_true", help="skip the random-neuron control")
    g.add_argument("--no-perplexity", action="store_true", help="only select the neurons")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of the split and of the random control (default: 0)")
    g.add_argument("--batch-size", type=positive_int, default=16, help="sentences per forward pass (default: 16)")
    g.add_argument("--max-length", type=positive_int, default=256, help="truncate sentences to this many tokens (default: 256)")
    add_out_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import plots
    from ..neurons import activation_probabilities, perplexity_change, select_language_neurons

    out = prepare_out(args.out, force=args.force)
    corpus = load_corpus_from(args)  # a wrong file or language fails here, before the model load
    fit, held = corpus.split(args.heldout, seed=args.seed)
    model = load_model_from(args)
    probs = activation_probabilities(model, fit, active=args.active, batch_size=args.batch_size,
                                     max_length=args.max_length)
    sel = select_language_neurons(probs, fraction=args.fraction, filter_percentile=args.filter_percentile,
                                  assign_percentile=args.assign_percentile, min_tokens=args.min_tokens)
    probs.save(out / "probabilities")
    sel.save(out / "selection.json")
    sel.to_dataframe().to_csv(out / "neurons.csv", index=False)
    sel.per_layer().to_csv(out / "per_layer.csv")
    sel.overlap().to_csv(out / "overlap.csv")
    figs = {"neurons_per_layer": plots.neurons_per_layer(sel), "neuron_overlap": plots.neuron_overlap(sel)}
    payload = {"selection": {k: v for k, v in sel.to_dict().items() if k not in ("selected", "entropy", "probs",
                                                                                    "assigned")},
               "fit_sentences": len(fit), "heldout_sentences": len(held)}
    causal = model.kind == "decoder" and model.stack is None and model.has_unembedding
    if not args.no_perplexity and causal:
        ppl = perplexity_change(model, held, sel, control=not args.no_control, seed=args.seed,
                                batch_size=args.batch_size, max_length=args.max_length)
        ppl.to_dataframe().to_csv(out / "perplexity.csv", index=False)
        ppl.matrix().to_csv(out / "perplexity_matrix.csv")
        if ppl.control is not None:
            ppl.matrix(control=True).to_csv(out / "perplexity_random.csv")
        payload["perplexity"] = ppl.to_dict()
        figs["perplexity_change"] = plots.perplexity_change_heatmap(ppl)
        print(ppl.matrix().round(3).to_string())
    elif not args.no_perplexity:
        payload["perplexity"] = f"not computed: {model.name} is not a causal language model"
    write_figures_page(out / "figures.html", f"{model.name}: language neurons", figs)
    write_json(out / "neurons.json", payload)
    print(sel)
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0
