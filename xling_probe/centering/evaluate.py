"""How much language identity each layer carries, and how much centering and projection remove.

Language neutrality (Libovicky, Rosa & Fraser 2020; docs/science.md, "Language neutrality"). Evaluate per layer
before/after: retrieval P@1 over language pairs, language-identification accuracy of a probe
(held-out split; a cosine k-NN probe by default) and the share of variance explained by the
language means (between-language variance / total variance).

Fixed by construction (docs/science.md): after centering (and after the affine projection) every
language has the same mean on the fit split, so a *linear* probe trained there is at chance,
``1 / n_languages``, whatever the data; with ``centering="self"`` the centered variance share is 0
by definition. The default probe is therefore the k-NN probe, which measures the language
identity that is left; the report marks every value that is fixed (``report.by_construction``).

The corpus is split by sentence id into a fit split and a held-out split that share no
sentence. Everything that is learned (centering means, the language-ID probe, projection maps)
is learned on the fit split; every reported number is measured on the held-out split::

    acts = extract(model, corpus)                       # 1. activations
    report = neutrality(acts, split=100, projection="lstsq")   # 2. evaluation on held-out data
    report.summary()                                    # 3. per layer: how much centering gains
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..extraction.activations import Activations
from .estimators import PROJECTION_METHODS, LanguageCentering, LinearProjection, _check_activations
from ..data.corpus import split_ids
from ..errors import CorpusError, MetricError
from ..labels import resolve_pairs
from .result import CONDITIONS, NeutralityReport, by_construction_facts

CENTERING_MODES = ("fit", "self")


# ====================================================================== pure metrics
def language_variance_share(x: np.ndarray) -> np.ndarray:
    """Share of variance explained by the language means: between-language variance / total variance.

    ``x``: ``(..., n_languages, n_sentences, hidden)``; returns an array of shape ``(...)`` with
    values in [0, 1]. With language means ``m_l`` (over sentences) and grand mean ``m``:
    between = mean over l of ``||m_l - m||^2``; total = mean over (l, i) of ``||x_li - m||^2``
    (squared distances summed over the hidden dimensions).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 3 or x.shape[-3] < 2 or x.shape[-2] < 1:
        raise MetricError(
            f"variance share needs (..., languages >= 2, sentences, hidden), got shape {x.shape}"
        )
    lang_means = x.mean(axis=-2)
    grand = lang_means.mean(axis=-2)
    between = ((lang_means - grand[..., None, :]) ** 2).sum(axis=-1).mean(axis=-1)
    total = ((x - grand[..., None, None, :]) ** 2).sum(axis=-1).mean(axis=(-2, -1))
    if np.any(total == 0):
        raise MetricError("all representations are identical, so the variance share is undefined")
    return between / total


PROBES = ("logistic", "knn")


def language_id_accuracy(
    train: np.ndarray,
    test: np.ndarray,
    *,
    probe: str = "knn",
    max_iter: int = 200,
    C: float = 1.0,
    k: int = 5,
    seed: int = 0,
) -> float:
    """Held-out accuracy of a language-identification probe trained on ``train``, tested on ``test``.

    ``train``: ``(n_languages, n_train, hidden)``, ``test``: ``(n_languages, n_test, hidden)``;
    the label of a row is its language (axis 0). Chance level is ``1 / n_languages``.

    ``probe="knn"`` (default): each test row takes the majority language of its ``k`` most
    cosine-similar training rows (ties toward the first language).

    ``probe="logistic"`` (the linear probe): multinomial logistic regression (scikit-learn, lbfgs,
    L2 with inverse strength ``C``, at most ``max_iter`` iterations) on features standardised with
    the training mean and standard deviation. Note: when every language has the same mean in
    ``train`` (after centering on the training split, or after a projection with intercept fitted
    on it) the gradient of the loss vanishes at zero weights, so the optimum is the constant
    classifier and the accuracy is chance by construction: equal class means leave nothing for
    any linear classifier (Belrose et al. 2023, LEACE). What language identity survives there is
    not linear; ``probe="knn"`` measures it.
    """
    train, test = np.asarray(train), np.asarray(test)
    if train.ndim != 3 or test.ndim != 3 or train.shape[0] != test.shape[0] or train.shape[2] != test.shape[2]:
        raise MetricError(
            f"probe inputs must be (languages, sentences, hidden) with matching languages and hidden, "
            f"got {train.shape} and {test.shape}"
        )
    if probe not in PROBES:
        raise MetricError(f"probe must be one of {PROBES}, got {probe!r}")
    n_lang = train.shape[0]
    if n_lang < 2:
        raise MetricError("a language-identification probe needs at least 2 languages")
    xtr = train.reshape(-1, train.shape[2])
    xte = test.reshape(-1, test.shape[2])
    ytr = np.repeat(np.arange(n_lang), train.shape[1])
    yte = np.repeat(np.arange(n_lang), test.shape[1])
    if probe == "knn":
        predicted = _knn_predict(xtr, ytr, xte, k=k, n_classes=n_lang)
    else:
        predicted = _logistic_predict(xtr, ytr, xte, max_iter=max_iter, C=C, seed=seed)
    return float((predicted == yte).mean())


def _logistic_predict(xtr, ytr, xte, *, max_iter: int, C: float, seed: int) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(xtr)
    model = LogisticRegression(C=C, max_iter=max_iter, solver="lbfgs", random_state=seed)
    with warnings.catch_warnings():
        # a bounded max_iter keeps the probe fast; near-separable data may stop short of the optimum
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(scaler.transform(xtr), ytr)
    return model.predict(scaler.transform(xte))


def _knn_predict(xtr, ytr, xte, *, k: int, n_classes: int) -> np.ndarray:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(xtr):
        raise MetricError(f"k of the k-NN probe must be an int between 1 and {len(xtr)}, got {k!r}")

    def unit(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), np.finfo(np.float64).tiny)

    sims = unit(xte) @ unit(xtr).T
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    votes = np.zeros((len(xte), n_classes))
    np.add.at(votes, (np.arange(len(xte))[:, None], ytr[nearest]), 1.0)
    return votes.argmax(axis=1)


# ====================================================================== splits
def resolve_split(
    ids: Sequence[str], split: Any, seed: int = 0
) -> tuple[list[str], list[str]]:
    """``(fit_ids, heldout_ids)``: disjoint sentence ids.

    ``split`` is the held-out size (a fraction in (0, 1) or a number of sentences, drawn with
    ``seed`` by :func:`split_ids`) or an explicit pair ``(fit_ids, heldout_ids)``.
    """
    ids = list(ids)
    if isinstance(split, (float, int, np.integer, np.floating)) and not isinstance(split, bool):
        try:
            return split_ids(ids, split if isinstance(split, float) else int(split), seed=seed)
        except CorpusError as exc:
            raise MetricError(f"{exc}; choose a held-out size between 1 and {len(ids) - 1}") from None
    if not (isinstance(split, (tuple, list)) and len(split) == 2):
        raise MetricError(
            f"split must be a held-out size (fraction or count) or a pair (fit_ids, heldout_ids), got {split!r}"
        )
    fit, held = ([str(s) for s in part] for part in split)
    for name, part in (("fit", fit), ("held-out", held)):
        if len(set(part)) != len(part):
            raise MetricError(f"the {name} split lists some sentence ids more than once")
        unknown = [s for s in part if s not in set(ids)]
        if unknown:
            raise MetricError(f"the {name} split has ids that are not in the activations: {unknown[:5]}")
    overlap = sorted(set(fit) & set(held))
    if overlap:
        raise MetricError(
            f"the fit and held-out splits overlap in {len(overlap)} sentence id(s) (e.g. {overlap[:5]}); "
            "held-out sentences must never be seen when fitting: make the splits disjoint"
        )
    return fit, held


# ====================================================================== entry point
def _retrieval(held: Activations, pairs: list[tuple[str, str]], k: int) -> np.ndarray:
    """``(layer, pair, direction)`` retrieval P@k between the languages of ``held``, all layers at once."""
    from ..measures.metrics import retrieval_precision_batched

    out = np.empty((len(held.layers), len(pairs), 2))
    for pi, (a, b) in enumerate(pairs):
        x = held.data[:, held.language_index(a)]
        y = held.data[:, held.language_index(b)]
        out[:, pi, 0], out[:, pi, 1] = retrieval_precision_batched(x, y, k=k)
    return out


def neutrality(
    acts: Activations,
    split: Any = 0.5,
    *,
    seed: int = 0,
    centering: str = "fit",
    projection: str | None = None,
    pivot: str | None = None,
    pairs: Any = "all",
    k: int = 1,
    alpha: float = 0.0,
    layers: Sequence[int] | None = None,
    languages: Sequence[str] | None = None,
    probe: str = "knn",
    probe_max_iter: int = 200,
    probe_C: float = 1.0,
    probe_k: int = 5,
    progress: bool = True,
) -> NeutralityReport:
    """Language neutrality per layer on a held-out split, raw vs centered (vs projected).

    Parameters
    ----------
    acts:
        activations of a parallel corpus (>= 2 languages).
    split:
        held-out size (fraction in (0, 1) or number of sentences, seeded by ``seed``) or an
        explicit pair ``(fit_ids, heldout_ids)``; the two must not overlap.
    centering:
        ``"fit"`` (default): language means estimated on the fit split and subtracted from the
        held-out split. ``"self"``: the paper's setting, each split centered on its own means.
    projection:
        ``None``, ``"lstsq"`` or ``"procrustes"``: also map every language into ``pivot``'s space
        with a :class:`LinearProjection` fitted on the fit split's parallel pairs.
    pivot:
        target language of the projection and of ``pairs="pivot"`` (default: the first language).
    pairs:
        ``"all"`` language pairs, ``"pivot"`` (``pivot`` vs every other language), ``"pivot:en"``, or pairs
        (``"en-de,en-zh"`` or tuples) in the grammar of :func:`xling_probe.labels.parse_pairs`.
    k:
        retrieval precision at k (P@1 by default).
    alpha:
        ridge penalty of the least-squares projection.
    probe:
        language-ID probe: ``"knn"`` (default; cosine k-NN, which also sees language identity that
        is not linear) or ``"logistic"`` (linear; at chance by construction in the centered and
        projected conditions, see :func:`language_id_accuracy`: the report flags those values in
        ``report.by_construction``).
    probe_max_iter, probe_C, probe_k:
        iterations and inverse L2 strength of the logistic regression; neighbours of the k-NN probe.

    Returns a :class:`NeutralityReport`. Retrieval keeps both directions (``report.retrieval[...,
    0]`` = a -> b, ``1`` = b -> a); ``report.summary(direction=...)`` chooses 'both' (their mean),
    'forward' or 'backward'. Values fixed by construction are listed in ``report.by_construction``
    (see :func:`~xling_probe.centering.result.by_construction_facts`) and labelled in every table.
    """
    if isinstance(acts, Activations) and acts.lazy:
        # Store-backed: one layer in memory at a time. Every quantity is per layer (means, maps, probes,
        # the split is the same seeded one), so the merged report equals the whole-array one.
        if layers is not None or languages is not None:
            acts = acts.sel(layers=layers, languages=languages)
        one = dict(split=split, seed=seed, centering=centering, projection=projection, pivot=pivot, pairs=pairs, k=k,
                   alpha=alpha, probe=probe, probe_max_iter=probe_max_iter, probe_C=probe_C, probe_k=probe_k,
                   progress=False)
        from tqdm.auto import tqdm

        parts = [neutrality(acts.sel(layers=[layer]).in_memory(), **one)
                 for layer in tqdm(acts.layers, desc="neutrality (store)", unit="layer", disable=not progress)]
        first = parts[0]
        return replace(first, layers=tuple(x for p in parts for x in p.layers),
                       retrieval=np.concatenate([p.retrieval for p in parts], axis=1),
                       language_id=np.concatenate([p.language_id for p in parts], axis=1),
                       variance_share=np.concatenate([p.variance_share for p in parts], axis=1),
                       settings={**first.settings, "streamed": "one layer at a time from the store"})
    acts = _check_activations(acts, "activations")
    if layers is not None or languages is not None:
        acts = acts.sel(layers=layers, languages=languages)
    if len(acts.languages) < 2:
        raise MetricError(f"language neutrality needs at least 2 languages, got {list(acts.languages)}")
    if centering not in CENTERING_MODES:
        raise MetricError(f"centering must be one of {CENTERING_MODES}, got {centering!r}")
    if probe not in PROBES:
        raise MetricError(f"probe must be one of {PROBES}, got {probe!r}")
    if projection is not None and projection not in PROJECTION_METHODS:
        raise MetricError(f"projection must be None or one of {PROJECTION_METHODS}, got {projection!r}")
    pivot_code = acts.languages[acts.language_index(pivot)] if pivot is not None else acts.languages[0]
    pair_list = list(resolve_pairs(pairs, acts.languages, acts.labels, pivot=pivot_code, error=MetricError))

    fit_ids, held_ids = resolve_split(acts.ids, split, seed)
    for name, part in (("fit", fit_ids), ("held-out", held_ids)):
        if len(part) < 2:
            raise MetricError(f"the {name} split has {len(part)} sentence(s); it needs at least 2")
    # the two splits are separate objects from here on: nothing fitted below can see a held-out row
    fit = acts.sel(ids=fit_ids)
    held = acts.sel(ids=held_ids)

    if centering == "fit":
        centerer = LanguageCentering().fit(fit)
        views = {"raw": (fit, held), "centered": (centerer.transform(fit), centerer.transform(held))}
    else:
        views = {"raw": (fit, held),
                 "centered": (LanguageCentering().fit_transform(fit), LanguageCentering().fit_transform(held))}
    if projection is not None:
        projector = LinearProjection(pivot_code, method=projection, alpha=alpha).fit(fit)
        views["projected"] = (projector.transform(fit), projector.transform(held))
    conditions = tuple(c for c in CONDITIONS if c in views)

    n_layers = len(acts.layers)
    retrieval = np.empty((len(conditions), n_layers, len(pair_list), 2))
    language_id = np.empty((len(conditions), n_layers))
    variance_share = np.empty((len(conditions), n_layers))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(conditions) * n_layers, desc="neutrality", unit="layer", disable=not progress)
    for ci, cond in enumerate(conditions):
        train, test = views[cond]
        retrieval[ci] = _retrieval(test, pair_list, k)
        variance_share[ci] = language_variance_share(test.data)
        for li in range(n_layers):
            language_id[ci, li] = language_id_accuracy(
                train.data[li], test.data[li], probe=probe, max_iter=probe_max_iter, C=probe_C, k=probe_k,
                seed=seed,
            )
            bar.update(1)
    bar.close()

    settings = {
        "centering": centering, "projection": projection, "pivot": pivot_code, "seed": seed, "k": k,
        "alpha": alpha,
        "probe": ({"name": "logistic", "model": "LogisticRegression(lbfgs) on standardised features",
                   "max_iter": probe_max_iter, "C": probe_C} if probe == "logistic"
                  else {"name": "knn", "model": "cosine k-NN, majority vote", "k": probe_k}),
        "model": acts.meta.get("model"), "pooling": acts.meta.get("pooling"),
    }
    return NeutralityReport(
        conditions=conditions, layers=tuple(acts.layers), languages=tuple(acts.languages),
        pairs=tuple(pair_list), retrieval=retrieval, language_id=language_id, variance_share=variance_share,
        chance=1.0 / len(acts.languages), fit_ids=tuple(fit_ids), heldout_ids=tuple(held_ids), settings=settings,
        by_construction=by_construction_facts(conditions, probe=probe, centering=centering,
                                              n_languages=len(acts.languages)),
    )
