"""The model handle: one loaded model with the facts every analysis needs (built by :func:`~xling_probe.models.loading.load_model`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .arch import Parts
from .placement import execution_device


@dataclass(eq=False)
class ModelHandle:
    """A loaded model with the facts the analyses need.

    ``n_blocks`` is the number of transformer blocks L; activations have ``n_states`` = L + 1
    residual-stream states, the "layers" of every result (0 = embeddings, l = after block l - 1). ``kind`` is ``"decoder"`` (causal LM) or
    ``"encoder"`` (bidirectional). ``fingerprint`` changes whenever the weights, config or
    tokenizer change, and keys the disk cache.
    """

    model: nn.Module
    tokenizer: Any
    name: str
    backend: str
    kind: Literal["decoder", "encoder"]
    n_blocks: int
    d_model: int
    has_unembedding: bool
    fingerprint: str
    parts: Parts
    bridge: Any = None
    source: dict[str, Any] = field(default_factory=dict)
    envoy: Any = None
    remote: bool = False

    @property
    def stack(self) -> str | None:
        """Encoder-decoder models: the stack whose states this handle reads ("encoder"/"decoder"); else ``None``."""
        return self.parts.stack

    @property
    def device(self) -> torch.device:
        """Where inputs go: the weights' device, the first placed device of a split model, CPU for a remote one."""
        if self.remote:
            return torch.device("cpu")
        return execution_device(self.model)

    @property
    def placement(self) -> dict[str, str] | None:
        """The accelerate device map (module -> device) of a split or offloaded model, else ``None``."""
        device_map = getattr(self.model, "hf_device_map", None)
        return {k: str(v) for k, v in device_map.items()} if device_map else None

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def n_states(self) -> int:
        """Number of residual-stream states: blocks + 1."""
        return self.n_blocks + 1

    def __repr__(self) -> str:
        return (
            f"ModelHandle({self.name!r}, backend={self.backend!r}, kind={self.kind!r}, "
            f"blocks={self.n_blocks}, width={self.d_model}, unembedding={self.has_unembedding}, "
            f"device={'remote' if self.remote else self.device}, dtype={str(self.dtype).replace('torch.', '')})"
        )
