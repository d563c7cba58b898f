"""One mechanism for every intervention on the residual stream: edits, applied by hooks, always removed.

An **edit** changes the residual-stream state ``h_l`` (the project's layer numbering: 0 = the embedding
output, l = the output of block l - 1, as in extraction and the lens) at some positions:

- :class:`AddVector`: ``h <- h + alpha * v`` (steering, random-vector controls);
- :class:`SetState`: ``h <- values`` (activation patching from another run);
- :class:`MapToward`: ``h <- h + sigma * ((h W + b) - h)`` (INCLINE: toward the image of a fitted
  linear map; sigma = 1 replaces h by its image, 0 leaves it).

Positions are absolute positions of the sequence: ``None`` (every position, including the ones a
generation adds), a list of ints (negative: from the end of the prompt, needs ``prompt_length``), or a
boolean mask ``[batch, T]`` over one forward pass (teacher-forced scoring of prompt + continuation).
During generation with a key-value cache each forward pass after the first sees only the new positions;
the mechanism tracks the offset, so an edit of prompt positions is applied once, on the prompt.

:func:`intervene` installs the edits for the duration of a ``with`` block: forward hooks on the
Hugging Face blocks (the hf backend, and the nnsight backend, whose envoy wraps the same modules) or
TransformerLens hooks (``blocks.{l-1}.hook_out``, ``blocks.0.hook_in``) on the transformer_lens
backend. Several edits compose in the order given (on the same layer: one after the other). Every
hook is removed when the block ends, also when it ends with an exception. An edit that makes a state
non-finite raises :class:`~xling_probe.errors.InterventionError` naming the layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InterventionError

Positions = Any  # None | Sequence[int] | torch.Tensor (bool [B, T])


def _tensor(x: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(like.device, like.dtype)


@dataclass
class Edit:
    """Base class: an edit of state ``layer`` at ``positions`` (see the module docstring)."""

    layer: int
    positions: Positions = None
    prompt_length: int | None = None

    def _where(self, h: torch.Tensor, offset: int) -> torch.Tensor | None:
        """A bool mask ``[B, T]`` of the positions of this forward pass (``None``: all of them)."""
        B, T = h.shape[0], h.shape[1]
        if self.positions is None:
            return None
        if isinstance(self.positions, torch.Tensor) and self.positions.dtype == torch.bool:
            mask = self.positions.to(h.device)
            if mask.dim() != 2 or mask.shape[0] != B:
                raise InterventionError(f"a position mask must be [batch={B}, T], got {tuple(mask.shape)}")
            part = mask[:, offset:offset + T]
            if part.shape[1] < T:  # positions past the mask (generated tokens) are not edited
                part = torch.cat([part, torch.zeros(B, T - part.shape[1], dtype=torch.bool, device=h.device)], 1)
            return part
        pos = [int(p) for p in self.positions]
        if any(p < 0 for p in pos):
            if self.prompt_length is None:
                raise InterventionError("negative positions count from the end of the prompt: give prompt_length")
            pos = [p + self.prompt_length if p < 0 else p for p in pos]
        limit = self.prompt_length
        if limit is not None and any(not 0 <= p < limit for p in pos):
            raise InterventionError(f"positions {sorted(set(pos))} are outside the prompt of {limit} tokens "
                                    f"(0..{limit - 1}, or -{limit}..-1 from the end)")
        mask = torch.zeros(B, T, dtype=torch.bool, device=h.device)
        for p in pos:
            if offset <= p < offset + T:
                mask[:, p - offset] = True
        return mask

    def edit(self, h: torch.Tensor, where: torch.Tensor | None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, h: torch.Tensor, offset: int) -> torch.Tensor:
        where = self._where(h, offset)
        if where is not None and not bool(where.any()):
            return h
        out = self.edit(h, where)
        if not torch.isfinite(out).all():
            raise InterventionError(
                f"the {type(self).__name__} edit made the residual stream at layer {self.layer} non-finite "
                "(NaN or inf): lower its strength, or load the model in float32")
        return out


def _blend(h: torch.Tensor, new: torch.Tensor, where: torch.Tensor | None) -> torch.Tensor:
    return new if where is None else torch.where(where[..., None], new, h)


@dataclass
class AddVector(Edit):
    """``h <- h + alpha * vector`` (``vector`` ``[d]``)."""

    vector: Any = None
    alpha: float = 1.0

    def edit(self, h, where):
        v = _tensor(self.vector, h)
        if v.shape != (h.shape[-1],):
            raise InterventionError(f"a steering vector of layer {self.layer} must have shape ({h.shape[-1]},), "
                                    f"got {tuple(v.shape)}")
        return _blend(h, h + float(self.alpha) * v, where)


@dataclass
class SetState(Edit):
    """``h <- values`` at the edited positions; ``values`` ``[n_positions, d]`` (the same for every row) or
    ``[B, n_positions, d]``, in the order of the edited positions."""

    values: Any = None

    def edit(self, h, where):
        if where is None:
            raise InterventionError("SetState needs positions (which states to overwrite)")
        vals = _tensor(self.values, h)
        if vals.dim() == 2:
            vals = vals.expand(h.shape[0], *vals.shape)
        out = h.clone()
        for b in range(h.shape[0]):
            idx = torch.nonzero(where[b]).flatten()
            if len(idx) != vals.shape[1]:
                raise InterventionError(f"SetState at layer {self.layer} has {vals.shape[1]} states for {len(idx)} "
                                        "positions")
            out[b, idx] = vals[b]
        return out


@dataclass
class MapToward(Edit):
    """``h <- h + sigma * ((h @ coef + intercept) - h)`` (INCLINE; ``coef`` ``[d, d]``, ``intercept`` ``[d]``)."""

    coef: Any = None
    intercept: Any = None
    sigma: float = 1.0

    def edit(self, h, where):
        w = _tensor(self.coef, h)
        b = _tensor(self.intercept, h) if self.intercept is not None else torch.zeros(h.shape[-1], dtype=h.dtype,
                                                                                      device=h.device)
        new = h + float(self.sigma) * ((h @ w + b) - h)
        return _blend(h, new, where)


@dataclass
class _Offsets:
    """Positions seen before the current forward pass (a key-value cache's length)."""

    value: int = 0
    calls: list = field(default_factory=list)


def _cache_length(kwargs: dict[str, Any]) -> int:
    pos = kwargs.get("cache_position")
    if isinstance(pos, torch.Tensor) and pos.numel():
        return int(pos.flatten()[0])
    past = kwargs.get("past_key_values")
    if past is not None and hasattr(past, "get_seq_length"):
        try:
            return int(past.get_seq_length())
        except Exception:  # noqa: BLE001 - an empty cache of some classes raises
            return 0
    return 0


def check_edits(handle: Any, edits: Sequence[Edit]) -> list[Edit]:
    edits = list(edits)
    for e in edits:
        if not isinstance(e, Edit):
            raise InterventionError(f"an intervention is a list of edits (AddVector, SetState, MapToward), got "
                                    f"{type(e).__name__}")
        if isinstance(e.layer, bool) or not isinstance(e.layer, (int, np.integer)) or \
                not 0 <= int(e.layer) <= handle.n_blocks:
            raise InterventionError(f"layer {e.layer!r} is out of range: {handle.name} has states 0..{handle.n_blocks} "
                                    "(0 = embeddings, l = output of block l-1)")
    return edits


@contextlib.contextmanager
def intervene(handle: Any, edits: Sequence[Edit]) -> Iterator[None]:
    """Apply ``edits`` to every forward pass of ``handle``'s model inside the ``with`` block."""
    edits = check_edits(handle, edits)
    if not edits:
        yield
        return
    if handle.backend == "transformer_lens":
        with _tl_hooks(handle, edits):
            yield
        return
    with _hf_hooks(handle, edits):
        yield


@contextlib.contextmanager
def _hf_hooks(handle: Any, edits: list[Edit]) -> Iterator[None]:
    blocks = handle.parts.blocks
    offset = _Offsets()
    hooks = []

    def track(_module, _args, kwargs):
        offset.value = _cache_length(kwargs)

    by_layer: dict[int, list[Edit]] = {}
    for e in edits:
        by_layer.setdefault(int(e.layer), []).append(e)
    try:
        hooks.append(handle.parts.runner.register_forward_pre_hook(track, with_kwargs=True))
        if 0 in by_layer:
            def pre(_module, args, kwargs, todo=by_layer[0]):
                if args:
                    h = args[0]
                    for e in todo:
                        h = e(h, offset.value)
                    return (h, *args[1:]), kwargs
                h = kwargs["hidden_states"]
                for e in todo:
                    h = e(h, offset.value)
                return args, {**kwargs, "hidden_states": h}
            hooks.append(blocks[0].register_forward_pre_hook(pre, with_kwargs=True))
        for layer, todo in sorted(by_layer.items()):
            if layer == 0:
                continue

            def post(_module, _args, output, todo=todo):
                h = output[0] if isinstance(output, (tuple, list)) else output
                for e in todo:
                    h = e(h, offset.value)
                if isinstance(output, tuple):
                    return (h, *output[1:])
                if isinstance(output, list):
                    return [h, *output[1:]]
                return h
            hooks.append(blocks[layer - 1].register_forward_hook(post))
        yield
    finally:
        for h in hooks:
            h.remove()


@contextlib.contextmanager
def _tl_hooks(handle: Any, edits: list[Edit]) -> Iterator[None]:
    from ..models.tl_bridge import hook_name

    bridge = handle.bridge
    if bridge is None:
        raise InterventionError("this handle has no TransformerLens bridge; load it with backend='transformer_lens'")
    fwd = []
    for e in edits:
        def fn(tensor, hook, e=e):
            return e(tensor, 0)  # the bridge runs without a key-value cache here: every pass starts at 0
        fwd.append((hook_name(int(e.layer)), fn))
    with bridge.hooks(fwd_hooks=fwd):
        yield


def hooks_installed(handle: Any) -> int:
    """How many forward hooks are on the model's blocks and runner (0 outside :func:`intervene`; for tests)."""
    mods = [handle.parts.runner, *handle.parts.blocks]
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in mods)
