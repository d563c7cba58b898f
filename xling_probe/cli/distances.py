"""``xling-probe distances``: does language distance explain representation similarity, layer by layer?"""

from __future__ import annotations

import argparse

from .options import (
    add_acts_options,
    add_out_options,
    acts_from,
    positive_int,
    prepare_out,
    seed_int,
    split_list,
    write_figures_page,
    write_json,
)


def register(sub) -> None:
    from ..distances import DEFAULT_KINDS, KINDS

    p = sub.add_parser(
        "distances",
        help="correlate representation similarity with URIEL+ language distances per layer (Mantel tests)",
        description="Scores every language pair at every layer (--metric, from saved --acts or a model run on "
                    "--data), takes typological, genetic, geographic, phonological and inventory distances from "
                    "URIEL+ (the urielplus package, offline) and script identity, and per layer and distance kind "
                    "gives the Spearman correlation over language pairs with a Mantel permutation p-value, and the "
                    "partial correlation controlling for script. Writes distances.csv (the tables), "
                    "correlations.csv, correlations.json and figures.html.",
    )
    add_acts_options(p)
    g = p.add_argument_group("distances")
    g.add_argument("--metric", default="cka_debiased", help="similarity metric (default: cka_debiased)")
    g.add_argument("--kinds", default=",".join(DEFAULT_KINDS),
                   help=f"distance kinds, of {', '.join(KINDS)} (default: {','.join(DEFAULT_KINDS)}; script is added)")
    g.add_argument("--source", choices=("urielplus", "uriel"), default="urielplus",
                   help="urielplus: URIEL with its integrated databases (the first run integrates them once, "
                        "1-4 min); uriel: the original arrays, fast (default: urielplus)")
    g.add_argument("--permutations", type=positive_int, default=999, help="Mantel permutations (default: 999)")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of the permutations (default: 0)")
    add_out_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..distances import KINDS, distance_correlation_figure, distance_correlations, language_distances
    from ..errors import XlingProbeError
    from ..measures.engine import similarity
    from ..measures.registry import metric_spec

    metric = metric_spec(args.metric).name  # a typo fails before anything runs
    kinds = split_list(args.kinds) or []
    bad = [k for k in kinds if k not in KINDS or k == "script"]
    if bad:
        raise XlingProbeError(f"unknown distance kind(s) {', '.join(bad)}; choose from "
                              f"{', '.join(k for k in KINDS if k != 'script')} (script is always added)")
    out = prepare_out(args.out, force=args.force)
    acts = acts_from(args)
    if len(acts.languages) < 4:
        raise XlingProbeError(f"a correlation over language pairs needs at least 4 languages, got "
                              f"{len(acts.languages)} ({', '.join(acts.languages)})")
    dist = language_distances(acts.languages, kinds, source=args.source)
    sim = similarity(acts, metrics=[metric], null_permutations=0, bootstrap=0)
    table = distance_correlations(sim, dist, metric, permutations=args.permutations, seed=args.seed)
    table.to_csv(out / "correlations.csv", index=False)
    dist.to_dataframe().to_csv(out / "distances.csv", index=False)
    write_figures_page(out / "figures.html", f"{acts.meta.get('model', 'model')}: similarity vs language distance",
                       {"r": distance_correlation_figure(table), "partial_r": distance_correlation_figure(
                           table, value="partial_r")})
    write_json(out / "correlations.json", {"metric": metric, "source": args.source, "languages": list(acts.languages),
                                           "unmapped": list(dist.unmapped), "permutations": args.permutations,
                                           "seed": args.seed, "rows": table.to_dict("records")})
    strongest = table.dropna(subset=["r"]).sort_values("r").groupby("kind").head(1)
    for _, row in strongest.iterrows():
        print(f"{row['kind']}: most negative r {row['r']:+.3f} at layer {int(row['layer'])} (p = {row['p']:.3f}; "
              f"partial, script controlled: {row['partial_r']:+.3f})")
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0
