"""Responsiveness of the notebook widgets (issue 7).

1. SimilarityExplorer on a SimilarityResult of 21 languages x 19 layers, all 210 pairs, the five
   default metrics, a 10-permutation null and 20 bootstrap samples (random activations of 21
   languages x 200 sentences x 19 layers x 64 dims; the widget's cost does not depend on the values):
   - latency of ``explorer.layer.value = l`` (observers run synchronously, so the time until the
     call returns is the time until the figure data is updated), every layer, several sweeps;
   - latency of ``explorer.metric.value = m``: the first visit of each metric (it computes the
     layer x layer matrix of the current pair when the metric has one) and cached revisits.
   Each sample is checked: the heatmap's z equals the result's slice for the new selection.
2. EmbeddingExplorer on 21 languages x 200 sentences (4200 points) x 640 dims (random with
   per-language offsets): UMAP time per layer on first visit (synchronous, ``background=False``)
   vs a cached revisit, PCA time per layer, and with ``background=True`` the time until the
   control returns and until the background result is drawn. Numba's one-off compilation of
   UMAP is timed separately on a small input first.

3. ``--languages 402``: SimilarityExplorer on a random SimilarityResult of 402 languages (the UDHR
   corpus's codes when ../shared/data/udhr is there, else made-up distinct codes) x 19 layers, built
   directly with numpy (no activations). Layer-change latency, **including the message the kernel
   sends**: every widget's ``_send`` (the last step before the comm: the state is already split into
   JSON and binary buffers by ipywidgets and plotly's serialiser) is hooked to encode the JSON part
   exactly as jupyter_client's session does (``json_packer``) and to count the binary buffers; that
   hook runs inside the timed trait change, so ``layer_change`` = observers + figure update +
   serialisation + JSON encoding, everything the kernel does before the bytes go to the socket.
   The sent z is checked against the result's slice in the view's order. Also order/filter changes
   and the JSON size of ``language_heatmap`` per order. Merged into the existing JSON under
   ``similarity_explorer_<N>_languages`` (other keys are kept).
4. ``--pairs-only``: the 210-pairs-as-curves part of 1 alone (layer and cached metric changes with
   every pair drawn, with the same send hook), merged into ``similarity_explorer.all_210_pairs_as_curves``.

Usage: python benchmarks/bench_widgets.py [--sweeps 5] [--umap-layers 3] [--languages 402] [--pairs-only]
Writes benchmarks/results/widgets.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

from xling_probe.extraction.activations import Activations
from xling_probe.measures.engine import similarity
from xling_probe.widgets import EmbeddingExplorer, SimilarityExplorer

HERE = Path(__file__).resolve().parent
LANGS = ("en", "ar", "cs", "de", "es", "fi", "fr", "gl", "hi", "id", "is", "it", "ja", "ko", "pl", "pt", "ru",
         "sv", "th", "tr", "zh")
TARGET_MS = 100.0


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
            "versions": {p: version(p) for p in ("numpy", "plotly", "ipywidgets", "umap-learn", "torch")}}


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": len(a), "median_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "max_ms": round(float(a.max()), 2), "mean_ms": round(float(a.mean()), 2)}


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t)


class SendMeter:
    """Hooks ``_send`` of widgets: each message's JSON part is encoded as jupyter_client's session
    encodes it (so the time is paid inside the timed call) and the sizes are recorded."""

    def __init__(self, widgets) -> None:
        from jupyter_client.session import json_packer

        self.pack, self.messages = json_packer, []
        for w in widgets:
            w._send = self._spy(w)

    def _spy(self, widget):
        def send(msg, buffers=None):
            self.messages.append((type(widget).__name__, len(self.pack(msg)),
                                  sum(memoryview(b).nbytes for b in buffers or ()), msg))
        return send

    def take(self) -> dict:
        out = {"messages": len(self.messages), "json_bytes": sum(m[1] for m in self.messages),
               "binary_bytes": sum(m[2] for m in self.messages)}
        self.messages.clear()
        return out


def activations(n_layers: int, n: int, dim: int, offset: float, seed: int) -> Activations:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, dim)).astype(np.float32)
    shift = rng.normal(scale=offset, size=(len(LANGS), dim)).astype(np.float32)
    data = np.empty((n_layers, len(LANGS), n, dim), dtype=np.float32)
    for li in range(n_layers):
        data[li] = base * (0.5 + li / n_layers) + shift[:, None] + rng.normal(scale=1.5, size=(len(LANGS), n, dim))
    return Activations(data=data, layers=tuple(range(n_layers)), languages=LANGS, ids=tuple(f"s{i}" for i in range(n)))


def bench_similarity(sweeps: int) -> dict:
    acts = activations(19, 200, 64, offset=0.3, seed=0)
    t = time.perf_counter()
    result = similarity(acts, null_permutations=10, bootstrap=20, progress=False)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    ex = SimilarityExplorer(result, acts)
    init_ms = 1000 * (time.perf_counter() - t)

    def check(metric: str, layer: int) -> None:
        z = np.asarray(ex.figures["heatmap"].data[0].z, dtype=float)
        want = result.arrays["value"][result.metrics.index(metric), result.layers.index(layer)]
        assert np.array_equal(z, want, equal_nan=True), (metric, layer)

    layer_ms, start = [], dict(ex.log.counts)
    for s in range(sweeps):
        order = list(result.layers) if s % 2 == 0 else list(result.layers)[::-1]
        for layer in order:
            if layer == ex.layer.value:
                continue
            layer_ms.append(timed(lambda: setattr(ex.layer, "value", layer)))
            check(ex.metric.value, layer)
    per_change = {k: (ex.log[k] - start.get(k, 0)) / len(layer_ms) for k in ("heatmap", "curves", "cross")}

    first_ms, again_ms = [], []
    metrics = list(result.metrics)
    for s in range(sweeps + 1):
        for metric in metrics[1:] + metrics[:1]:
            ms = timed(lambda: setattr(ex.metric, "value", metric))
            check(metric, ex.layer.value)
            (first_ms if s == 0 else again_ms).append(ms)
    all_pairs = all_pairs_as_curves(ex, result, sweeps)
    return {
        "setup": {"languages": len(LANGS), "layers": len(result.layers), "pairs": len(result.pairs),
                  "metrics": metrics, "sentences": 200, "dim": 64, "null_permutations": 10, "bootstrap": 20,
                  "curves_pairs": len(ex.pairs.value), "similarity_s": round(build_s, 2),
                  "explorer_init_ms": round(init_ms, 1)},
        "layer_change": {**stats(layer_ms), "refreshes_per_change": per_change,
                         "target_ms": TARGET_MS, "meets_target": bool(np.percentile(layer_ms, 95) < TARGET_MS)},
        "metric_change_first_visit": {**stats(first_ms), "note": "includes the layer x layer matrix of the current "
                                      "pair for cka, cka_debiased and anc"},
        "metric_change_cached": {**stats(again_ms), "meets_target": bool(np.percentile(again_ms, 95) < TARGET_MS)},
        "cross_layer_matrices_computed": sum(ex.computed.values()),
        "all_210_pairs_as_curves": all_pairs,
    }


def all_pairs_as_curves(ex, result, sweeps: int) -> dict:
    """Every pair drawn as a curve (210 pairs: one trace per colour above MANY_PAIRS); layer and cached
    metric changes timed with the kernel's message encoding (:class:`SendMeter`); the curves' y is
    checked against the result after each metric change."""
    metrics = list(result.metrics)
    ex.pairs.value = tuple(result.pairs)
    for metric in metrics:  # first visits (layer x layer matrices) out of the timing
        ex.metric.value = metric
    meter = SendMeter(ex.figures.values())
    layer_ms, metric_ms, sent = [], [], {}
    for layer in (0, 9, 18, 4, 13) * max(1, sweeps // 2):
        layer_ms.append(timed(lambda: setattr(ex.layer, "value", layer)))
    sent["layer_change"] = meter.take()
    for _ in range(max(1, sweeps)):
        for metric in metrics[1:] + metrics[:1]:
            metric_ms.append(timed(lambda: setattr(ex.metric, "value", metric)))
            for pair in (result.pairs[0], result.pairs[-1]):
                trace, part = ex.curves_view.locate(pair)
                got = np.asarray(ex.figures["curves"].data[trace].y, float)[part]
                np.testing.assert_array_equal(got, result.sel(metric, None, *pair))
    sent["metric_change"] = meter.take()
    return {"pairs": len(ex.pairs.value), "traces": len(ex.figures["curves"].data),
            "layer_change": stats(layer_ms), "metric_change_cached": {
                **stats(metric_ms), "target_ms": TARGET_MS,
                "meets_target": bool(np.percentile(metric_ms, 95) < TARGET_MS)},
            "sent_per_change": {k: {kk: round(vv / (len(layer_ms) if k == "layer_change" else len(metric_ms)))
                                    for kk, vv in v.items()} for k, v in sent.items()},
            "note": "times include the kernel's message encoding (SendMeter); one line + one band trace "
                    "per colour, the null band and the selected pair; a metric change sends only y + titles"}


def bench_embedding(umap_layers: int) -> dict:
    from xling_probe.plots import project_2d

    warnings.filterwarnings("ignore", message="n_jobs value")
    warnings.filterwarnings("ignore", message="Graph is not fully connected")
    acts = activations(max(umap_layers, 4), 200, 640, offset=1.0, seed=1)
    t = time.perf_counter()  # > 4096 points: UMAP switches to NN-descent, which numba compiles on first use
    project_2d(np.random.default_rng(0).normal(size=(200 * len(LANGS), 8)), "umap")
    compile_s = time.perf_counter() - t

    x = acts.data[0].reshape(200 * len(LANGS), -1)
    svd_ms = [timed(lambda: project_2d(x, "pca")) for _ in range(3)]
    sync = EmbeddingExplorer(acts, layer=0, method="pca", background=False)
    pca_ms = [timed(lambda: setattr(sync.layer, "value", layer)) for layer in acts.layers[1:]]
    pca_cached = [timed(lambda: setattr(sync.layer, "value", layer)) for layer in acts.layers[:-1]]
    layers = list(acts.layers[:umap_layers])
    sync.layer.value = layers[0]
    umap_first = [timed(lambda: setattr(sync.method, "value", "umap"))]
    for layer in layers[1:]:
        umap_first.append(timed(lambda: setattr(sync.layer, "value", layer)))
    umap_cached = [timed(lambda: setattr(sync.layer, "value", layer)) for layer in layers[::-1][1:] + layers[1:]]
    assert sum(v for k, v in sync.computed.items() if k[1] == "umap") == len(layers)

    bg = EmbeddingExplorer(acts, layer=layers[0], method="pca", background=True)
    returned = timed(lambda: setattr(bg.method, "value", "umap"))
    status = bg.status.value
    t = time.perf_counter()
    bg.wait()
    drawn_ms = returned + 1000 * (time.perf_counter() - t)
    same = bool(np.allclose(bg.projection(), sync.projection(layers[0], "umap", "raw")))
    return {
        "setup": {"languages": len(LANGS), "sentences": 200, "points": 200 * len(LANGS), "dim": 640},
        "umap_numba_compile_s": round(compile_s, 2),
        "umap_compile_note": "one-off per process: UMAP + NN-descent on 4200 x 8 random points, before the timings",
        "pca_project_2d_only": {**stats(svd_ms), "note": "the builder's numpy SVD alone (float64 4200 x 640); "
                                "its time depends strongly on BLAS threads vs the machine's load"},
        "pca_per_layer_first": stats(pca_ms), "pca_per_layer_cached": stats(pca_cached),
        "umap_per_layer_first": stats(umap_first), "umap_per_layer_cached": stats(umap_cached),
        "umap_background": {"control_returns_ms": round(returned, 2), "status": status,
                            "drawn_after_ms": round(drawn_ms, 1), "equals_synchronous": same},
    }


def many_languages(n: int) -> tuple[str, ...]:
    """``n`` distinct language codes: the UDHR corpus's when available, else ISO 639-3 codes of the family table."""
    from xling_probe.data.families import load_families
    from xling_probe.data.languages import normalize_code

    udhr = HERE.parent.parent / "shared" / "data" / "udhr" / "udhr_402x50.tsv"
    if udhr.exists():
        codes = [normalize_code(c, "udhr") for c in udhr.open(encoding="utf-8").readline().rstrip("\n").split("\t")[1:]]
    else:
        codes = sorted(load_families())
    codes = list(dict.fromkeys(codes))
    codes += [f"{codes[k % len(codes)]}-x-b{k}" for k in range(max(0, n - len(codes)))]
    return tuple(codes[:n])


def bench_many(n: int, sweeps: int, n_layers: int = 19) -> dict:
    import itertools

    from xling_probe.measures.result import SimilarityResult
    from xling_probe.plots import language_heatmap

    langs = many_languages(n)
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 1, size=(1, n_layers, n, n))
    v = (v + v.transpose(0, 1, 3, 2)) / 2
    v[:, :, np.arange(n), np.arange(n)] = np.nan
    result = SimilarityResult(metrics=("cka",), layers=tuple(range(n_layers)), languages=langs,
                              pairs=tuple(itertools.combinations(langs, 2)), arrays={"value": v})
    t = time.perf_counter()
    ex = SimilarityExplorer(result, layer=0)
    init_ms = 1000 * (time.perf_counter() - t)
    fw = ex.figures["heatmap"]
    meter = SendMeter([ex, *ex.figures.values(), ex.status, ex.layer])
    idx = [langs.index(c) for c in ex.view.languages]
    layer_ms, per_change = [], []
    for s in range(sweeps):
        for layer in (list(result.layers) if s % 2 == 0 else list(result.layers)[::-1]):
            if layer == ex.layer.value:
                continue
            layer_ms.append(timed(lambda: setattr(ex.layer, "value", layer)))
            want = np.round(v[0, layer][np.ix_(idx, idx)], 3)
            assert np.array_equal(np.asarray(fw.data[0].z, float), want, equal_nan=True), layer
            heat = [m for m in meter.messages if m[0] == type(fw).__name__ and "_py2js_update" in m[3]["state"]]
            update = heat[0][3]["state"]["_py2js_update"]
            assert list(update["style_data"]) == ["z"], list(update["style_data"])
            assert list(update["layout_data"]) == ["title.text"], list(update["layout_data"])
            per_change.append(meter.take())
    changes = {}
    for name, control, value in (("order_cluster", ex.order, "cluster"), ("order_script", ex.order, "script"),
                                 ("filter_family", ex.family, ex.family.options[1]), ("filter_all", ex.family, "all")):
        changes[name] = round(timed(lambda: setattr(control, "value", value)), 1)
    sizes = {}
    for order in (None, "cluster", "family", "script"):
        t = time.perf_counter()
        fig = language_heatmap(result, "cka", 5, order=order, dendrogram=order == "cluster")
        sizes[str(order)] = {"build_ms": round(1000 * (time.perf_counter() - t), 1),
                             "json_bytes": len(fig.to_json()), "group_labels": len(fig.layout.xaxis.ticktext or ())}
    lat = stats(layer_ms)
    return {
        "setup": {"languages": n, "layers": n_layers, "pairs": len(result.pairs), "cells": n * n,
                  "explorer_init_ms": round(init_ms, 1), "order": "family (the default above 60 languages)"},
        "layer_change": {**lat, "sent": "heatmap z only (float32 binary rows) + title, and the curves' marker",
                         "includes": "trait change, figure update, ipywidgets/plotly serialisation and the "
                                     "jupyter_client JSON encoding of every message (SendMeter hook on _send)",
                         "target_ms": TARGET_MS, "meets_target": bool(lat["p95_ms"] < TARGET_MS)},
        "layer_change_messages": {"per_change": per_change[-1],
                                  "json_bytes_median": int(np.median([p["json_bytes"] for p in per_change])),
                                  "binary_bytes_median": int(np.median([p["binary_bytes"] for p in per_change]))},
        "view_change_ms": changes,
        "language_heatmap_figure": sizes,
    }


def bench_lens_items(n_items: int) -> dict:
    """LogitLensExplorer on the offline Gemma 3 270M: seconds from an item change to both figures updated, for
    items not seen before (the model runs), and for an item seen before (cached). Target: <= 3 s (issue 18)."""
    import xling_probe as xp
    from xling_probe.widgets import LogitLensExplorer

    model = xp.load_model()
    ex = LogitLensExplorer(model, source="fr", target="zh")
    options = list(ex.item.options)
    tokens = []
    fresh, cached = [], []
    for opt in options[1:n_items + 1]:
        t = time.perf_counter()
        ex.item.value = opt[1] if isinstance(opt, tuple) else opt
        fresh.append(time.perf_counter() - t)
        tokens.append(len(ex.table.input_ids) if getattr(ex, "table", None) is not None else None)
    for opt in options[1:n_items + 1]:
        t = time.perf_counter()
        ex.item.value = opt[1] if isinstance(opt, tuple) else opt
        cached.append(time.perf_counter() - t)
    # a free prompt of about 20 tokens (the size): new texts, so the model runs each time
    ex.mode.value = "free prompt"
    free, free_tokens = [], []
    for k in range(3):
        ex.prompt.value = f"Le petit chat noir dort sur le canapé rouge de la maison numéro {k + 3}. En chinois:"
        t = time.perf_counter()
        ex.run()
        free.append(time.perf_counter() - t)
        free_tokens.append(len(ex.table.input_ids))
    return {"model": model.name, "items": n_items, "prompt_tokens": tokens,
            "free_prompt_tokens": free_tokens, "free_prompt_s": {"median": float(np.median(free)), "all": free},
            "note": "an item prompt is the 5-shot translation prompt (about 58 tokens); the lens unembeds every "
                    "layer x position through the 262k-token head, so the time grows with the prompt length",
            "item_change_fresh_s": {"median": float(np.median(fresh)), "max": float(np.max(fresh)), "all": fresh},
            "item_change_cached_ms": {"median": float(np.median(cached)) * 1e3, "max": float(np.max(cached)) * 1e3},
            "target_s": 3.0, "meets_target_item_prompt": bool(np.median(fresh) <= 3.0),
            "meets_target_20_token_prompt": bool(np.median(free) <= 3.0), "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", type=int, default=5)
    parser.add_argument("--umap-layers", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "widgets.json"))
    parser.add_argument("--languages", type=int, default=None,
                        help="only the many-language SimilarityExplorer benchmark, merged into --out")
    parser.add_argument("--pairs-only", action="store_true",
                        help="only the 210-pairs-as-curves benchmark, merged into --out")
    parser.add_argument("--lens-items", type=int, default=0,
                        help="only the logit-lens item-change benchmark on the offline model (N items), merged into --out")
    args = parser.parse_args()
    if args.lens_items:
        path = Path(args.out)
        out = json.loads(path.read_text()) if path.exists() else {}
        out["lens_explorer_item_change"] = {"machine": machine(), **bench_lens_items(args.lens_items)}
        print(json.dumps(out["lens_explorer_item_change"], indent=2, ensure_ascii=False))
        path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        return
    if args.pairs_only:
        path = Path(args.out)
        out = json.loads(path.read_text()) if path.exists() else {}
        acts = activations(19, 200, 64, offset=0.3, seed=0)
        result = similarity(acts, null_permutations=10, bootstrap=20, progress=False)
        ex = SimilarityExplorer(result, acts)
        part = {"machine": machine(), **all_pairs_as_curves(ex, result, args.sweeps)}
        out.setdefault("similarity_explorer", {})["all_210_pairs_as_curves"] = part
        print(json.dumps(part, indent=2, ensure_ascii=False))
        path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        return
    if args.languages:
        path = Path(args.out)
        out = json.loads(path.read_text()) if path.exists() else {}
        out[f"similarity_explorer_{args.languages}_languages"] = {"machine": machine(),
                                                                  **bench_many(args.languages, args.sweeps)}
        text = json.dumps(out, indent=2, ensure_ascii=False)
        print(json.dumps(out[f"similarity_explorer_{args.languages}_languages"], indent=2, ensure_ascii=False))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        return
    out = {"machine_before": machine()}
    t = time.perf_counter()
    out["similarity_explorer"] = bench_similarity(args.sweeps)
    out["embedding_explorer"] = bench_embedding(args.umap_layers)
    out["total_s"] = round(time.perf_counter() - t, 1)
    out["load_average_after"] = list(os.getloadavg())
    text = json.dumps(out, indent=2, ensure_ascii=False)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
