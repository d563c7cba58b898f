"""Hooked forward passes shared by extraction and the logit lens.

A runner feeds padded token batches through a loaded model and hands each requested
residual-stream state (docs/science.md, "Residual-stream layers": 0 = the embedding output,
l = the output of block l - 1) to a ``reduce(layer, hidden)`` callback inside the hook, so the
full ``[batch, seq, hidden]`` states of all layers are never held at once. Blocks after the last
requested layer are skipped. :func:`make_runner` picks the runner of the handle's backend:
:class:`HFRunner` (hooks on the HF blocks) or :class:`TLRunner` (TransformerLens bridge hooks).

:func:`tokenize` and :func:`pad_batch` prepare the batches; :func:`model_inputs` turns one into
the forward pass's arguments (positions counted over real tokens, so left padding shifts nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ExtractionError
from ..models.arch import decoder_start
from ..models.loading import ModelHandle
from ..models.tl_bridge import final_hook_name, hook_name
from .pooling import pool


class StopForward(Exception):
    """Raised from a hook once the last requested layer is captured: later blocks are skipped."""


@dataclass
class Tokenized:
    """Token ids of a list of sentences (no padding yet)."""

    ids: list[list[int]]
    special: list[list[int]]
    n_truncated: int


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> Tokenized:
    """Tokenize with special tokens; sentences over ``max_length`` tokens are truncated (counted)."""
    enc = tokenizer(list(texts), add_special_tokens=True, return_special_tokens_mask=True, truncation=False)
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    long_rows = [k for k, row in enumerate(ids) if len(row) > max_length]
    if long_rows:
        short = tokenizer([texts[k] for k in long_rows], add_special_tokens=True, return_special_tokens_mask=True,
                          truncation=True, max_length=max_length)
        for j, k in enumerate(long_rows):
            ids[k], special[k] = short["input_ids"][j], short["special_tokens_mask"][j]
    return Tokenized(ids=list(ids), special=list(special), n_truncated=len(long_rows))


def pad_batch(rows: Sequence[Sequence[int]], special: Sequence[Sequence[int]], pad_id: int, side: str) -> dict[str, torch.Tensor]:
    """Pad token rows on ``side`` ('left' or 'right') into tensors with masks."""
    width = max(len(r) for r in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    spec = torch.zeros((n, width), dtype=torch.long)
    for b, (r, s) in enumerate(zip(rows, special)):
        sl = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        input_ids[b, sl] = torch.tensor(r, dtype=torch.long)
        attention[b, sl] = 1
        spec[b, sl] = torch.tensor(s, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention, "special_tokens_mask": spec}


def seq2seq_batch(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One batch of an encoder-decoder's decoder stack: encoder tokens from ``source``, decoder tokens
    from ``target``. The masks that pooling reads (``pool_mask``, ``special_tokens_mask``) are the decoder's."""
    return {"input_ids": source["input_ids"], "attention_mask": source["attention_mask"],
            "decoder_input_ids": target["input_ids"], "decoder_attention_mask": target["attention_mask"],
            "special_tokens_mask": target["special_tokens_mask"], "pool_mask": target["attention_mask"]}


class PoolingRunner:
    """Mixin: a runner with ``run(batch, reduce)`` gets pooled extraction for free."""

    layers: list[int]

    def run(self, batch: dict[str, torch.Tensor], reduce: Callable[[int, torch.Tensor], Any]) -> dict[int, Any]:
        raise NotImplementedError

    def __call__(self, batch: dict[str, torch.Tensor], weights: torch.Tensor,
                 normed: tuple[int, torch.nn.Module] | None = None) -> torch.Tensor:
        """Pooled states ``[len(layers), batch, d]`` with per-token ``weights``.

        ``normed = (layer, norm)``: that layer's token states go through ``norm`` (the model's final
        norm, as HF ``hidden_states[-1]``) before pooling; pooling a normed state is not the norm
        of the pooled state, so it must happen per token, inside the hook.
        """
        def reduce(layer: int, hidden: torch.Tensor) -> torch.Tensor:
            if normed is not None and layer == normed[0]:
                hidden = normed[1](hidden)
            return pool(hidden, weights)

        out = self.run(batch, reduce)
        # Blocks of a split model live on several devices: gather the pooled vectors on the weights' device.
        return torch.stack([out[layer].to(weights.device) for layer in self.layers])


class HFRunner(PoolingRunner):
    """Runs batches through the HF base model with hooks that reduce the requested states.

    ``reduce(layer, hidden)`` turns one layer's ``[batch, seq, d]`` residual states into
    whatever the caller keeps (a pooled ``[batch, d]`` vector for extraction, the last
    position for the lens), inside the hook, so full states of all layers are never held.
    Blocks after the last requested layer are skipped.
    """

    def __init__(self, handle: ModelHandle, layers: Sequence[int]):
        self.handle = handle
        self.layers = list(layers)
        self.last_needed = max(self.layers)

    def run(self, batch: dict[str, torch.Tensor], reduce: Callable[[int, torch.Tensor], Any]) -> dict[int, Any]:
        blocks = self.handle.parts.blocks
        out: dict[int, Any] = {}
        hooks = []
        wanted = set(self.layers)
        stop_after = self.last_needed

        def capture(index: int, hidden: torch.Tensor) -> None:
            out[index] = reduce(index, hidden)
            if index == stop_after and stop_after < len(blocks):
                raise StopForward

        if 0 in wanted:
            def pre(_module, args, kwargs):
                capture(0, args[0] if args else kwargs["hidden_states"])
            hooks.append(blocks[0].register_forward_pre_hook(pre, with_kwargs=True))
        for layer in self.layers:
            if layer == 0:
                continue

            def post(_module, _args, output, layer=layer):
                capture(layer, output[0] if isinstance(output, (tuple, list)) else output)
            hooks.append(blocks[layer - 1].register_forward_hook(post))
        try:
            self.handle.parts.runner(**model_inputs(self.handle, batch))
        except StopForward:
            pass
        finally:
            for h in hooks:
                h.remove()
        missing = wanted - set(out)
        if missing:
            raise ExtractionError(f"hooks did not capture layers {sorted(missing)}; is this architecture supported?")
        return out


def model_inputs(handle: ModelHandle, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments of the runner's forward pass for a padded ``batch``, on the model's device.

    Encoder-decoder models: the encoder stack takes the source tokens only; the decoder stack takes
    them and ``decoder_input_ids`` (see :func:`seq2seq_batch`), by default only the decoder start token.
    """
    device = handle.device
    inputs = {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}
    if handle.stack == "decoder":
        dec = batch.get("decoder_input_ids")
        if dec is None:
            dec = torch.full((batch["input_ids"].shape[0], 1), decoder_start(handle.model), dtype=torch.long)
        dec_mask = batch.get("decoder_attention_mask", torch.ones_like(dec))
        inputs.update(decoder_input_ids=dec.to(device), decoder_attention_mask=dec_mask.to(device), use_cache=False)
        return inputs
    if handle.kind == "decoder" and handle.stack is None:
        # Positions count real tokens, so left padding does not shift them (as in generation).
        pos = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        inputs["position_ids"] = pos.to(device)
        inputs["use_cache"] = False
    return inputs


def _stop_forward(tensor: torch.Tensor, hook: Any) -> None:
    """A TransformerLens hook that ends the forward pass (everything wanted is captured)."""
    raise StopForward


class TLRunner(PoolingRunner):
    """Same interface as :class:`HFRunner`, through the TransformerLens bridge's hooks (state 0 =
    ``blocks.0.hook_in``, state l = ``blocks.{l-1}.hook_out``, see :func:`~xling_probe.models.tl_bridge.hook_name`)."""

    def __init__(self, handle: ModelHandle, layers: Sequence[int], *, early_stop: bool = True):
        if handle.bridge is None:
            raise ExtractionError("this handle has no TransformerLens bridge; load it with backend='transformer_lens'")
        self.handle = handle
        self.layers = list(layers)
        self.early_stop = early_stop  # False: the bridge's whole forward (the reference of tests and benchmarks)

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
        if not self.early_stop:
            pass
        elif stop == 0:
            kwargs["stop_at_layer"] = 1
        elif stop < self.handle.n_blocks:
            kwargs["stop_at_layer"] = stop  # blocks 0..stop-1 run; state `stop` is blocks.{stop-1}.hook_out
        else:
            # The last state is wanted: nothing after it is. Without this stop the bridge runs the final
            # norm and the unembedding on every position (a 262k-vocabulary head: ~2.8x the cost of the blocks).
            after = final_hook_name(self.handle.bridge)
            if after is not None:
                hooks.append((after, _stop_forward))
        try:
            self.handle.bridge.run_with_hooks(batch["input_ids"].to(device), fwd_hooks=hooks, **kwargs)
        except StopForward:
            pass  # run_with_hooks removes its hooks in a finally block
        missing = set(self.layers) - set(out)
        if missing:
            raise ExtractionError(f"TransformerLens hooks did not fire for layers {sorted(missing)}")
        return out
