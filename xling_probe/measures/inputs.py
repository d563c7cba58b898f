"""Input checks of the metric functions: paired stacks ``[..., N, D]`` as float64 tensors, finite, same N."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import MetricError

ArrayLike = Any  # numpy array, torch tensor or nested sequence of numbers


def as_float64(x: ArrayLike, name: str = "x") -> torch.Tensor:
    """``x`` as a float64 tensor ``[..., N, D]`` on its own device; rejects NaN, inf and bad shapes."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_complex() or t.dtype == torch.bool:
            raise MetricError(f"{name} must hold real numbers, got a {t.dtype} tensor")
        t = t.to(torch.float64)
    else:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise MetricError(f"{name} must be a numeric array [N, D]; could not convert it ({exc})") from None
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr, order="C")  # torch.from_numpy needs a writable, positively strided array
        t = torch.from_numpy(arr)
    if t.ndim < 2:
        raise MetricError(
            f"{name} must have shape [N, D] (sentences x hidden) or [..., N, D], got shape {tuple(t.shape)}"
        )
    if t.shape[-2] == 0 or t.shape[-1] == 0:
        raise MetricError(f"{name} is empty (shape {tuple(t.shape)})")
    if not bool(torch.isfinite(t).all()):
        bad = (~torch.isfinite(t)).nonzero()[0].tolist()
        raise MetricError(
            f"{name} contains NaN or inf (first at index {bad}); check the extraction (float16 overflow?) "
            "or drop the broken sentences before scoring"
        )
    return t


def paired(x: ArrayLike, y: ArrayLike, *, same_width: bool = False, min_n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two paired stacks ``[..., N, D]``: same leading axes, same N, optionally same D."""
    X, Y = as_float64(x, "x"), as_float64(y, "y")
    if X.shape[-2] != Y.shape[-2]:
        raise MetricError(
            f"x has {X.shape[-2]} sentences but y has {Y.shape[-2]}: row i of x and row i of y must be "
            "translations of each other, so both need the same sentences in the same order"
        )
    if X.shape[:-2] != Y.shape[:-2]:
        raise MetricError(f"leading (batch) axes differ: x {tuple(X.shape[:-2])} vs y {tuple(Y.shape[:-2])}")
    if same_width and X.shape[-1] != Y.shape[-1]:
        raise MetricError(
            f"x has {X.shape[-1]} hidden dimensions but y has {Y.shape[-1]}; this metric compares "
            "neuron d of x with neuron d of y (or cosines), so both need the same width"
        )
    if X.shape[-2] < min_n:
        raise MetricError(f"need at least {min_n} sentences, got {X.shape[-2]}")
    if X.device != Y.device:
        Y = Y.to(X.device)
    return X, Y


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _scalar(a: np.ndarray) -> float:
    return float(np.asarray(a).reshape(()))
