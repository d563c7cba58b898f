"""Where each architecture keeps its feed-forward neurons: the down projection and the activation.

A "neuron" of block l is one coordinate of the FFN's hidden vector, the vector that the down
projection reads: ``act(gate(x)) * up(x)`` in gated FFNs (Llama, Gemma, Qwen, Mistral, Phi-3, T5 v1.1
/ mT5), ``act(fc(x))`` in plain ones (GPT-2, BERT / XLM-R, OPT, M2M100 / NLLB / mBART / Marian, T5).
Its input is therefore exactly the neuron vector, so one forward pre-hook on the down projection
reads every neuron and can also overwrite it (:mod:`.intervene`).

Whether a neuron is *active* (docs/neurons.md): Tang et al. (2024) count ``act_fn(gate(x)) > 0`` in
gated FFNs (the activation output, before the product with the up projection), which needs a forward
hook on the activation module; in plain FFNs the activation output *is* the down projection's input.
:func:`find_ffn` returns both modules per block.

The table below is tried in order, relative to each block (``parts.blocks`` of the handle); an
integer part indexes a module list (``layer.-1`` = the last sub-layer of a T5 block).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ModelLoadError

#: (down projection, activation module, gate projection or None) relative to one block, tried in order.
FFN_PATHS: tuple[tuple[str, str, str | None], ...] = (
    ("mlp.down_proj", "mlp.act_fn", "mlp.gate_proj"),  # Llama, Gemma 1-3, Qwen 2/3, Mistral
    ("mlp.down_proj", "mlp.activation_fn", "mlp.gate_up_proj"),  # Phi-3 (gate and up in one matrix)
    ("mlp.c_proj", "mlp.act", None),  # GPT-2, GPT-J
    ("mlp.dense_4h_to_h", "mlp.act", None),  # GPT-NeoX / Pythia
    ("mlp.dense_4h_to_h", "mlp.gelu_impl", None),  # Bloom
    ("output.dense", "intermediate.intermediate_act_fn", None),  # BERT, RoBERTa, XLM-R, ELECTRA
    ("fc2", "activation_fn", None),  # OPT, M2M100 / NLLB, mBART, Marian
    ("layer.-1.DenseReluDense.wo", "layer.-1.DenseReluDense.act", "layer.-1.DenseReluDense.wi_0"),  # T5 v1.1, mT5
    ("layer.-1.DenseReluDense.wo", "layer.-1.DenseReluDense.act", None),  # T5
)


@dataclass(frozen=True)
class FFNSite:
    """One block's FFN: ``down`` (its input is the neuron vector), ``act`` (the activation module, or
    ``None`` when the activation is a plain function), ``gated`` (an ``act(gate) * up`` FFN),
    ``n_neurons`` (the width of the neuron vector) and the dotted ``path`` of ``down`` in the block."""

    layer: int
    down: nn.Module
    act: nn.Module | None
    gated: bool
    n_neurons: int
    path: str


def resolve(module: nn.Module, path: str) -> Any:
    """The sub-module at a dotted ``path`` (integer parts index module lists, negative from the end),
    or ``None`` when a part is missing."""
    obj: Any = module
    for part in path.split("."):
        if part.lstrip("-").isdigit() and isinstance(obj, (nn.ModuleList, nn.Sequential)):
            k = int(part)
            if not -len(obj) <= k < len(obj):
                return None
            obj = obj[k]
        elif hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            return None
    return obj


def _in_features(down: nn.Module) -> int | None:
    """Input width of a Linear or of GPT-2's Conv1D (whose weight is [in, out])."""
    if isinstance(down, nn.Linear):
        return int(down.in_features)
    weight = getattr(down, "weight", None)
    if weight is None:
        return None
    if type(down).__name__ == "Conv1D":
        return int(weight.shape[0])
    return int(weight.shape[-1])


def _model_type(handle: Any) -> str:
    return str(getattr(getattr(handle.model, "config", None), "model_type", "?"))


def find_ffn(handle: Any) -> list[FFNSite]:
    """The FFN of every block of ``handle`` (``handle.parts.blocks``), in block order.

    Raises :class:`~xling_probe.errors.ModelLoadError` naming the model type and every path tried
    when a block has none of them.
    """
    if getattr(handle, "remote", False):
        raise ModelLoadError("neuron analyses need the model's modules in this process; load it without remote=True")
    blocks = handle.parts.blocks
    sites: list[FFNSite] = []
    for layer, block in enumerate(blocks):
        site = None
        for down_path, act_path, gate_path in FFN_PATHS:
            down = resolve(block, down_path)
            if not isinstance(down, nn.Module) or (gate_path is not None and resolve(block, gate_path) is None):
                continue
            width = _in_features(down)
            if width is None:
                continue
            act = resolve(block, act_path)
            site = FFNSite(layer=layer, down=down, act=act if isinstance(act, nn.Module) else None,
                           gated=gate_path is not None, n_neurons=width, path=down_path)
            break
        if site is None:
            tried = ", ".join(dict.fromkeys(d for d, _, _ in FFN_PATHS))
            children = ", ".join(name for name, _ in block.named_children()) or "none"
            raise ModelLoadError(
                f"cannot find the feed-forward network of block {layer} of {type(handle.model).__name__} (model type "
                f"{_model_type(handle)!r}): tried the down projections {tried}; the block's modules are: {children}. "
                "Add this family's paths to xling_probe.neurons.locate.FFN_PATHS."
            )
        sites.append(site)
    acts = [s.act for s in sites if s.act is not None]
    if len({id(a) for a in acts}) != len(acts):  # one activation module shared by all blocks: hooks could not tell them apart
        sites = [FFNSite(s.layer, s.down, None, s.gated, s.n_neurons, s.path) for s in sites]
    return sites


def check_widths(sites: list[FFNSite]) -> int:
    """The common number of neurons per block (results are ``[layer, neuron]`` arrays)."""
    widths = sorted({s.n_neurons for s in sites})
    if len(widths) != 1:
        raise ModelLoadError(f"the FFNs of this model have different widths per block ({widths}); "
                             "neuron analyses need one width")
    return widths[0]
