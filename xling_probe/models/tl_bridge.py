"""The TransformerLens backend: TransformerLens 4's ``TransformerBridge`` over the loaded HF model.

The bridge is booted from the model and tokenizer already in memory (no network) and exposes
TransformerLens hook names. Residual-stream state 0 is ``blocks.0.hook_in`` (the embedding
output, TransformerLens' ``hook_resid_pre`` of block 0) and state l is ``blocks.{l-1}.hook_out``
(``hook_resid_post``), the same states as the HF backend's block hooks.

Note: booting the bridge switches the shared HF model to eager attention (the bridge needs it
for its attention hooks); sdpa and eager differ by about 1e-3, so compare backends on the same
attention implementation. The runner that hooks the bridge is
:class:`xling_probe.extraction.runners.TLRunner`; this module only boots the bridge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from .arch import find_parts, tl_adapter_name

if TYPE_CHECKING:
    from .loading import ModelHandle


def hook_name(layer: int) -> str:
    """TransformerLens hook name of residual-stream state ``layer``."""
    return "blocks.0.hook_in" if layer == 0 else f"blocks.{layer - 1}.hook_out"


#: Hook points right after the last block, in the order tried: a hook there ends the forward pass
#: before the final norm and the unembedding (:class:`xling_probe.extraction.runners.TLRunner`).
AFTER_BLOCKS = ("ln_final.hook_in", "unembed.hook_in")


def final_hook_name(bridge: Any) -> str | None:
    """The first hook point after the blocks that ``bridge`` has (see :data:`AFTER_BLOCKS`), or ``None``."""
    names = getattr(bridge, "hook_dict", None) or {}
    return next((name for name in AFTER_BLOCKS if name in names), None)


def boot_bridge(handle: ModelHandle, *, copy_model: bool = False) -> Any:
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
    if not getattr(cfg, "architectures", None):
        # A model built from a config (not loaded from a folder) names no architecture; the bridge reads it there.
        cfg.architectures = [type(handle.model).__name__]
    # The architecture name tells the bridge which adapter to use; the weights come from hf_model.
    arch_name = getattr(cfg, "_name_or_path", "") or handle.name
    tokenizer = _with_source(handle.tokenizer)
    try:
        return TransformerBridge.boot_transformers(
            arch_name if "/" in arch_name else tl_adapter_name(cfg),
            hf_model=handle.model,
            tokenizer=tokenizer,
            device=str(handle.device),
            dtype=handle.dtype,
        )
    except Exception as exc:  # noqa: BLE001 - TransformerLens raises many kinds for unsupported models
        raise ModelLoadError(
            f"TransformerLens could not wrap {handle.name} ({type(handle.model).__name__}): {exc}. "
            "Use backend='hf'."
        ) from None


def _with_source(tokenizer: Any) -> Any:
    """The tokenizer, or an identical copy reloaded from a temporary folder when it was built in memory.

    TransformerLens re-creates the tokenizer from ``init_kwargs["name_or_path"]`` (to switch BOS on),
    which a tokenizer built in memory does not have; saved and reloaded, it has one.
    """
    if getattr(tokenizer, "bos_token", None) is None or "name_or_path" in (getattr(tokenizer, "init_kwargs", None) or {}) \
            and tokenizer.init_kwargs["name_or_path"]:
        return tokenizer
    import tempfile

    from transformers import AutoTokenizer

    folder = tempfile.mkdtemp(prefix="xling-probe-tokenizer-")
    tokenizer.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)
