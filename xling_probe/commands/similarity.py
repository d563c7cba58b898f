"""``xling-probe similarity``: CKA, ANC, retrieval and MEXA over every layer and language pair."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_data_options, add_model_options, load_corpus_from, load_model_from, prepare_out, split_list, write_json


def register(sub) -> None:
    p = sub.add_parser(
        "similarity",
        help="cross-lingual similarity (CKA, ANC, retrieval P@k, MEXA) at every layer and language pair",
        description="Score every language pair at every layer of saved activations (--acts, a folder from "
                    "'xling-probe extract') or of a model run on a parallel corpus (--model/--data), with a "
                    "shuffled-pairing null and bootstrap intervals. Writes similarity.csv (tidy), layer_mean.csv, "
                    "peaks.csv, profile.csv and similarity.json into --out.",
    )
    src = p.add_argument_group("input (either --acts, or the model and data options)")
    src.add_argument("--acts", default=None, help="activation folder written by 'xling-probe extract'")
    add_model_options(p)
    add_data_options(p)
    g = p.add_argument_group("extraction (only without --acts)")
    g.add_argument("--pooling", default="mean", choices=["mean", "last", "first", "weighted_mean"],
                   help="sentence pooling (default: mean over real tokens, special tokens excluded)")
    g.add_argument("--batch-size", type=int, default=16, help="sentences per forward pass (default: 16)")
    g.add_argument("--max-length", type=int, default=512, help="truncate sentences to this many tokens (default: 512)")
    s = p.add_argument_group("similarity")
    s.add_argument("--metrics", default="cka,cka_debiased,anc,p@1,mexa",
                   help="comma-separated: cka, cka_debiased, anc, anc_abs, p@K, mexa, mknn@K "
                        "(default: cka,cka_debiased,anc,p@1,mexa)")
    s.add_argument("--pairs", default="all",
                   help="'all', 'pivot:en', or comma-separated pairs like en-de,en-zh (default: all)")
    s.add_argument("--layers", default="all", help="'all' or comma-separated layer indices (default: all)")
    s.add_argument("--null-permutations", type=int, default=20, help="shuffled pairings for the null (default: 20)")
    s.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals (default: 200)")
    s.add_argument("--ci", type=float, default=0.95, help="interval level (default: 0.95)")
    s.add_argument("--seed", type=int, default=0, help="seed of the permutations and resamples (default: 0)")
    s.add_argument("--cross-layer", default=None,
                   help="also write the layer x layer matrix of these pairs for --cross-metric, e.g. en-de,en-zh")
    s.add_argument("--cross-metric", default="cka", help="metric of --cross-layer: cka, cka_debiased, anc, anc_abs")
    p.add_argument("--out", required=True, help="output folder (must be new or empty unless --force)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    p.set_defaults(func=run)


def parse_pairs(text: str) -> str | list[tuple[str, str]]:
    """'all' / 'pivot:en' pass through; 'en-de,en-zh' -> [('en', 'de'), ('en', 'zh')]. A pair is split on
    '/' or ':' when given, else on the first '-', so 'en-zh-Hant' and 'zh-Hant/en' both work."""
    from ..errors import MetricError

    text = text.strip()
    if text == "all" or text.startswith("pivot:"):
        return text
    out = []
    for item in split_list(text) or []:
        for sep in ("/", ":", "-"):
            if sep in item:
                a, b = item.split(sep, 1)
                break
        else:
            raise MetricError(f"cannot read pair {item!r}; write pairs as en-de or en/zh-Hant")
        out.append((a.strip(), b.strip()))
    if not out:
        raise MetricError("--pairs is empty; use 'all', 'pivot:en' or pairs like en-de,en-zh")
    return out


def _records(df) -> list[dict]:
    """Rows of ``df`` as dicts with NaN and +-inf (a z-score against a null without spread) written as
    null: strict JSON has neither."""
    import numpy as np

    df = df.replace([np.inf, -np.inf], np.nan)
    return df.astype(object).where(df.notna(), None).to_dict(orient="records")


def run(args: argparse.Namespace) -> int:
    from ..activations import Activations
    from ..errors import MetricError
    from ..similarity import cross_layer_similarity, similarity

    out = prepare_out(args.out, force=args.force)
    if args.acts:
        folder = Path(args.acts).expanduser()
        if not folder.is_dir():
            raise MetricError(f"--acts {folder} is not a folder; pass a folder written by 'xling-probe extract'")
        acts = Activations.load(folder)
        langs = split_list(args.langs)
        if langs:
            acts = acts.sel(languages=langs)
        if args.limit:
            acts = acts.sel(ids=acts.ids[: args.limit])
    else:
        from ..extract import extract

        model = load_model_from(args)
        corpus = load_corpus_from(args)
        acts = extract(model, corpus, pooling=args.pooling, batch_size=args.batch_size, max_length=args.max_length)
    layers = "all" if args.layers == "all" else [int(x) for x in split_list(args.layers) or []]
    result = similarity(acts, metrics=split_list(args.metrics) or [], pairs=parse_pairs(args.pairs), layers=layers,
                        null_permutations=args.null_permutations, bootstrap=args.bootstrap, ci=args.ci, seed=args.seed)
    tables = {"similarity": result.to_dataframe(), "layer_mean": result.layer_mean(),
              "peaks": result.peak_layers(), "profile": result.profile()}
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    cross = {}
    if args.cross_layer:
        for a, b in parse_pairs(args.cross_layer):
            c = cross_layer_similarity(acts, a, b, metric=args.cross_metric, layers=layers)
            c.to_dataframe().to_csv(out / f"cross_layer_{c.metric}_{c.lang_a}_{c.lang_b}.csv", index=False)
            cross[f"{c.lang_a}-{c.lang_b}"] = {"layers": list(c.layers_a), "matrix": c.matrix.tolist()}
    write_json(out / "similarity.json", {
        "settings": result.settings, "metrics": list(result.metrics), "layers": list(result.layers),
        "languages": list(result.languages), "pairs": [list(p) for p in result.pairs], "activations": acts.meta,
        **{key: _records(tables[name]) for key, name in
           (("layer_mean", "layer_mean"), ("peaks", "peaks"), ("profile", "profile"), ("values", "similarity"))},
        **({"cross_layer": {"metric": args.cross_metric, "pairs": cross}} if cross else {}),
    })
    print(result.summary())
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0
