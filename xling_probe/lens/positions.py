"""The layer x position view of one prompt: what a logit-lens heatmap shows.

For every layer l and every position t of the prompt, the top-k tokens of the lens distribution
softmax(unembed(final_norm(h_l,t))) with their probabilities, the entropy in bits and the KL to
the final layer in bits (the definitions of :mod:`xling_probe.lens.core`). Position t holds the
lens' guess for the token at t + 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import LensError
from ..extraction.extract import resolve_layers
from .core import DEFAULT_CHUNK_ELEMENTS, Lens, LensStats, check_final_logits, encode, lens_stats, run_batches
from .prompts import Prompt


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

    @property
    def top_tokens(self) -> np.ndarray:
        """Decoded text of ``top_ids`` (object array ``[layer, position, k]``)."""
        return np.vectorize(self.vocab_text.__getitem__, otypes=[object])(self.top_ids)

    def top1(self):
        """DataFrame (index = layer, columns = position: input token) of the top-1 decoded tokens."""
        import pandas as pd

        cols = [f"{t}:{tok}" for t, tok in enumerate(self.input_tokens)]
        return pd.DataFrame(self.top_tokens[:, :, 0], index=pd.Index(self.layers, name="layer"), columns=cols)

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
    model: Any,
    texts: Sequence[str],
    layers: Any = "all",
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
            stats = lens_stats(lens, resid, states[final][b, real], top_k=top_k, chunk_elements=chunk_elements)
            yield k, rows[k], special[k], wanted, stats


def lens_table(
    model: Any,
    prompt: str | Prompt,
    *,
    top_k: int = 5,
    layers: Any = "all",
    chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS,
    check: bool = True,
) -> PositionTable:
    """The layer x position table of top-k lens tokens of one prompt (a heatmap's data)."""
    text = prompt.text if isinstance(prompt, Prompt) else prompt
    if not isinstance(text, str) or not text:
        raise LensError("lens_table needs a prompt: a non-empty string or a Prompt")
    if top_k < 1:
        raise LensError(f"top_k must be >= 1, got {top_k}")
    (_, ids, _, used, stats), = list(iter_text_stats(model, [text], layers, top_k=top_k, batch_size=1,
                                                     chunk_elements=chunk_elements, check=check))
    vocab_text = decode_tokens(model.tokenizer, list(ids) + stats.top_ids.reshape(-1).tolist())
    return PositionTable(
        model=model.name, prompt=text, layers=tuple(used), input_ids=tuple(ids),
        input_tokens=tuple(vocab_text[i] for i in ids), top_ids=stats.top_ids.numpy(),
        top_probs=stats.top_probs.numpy(), entropy_bits=stats.entropy_bits.numpy(),
        kl_to_final_bits=stats.kl_to_final_bits.numpy(), vocab_text=vocab_text,
    )
