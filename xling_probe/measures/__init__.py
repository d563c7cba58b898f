"""Similarity measures between languages, every layer x every pair, with nulls and intervals.

- :mod:`.metrics`: pure metric functions on two N x D matrices (CKA, debiased CKA, ANC, retrieval, MEXA, mutual k-NN).
- :mod:`.kernels`: the per-language products shared across pairs, nulls and bootstrap resamples.
- :mod:`.engine`: :func:`similarity` and :func:`cross_layer_similarity`.
- :mod:`.result`: :class:`SimilarityResult` and :class:`CrossLayerResult`.
"""

from .engine import cross_layer_similarity, similarity
from .metrics import anc, linear_cka, mexa_alignment, retrieval_precision
from .result import CrossLayerResult, SimilarityResult

__all__ = ["CrossLayerResult", "SimilarityResult", "anc", "cross_layer_similarity", "linear_cka", "mexa_alignment",
           "retrieval_precision", "similarity"]
