"""The only module that knows architectures: where they keep their parts and what their model types are.

For a Hugging Face model it finds the transformer blocks (whose outputs are the residual
stream), the base model that runs them without the LM head, the final norm and the
unembedding, and the final-logit soft-capping when the config has one. The model-type tables
live here too: which configs are causal LMs (:func:`is_causal_lm`, used by loading), which are
bidirectional encoders (:func:`is_encoder`), and which hub id names the TransformerLens adapter of
a model type (:func:`tl_adapter_name`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ModelLoadError

# Dotted paths of the block list, tried in order on the model and on its base model.
_BLOCK_PATHS = (
    "model.layers",  # Llama, Gemma 1-3, Qwen, Mistral, Phi-3 (CausalLM wrappers)
    "layers",  # the same, on the base model
    "model.decoder.layers",  # OPT
    "decoder.layers",
    "transformer.h",  # GPT-2, GPT-J, Bloom
    "h",
    "gpt_neox.layers",  # Pythia
    "encoder.layer",  # BERT, XLM-R, (m)DeBERTa base models
    "bert.encoder.layer",
    "roberta.encoder.layer",
    "encoder.layers",
)
_FINAL_NORM_PATHS = (
    "model.norm",
    "norm",
    "model.decoder.final_layer_norm",
    "decoder.final_layer_norm",
    "transformer.ln_f",
    "ln_f",
    "gpt_neox.final_layer_norm",
    "final_layer_norm",
)


def _get(module: nn.Module, path: str) -> Any:
    obj: Any = module
    for part in path.split("."):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Parts:
    """Where the pieces of one model live.

    ``blocks[l]`` maps residual stream l to residual stream l + 1; ``runner`` is the module
    whose forward runs embeddings and blocks (the base model, without the LM head);
    ``final_norm`` and ``unembed`` are ``None`` for models without a causal unembedding.
    """

    blocks: nn.ModuleList
    runner: nn.Module
    final_norm: nn.Module | None
    unembed: nn.Module | None
    logit_softcap: float | None


#: Model types that are causal LMs even when their config names no ``*ForCausalLM`` architecture.
CAUSAL_MODEL_TYPES = frozenset({"gemma3_text", "gemma", "gemma2", "llama", "qwen2", "qwen3", "mistral", "gpt2",
                                "gpt_neox", "opt", "bloom", "phi3"})
#: Model types of bidirectional encoders.
ENCODER_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "electra", "distilbert",
                                 "xlm", "camembert", "mpnet", "modernbert"})
#: Model type -> a hub id whose architecture TransformerLens' ``boot_transformers`` has an adapter for.
TL_ADAPTERS = {"gemma3_text": "google/gemma-3-270m", "gemma3": "google/gemma-3-270m", "gpt2": "gpt2",
               "llama": "meta-llama/Llama-3.2-1B", "qwen2": "Qwen/Qwen2.5-0.5B", "gemma2": "google/gemma-2-2b"}


def _names_causal_head(config: Any) -> bool:
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in (getattr(config, "architectures", None) or []))


def is_causal_lm(config: Any) -> bool:
    """Whether an HF config describes a causal LM (to load with ``AutoModelForCausalLM``, keeping the LM head)."""
    return (bool(getattr(config, "is_decoder", False)) or _names_causal_head(config)
            or getattr(config, "model_type", "") in CAUSAL_MODEL_TYPES)


def tl_adapter_name(config: Any) -> str:
    """The name TransformerLens' ``boot_transformers`` reads an architecture from, for a config without a hub id.

    With ``hf_model`` given the bridge only needs a name whose architecture matches; the model
    type's canonical hub id when known, else the model type itself.
    """
    model_type = getattr(config, "model_type", "")
    return TL_ADAPTERS.get(model_type, model_type or "model")


def is_encoder(model: nn.Module) -> bool:
    """True for bidirectional encoders (BERT, XLM-R...), False for causal decoders."""
    cfg = model.config
    if getattr(cfg, "is_decoder", False) or getattr(cfg, "is_encoder_decoder", False):
        return False
    if _names_causal_head(cfg):
        return False
    return getattr(cfg, "model_type", "") in ENCODER_MODEL_TYPES


def find_parts(model: nn.Module) -> Parts:
    """Locate blocks, runner, final norm and unembedding of ``model``."""
    blocks = None
    for path in _BLOCK_PATHS:
        cand = _get(model, path)
        if isinstance(cand, nn.ModuleList) and len(cand) > 0:
            blocks = cand
            break
    if blocks is None:
        raise ModelLoadError(
            f"cannot find the transformer blocks of {type(model).__name__}; supported layouts: "
            + ", ".join(_BLOCK_PATHS)
        )
    runner = getattr(model, "base_model", model) or model
    encoder = is_encoder(model)
    final_norm = None
    unembed = None
    if not encoder:
        for path in _FINAL_NORM_PATHS:
            cand = _get(model, path)
            if isinstance(cand, nn.Module):
                final_norm = cand
                break
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        unembed = out if isinstance(out, nn.Module) else None
    softcap = getattr(model.config, "final_logit_softcapping", None)
    return Parts(blocks=blocks, runner=runner, final_norm=final_norm, unembed=unembed, logit_softcap=softcap)
