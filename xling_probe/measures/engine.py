"""The similarity engine: every metric, every layer, every language pair, with nulls and intervals.

``similarity(acts)`` scores each requested language pair at each layer with linear CKA (biased and
debiased), ANC, cosine retrieval P@k, the MEXA alignment score and mutual k-NN (definitions in
:mod:`xling_probe.measures.metrics`). Work is batched over layers (one tensor call per pair covers a whole
chunk of layers; the chunk size follows a memory budget) and never loops over sentences. The
pairwise-function metrics (SVCCA, PWCCA, CKNNA, Procrustes, Procrustes-aligned and mean-centred
retrieval, RSA: :mod:`xling_probe.measures.pairwise`) are the exception: evaluated per layer, as
f(X, Y[perm]) for each null draw and f(X[idx], Y[idx]) for each bootstrap sample. What
depends on one language only (its Gram matrix, z-scores, unit rows) is computed once per layer and
shared by every pair, every null permutation and every bootstrap sample:

- Null baseline: shuffle the pairing (permute rows of Y) and recompute, to show chance level. A
  permutation of Y's rows permutes the columns of S = norm(X) norm(Y)^T, so retrieval and MEXA
  nulls only re-read the row and column winners of S; the CKA null gathers the permuted Gram.
- Bootstrap: sentences resampled with replacement (seeded). CKA and ANC are recomputed on the
  resample through multiplicity weights (no copy of the data). Retrieval, MEXA and k-NN scores
  are means of per-sentence hits over a fixed candidate pool, so the bootstrap resamples the
  queries (a resampled pool would contain duplicates, which tie by construction).

CKA form: for one pair the feature form (D x D) is cheaper when D < N and the Gram form (N x N)
otherwise (the min(N, D) rule). Across many pairs and resamples the engine compares the total
cost (Gram matrices are made once per language and make every pair and resample O(N^2); the
feature form pays O(N D^2) per pair and per resample) and picks the cheaper form that fits in
memory; ``cka_form="feature"|"gram"`` forces one.

dtype: the big products (Gram matrices, D x D feature products, cosine matrices, ANC's z-score
products) run in the compute dtype (``dtype=``: float32 by default on a GPU, float64 on the CPU);
centering, normalisation, every HSIC sum and CKA ratio, ANC's sums and the exact tie checks of
retrieval and MEXA are float64 or exact (:mod:`~xling_probe.measures.kernels`, which states the
measured float32 vs float64 differences).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from ..cluster import resolve_client
from ..errors import MetricError
from ..extraction.activations import Activations
from ..labels import resolve_language, resolve_pairs, select_layers
from .allpairs import all_pairs_similarity, supports
from .assemble import assemble
from .cross_layer import CrossLayerResult
from .kernels import LangState, cka_null_products, compute_dtype, pair_hsic, score_pair, self_hsic
from .metrics import anc_from_correlations, cka_ratio, standardize
from .pairwise_engine import score_pair_functions
from .registry import DEFAULT_METRICS, METRICS, cka_form as choose_cka_form, metric_spec, parse_metrics
from .result import SimilarityResult

__all__ = ["DEFAULT_METRICS", "cross_layer_similarity", "draws", "similarity"]


def _check_finite(block: torch.Tensor, layers: Sequence[int], langs: Sequence[str]) -> None:
    """``block`` [layer, language, N, D]: raise on NaN/inf, naming where."""
    bad = ~torch.isfinite(block.sum((-2, -1)))  # NaN and inf survive a float64 sum of float32 values
    if bool(bad.any()):
        li, gi = bad.nonzero()[0].tolist()
        raise MetricError(f"NaN or inf in the activations of language {langs[gi]!r} at layer {layers[li]}; "
                          "re-extract in float32/bfloat16 or drop the broken sentences")


# ---------------------------------------------------------------------------------- the engine
def similarity(
    acts: Activations,
    metrics: str | Iterable[str] = DEFAULT_METRICS,
    pairs: str | Sequence[Sequence[str]] = "all",
    layers: Any = "all",
    *,
    null_permutations: int = 20,
    bootstrap: int = 200,
    ci: float = 0.95,
    seed: int = 0,
    device: str | torch.device | None = None,
    cka_form: str = "auto",
    dtype: str | None = None,
    max_memory_gb: float = 2.0,
    progress: bool = True,
    client: Any = None,
) -> SimilarityResult:
    """Score every metric at every layer for every language pair of ``acts``.

    Parameters
    ----------
    acts: :class:`Activations` (layer x language x sentence x hidden); row i of each language is
        the same sentence.
    metrics: names from ``cka``, ``cka_debiased``, ``anc`` (signed mean), ``anc_abs`` (mean |r|),
        ``p@k`` (cosine retrieval precision at k, both directions), ``mexa``, ``mknn@k``, and the
        pairwise-function metrics ``svcca``, ``pwcca`` and ``cknna@k`` (directional), ``procrustes``,
        ``p_procrustes@k``, ``p_cent@k``, ``rsa`` (:mod:`~xling_probe.measures.pairwise`: float64, one
        evaluation per layer, pair, shuffled pairing and resample), as a list or a comma-separated
        string; aliases such as ``p_at_1`` are read by :func:`~xling_probe.measures.registry.metric_spec`.
    pairs: ``"all"``, ``"pivot:en"``, ``"en-de,en-zh"`` or ``[(a, b), ...]``
        (:func:`xling_probe.labels.resolve_pairs`; languages in any spelling).
    layers: ``"all"``, residual-stream indices (0 = embeddings, l = output of block l-1; negative from
        the end) or a string like ``"1-5"`` (:func:`xling_probe.labels.select_layers`).
    null_permutations: shuffled pairings per value (0 = no null). With 20, a value above every
        permutation is significant at p = 1/21 < 0.05 (``result.above_null``).
    bootstrap: resamples of the sentences for the ``ci`` percentile interval (0 = none).
    seed: seeds the permutations and resamples (the same draws for every pair and layer).
    device: torch device for the computation (default: the GPU when one is visible, else the CPU).
    cka_form: "auto" (cheapest total cost, :func:`~xling_probe.measures.registry.cka_form`), "gram" or "feature".
    dtype: dtype of the big products: ``"float64"``, ``"float32"`` or ``None`` (auto: float32 on a GPU, float64 on
        the CPU). Sums, normalisations and tie checks stay float64 (or exact) either way. float32 vs float64: CKA,
        debiased CKA and ANC within 1e-6 (measured < 1e-8); P@k, MEXA and mutual k-NN identical except where two
        cosines of a row or column are within float32 rounding (~1e-6), which float32 may break differently (at
        most 1/N per such sentence). The CPU default stays float64 because float32 is not tie-exact there and the
        float64 numbers are reproducible to ~1e-15 across devices; ask for ``dtype="float32"`` for speed (about
        2x faster products). Recorded in ``result.settings["dtype"]``.
    max_memory_gb: working-memory budget that sets how many layers are batched together (and, with
        many pairs and no null/bootstrap, how many languages are scored per block: the all-pairs path).
    client: a ``dask.distributed`` client, ``None`` (default: the active client, if one was made) or ``False`` (this
        process only). On a client the work runs as layer x pair-block tasks on its workers, merged into the same
        numbers (:mod:`~xling_probe.measures.distributed`).
    """
    if not isinstance(acts, Activations):
        raise MetricError("similarity() needs an Activations object: acts = xling_probe.extraction.extract(model, corpus)")
    names = parse_metrics(metrics)
    specs = [metric_spec(m) for m in names]
    pair_list = resolve_pairs(pairs, acts.languages, acts.labels, error=MetricError)
    li_all = select_layers(layers, acts.layers, error=MetricError)
    for label, v in (("null_permutations", null_permutations), ("bootstrap", bootstrap)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise MetricError(f"{label} must be an int >= 0, got {v!r}")
    if not 0 < ci < 1:
        raise MetricError(f"ci must be between 0 and 1 (e.g. 0.95), got {ci!r}")
    if cka_form not in ("auto", "gram", "feature"):
        raise MetricError(f"cka_form must be 'auto', 'gram' or 'feature', got {cka_form!r}")
    n, d = acts.n_sentences, acts.hidden_size
    ks = {s.k for s in specs if s.family == "retrieval"}
    mknn_ks = {s.k for s in specs if s.family == "mknn"}
    min_n = max([4 if "cka_debiased" in names else 2] + [k for k in ks] + [k + 1 for k in mknn_ks]
                + [s.min_n for s in specs if s.kernel == "pair"])
    if n < min_n:
        why = "debiased CKA needs N >= 4" if "cka_debiased" in names and n < 4 else "k must not exceed the sentences"
        short = [s.name for s in specs if s.kernel == "pair" and n < s.min_n]
        if short:
            why = f"{short[0]} needs N >= {metric_spec(short[0]).min_n}"
        raise MetricError(f"{n} sentences are too few for {list(names)} ({why}); use at least {min_n}")
    langs = tuple(x for x in acts.languages if any(x in p for p in pair_list))
    gi = [acts.languages.index(x) for x in langs]
    R, B = int(null_permutations), int(bootstrap)
    need = {s.kernel for s in specs}
    pair_specs = [s for s in specs if s.kernel == "pair"]
    form = "none"
    if "cka" in need:
        form = cka_form if cka_form != "auto" else choose_cka_form(
            n, d, languages=len(langs), pairs=len(pair_list), permutations=R, bootstrap=B, budget_gb=max_memory_gb)
    dev = default_device(device)
    dt = compute_dtype(dtype, dev)
    settings = {"n_sentences": n, "hidden_size": d, "null_permutations": R, "bootstrap": B, "ci": ci, "seed": seed,
                "cka_form": form, "dtype": str(dt).removeprefix("torch."), "model": acts.meta.get("model", "?"),
                "pooling": acts.meta.get("pooling", "?")}
    all_pairs = not R and not B and len(pair_list) >= ALL_PAIRS_FROM and supports(names)
    client = resolve_client(client)
    if client is not None:
        from .distributed import similarity_distributed

        return similarity_distributed(client, similarity, acts, li_all, langs, pair_list, dict(
            metrics=names, null_permutations=R, bootstrap=B, ci=ci, seed=seed, device=dev, cka_form=cka_form,
            dtype=dtype, max_memory_gb=max_memory_gb), all_pairs=all_pairs, settings=settings)
    if all_pairs:
        # Many pairs, values only: every block of language pairs in a few GEMMs (same definitions, ~1e-15 apart).
        return all_pairs_similarity(acts, names, li_all, langs, gi, pair_list, device=dev, max_memory_gb=max_memory_gb,
                                    progress=progress, settings={**settings, "cka_form": "gram"}, dtype=dt)
    slot_bytes = len(pair_list) * len(names) * 2 * len(li_all) * (1 + R + B) * 8
    if slot_bytes > SLOT_LIMIT_GB * 2**30:
        raise MetricError(
            f"{len(pair_list)} pairs x {len(names)} metrics x {len(li_all)} layers with {R} null permutations and {B} "
            f"bootstrap samples would hold {slot_bytes / 2**30:.1f} GiB of draws. Score all pairs with "
            "null_permutations=0, bootstrap=0 (one batched pass), then the null and intervals for the pairs you report."
        )

    perms_np, boot_idx = draws(n, R, B, seed)
    perms = torch.as_tensor(perms_np, dtype=torch.long, device=dev)
    counts = np.stack([np.bincount(i, minlength=n) for i in boot_idx]) if B else None
    wt = torch.as_tensor(counts.T, dtype=torch.float64, device=dev) if B else None  # multiplicities [N, B]

    per_layer = _bytes_per_layer(n, d, len(langs), need, form, R, B)
    chunk = min(len(li_all), max(1, int(max_memory_gb * 2**30 // per_layer)))
    chunks = [li_all[i:i + chunk] for i in range(0, len(li_all), chunk)]
    L = len(li_all)
    slots: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}
    for m in names:
        for a, b in pair_list:
            for s in ([(a, b), (b, a)] if metric_spec(m).directional else [(a, b)]):
                slots[(m, *s)] = {"value": np.full(L, np.nan), "null": np.full((L, R), np.nan), "boot": np.full((L, B), np.nan)}
    excluded = {p: np.zeros(L, dtype=np.int64) for p in pair_list}

    from tqdm.auto import tqdm

    bar = tqdm(total=len(chunks) * len(pair_list), desc="similarity", unit="pair", disable=not progress)
    with bar, torch.no_grad():
        pos = 0
        for idx in chunks:
            block = torch.as_tensor(acts.data[np.ix_(idx, gi)], device=dev).to(torch.float64)  # copies only these
            _check_finite(block, [acts.layers[i] for i in idx], langs)
            try:
                state = {lang: LangState(block[:, g], need, form, wt, mknn_ks, dt) for g, lang in enumerate(langs)}
            except MetricError as exc:
                raise MetricError(f"{exc} (layers {[acts.layers[i] for i in idx]})") from None
            raw = {lang: block[:, g] for g, lang in enumerate(langs)} if "pair" in need else {}
            del block
            sl = slice(pos, pos + len(idx))
            hs = self_hsic(state, names, n, wt) if "cka" in need else {}
            kl_null = cka_null_products(state, pair_list, perms) if "cka" in need and R else {}
            for a, b in pair_list:
                out = score_pair(state[a], state[b], names, ks, perms, wt, hs.get(a), hs.get(b),
                                  kl_null.get((a, b)))
                if raw:  # the generic route: f(X, Y) re-evaluated per shuffled pairing and resample
                    try:
                        out.update(score_pair_functions(raw[a], raw[b], pair_specs, perms, boot_idx, wt))
                    except MetricError as exc:
                        raise MetricError(f"{exc} ({a}-{b}, layers {[acts.layers[i] for i in idx]})") from None
                for (m, direction), res in out.items():
                    key = (m, a, b) if direction == "ab" else (m, b, a)
                    for f in ("value", "null", "boot"):
                        if f in res:
                            slots[key][f][sl] = res[f].cpu().numpy()
                if "anc" in need:
                    excluded[(a, b)][sl] = (d - (state[a].mask & state[b].mask).sum(-1)).cpu().numpy()
                bar.update(1)
            pos += len(idx)
            del state, hs, raw
    _check_anc(slots, excluded, pair_list, [acts.layers[i] for i in li_all], d)
    return assemble(names, tuple(acts.layers[i] for i in li_all), langs, pair_list, slots, excluded, R, B, ci,
                    {**settings, "layer_chunk": chunk})


#: From this many pairs on, values without null or bootstrap go through the batched all-pairs path.
ALL_PAIRS_FROM = 64
#: The per-pair path keeps every null and bootstrap draw until the end; beyond this it refuses.
SLOT_LIMIT_GB = 4.0


def draws(n: int, permutations: int, bootstrap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded random draws of :func:`similarity`: shuffled pairings ``[permutations, n]`` (row r
    pairs sentence i of language a with sentence perm[r, i] of language b) and bootstrap samples
    ``[bootstrap, n]`` (sentence indices drawn with replacement). The same draws serve every pair and layer."""
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(permutations)]) if permutations else np.zeros((0, n), np.int64)
    boot = rng.integers(0, n, size=(bootstrap, n)) if bootstrap else np.zeros((0, n), np.int64)
    return perms, boot


def _bytes_per_layer(n: int, d: int, g: int, need: set[str], form: str, r: int, b: int) -> int:
    per_lang = n * d * 8  # the float64 copy of the data
    per_lang += n * d * 8 * (("cos" in need) + 2 * ("anc" in need))
    if "cka" in need:
        per_lang += n * n * 8 * (1 + (r > 0)) if form == "gram" else n * d * 8  # + permuted Gram cache
        per_lang += n * b * 8
    per_lang += 2 * b * d * 8 * ("anc" in need)
    transient = 4 * n * n * 8 + n * max(b, 1) * 8
    return g * per_lang + transient


def _check_anc(slots, excluded, pairs, layers, d) -> None:
    for a, b in pairs:
        full = np.nonzero(excluded[(a, b)] >= d)[0]
        if len(full):
            raise MetricError(f"every neuron has zero variance in {a!r} or {b!r} at layer {layers[full[0]]}: "
                              "ANC is undefined there (constant activations?)")


def default_device(device: str | torch.device | None) -> torch.device:
    """The device of the similarity GEMMs: the one asked for, else the GPU when there is one, else the CPU.

    In float64 the numbers do not depend on where they ran (beyond summation order, ~1e-15 relative);
    the default compute dtype on a GPU is float32 (:func:`~xling_probe.measures.kernels.compute_dtype`)."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------- layer x layer
def cross_layer_similarity(
    acts: Activations,
    lang_a: str,
    lang_b: str,
    metric: str = "cka",
    layers: Any = "all",
    *,
    device: str | torch.device | None = None,
    dtype: str | None = None,
) -> CrossLayerResult:
    """Layer i of ``lang_a`` vs layer j of ``lang_b`` for every (i, j): CKA (biased or debiased) or ANC
    (signed or absolute), in one batched call. Returns a :class:`CrossLayerResult` [layer_a, layer_b].
    ``dtype``: of the CKA products, as in :func:`similarity` (ANC here is float64 throughout)."""
    if not isinstance(acts, Activations):
        raise MetricError("cross_layer_similarity() needs an Activations object")
    spec = metric_spec(metric)
    if not spec.cross_layer:
        supported = ", ".join(m for m, s in METRICS.items() if s.cross_layer)
        raise MetricError(f"cross_layer_similarity supports {supported}, not {spec.name!r}")
    metric = spec.name
    a, b = (resolve_language(x, acts.languages, acts.labels, error=MetricError, what="these activations")
            for x in (lang_a, lang_b))
    idx = select_layers(layers, acts.layers, error=MetricError)
    n, d, L = acts.n_sentences, acts.hidden_size, len(idx)
    if metric == "cka_debiased" and n < 4:
        raise MetricError(f"debiased CKA needs N >= 4 sentences, got {n}")
    dev = default_device(device)
    dt = compute_dtype(dtype, dev)
    block = torch.as_tensor(acts.data[np.ix_(idx, [acts.language_index(a), acts.language_index(b)])],
                            device=dev).to(torch.float64)
    _check_finite(block, [acts.layers[i] for i in idx], (a, b))
    x, y = block[:, 0], block[:, 1]
    with torch.no_grad():
        if spec.family == "anc":
            (zx, mx), (zy, my) = standardize(x), standardize(y)
            r = torch.einsum("ind,jnd->ijd", zx, zy) / n
            mat = anc_from_correlations(r, mx[:, None] & my[None], absolute=metric == "anc_abs")
            if bool(torch.isnan(mat).any()):
                raise MetricError("every neuron has zero variance at some layer pair: ANC is undefined there")
        else:
            form = choose_cka_form(n, d, languages=2 * L, pairs=L * L)  # every layer of a against every layer of b
            sa, sb = LangState(x, {"cka"}, form, None, set(), dt), LangState(y, {"cka"}, form, None, set(), dt)
            if form == "gram":
                kl = sa.k.flatten(1) @ sb.k.flatten(1).T
            else:
                kl = torch.stack([(sb.xc.transpose(-1, -2) @ sa.xc[i]).to(torch.float64).square().sum((-2, -1))
                                  for i in range(L)])
            kk_a, kk_b = sa.kl(sa), sb.kl(sb)
            if bool((kk_a <= 0).any() | (kk_b <= 0).any()):
                raise MetricError("a layer has zero variance (all sentence vectors identical): CKA is undefined")
            c = lambda v: v[..., None]  # noqa: E731 - one plain sample: trailing sample axis of size 1
            xy = pair_hsic(c(kl), c(sa.r)[:, None], c(sa.d)[:, None], c(sb.r)[None], c(sb.d)[None], None, n, metric)
            xx = pair_hsic(c(kk_a), c(sa.r), c(sa.d), c(sa.r), c(sa.d), None, n, metric)
            yy = pair_hsic(c(kk_b), c(sb.r), c(sb.d), c(sb.r), c(sb.d), None, n, metric)
            mat = cka_ratio(xy[..., 0], xx[:, None, 0], yy[None, :, 0])
    lay = tuple(acts.layers[i] for i in idx)
    return CrossLayerResult(metric=metric, lang_a=a, lang_b=b, layers_a=lay, layers_b=lay,
                            matrix=mat.cpu().numpy(), settings={"n_sentences": n,
                                                                "dtype": str(dt).removeprefix("torch.")})
