"""The exception family of xling_probe.

Every user mistake surfaces as a subclass of :class:`XlingProbeError` with a message that says
what was wrong and what to do, never as a traceback from deep inside transformers or numpy.
"""

from __future__ import annotations


class XlingProbeError(Exception):
    """Base class of every error xling_probe raises on purpose."""


class ModelLoadError(XlingProbeError):
    """A model name, path or file could not be loaded."""


class CorpusError(XlingProbeError, ValueError):
    """A parallel corpus is malformed (missing cells, duplicate ids, unknown languages...)."""


class LanguageCodeError(CorpusError):
    """A language code could not be understood."""


class ExtractionError(XlingProbeError, ValueError):
    """Extraction was asked for something impossible (bad layers, pooling, NaN states...)."""


class CacheError(XlingProbeError):
    """The on-disk cache cannot be used (not writable, corrupted beyond repair)."""


class MetricError(XlingProbeError, ValueError):
    """A metric got inputs it cannot score (shape mismatch, too few rows, NaN...)."""


class NotFittedError(XlingProbeError, ValueError):
    """An estimator was used before ``fit``."""


class LensError(XlingProbeError, ValueError):
    """The logit lens cannot run on this model or these items."""


class ExportError(XlingProbeError):
    """A figure could not be exported (missing Chromium, unknown format...)."""


class InterventionError(XlingProbeError, ValueError):
    """An intervention on the forward pass that cannot run as asked (layer, positions, strength, inputs)."""
