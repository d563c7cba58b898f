"""Similarity measures between languages, every layer x every pair, with nulls and intervals.

- :mod:`.registry`: one :class:`MetricSpec` per metric (family, direction, bounds, chance level, kernel).
- :mod:`.metrics`: pure metric functions on two N x D matrices (CKA, debiased CKA, ANC, retrieval, MEXA, mutual k-NN).
- :mod:`.kernels`: the per-language products shared across pairs, nulls and bootstrap resamples.
- :mod:`.engine`: :func:`similarity` and :func:`cross_layer_similarity`.
- :mod:`.result`: :class:`SimilarityResult`; :mod:`.cross_layer`: :class:`CrossLayerResult`;
  :mod:`.assemble`: the engine's arrays -> a result.
"""

from .cross_layer import CrossLayerResult
from .engine import cross_layer_similarity, similarity
from .metrics import anc, linear_cka, mexa_alignment, retrieval_precision
from .registry import DEFAULT_METRICS, METRICS, MetricSpec, cka_form, metric_spec, parse_metrics
from .result import SimilarityResult

__all__ = ["DEFAULT_METRICS", "METRICS", "CrossLayerResult", "MetricSpec", "SimilarityResult", "anc", "cka_form",
           "cross_layer_similarity", "linear_cka", "metric_spec", "mexa_alignment", "parse_metrics",
           "retrieval_precision", "similarity"]
