"""``xling-probe similarity``: CKA, ANC, retrieval and MEXA over every layer and language pair."""

from __future__ import annotations

import argparse

from ..labels import pair_label
from ..measures.registry import DEFAULT_METRICS, KNOWN, METRICS
from .options import (
    LAYERS_HELP,
    acts_from,
    add_acts_options,
    add_out_options,
    count,
    layers_arg,
    parse_pairs,
    prepare_out,
    seed_int,
    write_json,
)


def register(sub) -> None:
    p = sub.add_parser(
        "similarity",
        help="cross-lingual similarity (CKA, ANC, retrieval P@k, MEXA) at every layer and language pair",
        description="Score every language pair at every layer of saved activations (--acts, a folder from "
                    "'xling-probe extract') or of a model run on a parallel corpus (--model/--data), with a "
                    "shuffled-pairing null and bootstrap intervals. Writes similarity.csv (tidy), layer_mean.csv, "
                    "peaks.csv, profile.csv and similarity.json into --out.",
    )
    add_acts_options(p)
    s = p.add_argument_group("similarity")
    s.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help=f"comma-separated: {KNOWN} (default: {','.join(DEFAULT_METRICS)})")
    s.add_argument("--pairs", default="all",
                   help="'all', 'pivot:en', or comma-separated pairs like en-de,en-zh (default: all)")
    s.add_argument("--layers", type=layers_arg, default="all", help=f"{LAYERS_HELP} (default: all)")
    s.add_argument("--null-permutations", type=count(0, "no null"), default=20,
                   help="shuffled pairings for the null, 0 = no null (default: 20)")
    s.add_argument("--bootstrap", type=count(0, "no intervals"), default=200,
                   help="bootstrap resamples for the intervals, 0 = no intervals (default: 200)")
    s.add_argument("--ci", type=float, default=0.95, help="interval level (default: 0.95)")
    s.add_argument("--seed", type=seed_int, default=0, help="seed of the permutations and resamples (default: 0)")
    s.add_argument("--cross-layer", default=None,
                   help="also write the layer x layer matrix of these pairs for --cross-metric, e.g. en-de,en-zh")
    s.add_argument("--cross-metric", default="cka",
                   help=f"metric of --cross-layer: {', '.join(m for m, spec in METRICS.items() if spec.cross_layer)}")
    add_out_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..measures.engine import cross_layer_similarity, similarity

    out = prepare_out(args.out, force=args.force)
    acts = acts_from(args)
    layers = args.layers
    result = similarity(acts, metrics=args.metrics, pairs=parse_pairs(args.pairs), layers=layers,
                        null_permutations=args.null_permutations, bootstrap=args.bootstrap, ci=args.ci, seed=args.seed)
    tables = {"similarity": result.to_dataframe(), "layer_mean": result.layer_mean(),
              "peaks": result.peak_layers(), "profile": result.profile()}
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    payload = {**result.to_dict(), "activations": acts.meta}
    cross = {}
    if args.cross_layer:
        for a, b in parse_pairs(args.cross_layer, keywords=False):
            c = cross_layer_similarity(acts, a, b, metric=args.cross_metric, layers=layers)
            c.to_dataframe().to_csv(out / f"cross_layer_{c.metric}_{c.lang_a}_{c.lang_b}.csv", index=False)
            cross[pair_label((c.lang_a, c.lang_b))] = {"layers": list(c.layers_a), "matrix": c.to_dict()["matrix"]}
    if cross:
        payload["cross_layer"] = {"metric": args.cross_metric, "pairs": cross}
    write_json(out / "similarity.json", payload)
    print(result)
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0
