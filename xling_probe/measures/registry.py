"""The metric registry: one entry per similarity measure, read by the engine, the results and every consumer.

Each :class:`MetricSpec` says what a metric is (family, display label, value bounds), how it reads
(directional or symmetric), what it needs (the per-language ``kernel`` state of
:mod:`~xling_probe.measures.kernels`), whether it has a layer x layer form, and its chance level under
a shuffled pairing (docs/science.md, "Similarity measures" and "Null baselines"). Nobody tests name
prefixes: ask :func:`metric_spec` (``spec.family``, ``spec.directional``, ``spec.k``, ``spec.bounds``,
``spec.chance(n)``).

Adding a metric = one entry here (fixed name) or one family in :data:`FAMILIES` (``name@K``) + its
kernel in :mod:`~xling_probe.measures.kernels`. Or, without an engine fast path, kernel ``"pair"``: the
metric is a pure function f(X, Y) of the two languages' N x D arrays
(:mod:`~xling_probe.measures.pairwise`), which the engine re-evaluates on every shuffled pairing and
bootstrap resample (fixed names in :data:`PAIR_METRICS`, ``name@K`` families in :data:`FAMILIES`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from ..errors import MetricError

Family = Literal["cka", "anc", "retrieval", "mexa", "mknn", "svcca", "pwcca", "cknna", "procrustes",
                 "retrieval_procrustes", "retrieval_cent", "rsa"]
Kernel = Literal["cka", "anc", "cos", "pair"]


@dataclass(frozen=True)
class MetricSpec:
    """One similarity metric.

    ``name``: canonical name (``"cka"``, ``"p@1"``, ``"mknn@10"``). ``family``: ``"cka" | "anc" |
    "retrieval" | "mexa" | "mknn"``. ``label``: for axes and legends. ``directional``: entry [a, b] is
    a -> b (a queries, b is searched) and differs from [b, a]. ``bounds``: the range the value can take.
    ``scale``: the colour/axis range plots fix (``None``: fit the data). ``cross_layer``: has a
    layer x layer form (:func:`~xling_probe.measures.engine.cross_layer_similarity`). ``k``: the K of
    ``p@K`` / ``mknn@K``. ``kernel``: the per-language state it is computed from (Gram/centered
    features ``"cka"``, z-scores ``"anc"``, unit rows ``"cos"``), or ``"pair"``: a pure function of the
    two arrays (:mod:`~xling_probe.measures.pairwise`). ``min_n``: the fewest sentences it is defined on.
    """

    name: str
    family: Family
    label: str
    directional: bool
    bounds: tuple[float, float]
    cross_layer: bool
    k: int | None = None
    kernel: Kernel = "cos"
    scale: tuple[float, float] | None = (0.0, 1.0)
    _chance: Callable[[int, int | None], float | None] | None = None
    min_n: int = 2

    def chance(self, n_sentences: int) -> float | None:
        """Expected value under a shuffled pairing of ``n_sentences`` sentences (rows of b permuted),
        ``None`` where it depends on the data (biased CKA, MEXA).

        P@K: the true partner lands in the top K of N candidates with probability K/N. Mutual K-NN:
        b's K neighbours of sentence i are, after the shuffle, a uniform K-subset of the N - 1 others,
        so the expected overlap is K/(N - 1). Signed ANC and debiased CKA: the permutation mean of a
        centred cross product is exactly 0. ANC (|r|): a neuron's r has permutation variance
        1/(N - 1), so E|r| ~ sqrt(2 / (pi (N - 1))) (normal approximation, large N). RSA: a shuffled
        pairing permutes the pairs of one triangle, so the permutation mean of the rank covariance is
        exactly 0. Mean-centred retrieval: K/N, as P@K (the means do not depend on the pairing).
        Procrustes-aligned retrieval: ``None``, the map is refitted to each shuffled pairing.
        """
        if self._chance is None:
            return None
        return self._chance(int(n_sentences), self.k)

    @property
    def ident(self) -> str:
        """A safe identifier for column names of wide tables: ``p@1`` -> ``p_at_1``."""
        return self.name.replace("@", "_at_")

    def __repr__(self) -> str:
        return f"MetricSpec({self.name!r}, family={self.family!r}, directional={self.directional})"


def _zero(n: int, k: int | None) -> float:
    return 0.0


def _abs_r(n: int, k: int | None) -> float:
    return math.sqrt(2.0 / (math.pi * max(n - 1, 1)))


def _top_k(n: int, k: int | None) -> float:
    return min(1.0, (k or 1) / n)


def _knn(n: int, k: int | None) -> float:
    return min(1.0, (k or 1) / max(n - 1, 1))


_FIXED = (
    MetricSpec("cka", "cka", "linear CKA", False, (0.0, 1.0), True, kernel="cka"),
    MetricSpec("cka_debiased", "cka", "debiased CKA", False, (-1.0, 1.0), True, kernel="cka", _chance=_zero),
    MetricSpec("anc", "anc", "ANC (signed)", False, (-1.0, 1.0), True, kernel="anc", scale=(-1.0, 1.0), _chance=_zero),
    MetricSpec("anc_abs", "anc", "ANC (|r|)", False, (0.0, 1.0), True, kernel="anc", _chance=_abs_r),
    MetricSpec("mexa", "mexa", "MEXA alignment", False, (0.0, 1.0), False, kernel="cos"),
)
#: The metrics with a fixed name and an engine kernel, by canonical name.
METRICS: Mapping[str, MetricSpec] = MappingProxyType({s.name: s for s in _FIXED})

_PAIR = (
    MetricSpec("svcca", "svcca", "SVCCA (99% variance)", False, (0.0, 1.0), False, kernel="pair", min_n=3),
    MetricSpec("pwcca", "pwcca", "PWCCA (weights of a)", True, (0.0, 1.0), False, kernel="pair", min_n=3),
    MetricSpec("procrustes", "procrustes", "Procrustes similarity (1 - d²/2)", False, (0.0, 1.0), False,
               kernel="pair", min_n=2),
    MetricSpec("rsa", "rsa", "RSA (Spearman)", False, (-1.0, 1.0), False, kernel="pair", scale=(-1.0, 1.0),
               _chance=_zero, min_n=3),
)
#: The fixed-name metrics of the generic pairwise-function route (kernel ``"pair"``), by canonical name.
PAIR_METRICS: Mapping[str, MetricSpec] = MappingProxyType({s.name: s for s in _PAIR})


def _retrieval(k: int) -> MetricSpec:
    return MetricSpec(f"p@{k}", "retrieval", f"retrieval P@{k}", True, (0.0, 1.0), False, k=k, kernel="cos",
                      _chance=_top_k)


def _mknn(k: int) -> MetricSpec:
    return MetricSpec(f"mknn@{k}", "mknn", f"mutual {k}-NN", False, (0.0, 1.0), False, k=k, kernel="cos",
                      _chance=_knn)


def _cknna(k: int) -> MetricSpec:
    if k < 2:
        raise MetricError(f"cknna@{k}: CKNNA needs K >= 2 neighbours, e.g. cknna@10")
    # directional: the reference's unbiased HSIC of the non-symmetric masked kernels is not symmetric in K, L
    return MetricSpec(f"cknna@{k}", "cknna", f"CKNNA ({k}-NN)", True, (-1.0, 1.0), False, k=k, kernel="pair",
                      scale=None, min_n=max(4, k + 1))


def _procrustes_retrieval(k: int) -> MetricSpec:
    return MetricSpec(f"p_procrustes@{k}", "retrieval_procrustes", f"P@{k} after Procrustes (fit = test, optimistic)",
                      True, (0.0, 1.0), False, k=k, kernel="pair", min_n=max(2, k))


def _centered_retrieval(k: int) -> MetricSpec:
    return MetricSpec(f"p_cent@{k}", "retrieval_cent", f"P@{k} mean-centred", True, (0.0, 1.0), False, k=k,
                      kernel="pair", _chance=_top_k, min_n=max(2, k))


#: Families with a K: the name prefix before ``@`` -> the builder of ``prefix@K``.
FAMILIES: Mapping[str, Callable[[int], MetricSpec]] = MappingProxyType({
    "p": _retrieval, "mknn": _mknn, "cknna": _cknna, "p_procrustes": _procrustes_retrieval,
    "p_cent": _centered_retrieval})
#: Spellings accepted besides the canonical names (after lower-casing, ``_at_`` -> ``@``).
ALIASES: Mapping[str, str] = MappingProxyType({
    "cka_unbiased": "cka_debiased", "debiased_cka": "cka_debiased", "dcka": "cka_debiased",
    "anc_signed": "anc", "anc_absolute": "anc_abs", "mknn": "mknn@10", "retrieval": "p@1", "mexa_alignment": "mexa",
    "cknna": "cknna@10", "procrustes_similarity": "procrustes", "acc-procrustes": "p_procrustes@1",
    "acc_procrustes": "p_procrustes@1", "p_procrustes": "p_procrustes@1", "acc-cent": "p_cent@1",
    "acc_cent": "p_cent@1", "p_cent": "p_cent@1", "spearman_rsa": "rsa",
})
#: The default ``metrics=`` of :func:`~xling_probe.measures.engine.similarity`.
DEFAULT_METRICS: tuple[str, ...] = ("cka", "cka_debiased", "anc", "p@1", "mexa")
KNOWN = ("cka, cka_debiased, anc, anc_abs, p@K (retrieval, e.g. p@1, p@5), mexa, mknn@K (mutual k-NN, e.g. mknn@10), "
         "svcca, pwcca (directional), cknna@K (directional, e.g. cknna@10), procrustes, "
         "p_procrustes@K (retrieval after an "
         "orthogonal Procrustes map fitted on the same sentences), p_cent@K (retrieval after mean-centring), rsa")
_K_NAME = re.compile(r"^([a-z][a-z_]*)@(\d+)$")


def metric_spec(name: str | MetricSpec) -> MetricSpec:
    """The :class:`MetricSpec` of ``name`` in any accepted spelling (``"P@1"``, ``"p_at_1"``,
    ``"cka_unbiased"``, ``"mknn"`` = ``mknn@10``); :class:`MetricError` listing the known ones."""
    if isinstance(name, MetricSpec):
        return name
    if not isinstance(name, str):
        raise MetricError(f"a metric is a name such as 'cka' or 'p@1', got {name!r}; known metrics: {KNOWN}")
    text = name.strip().lower().replace(" ", "").replace("_at_", "@")
    text = ALIASES.get(text, text)
    if text in METRICS:
        return METRICS[text]
    if text in PAIR_METRICS:
        return PAIR_METRICS[text]
    m = _K_NAME.match(text)
    if m and m.group(1) in FAMILIES:
        k = int(m.group(2))
        if k < 1:
            raise MetricError(f"metric {name!r}: K must be at least 1, e.g. {m.group(1)}@1")
        return FAMILIES[m.group(1)](k)
    raise MetricError(f"unknown metric {name!r}; known metrics: {KNOWN}")


def parse_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """Canonical metric names from a name, a comma-separated string (``"cka,p@1"``) or names;
    duplicates dropped, order kept."""
    items = [p for p in metrics.split(",") if p.strip()] if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for item in items:
        name = metric_spec(item).name
        if name not in out:
            out.append(name)
    if not out:
        raise MetricError(f"no metric requested; choose from: {KNOWN}")
    return tuple(out)


def is_directional(metric: str) -> bool:
    """``metric_spec(metric).directional``: a -> b differs from b -> a (retrieval)."""
    return metric_spec(metric).directional


def cka_form(n_sentences: int, hidden: int, *, languages: int | None = None, pairs: int = 1, permutations: int = 0,
             bootstrap: int = 0, budget_gb: float | None = None) -> Literal["gram", "feature"]:
    """THE rule for which CKA form to compute: ``"feature"`` (D x D products) or ``"gram"`` (N x N).

    One pair, nothing shared (``languages=None``): the min(N, D) rule, the feature form when D < N.
    Many pairs sharing per-language products (``languages`` of them, ``pairs`` pairs, each with
    ``permutations`` nulls and ``bootstrap`` resamples): the cheaper total cost, where a Gram matrix is
    made once per language (O(N^2 D)) and then serves every pair and resample at O(N^2), while the
    feature form pays O(N D^2) per pair and per resample; with ``budget_gb``, the Gram form only when one
    layer of Gram matrices fits in half of it. Both forms give the same value (docs/science.md, "CKA").
    """
    n, d = int(n_sentences), int(hidden)
    if languages is None:
        return "feature" if d < n else "gram"
    g, p, r, b = int(languages), int(pairs), int(permutations), int(bootstrap)
    gram = g * n * n * d + p * n * n * (1 + r) + (2 * g + p) * n * n * b
    feature = (g + p) * n * d * d * (1 + b) + p * r * n * d * d
    fits = budget_gb is None or g * n * n * 8 <= budget_gb * 2**30 / 2
    return "gram" if gram <= feature and fits else "feature"


__all__ = ["ALIASES", "DEFAULT_METRICS", "FAMILIES", "KNOWN", "METRICS", "PAIR_METRICS", "MetricSpec", "cka_form",
           "is_directional",
           "metric_spec", "parse_metrics"]
