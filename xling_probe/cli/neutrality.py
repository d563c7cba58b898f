"""``xling-probe neutrality``: per-layer language neutrality, raw vs centered (vs projected), on held-out data."""

from __future__ import annotations

import argparse

from .options import (
    LAYERS_HELP,
    acts_from,
    add_acts_options,
    add_out_options,
    heldout_size,
    layers_arg,
    parse_pairs,
    prepare_out,
    seed_int,
    write_json,
)


def register(sub) -> None:
    p = sub.add_parser(
        "neutrality",
        help="how much language identity each layer carries, before and after centering/projection",
        description="Split the sentences by id into a fit and a held-out split; learn the language means "
                    "(centering), a language-ID probe and optionally linear maps into a pivot language on the "
                    "fit split; report per layer on the held-out split: retrieval P@1 over language pairs, "
                    "language-ID probe accuracy and the share of variance explained by the language means. "
                    "Writes neutrality.csv (tidy), summary.csv (per layer) and neutrality.json.",
    )
    add_acts_options(p)
    n = p.add_argument_group("neutrality")
    n.add_argument("--heldout", type=heldout_size, default=0.5,
                   help="held-out split size: a fraction (0.2) or a number of sentences (100); default 0.5")
    n.add_argument("--seed", type=seed_int, default=0, help="seed of the split (default: 0)")
    n.add_argument("--centering", default="fit", choices=["fit", "self"],
                   help="'fit': means from the fit split applied to the held-out split (default); "
                        "'self': each split centered on its own means (the paper's setting)")
    n.add_argument("--projection", default="none", choices=["none", "lstsq", "procrustes"],
                   help="also map every language into the pivot's space (default: none)")
    n.add_argument("--pivot", default=None, help="pivot language (default: the first language)")
    n.add_argument("--pairs", default="all",
                   help="retrieval over 'all' language pairs, 'pivot' (--pivot vs each other language), 'pivot:en', "
                        "or comma-separated pairs like en-de,en-zh (default: all)")
    n.add_argument("--probe", default="knn", choices=["knn", "logistic"],
                   help="language-ID probe: 'knn' (cosine 5-NN, default: sees the language identity that "
                        "centering leaves) or 'logistic' (linear: at chance by construction after centering "
                        "or projection, marked so in the output)")
    n.add_argument("--alpha", type=float, default=0.0, help="ridge penalty of the least-squares projection")
    n.add_argument("--layers", type=layers_arg, default="all", help=f"layers to evaluate: {LAYERS_HELP} (default: all)")
    add_out_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..centering.evaluate import neutrality

    out = prepare_out(args.out, force=args.force)
    acts = acts_from(args)
    layers = None if args.layers == "all" else args.layers
    report = neutrality(
        acts, args.heldout, seed=args.seed, centering=args.centering,
        projection=None if args.projection == "none" else args.projection,
        pivot=args.pivot, pairs=parse_pairs(args.pairs), alpha=args.alpha, layers=layers, probe=args.probe,
    )
    report.to_dataframe().to_csv(out / "neutrality.csv", index=False)
    report.summary().to_csv(out / "summary.csv", index=False)
    write_json(out / "neutrality.json", report.to_dict())
    print(report)
    print(f"wrote neutrality.csv, summary.csv and neutrality.json to {out}")
    return 0
