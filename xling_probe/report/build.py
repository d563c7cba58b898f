"""``xling-probe report``: extraction, similarity, neutrality and language drift in one HTML page.

:func:`build_report` runs every stage on a model and a parallel corpus and writes into ``out``:
``index.html`` (self-contained: plotly.js embedded once, opens offline), ``figures/*.png|svg``
(static copies through kaleido when a Chrome/Chromium is found; otherwise the page says what is
missing), ``tables/*.csv`` (tidy tables behind every figure) and ``manifest.json`` (every setting,
library versions, per-stage wall times, notes), so any figure can be reproduced.

Defaults are sized to finish in a few minutes on a 2-core CPU with the offline Gemma 3 270M:
6 of the sample's languages (4 scripts), 60 sentences, 100 bootstrap resamples, 2 drift pairs x 16 items.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import XlingProbeError
from .stages import distance_stage, drift_sections, drift_unavailable, neuron_stage, transliteration_stage

if TYPE_CHECKING:  # annotations only: the CLI reads this module's defaults without importing torch
    from ..data.corpus import ParallelCorpus
    from ..models.loading import ModelHandle

DEFAULT_LANGS = ("en", "de", "fr", "ru", "zh", "ar")
#: The (source, target) pairs of the language-drift sections (not similarity pairs).
DEFAULT_PAIRS = (("fr", "zh"), ("de", "fr"))
DEFAULT_LIMIT = 60
#: The report's own metric selection (the library's default is
#: :data:`xling_probe.measures.registry.DEFAULT_METRICS`): one per family the report has a section for.
REPORT_METRICS = ("cka_debiased", "p@1", "anc", "mexa")
#: The report's stages in the order they run; each one either runs or is skipped with a reason.
STAGES = ("corpus", "model", "extract", "similarity", "cross_layer", "neutrality", "embedding", "drift",
          "neurons", "distances", "transliteration", "static_export", "write")


@dataclass
class ReportResult:
    """What :func:`build_report` wrote: the folder, the files, per-stage seconds and the notes."""

    out: Path
    files: list[Path]
    timings: dict[str, float]
    notes: list[str] = field(default_factory=list)
    #: the report's figures by id (the same objects as on the page), e.g. ``"mexa_curves"``
    figures: dict[str, Any] = field(default_factory=dict)
    #: one entry per stage of :data:`STAGES`: ``{"stage", "status": "ran" | "skipped", "seconds" | "reason"}``
    stages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.out / "index.html"


class _Stages:
    """Times each stage and shows one progress bar over the planned stages.

    Every planned stage either runs (:meth:`run`) or is skipped with a reason (:meth:`skip`); both
    advance the bar by one, so a finished report ends at ``total/total``. :meth:`record` lists
    what happened to each stage, in the planned order (for manifest.json).
    """

    def __init__(self, names: Sequence[str], progress: bool):
        from tqdm.auto import tqdm

        self.names = tuple(names)
        self.timings: dict[str, float] = {}
        self.skipped: dict[str, str] = {}
        self.bar = tqdm(total=len(self.names), desc="report", unit="stage", disable=not progress)

    def _check(self, name: str) -> None:
        if name not in self.names:
            raise XlingProbeError(f"report stage {name!r} is not planned; stages: {', '.join(self.names)}")
        if name in self.timings or name in self.skipped:
            raise XlingProbeError(f"report stage {name!r} ran twice")

    def run(self, name: str, fn, *args, **kw):
        self._check(name)
        self.bar.set_postfix_str(name)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 3)
            self.bar.update(1)

    def skip(self, name: str, reason: str) -> None:
        """Count a stage that does not run (the bar still advances) and say why."""
        self._check(name)
        self.skipped[name] = reason
        self.bar.update(1)

    def record(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name in self.names:
            if name in self.timings:
                out.append({"stage": name, "status": "ran", "seconds": self.timings[name]})
            elif name in self.skipped:
                out.append({"stage": name, "status": "skipped", "reason": self.skipped[name]})
            else:
                out.append({"stage": name, "status": "not reached"})
        return out


def drift_pairs(pairs: str | Sequence[str | Sequence[str]] | None) -> list[tuple[str, str]]:
    """The (source, target) pairs of the drift sections as canonical codes, in the pair grammar of
    :func:`xling_probe.labels.parse_pair`: ``"fr-zh,de-fr"``, ``["fr-zh"]`` or ``[("fr", "zh")]``
    (None = :data:`DEFAULT_PAIRS`). Codes are normalised (``fra`` -> ``fr``); whether the word list
    has them is checked per pair when the drift runs (a pair without words is skipped with a note)."""
    from ..data.languages import normalize_code
    from ..labels import parse_pair

    if pairs is None:
        items: list[Any] = list(DEFAULT_PAIRS)
    elif isinstance(pairs, str):
        items = [p for p in (x.strip() for x in pairs.split(",")) if p]
    else:
        items = list(pairs)
    if not items:
        raise XlingProbeError("no drift pairs given; write (source, target) pairs such as fr-zh,de-fr")
    out: list[tuple[str, str]] = []
    for item in items:
        src, tgt = (normalize_code(x) for x in parse_pair(item))
        if src == tgt:
            raise XlingProbeError(f"drift pair {item!r} translates {src} into itself; give two languages, e.g. fr-zh")
        if (src, tgt) not in out:
            out.append((src, tgt))
    return out


def build_report(
    out: str | Path,
    *,
    model: ModelHandle | str | Path | None = None,
    corpus: ParallelCorpus | str | Path | None = None,
    langs: Sequence[str] | None = None,
    pairs: str | Sequence[str | Sequence[str]] | None = None,
    limit: int | None = DEFAULT_LIMIT,
    words: Any = None,
    metrics: str | Sequence[str] = REPORT_METRICS,
    null_permutations: int = 20,
    bootstrap: int = 100,
    drift_items: int = 16,
    shots: int = 3,
    batch_size: int = 16,
    max_length: int = 128,
    static: bool = True,
    dpi: int = 200,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    load_options: dict[str, Any] | None = None,
    extract_options: dict[str, Any] | None = None,
    store: str | Path | None = None,
    store_dtype: str = "float32",
    max_memory_gb: float = 2.0,
    neurons: bool | dict[str, Any] = False,
    distances: bool | dict[str, Any] = False,
    transliteration: bool | dict[str, Any] = False,
    tuned_lens: Any = False,
    cache: bool = True,
) -> ReportResult:
    """Run every stage and write the report into ``out`` (refused when not empty unless ``force``).

    ``model``: a ModelHandle or a name/path for :func:`load_model` (None = the offline Gemma 3
    270M; ``load_options`` are passed to it: backend, device, dtype, device_map, stack...; ``extract_options``
    to :func:`~xling_probe.extract`: source_language, decoder_input of a decoder stack). ``corpus``: a ParallelCorpus or a file path (None = the bundled sample). ``langs``:
    languages to use (None = :data:`DEFAULT_LANGS` present in the corpus, else all; ``"all"``: every language
    of the corpus). ``pairs``:
    the (source, target) pairs of the language-drift sections, read by :func:`drift_pairs` (target
    words needed in the word list; a pair without words is skipped with a note); the similarity
    sections always score every pair of languages. ``limit``: first N sentences. ``words``: word
    list for the drift (None = bundled). ``metrics``: the similarity metrics (default
    :data:`REPORT_METRICS`). Models without an unembedding (encoders, the encoder stack of an
    encoder-decoder model) skip the drift section and say why; every other section runs on their states.

    Many languages: ``store`` (folder or fsspec URL, ``store_dtype``) streams every analysis from an on-disk
    store within ``max_memory_gb``; above :data:`~xling_probe.report.many.MANY_LANGUAGES` languages see
    :func:`~xling_probe.report.many.similarity_stage` and the many-language section.

    ``neurons=True`` adds the language-neuron section (LAPE selection on 80% of the sentences, the
    perplexity-change matrix with its random control on the other 20%; :mod:`xling_probe.report.neurons`).
    It is off by default: it runs the model over the corpus twice more. A dict turns it on with options of
    :func:`~xling_probe.report.neurons.run_neuron_analysis` (``fraction``, ``min_tokens``, ``heldout``...).
    ``distances=True`` adds the language-distance section (:mod:`xling_probe.report.distances`): per layer, the
    Spearman correlation of the run's every-pair similarity (debiased CKA and P@1, those of ``metrics`` the run
    has) with each URIEL+ distance kind and script identity, seeded Mantel p-values and the partial r controlling
    for script. A dict turns it on with options: ``source`` (``"urielplus"``, default: the first use integrates
    URIEL+'s databases, 1-4 min, then cached; ``"uriel"``: the original arrays, seconds), ``kinds``,
    ``permutations`` (999), ``metrics``, ``alpha`` (0.05). Skipped with a reason below 4 languages.
    ``transliteration=True`` adds the transliteration section (:mod:`xling_probe.report.transliteration`): the
    matched - random gap of the run's non-Latin-script languages (scripts read from the text) against a
    Latin-script reference, for the original and the uroman-romanized text, per layer with bootstrap intervals
    (``bootstrap`` resamples); it extracts the romanized sentences once more. A dict passes ``n_boot``, ``ci``,
    ``max_languages``. Skipped with a reason when every language is in Latin script.
    The neutrality stage also fits a least-squares map of every language into the pivot on its fit split and reports,
    per layer, its held-out retrieval beside its orthogonality deviation and singular-value spread (``tables/map_quality.csv``).
    ``tuned_lens=True`` (a TunedLens, or a lens.npz path) adds each drift pair read through a tuned lens (:mod:`.tuned`).
    ``cache=False`` computes the activations and the drift again instead of reading (or writing) the cache.
    """
    from ..measures.registry import parse_metrics
    from ..paths import prepare_output_folder as prepare_out

    metrics = parse_metrics(metrics)  # typos fail here, before any folder is made or model loaded
    pairs_of_drift = drift_pairs(pairs)
    out = prepare_out(out, force=force)
    stages = _Stages(STAGES, progress)
    try:
        return _build(out, stages, model, corpus, langs, limit, pairs_of_drift, load_options, extract_options or {},
                      words=words, metrics=metrics, null_permutations=null_permutations, bootstrap=bootstrap, drift_items=drift_items, shots=shots,
                      batch_size=batch_size, max_length=max_length, static=static, dpi=dpi, seed=seed,
                      progress=progress, store=store, store_dtype=store_dtype, max_memory_gb=max_memory_gb,
                      neurons=neurons, distances=distances, transliteration=transliteration, cache=cache, tuned_lens=tuned_lens)
    finally:
        stages.bar.close()


def _build(out, stages, model, corpus, langs, limit, drift_pairs, load_options, extract_options, *, words, metrics,
           null_permutations, bootstrap, drift_items, shots, batch_size, max_length, static, dpi, seed,
           progress, store=None, store_dtype="float32", max_memory_gb=2.0, neurons=False, distances=False,
           transliteration=False, cache=True, tuned_lens=False) -> ReportResult:
    """The stages of :func:`build_report`. The corpus is loaded and its languages checked before
    the model is loaded: a typo in a language code must not cost a model load."""
    from ..data.corpus import ParallelCorpus, load_corpus
    from ..models.loading import ModelHandle, load_model
    from .many import select_corpus

    notes: list[str] = []
    if corpus is None:
        corpus = ParallelCorpus.sample()
    elif not isinstance(corpus, ParallelCorpus):
        corpus = load_corpus(corpus)
    full, corpus = corpus, stages.run("corpus", select_corpus, corpus, langs, limit, DEFAULT_LANGS)
    if isinstance(model, ModelHandle):
        handle = model
        stages.skip("model", f"a loaded model was given ({model.name})")
    else:
        handle = stages.run("model", load_model, model, **(load_options or {}))

    from ..extraction.extract import extract

    source = corpus
    if handle.stack == "decoder":  # the encoder may read a language left out of the report (source_language)
        source, extract_options = (full.head(limit) if limit else full), {**extract_options, "languages": corpus.languages}
    if store is not None:
        extract_options = {**extract_options, "store": store, "store_dtype": store_dtype}
    acts = stages.run("extract", extract, handle, source, pooling="mean", batch_size=batch_size, max_length=max_length,
                      progress=progress, cache=cache, **extract_options)
    sections, tables, figures, grid = _analyses(stages, handle, acts, notes, drift_pairs, words=words, metrics=metrics,
                                          null_permutations=null_permutations, bootstrap=bootstrap,
                                          drift_items=drift_items, shots=shots, seed=seed, progress=progress,
                                          max_memory_gb=max_memory_gb, cache=cache, tuned_lens=tuned_lens)
    neuron_stage(stages, handle, corpus, sections, tables, figures, notes, enabled=neurons, seed=seed,
                  batch_size=batch_size, max_length=max_length, progress=progress)
    distance_stage(stages, grid, sections, tables, figures, notes, enabled=distances, seed=seed)
    pivot = "en" if "en" in acts.languages else acts.languages[0]
    transliteration_stage(stages, handle, corpus, acts, sections, tables, figures, notes, enabled=transliteration,
                          pivot=pivot, bootstrap=bootstrap, seed=seed, batch_size=batch_size, max_length=max_length,
                          progress=progress, cache=cache, extract_options=extract_options)
    from .write import write_all

    files = write_all(out, stages, handle, acts, sections, tables, figures, notes, static=static, dpi=dpi, settings={
        "model": handle.name, "fingerprint": handle.fingerprint, "backend": handle.backend, "kind": handle.kind,
        "stack": handle.stack, **{k: v for k, v in acts.meta.items() if k in ("source_language", "decoder_input")},
        "languages": list(acts.languages), "n_sentences": acts.n_sentences, "layers": list(acts.layers),
        "pooling": "mean", "max_length": max_length, "batch_size": batch_size, "metrics": list(metrics),
        "null_permutations": null_permutations, "bootstrap": bootstrap, "drift_pairs": [list(p) for p in drift_pairs],
        "drift_items": drift_items, "shots": shots, "seed": seed, "dpi": dpi, "static": static,
        "corpus": {k: v for k, v in corpus.meta.items() if isinstance(v, (str, int, float, bool))},
        "limit": limit, "words": str(words) if words is not None else "bundled xling_probe/data/words.csv",
        "store": str(store) if store is not None else None, "store_dtype": store_dtype if store is not None else None,
        "max_memory_gb": max_memory_gb, "neurons": neurons if isinstance(neurons, dict) else bool(neurons),
        "distances": distances if isinstance(distances, dict) else bool(distances),
        "transliteration": transliteration if isinstance(transliteration, dict) else bool(transliteration),
        "cache": cache,
    })
    return ReportResult(out=out, files=files, timings=stages.timings, notes=notes, figures=figures,
                        stages=stages.record())


def _title(label: str) -> str:
    """A metric's display label at the start of a heading: ``retrieval P@1`` -> ``Retrieval P@1``."""
    return label[:1].upper() + label[1:]


def _analyses(stages, handle, acts, notes, drift_pairs, *, words, metrics, null_permutations, bootstrap, drift_items,
              shots, seed, progress, max_memory_gb=2.0, cache=True, tuned_lens=False):
    """Run the analyses and build the figures; returns (sections, tables name -> DataFrame, figures id -> Figure,
    the every-pair SimilarityResult that the distance stage correlates)."""
    from .. import plots
    from ..measures.engine import cross_layer_similarity
    from .captions import describe_curve, describe_heatmap, describe_mexa
    from .html import TEXTS, Section
    from .many import MANY_LANGUAGES, map_languages, many_language_section, similarity_stage

    sections: list[Section] = []
    tables: dict[str, Any] = {}
    figs: dict[str, Any] = {}
    langs = acts.languages
    pivot = "en" if "en" in langs else langs[0]
    many = len(langs) > MANY_LANGUAGES
    sim, grid = stages.run("similarity", similarity_stage, acts, metrics, pivot, null_permutations=null_permutations,
                           bootstrap=bootstrap, seed=seed, progress=progress, max_memory_gb=max_memory_gb, many=many)
    if many:
        notes.append(f"{len(langs)} languages: every pair scored without null or interval (batched, "
                     f"{', '.join(grid.metrics)}); the null and intervals are those of the {len(sim.pairs)} pairs "
                     f"with {pivot} (tables/similarity.csv)")
    tables["similarity"], tables["similarity_layer_mean"] = sim.to_dataframe(), grid.layer_mean()
    tables["similarity_peaks"] = grid.peak_layers()
    pivot_pairs = [p for p in sim.pairs if pivot in p]
    curve_metric = next((m for m in sim.metrics if not sim.spec(m).directional), sim.metrics[0])
    figs["similarity_curves"] = plots.similarity_curves(sim, curve_metric, pairs=pivot_pairs)
    sections.append(Section("similarity", f"Similarity per layer ({curve_metric}, {pivot} vs every language)",
                            TEXTS["similarity"], [("similarity_curves", figs["similarity_curves"])],
                            ["tables/similarity.csv", "tables/similarity_layer_mean.csv"],
                            finding=describe_curve(sim, curve_metric, pivot_pairs)))
    ret = next((m for m in sim.metrics if sim.spec(m).family == "retrieval"), None)
    if ret:
        figs["retrieval_curves"] = plots.similarity_curves(sim, ret, pairs=pivot_pairs, null=True)
        sections.append(Section("retrieval", f"{_title(sim.spec(ret).label)} per layer", TEXTS["retrieval"],
                                [("retrieval_curves", figs["retrieval_curves"])], ["tables/similarity.csv"],
                                finding=describe_curve(sim, ret, pivot_pairs)))
    # one more section per family that has a text of its own, for its first metric not shown above
    for key in ("mexa", "anc"):
        metric = next((m for m in sim.metrics if sim.spec(m).family == key and m != curve_metric), None)
        if metric is None:
            continue
        figs[f"{key}_curves"] = plots.similarity_curves(sim, metric, pairs=pivot_pairs, null=True)
        finding = describe_curve(sim, metric, pivot_pairs)
        if key == "mexa":
            finding = describe_mexa(sim, pivot_pairs, metric) + " " + finding.removeprefix("This run: ")
        title = f"{_title(sim.spec(metric).label)} per layer ({pivot} vs every language)"
        sections.append(Section(key, title, TEXTS[key],
                                [(f"{key}_curves", figs[f"{key}_curves"])],
                                ["tables/similarity.csv", "tables/similarity_peaks.csv"], finding=finding))
    grid_metric = curve_metric if curve_metric in grid.metrics else grid.metrics[0]
    peak = grid.peak_layer(grid_metric)  # where the mean over every computed pair peaks
    if many:  # many-language mode: family summary, extreme pairs, clustered heatmap, CSV
        section, many_tables, many_figs = many_language_section(grid, grid_metric, peak)
        sections.append(section), tables.update(many_tables), figs.update(many_figs)
    else:
        figs["language_heatmap"] = plots.language_heatmap(sim, curve_metric, layer=peak)
        sections.append(Section("heatmap", f"All language pairs at layer {peak}", TEXTS["heatmap"],
                                [("language_heatmap", figs["language_heatmap"])], ["tables/similarity_peaks.csv"],
                                finding=describe_heatmap(sim, curve_metric, peak)))

    cross_pair = (drift_pairs[0] if drift_pairs and all(x in langs for x in drift_pairs[0])
                  else (pivot, next(x for x in langs if x != pivot)))
    cross_metric = "cka_debiased" if acts.n_sentences >= 4 else "cka"
    cross = stages.run("cross_layer", cross_layer_similarity, acts, cross_pair[0], cross_pair[1], metric=cross_metric)
    tables["cross_layer"] = cross.to_dataframe()
    figs["cross_layer"] = plots.cross_layer_heatmap(cross)
    sections.append(Section("cross_layer", f"Layer x layer: {cross.lang_a} vs {cross.lang_b}", TEXTS["cross_layer"],
                            [("cross_layer", figs["cross_layer"])], ["tables/cross_layer.csv"]))

    rep, quality = stages.run("neutrality", _neutrality_and_map, acts, pivot, notes, seed=seed, progress=progress)
    tables["neutrality"], tables["neutrality_summary"] = rep.to_dataframe(), rep.summary()
    figs["neutrality"] = plots.neutrality_curves(rep)
    sections.append(Section("neutrality", "Language neutrality: raw vs centered", TEXTS["neutrality"],
                            [("neutrality", figs["neutrality"])], ["tables/neutrality.csv", "tables/neutrality_summary.csv"]))
    if quality is not None:
        from .linear_map import map_quality_section

        section, more_tables, _ = map_quality_section(quality)
        sections.append(section), tables.update(more_tables)

    shown = map_languages(langs, pivot)
    on_map = acts if len(shown) == len(langs) else acts.sel(languages=shown)
    figs["embedding"] = stages.run("embedding", plots.embedding_map, on_map, peak, method="pca", seed=seed)
    of = "" if len(shown) == len(langs) else f", {len(shown)} of {len(langs)} languages"
    sections.append(Section("embedding", f"Sentence map at layer {peak} (PCA{of})", TEXTS["embedding"],
                            [("embedding", figs["embedding"])]))

    why = drift_unavailable(handle)
    if why:
        notes.append(why)
        sections.append(Section("drift", "Language drift (skipped)", "", notes=[why]))
        stages.skip("drift", why)
    else:
        stages.run("drift", drift_sections, handle, drift_pairs, sections, tables, figs, notes, words=words,
                   items=drift_items, shots=shots, seed=seed, progress=progress, cache=cache, tuned_lens=tuned_lens)
    return sections, tables, figs, grid


def _neutrality_and_map(acts, pivot, notes, *, seed, progress):
    """The neutrality report (held-out split 0.5) and, on its split, the linear map's quality (None + a note
    when it cannot be fitted)."""
    from ..centering.evaluate import neutrality
    from .linear_map import linear_map_quality

    rep = neutrality(acts, 0.5, seed=seed, progress=progress)
    try:
        quality = linear_map_quality(acts, rep.fit_ids, rep.heldout_ids, pivot)
    except XlingProbeError as err:
        notes.append(f"no linear-map section: {err}")
        quality = None
    return rep, quality
