"""xling_probe: where, inside a language model, do languages meet and where do they part?

The public entry points, one per capability::

    model = load_model()                         # offline Gemma 3 270M by default
    corpus = ParallelCorpus.sample()             # bundled parallel sentences
    acts = extract(model, corpus)                # layer x language x sentence x hidden
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .activations import Activations
from .corpus import ParallelCorpus, load_corpus, split_ids
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
from .extract import extract
from .languages import language_name, normalize_code
from .models import ModelHandle, load_model
from .store import clear_cache

try:
    __version__ = version("xling-probe")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"

__all__ = [
    "Activations",
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
]
