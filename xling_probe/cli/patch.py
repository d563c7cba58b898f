"""``xling-probe patch``: cross-language activation patching of word-translation prompts (concept vs language)."""

from __future__ import annotations

import argparse

from .options import (
    LAYERS_HELP,
    add_model_options,
    add_out_options,
    count,
    layers_arg,
    load_model_from,
    number_list,
    positive_int,
    prepare_out,
    seed_int,
    write_figures_page,
    write_json,
)


def _pair(text: str) -> tuple[str, str]:
    from ..errors import XlingProbeError
    from ..labels import parse_pair

    try:
        return parse_pair(text)
    except XlingProbeError as exc:
        raise argparse.ArgumentTypeError(f"expected INPUT-OUTPUT languages like de-it, got {text!r}: {exc}") from None


def register(sub) -> None:
    p = sub.add_parser(
        "patch",
        help="patch residual states of one translation prompt into another: does the concept or the language move?",
        description="Source prompts translate a word from language a into b, target prompts another word from c into "
                    "d (few-shot, from the word list). The source run's state at a layer and position is written "
                    "into the target run; the target's next-token probability of the source concept in d "
                    "(concept moved), in b (language moved) and of its own concept in d (kept) is read from the "
                    "lens token sets, over many word pairs with intervals, and for the control: the state taken "
                    "from an unrelated sentence. Writes patching.csv, patching.json, summary.json and figures.html.",
    )
    add_model_options(p)
    g = p.add_argument_group("patching")
    g.add_argument("--source", type=_pair, default=("de", "it"), help="source prompts, INPUT-OUTPUT (default: de-it)")
    g.add_argument("--target", type=_pair, default=("fr", "zh"), help="target prompts, INPUT-OUTPUT (default: fr-zh)")
    g.add_argument("--layers", type=layers_arg, default=None,
                   help=f"layers to patch (default: about 7 spread over the model); {LAYERS_HELP}")
    g.add_argument("--positions", type=number_list(int, "positions"), default=[-1],
                   help="positions counted from the end of each prompt, -1 = the last token; write --positions=-1,-2 (the = keeps a leading minus from reading as an option; default: -1)")
    g.add_argument("--pairs", type=positive_int, default=16, help="word pairs (default: 16)")
    g.add_argument("--words", default=None, help="word list CSV (default: the bundled one)")
    g.add_argument("--shots", type=count(0, "zero-shot"), default=3, help="examples per prompt (default: 3)")
    g.add_argument("--no-control", action="store_true", help="skip the unrelated-sentence control")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of the word pairs and prompts (default: 0)")
    add_out_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import plots
    from ..errors import InterventionError
    from ..interventions import concept_patching
    from ..labels import select_layers
    from ..lens.words import load_words

    wl = load_words(args.words)  # a missing language fails here, before the model load
    for lang in (*args.source, *args.target):
        wl.resolve_language(lang)
    if any(p >= 0 for p in args.positions):
        raise InterventionError(f"--positions count from the end of each prompt (-1, -2, ...), got {args.positions}: "
                                "prompts of different lengths align end to end")
    out = prepare_out(args.out, force=args.force)
    model = load_model_from(args)
    layers = None
    if args.layers is not None:
        states = list(range(model.n_blocks + 1))
        layers = [states[i] for i in select_layers(args.layers, states, error=InterventionError)]
    res = concept_patching(model, args.words, source=args.source, target=args.target, layers=layers,
                           positions=args.positions, n_pairs=args.pairs, shots=args.shots,
                           control=not args.no_control, seed=args.seed)
    res.save(out)
    figs = {f"{m}_curves": plots.intervention_curves(res, m, x="layer", by="position") for m in res.measures}
    if len(args.positions) > 1:
        figs["concept_moved_grid"] = plots.intervention_heatmap(res, "concept_moved", rows="layer", cols="position",
                                                                kind="translation")
    write_figures_page(out / "figures.html", f"{model.name}: activation patching", figs)
    best = res.best("concept_moved", kind="translation")
    summary = {"source": list(args.source), "target": list(args.target), "pairs": res.settings.get("n_pairs"),
               "best_concept_moved": {k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()}}
    write_json(out / "summary.json", summary)
    for m in res.measures:
        print(m)
        print(res.grid(m, "layer", "position", kind="translation").round(3).to_string())
    print(f"concept moved most at layer {int(best['layer'])}, position {int(best['position'])}: {best['mean']:.3f} "
          f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}]")
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0
