"""Language drift across layers (Wendler et al. 2024, "Do Llamas work in English?").

For each item a k-shot prompt asks for the target word; the logit lens reads the last position
at every layer. Per layer and item:

- P(target), P(latent), P(source): the summed lens probability of the token set of the word in
  that language (token sets: :mod:`xling_probe.lens.tokensets`);
- entropy of the lens distribution, in bits;
- rank of the target: 1 + the number of tokens with a larger logit than the best target-set token;
- KL to the final layer, KL(p_L || p_l), in bits.

Per layer report: P(target), P(English), P(source), entropy (bits), rank of the target, KL to the
final layer; mean over items with a 95% interval (Gaussian and bootstrap). The bootstrap is seeded
(:mod:`xling_probe.lens.intervals`) and the per-item values are kept. P(English) is P(latent) with
the default ``latent="en"``. Expected shape on multilingual decoders: P(English) rises in the
middle layers before P(target) rises in the last layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import LensError
from .cache import ResultCache, digest, json_safe, model_fields
from .tuned import checked_tuned
from .core import DEFAULT_CHUNK_ELEMENTS, Lens, check_final_logits, encode, lens_stats, run_batches
from .prompts import TASKS, build_prompts
from .intervals import STATS, mean_intervals
from .tokensets import DropReport, build_item_sets
from .words import load_words

if TYPE_CHECKING:
    from ..models.loading import ModelHandle

METRICS = ("p_target", "p_latent", "p_source", "entropy_bits", "rank_target", "kl_to_final_bits")
_LANG_OF = {"p_target": "target", "p_latent": "latent", "p_source": "source"}


@dataclass(frozen=True, eq=False)
class DriftResult:
    """Per-layer language drift of one language pair on one model.

    ``values[metric]`` is ``[item, layer]`` (float64; items = ``concepts``, layers = ``layers``,
    residual-stream indices: 0 = embeddings, l = output of block l - 1). ``summary[metric][stat]``
    is ``[layer]`` for the stats ``mean, sd, ci_low, ci_high`` (Gaussian) and ``boot_low,
    boot_high`` (bootstrap), at ``level``.
    """

    model: str
    source: str
    target: str
    latent: str
    task: str
    layers: tuple[int, ...]
    concepts: tuple[str, ...]
    values: Mapping[str, np.ndarray]
    summary: Mapping[str, Mapping[str, np.ndarray]]
    prompts: tuple[str, ...]
    dropped: DropReport
    level: float = 0.95
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # frozen all the way down: read-only arrays behind read-only mappings
        values = {m: _readonly(v) for m, v in self.values.items()}
        summary = {m: MappingProxyType({s: _readonly(a) for s, a in stats.items()}) for m, stats in self.summary.items()}
        object.__setattr__(self, "values", MappingProxyType(values))
        object.__setattr__(self, "summary", MappingProxyType(summary))

    @property
    def n_items(self) -> int:
        return len(self.concepts)

    def language_of(self, metric: str) -> str | None:
        """The language code a P(...) metric refers to (None for the others)."""
        role = _LANG_OF.get(metric)
        return getattr(self, role) if role else None

    def curve(self, metric: str = "p_target", stat: str = "mean") -> np.ndarray:
        """``[layer]`` values of one statistic of one metric."""
        if metric not in self.summary:
            raise LensError(f"unknown metric {metric!r}; use one of {', '.join(self.summary)}")
        if stat not in STATS:
            raise LensError(f"unknown statistic {stat!r}; use one of {', '.join(STATS)}")
        return self.summary[metric][stat]

    def sel(self, metric: str = "p_target", layer: int | Sequence[int] | str | None = None,
            stat: str = "mean") -> float | np.ndarray:
        """One statistic of one metric by name: a float at one ``layer``, else a read-only ``[layer]`` array.

        ``layer``: a residual-stream index (negative counts from the last), several, a layer string
        (``"3-5"``) or None (every layer); resolved by :func:`xling_probe.labels.select_layers`.
        ``stat``: one of :data:`~xling_probe.lens.intervals.STATS` (mean, sd, ci_low, ci_high, boot_low,
        boot_high) or ``"values"`` for the per-item values ``[item]`` (one layer) / ``[item, layer]``.
        """
        from ..labels import layer_position, select_layers

        if stat == "values":
            if metric not in self.values:
                raise LensError(f"unknown metric {metric!r}; use one of {', '.join(self.values)}")
            data = self.values[metric]
        else:
            data = self.curve(metric, stat)
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            j = layer_position(layer, self.layers, error=LensError)
            return data[..., j].copy() if stat == "values" else float(data[j])
        out = np.asarray(data)[..., select_layers(layer, self.layers, error=LensError)].copy()
        out.setflags(write=False)
        return out

    def to_dict(self, *, items: bool = False) -> dict[str, Any]:
        """JSON-safe summary (lists, None for NaN): labels, drops, per-layer ``curves[metric][stat]``
        and ``meta``; ``items=True`` adds the per-item values ``values[metric]`` as ``[item][layer]``."""
        out: dict[str, Any] = {
            "model": self.model, "source": self.source, "target": self.target, "latent": self.latent,
            "task": self.task, "n_items": self.n_items, "level": self.level, "layers": [int(x) for x in self.layers],
            "dropped": {"n": len(self.dropped), "reasons": self.dropped.counts()},
            "curves": {m: {s: _floats(arr) for s, arr in stats.items()} for m, stats in self.summary.items()},
            "concepts": list(self.concepts), "meta": json_safe(dict(self.meta)),
        }
        if items:
            out["values"] = {m: [_floats(row) for row in v] for m, v in self.values.items()}
        return out

    def to_dataframe(self):
        """Tidy summary: one row per (metric, layer) with the mean and both intervals."""
        import pandas as pd

        rows = []
        for metric, stats in self.summary.items():
            for j, layer in enumerate(self.layers):
                row = {"metric": metric, "language": self.language_of(metric), "layer": layer, "n": self.n_items}
                row.update({s: float(stats[s][j]) for s in STATS})
                rows.append(row)
        return pd.DataFrame(rows)

    def items_dataframe(self):
        """Per-item values: one row per (item, metric, layer)."""
        import pandas as pd

        frames = []
        n_l = len(self.layers)
        for metric, v in self.values.items():
            frames.append(pd.DataFrame({
                "concept": np.repeat(np.array(self.concepts, dtype=object), n_l),
                "metric": metric,
                "language": self.language_of(metric),
                "layer": np.tile(np.array(self.layers), self.n_items),
                "value": v.reshape(-1),
            }))
        return pd.concat(frames, ignore_index=True)

    def to_xarray(self):
        """Dataset with ``values`` (metric, item, layer) and one variable per statistic (metric, layer)."""
        import xarray as xr

        metrics = list(self.values)
        data = {"values": (("metric", "item", "layer"), np.stack([self.values[m] for m in metrics]))}
        for s in STATS:
            data[s] = (("metric", "layer"), np.stack([self.summary[m][s] for m in metrics]))
        return xr.Dataset(
            data,
            coords={"metric": metrics, "item": list(self.concepts), "layer": list(self.layers)},
            attrs={"model": self.model, "source": self.source, "target": self.target, "latent": self.latent,
                   "task": self.task, "level": self.level},
        )

    def format_curves(self, metrics: tuple[str, ...] = ("p_target", "p_latent", "p_source", "entropy_bits")) -> str:
        """A plain-text table of per-layer means (with the Gaussian interval of P(target))."""
        head = f"{'layer':>5} " + " ".join(f"{_label(self, m):>14}" for m in metrics) + "   P(target) 95% CI"
        lines = [f"{self.model}: {self.source} -> {self.target} (latent {self.latent}), {self.task}, "
                 f"{self.n_items} items; {self.dropped}", head]
        for j, layer in enumerate(self.layers):
            cells = " ".join(f"{self.summary[m]['mean'][j]:14.4f}" for m in metrics)
            lo, hi = self.summary["p_target"]["ci_low"][j], self.summary["p_target"]["ci_high"][j]
            lines.append(f"{layer:5d} {cells}   [{lo:.4f}, {hi:.4f}]")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"DriftResult({self.model!r}, {self.source}->{self.target}, latent={self.latent}, task={self.task}, "
                f"items={self.n_items}, layers={len(self.layers)}, dropped={len(self.dropped)})")


def _readonly(a: Any) -> np.ndarray:
    out = np.asarray(a)
    out.setflags(write=False)
    return out


def _floats(values: Any) -> list[float | None]:
    """A 1-D array as a JSON-safe list (NaN and +-inf -> None)."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _label(result: DriftResult, metric: str) -> str:
    lang = result.language_of(metric)
    return f"P({lang})" if lang else metric


def language_drift(
    model: ModelHandle,
    items: Any = None,
    *,
    source: str | None = None,
    target: str,
    latent: str = "en",
    task: str = "translation",
    shots: int | None = None,
    seed: int = 0,
    single_token: bool = False,
    drop_overlap: bool = True,
    drop_substring: bool = True,
    limit: int | None = None,
    batch_size: int = 8,
    level: float = 0.95,
    n_boot: int = 1000,
    check: bool = True,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
    progress: bool = True,
    recipe: str | None = None,
    cache: bool = True,
    cache_root: str | Path | None = None,
    tuned: Any = None,
) -> DriftResult:
    """Per-layer P(target), P(latent), P(source), entropy, rank and KL for ``source -> target``.

    ``items`` is a word list (None = the bundled one, a CSV path, a DataFrame, a dict of columns
    or a :class:`WordList`). Items are filtered (:func:`build_item_sets`: missing words, empty
    token sets, latent/target overlap, latent word inside the target word) and the drops are
    reported in ``result.dropped``; ``limit`` keeps the first N remaining items. ``task`` is
    'translation', 'repetition' (source = target) or 'cloze' (a ``cloze_<target>`` column).
    ``check`` verifies on the first batch that the lens at the last layer reproduces the model's
    own logits. ``shots`` counts the demonstrations before the query (default 5).

    ``recipe="wendler"`` reproduces the protocol of Wendler et al. 2024 (docs/science.md,
    :mod:`xling_probe.recipes`), which differs from the defaults in three ways:

    1. their ``k`` counts the query: k = 5 means 4 demonstrations + the query, so the recipe
       writes ``shots=4`` (ours: ``shots`` demonstrations + the query, default 5);
    2. the token sets of zh and ru always include the first-byte token (``<0xNN>`` of the first
       UTF-8 byte) even when the tokenizer writes the word without byte tokens (ours: only when it
       does);
    3. demonstrations are drawn only from the items that passed the filters (ours: from every row
       with both words), before ``limit``.

    The single-token and overlap/substring filters are the same (``single_token=False``,
    ``drop_overlap=True``, ``drop_substring=True``); an explicit argument that contradicts the
    recipe (e.g. ``shots=5``) raises :class:`~xling_probe.recipes.RecipeError`.
    ``result.meta`` records ``recipe``, ``shots`` (demonstrations), ``k`` (demonstrations + the
    query), ``first_byte_languages`` and ``demonstrations_from`` in every case.

    ``cache=True`` stores the result under the cache root (:mod:`xling_probe.lens.cache`), keyed by the
    model fingerprint, the prompts and token sets run and every setting; a repeated call loads it
    without running the model.

    ``tuned``: a :class:`~xling_probe.lens.tuned.TunedLens` of this model (:func:`~xling_probe.lens.train_tuned_lens`)
    reads every layer through its translators instead of the plain logit lens (the last layer is the
    same for both); ``result.meta["lens_kind"]`` says which lens was used.
    """
    from ..recipes import DRIFT_RECIPES, resolve

    rec, chosen = resolve(recipe, DRIFT_RECIPES,
                          {"shots": shots, "first_byte_languages": None, "demonstrations_from": None,
                           "single_token": single_token, "drop_overlap": drop_overlap,
                           "drop_substring": drop_substring},
                          {"shots": 5, "first_byte_languages": (), "demonstrations_from": "usable rows"})
    shots = chosen["shots"]

    from tqdm.auto import tqdm

    lens = Lens(model)
    tuned = checked_tuned(tuned, model)
    if task not in TASKS:
        raise LensError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    words = load_words(items)
    tgt = words.resolve_language(target)
    if task == "translation" and source is None:
        raise LensError("translation needs source= (the language of the given word), e.g. source='fr'")
    src = tgt if task in ("repetition", "cloze") else words.resolve_language(source)
    if task == "translation" and src == tgt:
        raise LensError(
            f"source and target are both {tgt!r}: translating a language into itself is the repetition task; "
            f"use task='repetition', target={tgt!r}"
        )
    lat = words.resolve_language(latent)
    item_sets = build_item_sets(model.tokenizer, words, [src, tgt, lat], latent=lat, target=tgt,
                                single_token=single_token, drop_overlap=drop_overlap, drop_substring=drop_substring,
                                first_byte_languages=chosen["first_byte_languages"])
    kept = list(item_sets.kept)
    if limit is not None:
        if limit < 1:
            raise LensError(f"limit must be >= 1, got {limit}")
        kept = kept[:limit]
    if len(kept) < 2:
        raise LensError(
            f"only {len(kept)} item(s) remain for {src} -> {tgt} (latent {lat}); {item_sets.dropped}. "
            "Use a longer word list, or relax the filters (single_token=False, drop_overlap/drop_substring)."
        )
    prompts = build_prompts(words, task=task, source=src, target=tgt, shots=shots, seed=seed, indices=kept,
                            demonstrations=item_sets.kept if chosen["demonstrations_from"] == "kept" else None)
    concepts = [p.concept for p in prompts]
    rows = encode(model, [p.text for p in prompts], labels=concepts)
    position = {k: j for j, k in enumerate(item_sets.kept)}
    sets_of = {role: [item_sets.sets[code][position[k]].ids for k in kept]
               for role, code in (("target", tgt), ("latent", lat), ("source", src))}
    layers = list(range(model.n_states))
    final = layers[-1]
    entry = None
    if cache:
        entry = ResultCache("drift", {
            **model_fields(model), "task": task, "source": src, "target": tgt, "latent": lat, "concepts": concepts,
            "prompts": digest([p.text for p in prompts]), "sets": digest(sets_of), "words": words.meta.get("source", "?"),
            "dropped": digest(item_sets.dropped.entries), "n_total": item_sets.dropped.n_total, "shots": shots,
            "seed": seed, "single_token": single_token, "recipe": rec.name if rec is not None else None,
            "first_byte_languages": list(chosen["first_byte_languages"]), "layers": layers,
            "demonstrations_from": chosen["demonstrations_from"], "batch_size": batch_size, "level": level,
            "n_boot": n_boot, "check": check, "chunk_elements": chunk_elements,
            **({"tuned_lens": tuned.digest} if tuned is not None else {})}, root=cache_root)
        hit = entry.load()
        if hit is not None:
            return _from_cache(*hit)
    out = {m: np.empty((len(kept), len(layers)), dtype=np.float64) for m in METRICS}
    check_diff = None
    bar = tqdm(total=len(kept), desc=f"lens {src}->{tgt}", unit="prompt", disable=not progress)
    with bar:
        for idx, inputs, states in run_batches(model, rows, layers, keep="last", batch_size=batch_size, progress=bar,
                                               decoder_prefix=_decoder_prefix(model, tgt)):
            resid = torch.stack([states[layer] for layer in layers])  # [layers, B, d]
            if tuned is not None:
                resid = tuned.translate(resid, layers)  # the last layer stays the model's own state
            if check and check_diff is None:
                check_diff = check_final_logits(model, lens, inputs, states[final])
            stats = lens_stats(
                lens, resid, states[final],
                sets={role: [sets_of[role][k] for k in idx] for role in sets_of},
                rank_of="target", chunk_elements=chunk_elements, final_is_last=True,
            )
            for m, tensor in (("p_target", stats.sets["target"]), ("p_latent", stats.sets["latent"]),
                              ("p_source", stats.sets["source"]), ("entropy_bits", stats.entropy_bits),
                              ("rank_target", stats.rank), ("kl_to_final_bits", stats.kl_to_final_bits)):
                out[m][idx] = tensor.double().numpy().T
    summary = {m: mean_intervals(v, level=level, n_boot=n_boot, seed=seed) for m, v in out.items()}
    for v in out.values():
        v.setflags(write=False)
    result = DriftResult(
        model=model.name, source=src, target=tgt, latent=lat, task=task, layers=tuple(layers),
        concepts=tuple(concepts), values=out, summary=summary, prompts=tuple(p.text for p in prompts),
        dropped=item_sets.dropped, level=level,
        meta={"fingerprint": model.fingerprint, "backend": model.backend, "shots": shots, "k": shots + 1,
              "recipe": rec.name if rec is not None else None,
              "first_byte_languages": list(chosen["first_byte_languages"]),
              "demonstrations_from": chosen["demonstrations_from"], "seed": seed,
              "single_token": single_token, "n_boot": n_boot, "words": words.meta.get("source", "?"),
              "final_logits_max_abs_diff": check_diff,
              "lens": ("logits_l = unembed(final_norm(h_l)), softmax in float32, last position" if tuned is None else
                       "logits_l = unembed(final_norm(h_l + A_l h_l + b_l)) (tuned lens), softmax in float32, last position"),
              "lens_kind": "logit" if tuned is None else "tuned",
              "tuned_lens": None if tuned is None else tuned.digest},
    )
    if entry is not None:
        entry.save(*_to_cache(result))
    return result


def _to_cache(r: DriftResult) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A result as the (doc, arrays) of a :class:`~xling_probe.lens.cache.ResultCache` entry."""
    doc = {"model": r.model, "source": r.source, "target": r.target, "latent": r.latent, "task": r.task,
           "layers": list(r.layers), "concepts": list(r.concepts), "prompts": list(r.prompts), "level": r.level,
           "dropped": [list(e) for e in r.dropped.entries], "n_total": r.dropped.n_total, "meta": json_safe(dict(r.meta))}
    arrays = {f"values/{m}": v for m, v in r.values.items()}
    arrays.update({f"summary/{m}/{s}": a for m, stats in r.summary.items() for s, a in stats.items()})
    return doc, arrays


def _from_cache(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> DriftResult:
    values = {m: arrays[f"values/{m}"] for m in METRICS}
    summary = {m: {s: arrays[f"summary/{m}/{s}"] for s in STATS} for m in METRICS}
    return DriftResult(
        model=doc["model"], source=doc["source"], target=doc["target"], latent=doc["latent"], task=doc["task"],
        layers=tuple(doc["layers"]), concepts=tuple(doc["concepts"]), values=values, summary=summary,
        prompts=tuple(doc["prompts"]), dropped=DropReport(tuple(tuple(e) for e in doc["dropped"]), doc["n_total"]),
        level=doc["level"], meta=doc["meta"])


def _decoder_prefix(model: ModelHandle, target: str) -> list[int] | None:
    """Encoder-decoder models: the decoder reads its start token and the target language's tag (the
    prompt is the encoder input), so the lens reads the decoder's prediction of the first target token."""
    if model.stack != "decoder":
        return None
    from ..extraction.seq2seq import tokenize_target

    return tokenize_target(model.tokenizer, model.model, None, target, 1, "tag", 8).ids[0]
