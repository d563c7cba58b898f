"""The runner of each backend: one place that maps ``handle.backend`` to the class that runs its forward passes.

- ``"hf"``: :class:`~xling_probe.extraction.runners.HFRunner` (hooks on the HF blocks);
- ``"transformer_lens"``: :class:`~xling_probe.extraction.runners.TLRunner` (TransformerLens bridge hooks);
- ``"nnsight"``: :class:`~xling_probe.extraction.nnsight_runner.NNsightRunner` (nnsight traces, local or remote).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models.loading import ModelHandle
from .runners import HFRunner, PoolingRunner, TLRunner


def make_runner(handle: ModelHandle, layers: Sequence[int]) -> PoolingRunner:
    """The runner of ``handle``'s backend (:class:`HFRunner`, :class:`TLRunner` or
    :class:`~xling_probe.extraction.nnsight_runner.NNsightRunner`) for ``layers``."""
    if handle.backend == "transformer_lens":
        return TLRunner(handle, layers)
    if handle.backend == "nnsight":
        from .nnsight_runner import NNsightRunner  # imports nnsight only when that backend is used

        return NNsightRunner(handle, layers)
    return HFRunner(handle, layers)
