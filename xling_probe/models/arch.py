"""The only module that knows architectures: where they keep their parts and what their model types are.

For a Hugging Face model it finds the transformer blocks (whose outputs are the residual
stream), the base model that runs them without the LM head, the final norm and the
unembedding, and the final-logit soft-capping when the config has one. The model-type tables
live here too: which configs are causal LMs (:func:`is_causal_lm`, used by loading), which are
bidirectional encoders (:func:`is_encoder`), and which hub id names the TransformerLens adapter of
a model type (:func:`tl_adapter_name`).

Encoder-decoder models (T5/mT5, mBART, M2M100/NLLB, Marian) have two stacks; ``find_parts(model,
stack="encoder")`` gives the encoder's blocks (run by the encoder alone) and ``stack="decoder"``
the decoder's (run by the whole model, with its final norm, the scaling of tied T5 models and the
final-logits bias of Marian/mBART, so the logit lens reproduces the model's own logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
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
# Encoder-decoder models: the block lists of each stack.
_ENCODER_BLOCK_PATHS = ("encoder.block", "model.encoder.layers", "encoder.layers")  # T5/mT5; BART family
_DECODER_BLOCK_PATHS = ("decoder.block", "model.decoder.layers", "decoder.layers")
_DECODER_NORM_PATHS = ("decoder.final_layer_norm", "model.decoder.layer_norm", "decoder.layer_norm")
STACKS = ("encoder", "decoder")
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
    #: Encoder-decoder models: which stack ``blocks`` belong to ("encoder" or "decoder"); ``None`` otherwise.
    stack: str | None = None
    #: Multiplier applied to the normed state before the unembedding (T5 with tied embeddings: d_model ** -0.5).
    logit_scale: float | None = None
    #: Added to the logits (the ``final_logits_bias`` buffer of Marian and mBART), shape ``[1, vocab]``.
    logit_bias: torch.Tensor | None = None


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


def is_encoder_decoder(config: Any) -> bool:
    """Whether an HF config describes an encoder-decoder (seq2seq) model."""
    return bool(getattr(config, "is_encoder_decoder", False))


def is_encoder(model: nn.Module) -> bool:
    """True for bidirectional encoders (BERT, XLM-R...), False for causal decoders."""
    cfg = model.config
    if getattr(cfg, "is_decoder", False) or getattr(cfg, "is_encoder_decoder", False):
        return False
    if _names_causal_head(cfg):
        return False
    return getattr(cfg, "model_type", "") in ENCODER_MODEL_TYPES


def _first(model: nn.Module, paths: tuple[str, ...], kind: type = nn.Module) -> Any:
    for path in paths:
        cand = _get(model, path)
        if isinstance(cand, kind) and (not isinstance(cand, nn.ModuleList) or len(cand) > 0):
            return cand
    return None


def _missing(model: nn.Module, what: str, paths: tuple[str, ...]) -> ModelLoadError:
    children = ", ".join(name for name, _ in model.named_children()) or "none"
    return ModelLoadError(
        f"cannot find the {what} of {type(model).__name__} (model type "
        f"{getattr(getattr(model, 'config', None), 'model_type', '?')!r}): tried {', '.join(paths)}; its top-level "
        f"modules are: {children}. This architecture is not supported yet."
    )


def find_parts(model: nn.Module, stack: str | None = None) -> Parts:
    """Locate blocks, runner, final norm and unembedding of ``model`` (of one ``stack`` for encoder-decoders)."""
    if is_encoder_decoder(model.config):
        return _seq2seq_parts(model, stack or "encoder")
    if stack is not None:
        raise ModelLoadError(f"stack={stack!r} is for encoder-decoder models; {type(model).__name__} has one stack")
    blocks = _first(model, _BLOCK_PATHS, nn.ModuleList)
    if blocks is None:
        raise _missing(model, "transformer blocks", _BLOCK_PATHS)
    runner = getattr(model, "base_model", model) or model
    encoder = is_encoder(model)
    final_norm = None
    unembed = None
    if not encoder:
        final_norm = _first(model, _FINAL_NORM_PATHS)
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        unembed = out if isinstance(out, nn.Module) else None
    softcap = getattr(model.config, "final_logit_softcapping", None)
    return Parts(blocks=blocks, runner=runner, final_norm=final_norm, unembed=unembed, logit_softcap=softcap)


def _seq2seq_parts(model: nn.Module, stack: str) -> Parts:
    if stack not in STACKS:
        raise ModelLoadError(f"unknown stack {stack!r}; an encoder-decoder model has stacks {', '.join(STACKS)}")
    if stack == "encoder":
        blocks = _first(model, _ENCODER_BLOCK_PATHS, nn.ModuleList)
        encoder = model.get_encoder() if hasattr(model, "get_encoder") else None
        if blocks is None or encoder is None:
            raise _missing(model, "encoder blocks", _ENCODER_BLOCK_PATHS)
        return Parts(blocks=blocks, runner=encoder, final_norm=None, unembed=None, logit_softcap=None, stack=stack)
    blocks = _first(model, _DECODER_BLOCK_PATHS, nn.ModuleList)
    if blocks is None:
        raise _missing(model, "decoder blocks", _DECODER_BLOCK_PATHS)
    cfg = model.config
    # Post-norm decoders (Marian) have no final norm: each block's output is already normed.
    norm = _first(model, _DECODER_NORM_PATHS) or nn.Identity()
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    scale = None
    if getattr(cfg, "model_type", "") == "t5" and getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", False)):
        scale = float(cfg.d_model) ** -0.5
    bias = getattr(model, "final_logits_bias", None)
    return Parts(blocks=blocks, runner=model, final_norm=norm, unembed=out if isinstance(out, nn.Module) else None,
                 logit_softcap=None, stack=stack, logit_scale=scale,
                 logit_bias=bias if isinstance(bias, torch.Tensor) else None)


def decoder_start(model: Any) -> int:
    """``decoder_start_token_id`` of an encoder-decoder model (generation config, then config)."""
    for cfg in (getattr(model, "generation_config", None), model.config):
        value = getattr(cfg, "decoder_start_token_id", None)
        if value is not None:
            return int(value)
    raise ModelLoadError(f"{type(model).__name__} names no decoder_start_token_id in its config")
