"""Means over items with 95% intervals: Gaussian and (seeded) percentile bootstrap.

For per-item values x_1..x_n (independently along every other axis):

- Gaussian interval: mean +- z_(1 - alpha/2) * sd / sqrt(n), sd with n - 1 in the denominator;
- percentile bootstrap: resample the n items with replacement B times (``numpy`` generator seeded
  with ``seed``), take the alpha/2 and 1 - alpha/2 quantiles of the B resampled means.

Items are resampled jointly across the other axes (a resampled item keeps all its layers), so
the per-layer intervals of one bootstrap are consistent with each other.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from ..errors import LensError

STATS = ("mean", "sd", "ci_low", "ci_high", "boot_low", "boot_high")


def mean_intervals(values: np.ndarray, *, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """Mean over axis 0 of ``values [n, ...]`` with Gaussian and bootstrap intervals.

    Returns arrays of shape ``values.shape[1:]`` under the keys of :data:`STATS`. Needs n >= 2
    (one item has no spread) and finite values.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim < 1 or x.shape[0] < 2:
        raise LensError(f"intervals need at least 2 items, got {x.shape[0] if x.ndim else 0}")
    if not np.isfinite(x).all():
        raise LensError("per-item values contain NaN or inf; intervals are undefined")
    if not 0.0 < level < 1.0:
        raise LensError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise LensError(f"n_boot must be >= 1, got {n_boot}")
    n = x.shape[0]
    mean = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    half = z * sd / np.sqrt(n)
    rng = np.random.default_rng(seed)
    boots = np.empty((n_boot,) + x.shape[1:], dtype=np.float64)
    step = max(1, 2_000_000 // max(1, x.size))  # bounded memory: step x n x rest values at a time
    for b0 in range(0, n_boot, step):
        b1 = min(n_boot, b0 + step)
        idx = rng.integers(0, n, size=(b1 - b0, n))
        boots[b0:b1] = x[idx].mean(axis=1)
    alpha = 1.0 - level
    low, high = np.quantile(boots, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return {"mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half, "boot_low": low, "boot_high": high}
