"""The logit lens of one prompt: its layer x position table and per-layer P(token set) curves.

:func:`prompt_lens` runs the model once on a prompt and returns a :class:`PromptLens`:

- ``table``: the :class:`~xling_probe.lens.positions.PositionTable` (top-k tokens, entropy and KL
  to the final layer at every layer and position; equal to :func:`~xling_probe.lens.lens_table`);
- ``curves[name]``: ``[layer]`` lens probability at the last position of each token set, the
  summed softmax(unembed(final_norm(h_l))) over the set's ids (docs/science.md, "Logit lens").

The raw last-position states stay in the result, so :meth:`PromptLens.with_sets` adds curves for
more token sets (another language, another word) without running the model again: what an
interactive view needs when the user picks other languages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import LensError
from ..models.loading import ModelHandle
from .core import DEFAULT_CHUNK_ELEMENTS, Lens, check_final_logits, encode, lens_stats, run_batches
from .positions import PositionTable
from .prompts import Prompt
from .tokensets import TokenSet
from .tuned import checked_tuned

#: A token set as :func:`prompt_lens` takes it: a :class:`TokenSet` or token ids.
TokenIds = TokenSet | Sequence[int]


def _ids(name: str, tokens: TokenIds) -> list[int]:
    ids = list(tokens.ids if isinstance(tokens, TokenSet) else tokens)
    if not ids:
        raise LensError(f"token set {name!r} is empty: no token of the vocabulary spells that word")
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
        raise LensError(f"token set {name!r} must hold token ids (ints) or be a TokenSet, got {tokens!r}")
    return [int(i) for i in ids]


@dataclass(frozen=True, eq=False)
class PromptLens:
    """The lens of one prompt (:func:`prompt_lens`).

    ``table``: the layer x position :class:`PositionTable`. ``curves[name]``: read-only ``[layer]``
    P(token set) at the last position, over ``layers`` (residual-stream indices, 0 = embeddings).
    """

    model: str
    prompt: str
    layers: tuple[int, ...]
    table: PositionTable
    curves: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: the raw residual states at the last position ``[layer, 1, d]``, and the lens that reads them
    last_states: torch.Tensor | None = field(default=None, repr=False)
    lens: Lens | None = field(default=None, repr=False)
    #: "logit", or "tuned" when read through a tuned lens (``last_states`` are then the translated states)
    lens_kind: str = "logit"

    def probabilities(self, sets: Mapping[str, TokenIds]) -> dict[str, np.ndarray]:
        """``[layer]`` P(token set) at the last position of each of ``sets``, from the kept states
        (no model run)."""
        if self.last_states is None or self.lens is None:
            raise LensError("this PromptLens holds no states (made without prompt_lens); run prompt_lens again")
        todo = {str(name): [_ids(str(name), ids)] for name, ids in sets.items()}
        if not todo:
            return {}
        stats = lens_stats(self.lens, self.last_states, sets=todo)
        out = {}
        for name, p in stats.sets.items():
            values = p[:, 0].numpy().astype(np.float64)
            values.setflags(write=False)
            out[name] = values
        return out

    def with_sets(self, sets: Mapping[str, TokenIds]) -> PromptLens:
        """The same result with curves for ``sets`` added (computed from the kept states, no model run);
        sets already present are not recomputed."""
        new = {name: ids for name, ids in sets.items() if str(name) not in self.curves}
        if not new:
            return self
        curves = {**self.curves, **self.probabilities(new)}
        return PromptLens(model=self.model, prompt=self.prompt, layers=self.layers, table=self.table, curves=curves,
                          last_states=self.last_states, lens=self.lens, lens_kind=self.lens_kind)

    def sel(self, name: str, layer: int | Sequence[int] | str | None = None) -> float | np.ndarray:
        """P(token set ``name``) at one ``layer`` (a float) or over several / all layers (an array)."""
        from ..labels import layer_position, select_layers

        if name not in self.curves:
            known = ", ".join(self.curves) or "none yet: pass sets= or call with_sets"
            raise LensError(f"no curve {name!r}; curves: {known}")
        values = self.curves[name]
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            return float(values[layer_position(layer, self.layers, error=LensError)])
        out = values[select_layers(layer, self.layers, error=LensError)].copy()
        out.setflags(write=False)
        return out

    def to_dataframe(self):
        """The curves, tidy: one row per (set, layer) with the probability."""
        import pandas as pd

        rows = [{"set": name, "layer": int(layer), "prob": float(v)}
                for name, values in self.curves.items() for layer, v in zip(self.layers, values)]
        return pd.DataFrame(rows, columns=["set", "layer", "prob"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: labels, ``curves[name]`` as lists and the table (:meth:`PositionTable.to_dict`)."""
        return {"model": self.model, "prompt": self.prompt, "layers": [int(x) for x in self.layers],
                "curves": {name: [float(v) if np.isfinite(v) else None for v in values]
                           for name, values in self.curves.items()},
                "table": self.table.to_dict()}

    def __repr__(self) -> str:
        return (f"PromptLens({self.model!r}, layers={len(self.layers)}, positions={len(self.table.input_ids)}, "
                f"curves={list(self.curves)})")


def prompt_lens(
    model: ModelHandle,
    prompt: str | Prompt,
    *,
    sets: Mapping[str, TokenIds] | None = None,
    top_k: int = 5,
    check: bool = True,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
    tuned: Any = None,
) -> PromptLens:
    """Run the lens on one prompt: the layer x position table and P(token set) per layer at the last position.

    ``sets`` maps a name (e.g. a language code) to a :class:`TokenSet` or token ids; more can be added
    later with :meth:`PromptLens.with_sets` without a model run. Every residual-stream layer is read
    (0 = embeddings, l = output of block l - 1). ``check`` verifies that the lens at the last layer
    reproduces the model's own logits. One forward pass of the model. ``tuned``: a
    :class:`~xling_probe.lens.tuned.TunedLens` of this model reads every layer through its translators.
    """
    text = prompt.text if isinstance(prompt, Prompt) else prompt
    if not isinstance(text, str) or not text:
        raise LensError("prompt_lens needs a prompt: a non-empty string or a Prompt")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise LensError(f"top_k must be an integer >= 1, got {top_k!r}")
    lens = Lens(model)
    layers = list(range(model.n_states))
    final = layers[-1]
    rows = encode(model, [text])
    (_, inputs, states), = run_batches(model, rows, layers, keep="all", batch_size=1)
    if check:
        check_final_logits(model, lens, inputs, states[final][:, -1])
    resid = torch.stack([states[layer][0] for layer in layers])  # [L, T, d]; one row, so no padding
    if checked_tuned(tuned, model) is not None:
        resid = tuned.translate(resid, layers)
    stats = lens_stats(lens, resid, states[final][0], top_k=int(top_k), chunk_elements=chunk_elements)
    table = PositionTable.from_stats(model.name, text, layers, rows[0], stats, model.tokenizer)
    result = PromptLens(model=model.name, prompt=text, layers=tuple(layers), table=table,
                        last_states=resid[:, -1:].clone(), lens=lens,
                        lens_kind="logit" if tuned is None else "tuned")
    return result.with_sets(sets) if sets else result
