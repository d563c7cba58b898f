"""Layer lists: the text forms users write (``1,5,9``, ``3-5``, ``all``) and the residual-stream
indices they name for a model with ``n_states`` states (0 = embeddings, l = output of block l-1).

:func:`parse_layers` is shared by the library and the command line (``--layers`` of extract,
similarity and neutrality), so both accept the same strings and refuse the same typos.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .errors import ExtractionError

_INDEX = re.compile(r"-?\d+")
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def parse_layers(text: str) -> str | list[int]:
    """Read a layer list written as text: ``"all"``, ``"1,5,9"``, ``"1-5"`` (inclusive), ``"0,3-5,18"``, ``"-1"``.

    Returns ``"all"`` or the indices in the order written (duplicates kept once); negative indices
    count from the end and are resolved against the model by :func:`resolve_layers`. Ranges take
    non-negative ends, low to high. Raises :class:`ExtractionError` naming the piece it cannot read.
    """
    text = str(text).strip()
    if text.lower() == "all":
        return "all"
    out: list[int] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if _INDEX.fullmatch(piece):
            values = [int(piece)]
        elif m := _RANGE.fullmatch(piece):
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise ExtractionError(f"layer range {piece!r} goes downwards; write it low-high, e.g. {hi}-{lo}")
            values = list(range(lo, hi + 1))
        else:
            raise ExtractionError(
                f"cannot read layer {piece!r} in {text!r}; write 'all', or indices and inclusive ranges like "
                "1,5,9 or 0,3-5,18 (negative indices count from the end)"
            )
        out.extend(v for v in values if v not in out)
    if not out:
        raise ExtractionError(f"no layers in {text!r}; write 'all' or indices like 1,5,9 or a range like 1-5")
    return out


def resolve_layers(layers: Any, n_states: int) -> list[int]:
    """Sorted residual-stream indices from ``"all"``, an int, ints (negative ones count from the end),
    or a layer string that :func:`parse_layers` reads (``"1,5,9"``, ``"3-5"``)."""
    if isinstance(layers, str):
        layers = parse_layers(layers)
        if layers == "all":
            return list(range(n_states))
    items = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    out = []
    for x in items:
        if not isinstance(x, (int, np.integer)) or isinstance(x, bool):
            raise ExtractionError(f"layer {x!r} is not an int")
        idx = int(x) + n_states if x < 0 else int(x)
        if not 0 <= idx < n_states:
            raise ExtractionError(
                f"layer {x} is out of range: this model has {n_states} residual-stream states, layers "
                f"0 (embeddings) ... {n_states - 1} (after the last block), or -{n_states} ... -1 from the end"
            )
        out.append(idx)
    if not out:
        raise ExtractionError("no layers requested")
    return sorted(set(out))
