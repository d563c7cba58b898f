"""Similarity between two languages at one layer: pure metric functions.

X, Y: N x D matrices (numpy arrays or torch tensors, on any device), row i of X and row i of Y
are translations of each other. Every function also accepts a stack ``[..., N, D]`` with leading
axes (a layer axis, for example) and then scores every slice in one batched call: the ``*_batched``
variants return numpy arrays of the leading shape, the plain ones return Python floats.
Computation is in float64 on the device of the input (a CUDA tensor is scored on its GPU).

Definitions (docs/science.md, "Similarity measures"):

- Linear CKA (Kornblith et al. 2019). Center columns. CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).
  Same value from Gram matrices K = X X^T, L = Y Y^T: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).
  Choose the feature form (D x D) or the Gram form (N x N) by whichever of N, D is smaller.
- Debiased CKA: replace HSIC by the unbiased estimator of Song et al. (2012) (diagonal of K and L
  zeroed; N >= 4 required). Independent random data with N = 50, D = 2000 gives biased CKA ~0.98
  but debiased ~0.01: always offer the debiased form.
- ANC, Average Neuron-wise Correlation (Del & Fishel 2022): for each neuron d, the Pearson r between
  X[:, d] and Y[:, d] over the N pairs; ANC = mean over d. The authors' code has both the signed mean
  and the mean of |r|: expose ``absolute=`` explicitly. Chance level: signed ~0, absolute ~sqrt(2/(pi N)).
  Zero-variance neurons: exclude and report how many, never return NaN.
  ANC is invariant to a per-neuron affine change, NOT to rotations; CKA is invariant to rotations
  and isotropic scaling.
- Retrieval P@k: cosine similarity matrix S = norm(X) norm(Y)^T; P@1 = fraction of i with
  argmax_j S[i, j] == i. Report both directions (X->Y, Y->X).
- MEXA alignment score (Kargaran et al.): row i counts if S[i, i] is strictly greater than every
  other entry of its row AND of its column; score = count / N. Identical sets give 1.0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ..errors import MetricError
from .inputs import ArrayLike, _scalar, _to_numpy, as_float64, paired
from .registry import cka_form

CkaForm = Literal["auto", "feature", "gram"]


# ---------------------------------------------------------------------------------- CKA
def center(x: torch.Tensor) -> torch.Tensor:
    """Subtract the column mean over the sentence axis (axis -2)."""
    return x - x.mean(dim=-2, keepdim=True)


def hsic_biased(kl: torch.Tensor, rr: torch.Tensor, sk: torch.Tensor, sl: torch.Tensor, n: int) -> torch.Tensor:
    """Biased HSIC up to the factor 1/(n-1)^2 (which cancels in CKA): tr(K H L H), H = I - 11^T/n.

    From parts of (possibly uncentered) Gram matrices K, L of n rows: ``kl`` = <K, L>_F,
    ``rr`` = (K 1) . (L 1), ``sk`` = 1^T K 1, ``sl`` = 1^T L 1, since
    tr(KHLH) = <K, L> - (2/n) (K1).(L1) + (1^T K 1)(1^T L 1) / n^2.
    """
    return kl - (2.0 / n) * rr + sk * sl / (n * n)


def hsic_unbiased(kl: torch.Tensor, dd: torch.Tensor, tk: torch.Tensor, tl: torch.Tensor,
                  rr: torch.Tensor, n: int) -> torch.Tensor:
    """Unbiased HSIC of Song et al. (2012) from parts; needs n >= 4.

    With K~, L~ = K, L with the diagonal zeroed:
    HSIC_1 = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3)).
    Parts: ``kl`` = <K, L>_F and ``dd`` = sum_i K_ii L_ii (so tr(K~ L~) = kl - dd), ``tk`` = 1^T K~ 1,
    ``tl`` = 1^T L~ 1, ``rr`` = (K~ 1) . (L~ 1) = 1^T K~ L~ 1 (both symmetric).
    """
    return (kl - dd + tk * tl / ((n - 1) * (n - 2)) - (2.0 / (n - 2)) * rr) / (n * (n - 3))


def hsic_from_rows(kl: torch.Tensor, ra: torch.Tensor, da: torch.Tensor, rb: torch.Tensor, db: torch.Tensor,
                   w: torch.Tensor, n: int, *, debiased: bool) -> torch.Tensor:
    """HSIC of resampled Gram matrices K', L', from per-row quantities of the original K, L.

    A resample s takes original row a ``w[a, s]`` times (a bootstrap sample; w = 1 is the plain
    estimate; a shuffled pairing permutes one side's rows beforehand, with w = 1). Sums over sample
    positions are sums over original rows with multiplicity w. Inputs:

    - ``kl`` [..., S]: w^T (K o L) w, the expensive part, computed by the caller,
    - ``ra``, ``rb`` [..., N, S]: K w and L w (row sums of K', L' at each original row),
    - ``da``, ``db`` [..., N, 1] or [..., N, S]: the diagonals K_aa, L_aa,
    - ``w`` [N, S]: multiplicities; ``n`` = the sum of each column of w.

    Two copies of one sentence are not an independent pair: like the diagonal (which the unbiased
    estimator excludes), the entries of K' between copies of the same sentence are set to zero.
    Without this rule repeated sentences inflate both estimates (a debiased CKA of 0.02 bootstrapped
    to ~0.85 in our checks). With w = 1 nothing changes. Returns [..., S]: biased HSIC
    (:func:`hsic_biased`) or unbiased HSIC (:func:`hsic_unbiased`) of K', L'.
    """
    ssum = lambda v: (w * v).sum(-2)  # noqa: E731 - sum over sample positions
    if not debiased:  # K' keeps its diagonal; the w_a^2 - w_a entries between two copies of row a are zeroed
        ea, eb = ra - (w - 1) * da, rb - (w - 1) * db
        return hsic_biased(kl - ssum((w - 1) * da * db), ssum(ea * eb), ssum(ea), ssum(eb), n)
    ea, eb = ra - w * da, rb - w * db  # K~' 1: the diagonal and every copy entry zeroed
    return hsic_unbiased(kl, ssum(w * da * db), ssum(ea), ssum(eb), ssum(ea * eb), n)


def cka_ratio(xy: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    """CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)); NaN where a self-HSIC is not positive
    (possible for the unbiased estimator on tiny or degenerate samples)."""
    den = xx * yy
    out = xy / torch.sqrt(den.clamp_min(torch.finfo(torch.float64).tiny))
    return torch.where(den > 0, out, torch.full_like(out, float("nan")))


def gram_parts(xc: torch.Tensor, yc: torch.Tensor, form: str) -> dict[str, torch.Tensor]:
    """<K, L>, <K, K>, <L, L>, diagonals and row sums of K = Xc Xc^T, L = Yc Yc^T, batched.

    Gram form: build the N x N matrices. Feature form: <K, L>_F = ||Y^T X||_F^2 (a D x D product),
    diag K = squared row norms, K 1 = X (X^T 1); never builds anything N x N.
    """
    if form == "gram":
        K = xc @ xc.transpose(-1, -2)
        L = yc @ yc.transpose(-1, -2)
        return {"kl": (K * L).sum((-2, -1)), "kk": (K * K).sum((-2, -1)), "ll": (L * L).sum((-2, -1)),
                "dk": torch.diagonal(K, dim1=-2, dim2=-1), "dl": torch.diagonal(L, dim1=-2, dim2=-1),
                "rk": K.sum(-1), "rl": L.sum(-1)}
    sq = lambda m: (m * m).sum((-2, -1))  # noqa: E731 - squared Frobenius norm
    xt, yt = xc.transpose(-1, -2), yc.transpose(-1, -2)
    return {"kl": sq(yt @ xc), "kk": sq(xt @ xc), "ll": sq(yt @ yc),
            "dk": (xc * xc).sum(-1), "dl": (yc * yc).sum(-1),
            "rk": (xc @ xc.sum(-2).unsqueeze(-1)).squeeze(-1),
            "rl": (yc @ yc.sum(-2).unsqueeze(-1)).squeeze(-1)}


def cka_from_parts(p: dict[str, torch.Tensor], n: int, *, debiased: bool) -> torch.Tensor:
    """Linear CKA (biased or debiased) from :func:`gram_parts` of one plain sample."""
    one = torch.ones(n, 1, dtype=p["kl"].dtype, device=p["kl"].device)
    col = lambda v: v.unsqueeze(-1)  # noqa: E731 - [..., N] -> [..., N, 1]
    h = lambda kl, a, b: hsic_from_rows(col(kl), col(p["r" + a]), col(p["d" + a]), col(p["r" + b]),  # noqa: E731
                                        col(p["d" + b]), one, n, debiased=debiased).squeeze(-1)
    return cka_ratio(h(p["kl"], "k", "l"), h(p["kk"], "k", "k"), h(p["ll"], "l", "l"))


def linear_cka_batched(x: ArrayLike, y: ArrayLike, *, debiased: bool = False, form: CkaForm = "auto") -> np.ndarray:
    """Linear CKA of every slice of ``x, y`` ``[..., N, D]`` -> float64 array of shape ``[...]``.

    ``form``: "feature" (D x D products), "gram" (N x N) or "auto" (the smaller of N, D); both give
    the same number. ``debiased=True`` uses the unbiased HSIC (needs N >= 4). X and Y may differ in D.
    """
    X, Y = paired(x, y, min_n=4 if debiased else 2)
    n = X.shape[-2]
    if form not in ("auto", "feature", "gram"):
        raise MetricError(f"form must be 'auto', 'feature' or 'gram', got {form!r}")
    if form == "auto":
        form = cka_form(n, max(X.shape[-1], Y.shape[-1]))  # the min(N, D) rule
    xc, yc = center(X), center(Y)
    for name, m in (("x", xc), ("y", yc)):
        flat = (m * m).sum((-2, -1)).reshape(-1)
        if bool((flat == 0).any()):
            raise MetricError(f"{name} has zero variance (every row identical) in slice "
                              f"{int((flat == 0).nonzero()[0])}: CKA is undefined")
    return _to_numpy(cka_from_parts(gram_parts(xc, yc, form), n, debiased=debiased))


def linear_cka(x: ArrayLike, y: ArrayLike, *, debiased: bool = False, form: CkaForm = "auto") -> float:
    """Linear CKA of two paired matrices ``[N, D_x]``, ``[N, D_y]`` (see the module docstring)."""
    return _scalar(linear_cka_batched(x, y, debiased=debiased, form=form))


# ---------------------------------------------------------------------------------- ANC
def standardize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-scores per neuron over the sentence axis, and the mask of neurons with non-zero variance.

    A neuron has zero variance when all its N values are equal (max == min, tested exactly on the
    input, so float noise in the mean cannot fake a variance); its z-scores are set to 0.
    """
    lo, hi = torch.aminmax(x, dim=-2)
    varying = hi > lo
    xc = center(x)
    std = torch.sqrt((xc * xc).mean(-2))
    z = xc / torch.where(varying, std, torch.ones_like(std)).unsqueeze(-2)
    return z * varying.unsqueeze(-2), varying


def neuron_correlations(zx: torch.Tensor, zy: torch.Tensor) -> torch.Tensor:
    """Pearson r per neuron from z-scores (population std): r_d = mean_i zx[i, d] zy[i, d]."""
    return (zx * zy).mean(-2)


def anc_from_correlations(r: torch.Tensor, mask: torch.Tensor, *, absolute: bool) -> torch.Tensor:
    """Mean of r (or |r|) over the neurons in ``mask``; NaN only where no neuron is left (callers raise)."""
    vals = r.abs() if absolute else r
    count = mask.sum(-1)
    total = torch.where(mask, vals, torch.zeros_like(vals)).sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def anc_batched(x: ArrayLike, y: ArrayLike, *, absolute: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """ANC of every slice of ``x, y`` ``[..., N, D]`` -> (values ``[...]``, excluded neurons ``[...]``).

    Zero-variance neurons (in x or y) are excluded from the mean and counted; a slice where every
    neuron has zero variance raises :class:`MetricError`.
    """
    X, Y = paired(x, y, same_width=True)
    zx, mx = standardize(X)
    zy, my = standardize(Y)
    mask = mx & my
    values = anc_from_correlations(neuron_correlations(zx, zy), mask, absolute=absolute)
    if bool(torch.isnan(values).any()):
        raise MetricError("every neuron has zero variance in x or y (constant columns): ANC is undefined")
    excluded = X.shape[-1] - mask.sum(-1)
    return _to_numpy(values), _to_numpy(excluded).astype(np.int64)


def anc(x: ArrayLike, y: ArrayLike, *, absolute: bool = False, return_excluded: bool = False) -> float | tuple[float, int]:
    """Average Neuron-wise Correlation of two paired matrices ``[N, D]``.

    ``absolute=False`` (default): signed mean of the per-neuron Pearson r (chance ~0);
    ``absolute=True``: mean of |r| (chance ~sqrt(2/(pi N))). Zero-variance neurons are excluded;
    ``return_excluded=True`` returns ``(anc, number_of_excluded_neurons)``.
    """
    values, excluded = anc_batched(x, y, absolute=absolute)
    value = _scalar(values)
    return (value, int(np.asarray(excluded).reshape(()))) if return_excluded else value


# ---------------------------------------------------------------------------------- retrieval
def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm; a zero row raises (its cosine similarity is undefined)."""
    norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        raise MetricError("a sentence vector has zero norm, so its cosine similarity is undefined; "
                          "drop that sentence or check the pooling")
    return x / norms


def cosine_similarity_matrix(x: ArrayLike, y: ArrayLike) -> torch.Tensor:
    """S = norm(X) norm(Y)^T, float64 ``[..., N, N]`` (S[i, j] = cos(x_i, y_j))."""
    X, Y = paired(x, y, same_width=True, min_n=1)
    return normalize_rows(X) @ normalize_rows(Y).transpose(-1, -2)


def topk_indices(s: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """Indices of the k largest entries along ``dim`` (moved last), ties broken toward the lower index.

    k = 1 is ``argmax`` (which returns the first maximal index); k > 1 a stable descending sort,
    so ``j`` in the top k of row i exactly when fewer than k entries rank before it.
    """
    s = s.movedim(dim, -1)
    if k == 1:
        return s.argmax(-1, keepdim=True)
    return torch.sort(s, dim=-1, descending=True, stable=True).indices[..., :k]


def retrieval_hits(s: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sentence P@k hits of a similarity matrix ``[..., N, N]``: (x->y by row, y->x by column), bool ``[..., N]``."""
    n = s.shape[-1]
    own = torch.arange(n, device=s.device).unsqueeze(-1)
    hit_xy = (topk_indices(s, k, dim=-1) == own).any(-1)
    hit_yx = (topk_indices(s, k, dim=-2) == own).any(-1)
    return hit_xy, hit_yx


def _check_k(k: int, n: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise MetricError(f"k must be an int between 1 and the number of sentences ({n}), got {k!r}")


def retrieval_precision_batched(x: ArrayLike, y: ArrayLike, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cosine retrieval P@k of every slice ``[..., N, D]`` -> (x->y ``[...]``, y->x ``[...]``).

    x->y: fraction of sentences i whose translation y_i is among the k rows of Y most similar to x_i
    (ties broken toward the lower index, as ``argmax``); y->x the same with the roles swapped.
    """
    X, Y = paired(x, y, same_width=True, min_n=1)
    _check_k(k, X.shape[-2])
    s = normalize_rows(X) @ normalize_rows(Y).transpose(-1, -2)
    hit_xy, hit_yx = retrieval_hits(s, k)
    return _to_numpy(hit_xy.double().mean(-1)), _to_numpy(hit_yx.double().mean(-1))


def retrieval_precision(x: ArrayLike, y: ArrayLike, k: int = 1) -> tuple[float, float]:
    """Cosine retrieval P@k of two paired matrices ``[N, D]`` in both directions: (x->y, y->x)."""
    a, b = retrieval_precision_batched(x, y, k)
    return _scalar(a), _scalar(b)


# ---------------------------------------------------------------------------------- MEXA
def argmax_unique(s: torch.Tensor, dim: int = -1, *, overwrite: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The first index of the maximum along ``dim`` and whether that maximum is unique (no tie).

    Unique means the maximum is strictly above every other entry: the maximum is masked to -inf
    and the rest reduced once more. ``overwrite=True`` masks ``s`` itself and restores it
    afterwards (saves a copy of an N x N matrix).
    """
    top, idx = s.max(dim, keepdim=True)  # torch.max returns the first maximal index
    work = s if overwrite else s.clone()
    work.scatter_(dim, idx, float("-inf"))
    second = work.amax(dim, keepdim=True)
    if overwrite:
        s.scatter_(dim, idx, top)
    return idx.squeeze(dim), (top > second).squeeze(dim)


def strict_argmax(s: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Index of the strict maximum along ``dim``, or -1 where the maximum is tied."""
    idx, unique = argmax_unique(s, dim)
    return torch.where(unique, idx, torch.full_like(idx, -1))


def mexa_hits(s: torch.Tensor) -> torch.Tensor:
    """Per-sentence MEXA hits of ``[..., N, N]``: S[i, i] strictly above every other entry of row i AND column i."""
    n = s.shape[-1]
    own = torch.arange(n, device=s.device)
    return (strict_argmax(s, -1) == own) & (strict_argmax(s, -2) == own)


def mexa_from_similarity(s: ArrayLike) -> float | np.ndarray:
    """MEXA alignment score of a similarity matrix ``[..., N, N]`` (float for one matrix)."""
    S = as_float64(s, "s")
    if S.shape[-1] != S.shape[-2]:
        raise MetricError(f"a MEXA similarity matrix must be square [N, N], got shape {tuple(S.shape)}")
    out = _to_numpy(mexa_hits(S).double().mean(-1))
    return _scalar(out) if S.ndim == 2 else out


def mexa_alignment_batched(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """MEXA alignment score of every slice ``[..., N, D]`` from its cosine similarity matrix."""
    X, Y = paired(x, y, same_width=True, min_n=1)
    s = normalize_rows(X) @ normalize_rows(Y).transpose(-1, -2)
    return _to_numpy(mexa_hits(s).double().mean(-1))


def mexa_alignment(x: ArrayLike, y: ArrayLike) -> float:
    """MEXA alignment score (Kargaran et al.) of two paired matrices ``[N, D]``; identical sets give 1.0."""
    return _scalar(mexa_alignment_batched(x, y))


# ---------------------------------------------------------------------------------- mutual k-NN
def mutual_knn_batched(x: ArrayLike, y: ArrayLike, k: int = 10) -> np.ndarray:
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024) of every slice ``[..., N, D]``.

    For each sentence i, the k nearest other sentences by cosine within X and within Y;
    score = mean over i of |kNN_X(i) & kNN_Y(i)| / k. Independent of how X and Y are rotated,
    and X, Y may differ in width. Chance level ~ k / (N - 1).
    """
    X, Y = paired(x, y, min_n=2)
    n = X.shape[-2]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n - 1:
        raise MetricError(f"k must be an int between 1 and N - 1 = {n - 1}, got {k!r}")

    def neighbours(m: torch.Tensor) -> torch.Tensor:
        u = normalize_rows(m)
        s = u @ u.transpose(-1, -2)
        s = s - 3.0 * torch.eye(n, dtype=s.dtype, device=s.device)  # never pick oneself (cosines >= -1)
        return topk_indices(s, k, dim=-1)

    nx, ny = neighbours(X), neighbours(Y)
    shared = (nx.unsqueeze(-1) == ny.unsqueeze(-2)).any(-1).sum(-1)  # [..., N]
    return _to_numpy(shared.double().mean(-1) / k)


def mutual_knn(x: ArrayLike, y: ArrayLike, k: int = 10) -> float:
    """Mutual k-NN alignment of two paired matrices ``[N, D_x]``, ``[N, D_y]`` (see the batched form)."""
    return _scalar(mutual_knn_batched(x, y, k))
