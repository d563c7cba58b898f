"""xling_probe: where, inside a language model, do languages meet and where do they part?

The public entry points, one per capability::

    model = load_model()                         # offline Gemma 3 270M by default
    corpus = ParallelCorpus.sample()             # bundled parallel sentences
    acts = extract(model, corpus)                # layer x language x sentence x hidden
    probs = activation_probabilities(model, corpus)   # language neurons (LAPE): docs/neurons.md
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .extraction.activations import Activations
from .data.corpus import ParallelCorpus, load_corpus, split_ids
from .errors import (
    CacheError,
    CorpusError,
    ExportError,
    ExtractionError,
    LanguageCodeError,
    LensError,
    MetricError,
    ModelLoadError,
    NotFittedError,
    XlingProbeError,
)
from .extraction.extract import extract
from .data.languages import language_name, normalize_code
from .models.loading import ModelHandle, load_model
from .extraction.store import clear_cache
from .measures.metrics import anc, linear_cka, mexa_alignment, retrieval_precision
from .measures.engine import cross_layer_similarity, similarity
from .measures.result import CrossLayerResult, SimilarityResult
from .centering.estimators import LanguageCentering, LinearProjection
from .centering.evaluate import NeutralityReport, neutrality
from .lens import (DriftResult, TunedLens, compare_lenses, language_drift, language_shares, lens_table, load_words,
                   train_tuned_lens)
from .neurons import (
    ActivationProbabilities,
    LanguageNeurons,
    PerplexityChange,
    activation_probabilities,
    neuron_intervention,
    perplexity,
    perplexity_change,
    select_language_neurons,
    steering,
)

from .interventions import (
    InterventionResult,
    concept_patching,
    fit_incline,
    incline,
    intervene,
    patch_states,
    steer,
    steering_vectors,
)

# Figures and the report import plotly: loaded on first use, so `import xling_probe` stays light.
_LAZY = {
    "plots": ("xling_probe.plots", None),
    "save_figure": ("xling_probe.plots", "save_figure"),
    "build_report": ("xling_probe.report.build", "build_report"),
    # language distances (URIEL+), the Mantel test, transliteration and map quality: loaded on first use
    "map_quality": ("xling_probe.centering.quality", "map_quality"),
    "language_distances": ("xling_probe.distances.uriel", "language_distances"),
    "LanguageDistances": ("xling_probe.distances.uriel", "LanguageDistances"),
    "mantel": ("xling_probe.distances.mantel", "mantel"),
    "partial_mantel": ("xling_probe.distances.mantel", "partial_mantel"),
    "distance_correlations": ("xling_probe.distances.mantel", "distance_correlations"),
    "romanize": ("xling_probe.transliteration", "romanize"),
    "matched_random_gap": ("xling_probe.transliteration", "matched_random_gap"),
    "transliteration_gap": ("xling_probe.transliteration", "transliteration_gap"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'xling_probe' has no attribute {name!r}")

try:
    __version__ = version("xling-probe")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"

__all__ = [
    "InterventionResult",
    "concept_patching",
    "fit_incline",
    "incline",
    "intervene",
    "patch_states",
    "steer",
    "steering_vectors",
    "ActivationProbabilities",
    "LanguageNeurons",
    "PerplexityChange",
    "activation_probabilities",
    "neuron_intervention",
    "perplexity",
    "perplexity_change",
    "select_language_neurons",
    "steering",
    "Activations",
    "CrossLayerResult",
    "DriftResult",
    "TunedLens",
    "compare_lenses",
    "train_tuned_lens",
    "LanguageCentering",
    "LinearProjection",
    "NeutralityReport",
    "SimilarityResult",
    "anc",
    "build_report",
    "cross_layer_similarity",
    "language_drift",
    "language_shares",
    "lens_table",
    "linear_cka",
    "load_words",
    "mexa_alignment",
    "neutrality",
    "retrieval_precision",
    "save_figure",
    "similarity",
    "CacheError",
    "CorpusError",
    "ExportError",
    "ExtractionError",
    "LanguageCodeError",
    "LensError",
    "MetricError",
    "ModelHandle",
    "ModelLoadError",
    "NotFittedError",
    "ParallelCorpus",
    "XlingProbeError",
    "__version__",
    "clear_cache",
    "extract",
    "language_name",
    "load_corpus",
    "load_model",
    "normalize_code",
    "split_ids",
    "LanguageDistances",
    "distance_correlations",
    "language_distances",
    "mantel",
    "map_quality",
    "matched_random_gap",
    "partial_mantel",
    "romanize",
    "transliteration_gap",
]
