"""The TransformerLens backend: TransformerLens 4's ``TransformerBridge`` over the loaded HF model.

The bridge is booted from the model and tokenizer already in memory (no network) and exposes
TransformerLens hook names. Residual-stream state 0 is ``blocks.0.hook_in`` (the embedding
output, TransformerLens' ``hook_resid_pre`` of block 0) and state l is ``blocks.{l-1}.hook_out``
(``hook_resid_post``), the same states as the HF backend's block hooks.

Note: booting the bridge switches the shared HF model to eager attention (the bridge needs it
for its attention hooks); sdpa and eager differ by about 1e-3, so compare backends on the same
attention implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .arch import find_parts
from ..errors import ExtractionError, ModelLoadError
from ..extraction.extract import PoolingRunner


def hook_name(layer: int) -> str:
    """TransformerLens hook name of residual-stream state ``layer``."""
    return "blocks.0.hook_in" if layer == 0 else f"blocks.{layer - 1}.hook_out"


def boot_bridge(handle: Any, *, copy_model: bool = False) -> Any:
    """Boot a ``TransformerBridge`` around ``handle.model`` (no download).

    With ``copy_model=True`` the bridge gets a deep copy, so the caller's model object keeps its
    attention implementation; ``handle.model`` then points at the copy the bridge runs.
    """
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError as exc:  # pragma: no cover - transformer-lens is a core dependency
        raise ModelLoadError(f"the transformer_lens backend needs transformer-lens 4: {exc}") from None
    if handle.kind != "decoder":
        raise ModelLoadError("the transformer_lens backend supports decoder models; use backend='hf' for encoders")
    if copy_model:
        import copy

        handle.model = copy.deepcopy(handle.model)
        handle.parts = find_parts(handle.model)
    cfg = handle.model.config
    # The architecture name tells the bridge which adapter to use; the weights come from hf_model.
    arch_name = getattr(cfg, "_name_or_path", "") or handle.name
    try:
        return TransformerBridge.boot_transformers(
            arch_name if "/" in arch_name else _adapter_name(cfg),
            hf_model=handle.model,
            tokenizer=handle.tokenizer,
            device=str(handle.device),
            dtype=handle.dtype,
        )
    except Exception as exc:  # noqa: BLE001 - TransformerLens raises many kinds for unsupported models
        raise ModelLoadError(
            f"TransformerLens could not wrap {handle.name} ({type(handle.model).__name__}): {exc}. "
            "Use backend='hf'."
        ) from None


def _adapter_name(cfg: Any) -> str:
    # boot_transformers reads the config of this name; with hf_model given it only needs a name
    # whose architecture matches. Fall back to the model type's canonical hub id.
    known = {"gemma3_text": "google/gemma-3-270m", "gemma3": "google/gemma-3-270m", "gpt2": "gpt2",
             "llama": "meta-llama/Llama-3.2-1B", "qwen2": "Qwen/Qwen2.5-0.5B", "gemma2": "google/gemma-2-2b"}
    return known.get(getattr(cfg, "model_type", ""), getattr(cfg, "model_type", "model"))


class TLRunner(PoolingRunner):
    """Same interface as :class:`xling_probe.extraction.extract.HFRunner`, through bridge hooks."""

    def __init__(self, handle: Any, layers: Sequence[int]):
        if handle.bridge is None:
            raise ExtractionError("this handle has no TransformerLens bridge; load it with backend='transformer_lens'")
        self.handle = handle
        self.layers = list(layers)

    def run(self, batch: dict[str, torch.Tensor], reduce: Callable[[int, torch.Tensor], Any]) -> dict[int, Any]:
        out: dict[int, Any] = {}
        hooks = []
        for layer in self.layers:
            def fn(tensor, hook, layer=layer):
                out[layer] = reduce(layer, tensor)
                return tensor
            hooks.append((hook_name(layer), fn))
        stop = max(self.layers)
        device = self.handle.device
        mask = batch["attention_mask"].to(device)
        kwargs: dict[str, Any] = {"attention_mask": mask, "return_type": None}
        if self.handle.kind == "decoder":
            # Positions count real tokens (as in HFRunner), so left padding does not shift absolute
            # position embeddings (GPT-2) or rotary phases; passed explicitly rather than relying on
            # the bridge's own derivation, which differs between TransformerLens versions.
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if stop < self.handle.n_layers:
            kwargs["stop_at_layer"] = stop  # blocks 0..stop-1 run; state `stop` is blocks.{stop-1}.hook_out
        if stop == 0:
            kwargs["stop_at_layer"] = 1
        self.handle.bridge.run_with_hooks(batch["input_ids"].to(device), fwd_hooks=hooks, **kwargs)
        missing = set(self.layers) - set(out)
        if missing:
            raise ExtractionError(f"TransformerLens hooks did not fire for layers {sorted(missing)}")
        return out
