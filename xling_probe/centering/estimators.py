"""Language centering and explicit linear projections between languages.

Definitions (Libovicky, Rosa & Fraser 2020; see docs/science.md, "Language neutrality"):

- Centering: subtract the per-language mean vector (estimated per layer) from each
  representation. Estimate the means on a fit split, evaluate on a held-out split (the paper also
  centers on the evaluation set itself: both are offered, the held-out form is the default).
- Explicit projection: fit a linear map from language A to language B on parallel training pairs
  (least squares, affine; and orthogonal Procrustes as an option), evaluate on held-out pairs.

Both estimators follow the scikit-learn contract: ``fit`` learns attributes whose names end in an
underscore, ``transform`` applies them, using an estimator before ``fit`` raises
:class:`NotFittedError`. Both take and return :class:`Activations`, so labels travel with the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..extraction.activations import Activations
from ..errors import MetricError, NotFittedError
from ..linalg import orthogonal_procrustes, ridge_solve, robust_lstsq
from .scores import ProjectionScores

PROJECTION_METHODS = ("lstsq", "procrustes")


def _check_activations(acts: Any, what: str, *, stream: bool = False) -> Activations:
    """``acts`` checked (an Activations of finite numbers). With ``stream``, store-backed activations stay
    lazy (checked one layer at a time); otherwise they are read into memory."""
    if not isinstance(acts, Activations):
        raise MetricError(
            f"{what} must be an Activations object (from extract() or Activations.load()), "
            f"got {type(acts).__name__}"
        )
    if acts.lazy and stream:
        for layer in range(len(acts.layers)):
            if not np.isfinite(np.asarray(acts.data[layer]).sum(dtype=np.float64)):
                raise MetricError(f"{what} contain NaN or infinite values at layer {acts.layers[layer]}; "
                                  "re-extract them (e.g. in float32)")
        return acts
    acts = acts.in_memory()
    if not np.all(np.isfinite(acts.data)):
        raise MetricError(f"{what} contain NaN or infinite values; re-extract them (e.g. in float32)")
    return acts


def _layers(acts: Activations):
    """``(position, one layer's data [language, sentence, hidden])``, read one layer at a time from a store."""
    for i in range(len(acts.layers)):
        yield i, np.asarray(acts.data[i])


def _check_fitted(estimator: Any, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise NotFittedError(
            f"this {type(estimator).__name__} is not fitted yet; call fit() on a fit split first"
        )


def _check_transform_input(estimator: Any, attribute: str, acts: Any, what: str, *,
                           stream: bool = False) -> Activations:
    """``acts`` checked against a fitted estimator: fitted at all, valid, and of the fitted width."""
    _check_fitted(estimator, attribute)
    acts = _check_activations(acts, what, stream=stream)
    if acts.hidden_size != estimator.n_features_in_:
        raise MetricError(
            f"activations have hidden size {acts.hidden_size} but this {type(estimator).__name__} was "
            f"fitted on {estimator.n_features_in_}; use activations of the same model"
        )
    return acts


def _fitted_layer_positions(acts: Activations, fitted_layers: tuple[int, ...], name: str) -> list[int]:
    """Positions in ``fitted_layers`` of each layer of ``acts``; unfitted layers are an error."""
    missing = [layer for layer in acts.layers if layer not in fitted_layers]
    if missing:
        raise NotFittedError(
            f"layers {missing} were not fitted by this {name} (fitted layers: {list(fitted_layers)}); "
            "fit on activations that contain them"
        )
    return [fitted_layers.index(layer) for layer in acts.layers]


# ====================================================================== centering
class LanguageCentering:
    """Per-layer, per-language mean subtraction (language centering).

    Centering: subtract the per-language mean vector (estimated per layer) from each
    representation. Estimate the means on a fit split with :meth:`fit`, then :meth:`transform`
    a held-out split (the default, leakage-free form). The paper's setting, centering the
    evaluation set on itself, is ``fit_transform(evaluation_acts)``.

    Fitted attributes
    -----------------
    means_:
        float64 ``(n_layers, n_languages, hidden)``: the mean representation of each language
        at each layer over the fit sentences.
    layers_, languages_:
        the labels of axes 0 and 1 of ``means_``.
    fit_ids_:
        the sentence ids the means were estimated on.
    n_features_in_:
        the hidden size.
    """

    def fit(self, acts: Activations) -> LanguageCentering:
        """Estimate the per-layer, per-language means on ``acts`` (a fit split, >= 2 sentences).

        Store-backed activations are read one layer at a time (memory: one layer, not the store)."""
        acts = _check_activations(acts, "activations to fit the centering on", stream=True)
        if acts.n_sentences < 2:
            raise MetricError(
                f"centering needs at least 2 sentences per language to estimate a mean, got "
                f"{acts.n_sentences}; use a larger fit split"
            )
        if acts.lazy:
            self.means_ = np.stack([x.mean(axis=1, dtype=np.float64) for _, x in _layers(acts)])
        else:
            self.means_ = acts.data.mean(axis=2, dtype=np.float64)
        self.layers_ = tuple(acts.layers)
        self.languages_ = tuple(acts.languages)
        self.fit_ids_ = tuple(acts.ids)
        self.n_features_in_ = acts.hidden_size
        return self

    def transform(self, acts: Activations) -> Activations:
        """Subtract from each sentence the fitted mean of its own language at its layer.

        Returns :class:`Activations` with the same labels (float32, same shape) and
        ``meta["centering"]`` recording where the means came from. Store-backed activations give
        store-backed centred ones (:class:`~xling_probe.extraction.zarr_store.ShiftedArray`: the means are
        subtracted from what each read returns, so nothing is copied; the same numbers as in memory).
        """
        acts = _check_transform_input(self, "means_", acts, "activations to center", stream=True)
        unknown = [lang for lang in acts.languages if lang not in self.languages_]
        if unknown:
            raise NotFittedError(
                f"languages {unknown} were not fitted by this LanguageCentering (fitted: "
                f"{list(self.languages_)}); fit on activations that contain them"
            )
        li = _fitted_layer_positions(acts, self.layers_, "LanguageCentering")
        gi = [self.languages_.index(lang) for lang in acts.languages]
        means = self.means_[np.ix_(li, gi)]
        if acts.lazy:
            from ..extraction.zarr_store import ShiftedArray

            centered = ShiftedArray.of(acts.data, means)
        else:
            centered = (acts.data - means[:, :, None, :]).astype(np.float32)
        on_itself = tuple(acts.ids) == self.fit_ids_
        return acts.replace(
            centered,
            centering={
                "means_from": "itself" if on_itself else "fit split",
                "n_fit_sentences": len(self.fit_ids_),
            },
        )

    def fit_transform(self, acts: Activations) -> Activations:
        """Center ``acts`` on its own means (the paper's setting of centering the evaluation set on itself)."""
        return self.fit(acts).transform(acts)

    def __repr__(self) -> str:
        if not hasattr(self, "means_"):
            return "LanguageCentering(unfitted)"
        return (
            f"LanguageCentering(layers={len(self.layers_)}, languages={list(self.languages_)}, "
            f"fit sentences={len(self.fit_ids_)})"
        )


# ====================================================================== projections
def _shared_ids(source: Activations, target: Activations) -> list[str]:
    in_target = set(target.ids)
    return [sid for sid in source.ids if sid in in_target]


def fit_linear_map(
    x: np.ndarray, y: np.ndarray, method: str = "lstsq", alpha: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """A map ``y ~ x @ coef + intercept`` fitted on paired rows; returns ``(coef [D_x, D_y], intercept [D_y])``.

    ``lstsq``: affine least squares, minimises ``||x W + b - y||^2 + alpha ||W||^2`` (the
    intercept is not penalised; ``alpha = 0`` gives the minimum-norm solution when there are
    fewer pairs than dimensions). ``procrustes``: orthogonal Procrustes with translation,
    ``W = U V^T`` from the SVD ``U S V^T`` of ``(x - mean x)^T (y - mean y)``, the orthogonal
    ``W`` closest to mapping the centred ``x`` onto the centred ``y``; ``b = mean y - mean x W``.
    With fewer pairs than dimensions that ``W`` is not unique: the one closest to the identity is
    returned (the identity on directions orthogonal to every centred x and y row). Computed in
    float64 through :mod:`xling_probe.linalg` (SVD driver fallback, N-side formulation when N < D).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    if method == "lstsq":
        coef = ridge_solve(xc, yc, alpha) if alpha > 0 else robust_lstsq(xc, yc)
    elif method == "procrustes":
        if x.shape[1] != y.shape[1]:
            raise MetricError(
                f"Procrustes needs the same width on both sides, got {x.shape[1]} and {y.shape[1]}; use 'lstsq'"
            )
        coef = orthogonal_procrustes(xc, yc)
    else:
        raise MetricError(f"unknown projection method {method!r}; choose one of {PROJECTION_METHODS}")
    return coef, my - mx @ coef


class LinearProjection:
    """Explicit projection of one or more languages into a target (pivot) language's space.

    Explicit projection: fit a linear map from language A to language B on parallel training
    pairs (least squares, affine; and orthogonal Procrustes as an option), evaluate on held-out
    pairs. One map per layer and per source language; ``transform`` maps each fitted source
    language and leaves the target (and any other language) unchanged.

    Parameters
    ----------
    target:
        language B, the space mapped into (a pivot such as ``"en"``).
    sources:
        language(s) A; ``None`` = every other language of the fit activations.
    method:
        ``"lstsq"`` (affine least squares) or ``"procrustes"`` (orthogonal map plus translation).
    alpha:
        ridge penalty for ``lstsq`` (0 = plain least squares). With fewer fit pairs than hidden
        dimensions plain least squares interpolates the fit pairs (minimum-norm solution) and
        Procrustes is free on the directions the pairs do not span (the map closest to the identity
        is returned, see :func:`fit_linear_map`): use more pairs or ``alpha > 0``.

    Store-backed activations are fitted one layer at a time (the sources' and the target's rows of that
    layer in memory); the fitted maps themselves are ``layers x sources x hidden^2`` floats, which for
    hundreds of languages is the dominant size: fit the sources you study. ``transform`` and ``evaluate``
    read their input into memory.

    Fitted attributes
    -----------------
    coef_:
        float32 ``(n_layers, n_sources, hidden, hidden)``; source row vectors map as ``x @ coef_``.
    intercept_:
        float32 ``(n_layers, n_sources, hidden)``.
    layers_, sources_, target_, fit_ids_, n_features_in_.
    """

    def __init__(
        self,
        target: str,
        sources: str | Sequence[str] | None = None,
        *,
        method: str = "lstsq",
        alpha: float = 0.0,
    ) -> None:
        if method not in PROJECTION_METHODS:
            raise MetricError(f"unknown projection method {method!r}; choose one of {PROJECTION_METHODS}")
        if alpha < 0:
            raise MetricError(f"alpha must be >= 0, got {alpha}")
        self.target = target
        self.sources = [sources] if isinstance(sources, str) else sources
        self.method = method
        self.alpha = float(alpha)

    # ---------------------------------------------------------------- pairing
    def _pairs(
        self, acts: Activations, target_acts: Activations | None, sources: Sequence[str], what: str
    ) -> tuple[Activations, Activations, list[str]]:
        """Source and target activations restricted to their shared sentence ids (same order)."""
        target_acts = acts if target_acts is None else _check_activations(target_acts, f"target {what}",
                                                                           stream=acts.lazy)
        ids = _shared_ids(acts, target_acts)
        if len(ids) < 2:
            raise MetricError(
                f"the source and target activations share {len(ids)} sentence id(s); a projection is "
                "fitted and evaluated on parallel pairs (the same ids in both): extract both languages "
                "from one parallel corpus"
            )
        src = acts.sel(layers=acts.layers, languages=sources, ids=ids)
        tgt = target_acts.sel(layers=acts.layers, languages=[self.target_], ids=ids)
        return src, tgt, ids

    def fit(self, acts: Activations, target_acts: Activations | None = None) -> LinearProjection:
        """Fit one map per layer and source language on the parallel pairs of a fit split.

        ``acts`` holds the source languages (and the target unless ``target_acts`` is given);
        pairs are matched by sentence id.
        """
        acts = _check_activations(acts, "activations to fit the projection on", stream=True)
        if target_acts is not None:
            target_acts = _check_activations(target_acts, "target activations to fit the projection on", stream=True)
        holder = acts if target_acts is None else target_acts
        self.target_ = holder.languages[holder.language_index(self.target)]
        if self.sources is None:
            sources = [lang for lang in acts.languages if lang != self.target_]
        else:
            sources = [acts.languages[acts.language_index(s)] for s in self.sources]
        if self.target_ in sources:
            raise MetricError(f"the target language {self.target_!r} cannot also be a source")
        if not sources:
            raise MetricError(
                f"no source language to project into {self.target_!r}; the activations hold only "
                f"{list(acts.languages)}"
            )
        src, tgt, ids = self._pairs(acts, target_acts, sources, "activations to fit the projection on")
        n_layers, n_src, _, width = src.data.shape
        coef = np.empty((n_layers, n_src, width, width), dtype=np.float32)
        intercept = np.empty((n_layers, n_src, width), dtype=np.float32)
        for li in range(n_layers):  # store-backed: one layer of the sources and the target read at a time
            y = np.asarray(tgt.data[li, 0])
            x = np.asarray(src.data[li])
            for si in range(n_src):
                coef[li, si], intercept[li, si] = fit_linear_map(x[si], y, self.method, self.alpha)
        self.coef_, self.intercept_ = coef, intercept
        self.layers_ = tuple(acts.layers)
        self.sources_ = tuple(sources)
        self.fit_ids_ = tuple(ids)
        self.n_features_in_ = width
        return self

    def transform(self, acts: Activations) -> Activations:
        """Map every fitted source language present in ``acts`` into the target space."""
        acts = _check_transform_input(self, "coef_", acts, "activations to project")
        li = _fitted_layer_positions(acts, self.layers_, "LinearProjection")
        data = acts.data.copy()
        mapped = []
        for gi, lang in enumerate(acts.languages):
            if lang not in self.sources_:
                continue
            si = self.sources_.index(lang)
            for out, fi in enumerate(li):
                data[out, gi] = acts.data[out, gi] @ self.coef_[fi, si] + self.intercept_[fi, si]
            mapped.append(lang)
        return acts.replace(
            data, projection={"method": self.method, "target": self.target_, "mapped": mapped,
                              "n_fit_pairs": len(self.fit_ids_)}
        )

    def evaluate(
        self, acts: Activations, target_acts: Activations | None = None, *, allow_fit_ids: bool = False
    ) -> ProjectionScores:
        """Score the maps on held-out parallel pairs: retrieval P@1 before/after and R^2 per layer and source.

        Pairs that were used in :meth:`fit` are refused (they would flatter the map) unless
        ``allow_fit_ids=True``.
        """
        from ..measures.metrics import retrieval_precision_batched

        _check_fitted(self, "coef_")
        acts = _check_activations(acts, "activations to evaluate the projection on")
        sources = [s for s in self.sources_ if s in acts.languages]
        if not sources:
            raise MetricError(
                f"none of the fitted source languages {list(self.sources_)} is in these activations "
                f"({list(acts.languages)})"
            )
        src, tgt, ids = self._pairs(acts, target_acts, sources, "activations to evaluate the projection on")
        leaked = set(ids) & set(self.fit_ids_)
        if leaked and not allow_fit_ids:
            raise MetricError(
                f"{len(leaked)} evaluation pair(s) were used to fit the projection (e.g. "
                f"{sorted(leaked)[:3]}); evaluate on held-out pairs, or pass allow_fit_ids=True"
            )
        mapped = self.transform(src)
        p_at_1 = np.empty((len(src.layers), len(sources), 2, 2))
        y = tgt.data[:, 0].astype(np.float64)  # [layer, N, D]
        sst = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=(1, 2))
        if np.any(sst == 0):
            raise MetricError("the target language is constant at some layer; R^2 is undefined there")
        r2 = np.empty((len(src.layers), len(sources)))
        for si in range(len(sources)):
            for ki, x in enumerate((src.data[:, si], mapped.data[:, si])):
                fwd, back = retrieval_precision_batched(x, y, k=1)
                p_at_1[:, si, 0, ki], p_at_1[:, si, 1, ki] = fwd, back
            r2[:, si] = 1.0 - ((mapped.data[:, si] - y) ** 2).sum(axis=(1, 2)) / sst
        return ProjectionScores(
            layers=tuple(src.layers), sources=tuple(sources), target=self.target_, method=self.method,
            p_at_1=p_at_1, r2=r2, ids=tuple(ids), meta={"alpha": self.alpha, "n_fit_pairs": len(self.fit_ids_)},
        )

    def __repr__(self) -> str:
        state = "unfitted" if not hasattr(self, "coef_") else f"fitted on {len(self.fit_ids_)} pairs"
        return f"LinearProjection(target={self.target!r}, sources={self.sources!r}, method={self.method!r}, {state})"
