"""Extraction: parallel sentences through a model, pooled residual states of every layer, cached on disk.

- :mod:`.runners`: the hooked forward passes (HF and TransformerLens) shared by extraction and the lens.
- :mod:`.extract`: :func:`extract` (the cached pipeline) and :func:`extract_texts` (pooled states of texts).
- :mod:`.pooling`: sentence pooling (mean, last, first, MEXA's weighted mean) as per-token weights.
- :mod:`.activations`: :class:`Activations`, the labeled layer x language x sentence x hidden result.
- :mod:`.store`: the checksummed, resumable cache and saved activation folders.
"""

from .activations import Activations
from .extract import extract, extract_texts
from .store import clear_cache

__all__ = ["Activations", "clear_cache", "extract", "extract_texts"]
