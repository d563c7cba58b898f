"""The layer x position view of one prompt: what a logit-lens heatmap shows.

For every layer l and every position t of the prompt, the top-k tokens of the lens distribution
softmax(unembed(final_norm(h_l,t))) with their probabilities, the entropy in bits and the KL to
the final layer in bits (the definitions of :mod:`xling_probe.lens.core`). Position t holds the
lens' guess for the token at t + 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import LensError
from ..labels import LayerSpec, resolve_layers
from .core import DEFAULT_CHUNK_ELEMENTS, Lens, LensStats, check_final_logits, encode, lens_stats, run_batches
from .prompts import Prompt

if TYPE_CHECKING:
    from ..models.loading import ModelHandle


#: The fields of a :class:`PositionTable` that :meth:`PositionTable.sel` selects from.
TABLE_FIELDS = ("top_tokens", "top_ids", "top_probs", "entropy_bits", "kl_to_final_bits")


@dataclass(frozen=True, eq=False)
class PositionTable:
    """Top-k lens tokens per (layer, position) of one prompt.

    ``top_ids``/``top_probs`` are ``[layer, position, k]`` (probabilities in [0, 1], best first);
    ``entropy_bits`` and ``kl_to_final_bits`` are ``[layer, position]``. ``input_tokens[t]`` is
    the prompt token at position t (decoded text).
    """

    model: str
    prompt: str
    layers: tuple[int, ...]
    input_ids: tuple[int, ...]
    input_tokens: tuple[str, ...]
    top_ids: np.ndarray
    top_probs: np.ndarray
    entropy_bits: np.ndarray
    kl_to_final_bits: np.ndarray
    vocab_text: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("top_ids", "top_probs", "entropy_bits", "kl_to_final_bits"):
            arr = np.asarray(getattr(self, name))
            arr.setflags(write=False)  # a frozen table: its arrays are read-only too
            object.__setattr__(self, name, arr)

    @property
    def top_tokens(self) -> np.ndarray:
        """Decoded text of ``top_ids`` (object array ``[layer, position, k]``)."""
        return np.vectorize(self.vocab_text.__getitem__, otypes=[object])(self.top_ids)

    def top1(self):
        """DataFrame (index = layer, columns = position: input token) of the top-1 decoded tokens."""
        import pandas as pd

        cols = [f"{t}:{tok}" for t, tok in enumerate(self.input_tokens)]
        return pd.DataFrame(self.top_tokens[:, :, 0], index=pd.Index(self.layers, name="layer"), columns=cols)

    @classmethod
    def from_stats(cls, model_name: str, prompt: str, layers: Sequence[int], ids: Sequence[int], stats: LensStats,
                   tokenizer: Any) -> PositionTable:
        """The table of one prompt from its :class:`~xling_probe.lens.core.LensStats` (``top_k`` > 0, with
        the KL): ``ids`` are the prompt's token ids, ``layers`` the residual-stream indices of the stats."""
        vocab_text = decode_tokens(tokenizer, list(ids) + stats.top_ids.reshape(-1).tolist())
        return cls(
            model=model_name, prompt=prompt, layers=tuple(int(x) for x in layers), input_ids=tuple(int(i) for i in ids),
            input_tokens=tuple(vocab_text[int(i)] for i in ids), top_ids=stats.top_ids.numpy(),
            top_probs=stats.top_probs.numpy(), entropy_bits=stats.entropy_bits.numpy(),
            kl_to_final_bits=stats.kl_to_final_bits.numpy(), vocab_text=vocab_text,
        )

    def sel(self, field: str = "top_tokens", layer: int | None = None, position: int | None = None) -> Any:
        """One field by label: ``field`` in :data:`TABLE_FIELDS`; ``layer`` a residual-stream index (negative
        counts from the last, :func:`xling_probe.labels.layer_position`), ``position`` a prompt position
        (negative from the end). None keeps that axis: e.g. ``sel("top_tokens", layer=-1)`` is ``[position, k]``."""
        from ..labels import layer_position

        if field not in TABLE_FIELDS:
            raise LensError(f"unknown field {field!r}; use one of {', '.join(TABLE_FIELDS)}")
        data = np.asarray(getattr(self, field))
        if layer is not None:
            data = data[layer_position(layer, self.layers, error=LensError)]
        if position is not None:
            n = len(self.input_ids)
            if isinstance(position, bool) or not isinstance(position, (int, np.integer)) or not -n <= position < n:
                raise LensError(f"position {position!r} is out of range for a prompt of {n} tokens (0..{n - 1}, "
                                "or negative from the end)")
            data = data[position] if layer is not None else data[:, position]
        if data.ndim == 0:
            return data.item()
        out = data.copy()
        out.setflags(write=False)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe table: labels, ``top_ids``/``top_tokens``/``top_probs`` as ``[layer][position][k]`` lists,
        ``entropy_bits`` and ``kl_to_final_bits`` as ``[layer][position]`` (None for NaN)."""
        def floats(a: np.ndarray) -> list[list[float | None]]:
            return [[float(v) if np.isfinite(v) else None for v in row] for row in np.asarray(a, dtype=np.float64)]

        return {
            "model": self.model, "prompt": self.prompt, "layers": [int(x) for x in self.layers],
            "input_ids": [int(i) for i in self.input_ids], "input_tokens": list(self.input_tokens),
            "top_ids": self.top_ids.astype(int).tolist(), "top_tokens": self.top_tokens.tolist(),
            "top_probs": [[[float(p) for p in cell] for cell in row] for row in self.top_probs],
            "entropy_bits": floats(self.entropy_bits), "kl_to_final_bits": floats(self.kl_to_final_bits),
        }

    def to_dataframe(self):
        """Tidy: one row per (layer, position, rank) with the token, its probability, entropy and KL."""
        import pandas as pd

        n_l, n_t, k = self.top_ids.shape
        layer = np.repeat(np.array(self.layers), n_t * k)
        pos = np.tile(np.repeat(np.arange(n_t), k), n_l)
        return pd.DataFrame({
            "layer": layer,
            "position": pos,
            "input_token": np.array(self.input_tokens, dtype=object)[pos],
            "rank": np.tile(np.arange(1, k + 1), n_l * n_t),
            "token_id": self.top_ids.reshape(-1),
            "token": self.top_tokens.reshape(-1),
            "prob": self.top_probs.reshape(-1),
            "entropy_bits": np.repeat(self.entropy_bits.reshape(-1), k),
            "kl_to_final_bits": np.repeat(self.kl_to_final_bits.reshape(-1), k),
        })

    def to_xarray(self):
        import xarray as xr

        coords = {"layer": list(self.layers), "position": np.arange(len(self.input_ids)),
                  "rank": np.arange(1, self.top_ids.shape[-1] + 1)}
        return xr.Dataset(
            {"top_id": (("layer", "position", "rank"), self.top_ids),
             "top_token": (("layer", "position", "rank"), self.top_tokens),
             "top_prob": (("layer", "position", "rank"), self.top_probs),
             "entropy_bits": (("layer", "position"), self.entropy_bits),
             "kl_to_final_bits": (("layer", "position"), self.kl_to_final_bits)},
            coords={**coords, "input_token": ("position", list(self.input_tokens))},
            attrs={"model": self.model, "prompt": self.prompt},
        )

    def __repr__(self) -> str:
        return f"PositionTable({self.model!r}, layers={len(self.layers)}, positions={len(self.input_ids)}, k={self.top_ids.shape[-1]})"


def decode_tokens(tokenizer: Any, ids: Sequence[int]) -> dict[int, str]:
    """Text of single tokens (``▁flower`` -> ' flower'; partial UTF-8 bytes -> '�')."""
    return {int(i): tokenizer.decode([int(i)]) for i in sorted({int(i) for i in ids})}


def iter_text_stats(
    model: ModelHandle,
    texts: Sequence[str],
    layers: LayerSpec = "all",
    *,
    top_k: int = 5,
    batch_size: int = 4,
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
    check: bool = True,
    progress: Any = None,
) -> Iterator[tuple[int, list[int], list[int], list[int], LensStats]]:
    """For each text: ``(index, token ids, special-token mask, layers, LensStats over its positions)``.

    Layers are residual-stream indices (0 = embeddings, l = output of block l - 1). The final
    layer is always run (for the KL); the first batch is checked against the model's own logits.
    """
    lens = Lens(model)
    wanted = resolve_layers(layers, model.n_states)
    final = model.n_states - 1
    run_layers = sorted(set(wanted) | {final})
    rows = encode(model, texts)
    special = [model.tokenizer.get_special_tokens_mask(r, already_has_special_tokens=True) for r in rows]
    checked = not check
    for idx, inputs, states in run_batches(model, rows, run_layers, keep="all", batch_size=batch_size, progress=progress):
        if not checked:
            check_final_logits(model, lens, inputs, states[final][:, -1])
            checked = True
        width = states[final].shape[1]
        for b, k in enumerate(idx):
            real = slice(width - len(rows[k]), width)  # left padding: the row's tokens are at the end
            resid = torch.stack([states[layer][b, real] for layer in wanted])  # [L, T, d]
            stats = lens_stats(lens, resid, states[final][b, real], top_k=top_k, chunk_elements=chunk_elements,
                               final_is_last=wanted[-1] == final)
            yield k, rows[k], special[k], wanted, stats


def lens_table(
    model: ModelHandle,
    prompt: str | Prompt,
    *,
    top_k: int = 5,
    layers: LayerSpec = "all",
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
    check: bool = True,
    cache: bool = True,
    cache_root: Any = None,
) -> PositionTable:
    """The layer x position table of top-k lens tokens of one prompt (a heatmap's data).

    ``cache=True`` stores it under the cache root (:mod:`xling_probe.lens.cache`; keyed by the model
    fingerprint, the prompt and the settings), so a repeated call runs no model."""
    from .cache import ResultCache, model_fields

    text = prompt.text if isinstance(prompt, Prompt) else prompt
    if not isinstance(text, str) or not text:
        raise LensError("lens_table needs a prompt: a non-empty string or a Prompt")
    if top_k < 1:
        raise LensError(f"top_k must be >= 1, got {top_k}")
    entry = ResultCache("lens_table", {**model_fields(model), "prompt": text, "top_k": top_k,
                                       "layers": resolve_layers(layers, model.n_states), "chunk_elements": chunk_elements,
                                       "check": check}, root=cache_root) if cache else None
    hit = entry.load() if entry is not None else None
    if hit is not None:
        doc, arrays = hit
        return PositionTable(model=doc["model"], prompt=doc["prompt"], layers=tuple(doc["layers"]),
                             input_ids=tuple(doc["input_ids"]), input_tokens=tuple(doc["input_tokens"]),
                             vocab_text={int(k): v for k, v in doc["vocab_text"].items()}, **arrays)
    (_, ids, _, used, stats), = list(iter_text_stats(model, [text], layers, top_k=top_k, batch_size=1,
                                                     chunk_elements=chunk_elements, check=check))
    table = PositionTable.from_stats(model.name, text, used, ids, stats, model.tokenizer)
    if entry is not None:
        entry.save({"model": table.model, "prompt": table.prompt, "layers": list(table.layers),
                    "input_ids": list(table.input_ids), "input_tokens": list(table.input_tokens),
                    "vocab_text": {str(k): v for k, v in table.vocab_text.items()}},
                   {name: getattr(table, name) for name in ("top_ids", "top_probs", "entropy_bits", "kl_to_final_bits")})
    return table
