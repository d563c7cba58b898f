"""The Mantel test and the partial Mantel test between languages x languages matrices, and the per-layer
correlation of representation similarity with language distances.

Definitions (Mantel 1967; Smouse, Long & Sokal 1986 for the partial test; the permutation scheme of
scikit-bio's ``mantel`` and vegan's ``mantel.partial``):

- Both matrices are made symmetric first: ``(M + M^T) / 2``, where one of ``M[a, b]``, ``M[b, a]`` is NaN
  the other is used (a directional similarity such as P@1 a -> b and b -> a becomes their mean).
- ``r`` = Pearson (``method="pearson"``) or Spearman (``"spearman"``: Pearson on average ranks) correlation
  of the upper triangles (pairs a < b), over the pairs where neither matrix is NaN (``n_pairs``; the
  dropped pairs are counted in ``n_dropped``).
- Permutation p-value: the languages of the first matrix are permuted (rows and columns together, seeded
  ``numpy.random.default_rng(seed)``), ``r`` recomputed ``permutations`` times (ranks and dropped pairs
  recomputed per permutation when there are NaN), ``p = (1 + #{r_perm at least as extreme}) /
  (1 + permutations)``; ``alternative`` ``"two-sided"`` (``|r_perm| >= |r|``, default), ``"greater"``
  (``r_perm >= r``), ``"less"`` (``r_perm <= r``).
- Partial Mantel of x and y controlling for z: ``r_xy.z = (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))``
  on the upper triangles (ranks for Spearman), x permuted as above; NaN when z is constant over the pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..errors import MetricError

METHODS = ("spearman", "pearson")
ALTERNATIVES = ("two-sided", "greater", "less")
_TOL = 1e-12
_CHUNK = 128


@dataclass(frozen=True)
class MantelResult:
    """``r`` (the partial correlation for a partial test), its permutation ``p_value`` and the pair counts.
    For a partial test ``r_xy``, ``r_xz`` and ``r_yz`` are the three plain correlations."""

    r: float
    p_value: float
    n_pairs: int
    n_dropped: int
    n_languages: int
    permutations: int
    method: str
    alternative: str
    seed: int
    r_xy: float | None = None
    r_xz: float | None = None
    r_yz: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_square(m: Any, what: str, order: Sequence[str] | None) -> tuple[np.ndarray, list[str] | None]:
    labels = None
    if isinstance(m, pd.DataFrame):
        if list(m.index) != list(m.columns):
            if set(m.index) != set(m.columns):
                raise MetricError(f"{what}: rows and columns must be the same languages")
            m = m.loc[:, list(m.index)]
        if order is not None:
            missing = [x for x in order if x not in m.index]
            if missing:
                raise MetricError(f"{what} lacks languages {missing}; every matrix needs the same languages")
            m = m.loc[list(order), list(order)]
        labels = [str(x) for x in m.index]
        arr = m.to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(m, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise MetricError(f"{what} must be a square languages x languages matrix, got shape {arr.shape}")
    if np.any(np.isinf(arr)):
        raise MetricError(f"{what} holds infinite values; use NaN for missing pairs")
    return arr, labels


def _symmetric(a: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        both = np.stack([a, a.T])
        count = np.isfinite(both).sum(axis=0)
        total = np.where(np.isfinite(both), both, 0.0).sum(axis=0)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _prepare(*matrices: Any) -> tuple[list[np.ndarray], int]:
    order = None
    out = []
    names = ("similarity matrix", "distance matrix", "control matrix")
    for k, m in enumerate(matrices):
        arr, labels = _as_square(m, names[k], order)
        if order is None and labels is not None:
            order = labels
        out.append(_symmetric(arr))
    n = out[0].shape[0]
    if any(a.shape != (n, n) for a in out):
        raise MetricError(f"the matrices must have the same shape, got {[a.shape for a in out]}")
    if n < 3:
        raise MetricError(f"a Mantel test needs at least 3 languages (3 pairs), got {n}")
    return out, n


def _check(method: str, alternative: str, permutations: int) -> None:
    if method not in METHODS:
        raise MetricError(f"method must be one of {METHODS}, got {method!r}")
    if alternative not in ALTERNATIVES:
        raise MetricError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if int(permutations) < 0:
        raise MetricError(f"permutations must be >= 0, got {permutations}")


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` [k, m] with ``y`` [m] (NaN when either is constant)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc @ yc) / (np.sqrt((xc * xc).sum(axis=-1)) * np.sqrt((yc * yc).sum()))


def _corr(x: np.ndarray, y: np.ndarray, method: str) -> float:
    if x.size < 3:
        return float("nan")
    if method == "spearman":
        x, y = rankdata(x), rankdata(y)
    return float(_pearson_rows(x[None], y)[0])


def _partial(rxy: np.ndarray, rxz: np.ndarray, ryz: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rxy - rxz * ryz) / np.sqrt((1.0 - rxz ** 2) * (1.0 - ryz ** 2))


def _p_value(observed: float, null: np.ndarray, alternative: str) -> float:
    if not np.isfinite(observed) or null.size == 0:
        return float("nan")
    null = null[np.isfinite(null)]
    if alternative == "two-sided":
        extreme = np.abs(null) >= abs(observed) - _TOL
    elif alternative == "greater":
        extreme = null >= observed - _TOL
    else:
        extreme = null <= observed + _TOL
    return float((1 + extreme.sum()) / (1 + null.size))


def _permutations(n: int, permutations: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((int(permutations), n)), axis=1)


def _null(x: np.ndarray, others: list[np.ndarray], n: int, permutations: int, seed: int, method: str,
          iu: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """Correlations of the permuted x's upper triangle with each of ``others`` (full matrices), per permutation."""
    perms = _permutations(n, permutations, seed)
    other_u = [o[iu] for o in others]
    out = [np.empty(permutations) for _ in others]
    no_nan = np.all(np.isfinite(x[iu])) and all(np.all(np.isfinite(o)) for o in other_u)
    if no_nan:
        # ranks of the upper triangle are a rearrangement under a joint permutation: rank once
        xs = x.copy()
        if method == "spearman":
            xs[iu] = rankdata(x[iu])
            xs[(iu[1], iu[0])] = xs[iu]
            other_u = [rankdata(o) for o in other_u]
        for start in range(0, permutations, _CHUNK):
            p = perms[start:start + _CHUNK]
            xp = xs[p[:, iu[0]], p[:, iu[1]]]  # [chunk, pairs]
            for k, o in enumerate(other_u):
                out[k][start:start + len(p)] = _pearson_rows(xp, o)
        return out
    for t, p in enumerate(perms):
        xp = x[np.ix_(p, p)][iu]
        valid = np.isfinite(xp)
        for o in other_u:
            valid &= np.isfinite(o)
        for k, o in enumerate(other_u):
            out[k][t] = _corr(xp[valid], o[valid], method)
    return out


def mantel(similarity_matrix: Any, distance_matrix: Any, *, permutations: int = 999, seed: int = 0,
           method: str = "spearman", alternative: str = "two-sided") -> MantelResult:
    """The Mantel test between two languages x languages matrices (module docstring).

    Matrices: numpy arrays of the same shape, or DataFrames with languages as index and columns (the
    second is reordered to the first's languages). Pairs with NaN in either matrix are dropped
    (``n_dropped``). Pure and seeded: the same inputs and ``seed`` give the same p-value."""
    _check(method, alternative, permutations)
    (x, y), n = _prepare(similarity_matrix, distance_matrix)
    iu = np.triu_indices(n, 1)
    xu, yu = x[iu], y[iu]
    valid = np.isfinite(xu) & np.isfinite(yu)
    r = _corr(xu[valid], yu[valid], method)
    null = _null(x, [y], n, permutations, seed, method, iu)[0] if permutations and np.isfinite(r) else np.array([])
    return MantelResult(r=r, p_value=_p_value(r, null, alternative), n_pairs=int(valid.sum()),
                        n_dropped=int((~valid).sum()), n_languages=n, permutations=int(permutations), method=method,
                        alternative=alternative, seed=int(seed))


def partial_mantel(similarity_matrix: Any, distance_matrix: Any, control_matrix: Any, *, permutations: int = 999,
                   seed: int = 0, method: str = "spearman", alternative: str = "two-sided") -> MantelResult:
    """The partial Mantel test: x (similarity) vs y (distance) controlling for z (e.g. script identity).

    ``r = (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))`` over the pairs where none of the three is
    NaN (ranks first for Spearman); x is permuted for the p-value. NaN (and p NaN) when z is constant."""
    _check(method, alternative, permutations)
    (x, y, z), n = _prepare(similarity_matrix, distance_matrix, control_matrix)
    iu = np.triu_indices(n, 1)
    xu, yu, zu = x[iu], y[iu], z[iu]
    valid = np.isfinite(xu) & np.isfinite(yu) & np.isfinite(zu)
    rxy, rxz, ryz = (_corr(a[valid], b[valid], method) for a, b in ((xu, yu), (xu, zu), (yu, zu)))
    r = float(_partial(np.array(rxy), np.array(rxz), np.array(ryz)))
    if permutations and np.isfinite(r):
        # y and z stay, so r_yz is fixed when nothing is NaN; with NaN the valid pairs move with x
        if np.all(valid):
            nxy, nxz = _null(x, [y, z], n, permutations, seed, method, iu)
            null = _partial(nxy, nxz, np.full(permutations, ryz))
        else:
            null = np.empty(permutations)
            for t, p in enumerate(_permutations(n, permutations, seed)):
                xp = x[np.ix_(p, p)][iu]
                ok = np.isfinite(xp) & np.isfinite(yu) & np.isfinite(zu)
                a, b, c = xp[ok], yu[ok], zu[ok]
                null[t] = _partial(np.array(_corr(a, b, method)), np.array(_corr(a, c, method)),
                                   np.array(_corr(b, c, method)))
    else:
        null = np.array([])
    return MantelResult(r=r, p_value=_p_value(r, null, alternative), n_pairs=int(valid.sum()),
                        n_dropped=int((~valid).sum()), n_languages=n, permutations=int(permutations), method=method,
                        alternative=alternative, seed=int(seed), r_xy=rxy, r_xz=rxz, r_yz=ryz)


# ====================================================================== per layer
def _distance_tables(distances: Any) -> dict[str, pd.DataFrame]:
    from .uriel import LanguageDistances

    if isinstance(distances, LanguageDistances):
        return {k: distances.matrix(k) for k in distances.kinds}
    if isinstance(distances, Mapping):
        out = {}
        for k, v in distances.items():
            if not isinstance(v, pd.DataFrame):
                raise MetricError(f"distance {k!r} must be a languages x languages DataFrame, got {type(v).__name__}")
            out[str(k)] = v
        return out
    raise MetricError("distances must be a LanguageDistances (language_distances()) or {kind: DataFrame}, "
                      f"got {type(distances).__name__}")


def _canonical_frame(frame: pd.DataFrame) -> pd.DataFrame:
    from ..data.languages import normalize_code
    from ..errors import LanguageCodeError

    def canon(x: Any) -> str:
        try:
            return normalize_code(str(x))
        except LanguageCodeError:
            return str(x)

    out = frame.copy()
    out.index = [canon(x) for x in frame.index]
    out.columns = [canon(x) for x in frame.columns]
    return out


def distance_correlations(similarity_result: Any, distances: Any, metric: str | None = None, *,
                          layers: Sequence[int] | None = None, kinds: Sequence[str] | None = None,
                          control: str | None = "script", permutations: int = 999, seed: int = 0,
                          method: str = "spearman", alternative: str = "two-sided") -> pd.DataFrame:
    """Per layer and distance kind: the Mantel correlation of representation similarity with the distance,
    and the partial correlation controlling for ``control`` (default ``"script"``).

    ``similarity_result``: a :class:`~xling_probe.measures.result.SimilarityResult`; its ``matrix(metric,
    layer)`` (``metric`` default: its first metric) is made symmetric (mean of both directions). Languages
    are matched to the distance tables by canonical code; languages missing from a table are an error.
    Expect negative ``r`` (closer languages, more similar representations). Returns a long DataFrame with
    columns ``layer, kind, metric, r, p, partial_r, partial_p, n_pairs, n_languages, method, control``;
    ``partial_r`` is NaN for the control kind itself or when the control is constant. Every test uses
    the same ``seed``.
    """
    tables = {k: _canonical_frame(v) for k, v in _distance_tables(distances).items()}
    if control is not None and control not in tables:
        raise MetricError(f"control {control!r} is not among the distances ({list(tables)}); pass control=None")
    use_kinds = list(kinds) if kinds is not None else [k for k in tables]
    bad = [k for k in use_kinds if k not in tables]
    if bad:
        raise MetricError(f"distance kind(s) {bad} not among {list(tables)}")
    metrics = tuple(similarity_result.metrics)
    name = metrics[0] if metric is None else metric
    use_layers = list(similarity_result.layers) if layers is None else list(layers)
    rows = []
    for layer in use_layers:
        sim = _canonical_frame(similarity_result.matrix(name, layer))
        langs = list(sim.index)
        for kind in use_kinds:
            dist = tables[kind]
            missing = [x for x in langs if x not in dist.index]
            if missing:
                raise MetricError(f"the {kind!r} distances lack languages {missing}; compute them with "
                                  f"language_distances({langs})")
            res = mantel(sim, dist, permutations=permutations, seed=seed, method=method, alternative=alternative)
            if control is not None and kind != control:
                part = partial_mantel(sim, dist, tables[control], permutations=permutations, seed=seed, method=method,
                                      alternative=alternative)
                pr, pp = part.r, part.p_value
            else:
                pr, pp = float("nan"), float("nan")
            rows.append({"layer": layer, "kind": kind, "metric": name, "r": res.r, "p": res.p_value, "partial_r": pr,
                         "partial_p": pp, "n_pairs": res.n_pairs, "n_languages": res.n_languages, "method": method,
                         "control": control})
    table = pd.DataFrame(rows, columns=["layer", "kind", "metric", "r", "p", "partial_r", "partial_p", "n_pairs",
                                        "n_languages", "method", "control"])
    table.attrs.update({"permutations": int(permutations), "seed": int(seed), "alternative": alternative})
    return table
