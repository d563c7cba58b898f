"""Pooled states of one list of texts: the batched forward passes under every extraction path.

Sentences are sorted by length (longest first) so batches carry little padding, run through the
backend's runner (:mod:`.backends`), pooled inside the forward pass, and put back in input order.
Encoder-decoder inputs (language tags, decoder prefixes) come from :mod:`.seq2seq`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ExtractionError
from ..models.loading import ModelHandle
from .backends import make_runner
from .pooling import Pooling, pooling_weights
from .runners import pad_batch, seq2seq_batch, tokenize


def extract_texts(
    handle: ModelHandle,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    pooling: Pooling = "mean",
    include_special: bool = False,
    batch_size: int = 16,
    max_length: int = 512,
    padding_side: str | None = None,
    progress: Any = None,
    out: np.ndarray | None = None,
    final_norm_last: bool = False,
    language: str | None = None,
    sources: Sequence[str] | None = None,
    source_language: str | None = None,
    decoder_input: str = "translation",
) -> tuple[np.ndarray, int]:
    """Pooled states ``[len(layers), len(texts), d_model]`` (float32) and the truncation count.

    Sentences are sorted by length (longest first) so batches carry little padding, then put
    back in the input order. With ``out`` (a float32 array or view of that shape) the states are
    written there and no other result array is allocated. With ``final_norm_last`` the last
    residual state (``handle.n_states - 1``, when requested) goes through the model's own final
    norm before pooling, as HF ``output_hidden_states`` returns it (the MEXA recipe).

    Encoder-decoder models (:mod:`.seq2seq`): ``language`` sets the language tag of ``texts``. On the
    encoder stack ``texts`` are the encoder input; on the decoder stack they are the target
    (``decoder_input="translation"``: teacher-forced after the start token and ``language``'s tag;
    ``"tag"``: the prefix only) and ``sources`` (in ``source_language``) are the encoder input.
    """
    src = None
    if handle.stack is None:
        tok = tokenize(handle.tokenizer, texts, max_length)
    else:
        from .seq2seq import tokenize_source, tokenize_target

        if handle.stack == "encoder":
            tok = tokenize_source(handle.tokenizer, texts, language, max_length)
        else:
            if sources is None or len(sources) != len(texts):
                raise ExtractionError("the decoder stack needs one source sentence per target sentence (sources=)")
            src = tokenize_source(handle.tokenizer, sources, source_language, max_length)
            tok = tokenize_target(handle.tokenizer, handle.model, texts, language, len(texts), decoder_input, max_length)
    side = padding_side or ("right" if handle.kind == "encoder" or handle.stack else handle.tokenizer.padding_side or "right")
    if side not in ("left", "right"):
        raise ExtractionError(f"padding_side must be 'left' or 'right', got {side!r}")
    order = sorted(range(len(texts)), key=lambda k: -len(tok.ids[k]))
    runner = make_runner(handle, layers)
    norm = handle.parts.final_norm if final_norm_last else None
    normed = (handle.n_states - 1, norm) if norm is not None else None
    shape = (len(layers), len(texts), handle.d_model)
    if out is not None and (out.shape != shape or out.dtype != np.float32):
        raise ExtractionError(f"out must be a float32 array of shape {shape}, got {out.dtype} {out.shape}")
    result = out if out is not None else np.empty(shape, dtype=np.float32)
    pad_id = handle.tokenizer.pad_token_id
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = pad_batch([tok.ids[k] for k in idx], [tok.special[k] for k in idx], pad_id, side)
            if src is not None:
                batch = seq2seq_batch(pad_batch([src.ids[k] for k in idx], [src.special[k] for k in idx], pad_id, side),
                                      batch)
            weights = pooling_weights(
                batch.get("pool_mask", batch["attention_mask"]).to(handle.device),
                batch["special_tokens_mask"].to(handle.device),
                pooling,
                include_special=include_special,
            )
            pooled = runner(batch, weights, normed)
            result[:, idx] = pooled.cpu().numpy()
            if progress is not None:
                progress.update(len(idx))
    return result, tok.n_truncated + (src.n_truncated if src is not None else 0)
