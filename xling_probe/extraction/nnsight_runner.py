"""The nnsight runner: the residual states of every requested layer read inside one nnsight trace.

Same interface as :class:`~xling_probe.extraction.runners.HFRunner`: ``run(batch, reduce)`` hands
each requested state (0 = the input of block 0, l = the output of block l - 1) to
``reduce(layer, hidden)`` *inside the trace*, so pooling happens next to the model (on the NDIF
server for remote traces) and only the pooled ``[batch, d]`` vectors are saved and sent back, never
``[batch, seq, hidden]`` for all layers. The trace stops after the last requested block
(``tracer.stop()``), so later blocks, the final norm and the LM head never run.

For remote traces the ``reduce`` callback is shipped by value (``nnsight.register`` of this
package), so the server needs torch, not xling_probe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import ExtractionError
from ..models.loading import ModelHandle
from ..models.nnsight_backend import envoy_at
from .runners import PoolingRunner, model_inputs

_REGISTERED = False


def _register_for_remote() -> None:
    """Ship xling_probe's code by value with remote requests (the server does not have the package)."""
    global _REGISTERED
    if not _REGISTERED:
        import nnsight

        nnsight.register("xling_probe")
        _REGISTERED = True


def _hidden_in(inputs: Any) -> torch.Tensor:
    args, kwargs = inputs
    return args[0] if args else kwargs["hidden_states"]


def _hidden_out(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


class NNsightRunner(PoolingRunner):
    """Runs batches as nnsight traces over ``handle.envoy`` (local ``NNsight`` or a remote model)."""

    def __init__(self, handle: ModelHandle, layers: Sequence[int]):
        if handle.envoy is None:
            raise ExtractionError("this handle has no nnsight wrapper; load it with backend='nnsight'")
        self.handle = handle
        self.layers = sorted(layers)
        self.blocks = envoy_at(handle.envoy, handle.source.get("block_path", ""))
        self.remote = bool(handle.remote)
        if self.remote:
            _register_for_remote()

    def run(self, batch: dict[str, torch.Tensor], reduce: Callable[[int, torch.Tensor], Any]) -> dict[int, Any]:
        inputs = model_inputs(self.handle, batch)
        options = {"remote": True} if self.remote else {}
        blocks, layers = self.blocks, self.layers
        try:
            with self.handle.envoy.trace(**inputs, **options) as tracer:
                out = dict().save()
                for layer in layers:
                    if layer == 0:
                        hidden = _hidden_in(blocks[0].inputs)
                    else:
                        hidden = _hidden_out(blocks[layer - 1].output)
                    out[layer] = reduce(layer, hidden)
                tracer.stop()
        except ExtractionError:
            raise
        except Exception as exc:  # noqa: BLE001 - nnsight wraps errors of the traced model in its own types
            where = "on the NDIF server" if self.remote else "in the nnsight trace"
            raise ExtractionError(f"the forward pass failed {where}: {type(exc).__name__}: {exc}") from exc
        missing = set(layers) - set(out)
        if missing:
            raise ExtractionError(f"the nnsight trace did not capture layers {sorted(missing)}")
        return dict(out)
