"""Text and shape summaries of a :class:`~xling_probe.measures.result.SimilarityResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .result import SimilarityResult

#: ``direction`` label of the rows of symmetric metrics.
SYMMETRIC = "symmetric"


def format_summary(result: SimilarityResult, direction: str = "both") -> str:
    """A short text table: per metric and layer, the mean over pairs, the chance level and how
    many pairs are above it (``*`` marks layers where every pair is). Each line names the
    retrieval direction it averages (``direction``: both, forward = a -> b, backward = b -> a)
    or says ``symmetric``."""
    lm = result.layer_mean(direction)
    names = {"both": "both directions", "forward": "forward, a->b", "backward": "backward, b->a",
             SYMMETRIC: SYMMETRIC}
    lines = [repr(result)]
    for metric in result.metrics:
        part = lm[lm["metric"] == metric]
        cells = []
        for _, r in part.iterrows():
            if result.has_null and "null_mean" in r:
                mark = "*" if r["share_above_null"] == 1 else ""
                cells.append(f"L{r['layer']}:{r['mean']:.3f}{mark} (null {r['null_mean']:.3f})")
            else:
                cells.append(f"L{r['layer']}:{r['mean']:.3f}")
        lines.append(f"{metric} ({names[part['direction'].iloc[0]]}): " + ", ".join(cells))
    return "\n".join(lines)


def null_z(value: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(value - null mean) / null std; +-inf when the null has no spread and the value differs, 0 when equal."""
    diff = value - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / std
        return np.where(std > 0, z, np.where(diff == 0, 0.0, np.sign(diff) * np.inf))


def shape_of(v: np.ndarray, layers: tuple[int, ...], tol: float) -> dict[str, Any]:
    """The "first align, then predict" shape of one curve ``v`` [layer] (:meth:`SimilarityResult.profile`)."""
    k = int(np.nanargmax(v))
    rise, drop = float(v[k] - v[0]), float(v[k] - v[-1])
    return {"first": float(v[0]), "peak_layer": layers[k], "peak_value": float(v[k]), "last": float(v[-1]),
            "rise": rise, "drop": drop, "peak_position": k / max(len(v) - 1, 1),
            "first_align_then_predict": bool(0 < k < len(v) - 1 and rise > tol and drop > tol)}
