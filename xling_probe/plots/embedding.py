"""2-D maps of sentence representations at one layer, coloured by language, before/after centering.

PCA (default, fast, exact): centre the rows of X [n_points, hidden] and project on the first two
right singular vectors of the centred matrix (:func:`~xling_probe.linalg.robust_svd`, which falls
back across LAPACK drivers); each component's sign is fixed so that its largest-magnitude loading
is positive, so the map is deterministic. UMAP (umap-learn) is the
non-linear alternative, seeded with ``random_state``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import MetricError
from ..linalg import robust_svd
from .style import TEMPLATE, language_color, register

if TYPE_CHECKING:
    from ..extraction.activations import Activations

METHODS = ("pca", "umap")


def project_2d(x: np.ndarray, method: str = "pca", *, seed: int = 0, return_variance: bool = False
               ) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
    """``x`` [n_points, hidden] -> [n_points, 2] coordinates (PCA via SVD, or UMAP seeded by ``seed``).

    ``return_variance=True`` returns ``(coordinates, ratio)``: ``ratio`` [2] is the share of the
    total variance of ``x`` that each PCA component explains (``s_i**2 / sum(s**2)`` of the centred
    matrix, sklearn's ``explained_variance_ratio_``), None for UMAP (its axes have no units)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise MetricError(f"a 2-D map needs a [points, hidden] matrix with >= 3 points, got shape {x.shape}")
    if method == "pca":
        xc = x - x.mean(axis=0)
        _, sv, vt = robust_svd(xc)
        comps = vt[:2]
        signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
        out = xc @ (comps * signs[:, None]).T
        out = out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
        if not return_variance:
            return out
        power = sv ** 2
        total = float(power.sum())
        ratio = np.zeros(2) if total <= 0 else np.pad(power[:2] / total, (0, max(0, 2 - len(power[:2]))))
        return out, ratio
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise MetricError("method='umap' needs umap-learn: pip install umap-learn (or use method='pca')") from None
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, x.shape[0] - 1), random_state=seed)
        out = np.asarray(reducer.fit_transform(x), dtype=np.float64)
        return (out, None) if return_variance else out
    raise MetricError(f"method must be one of {METHODS}, got {method!r}")


def axis_titles(method: str, ratio: np.ndarray | None = None) -> tuple[str, str]:
    """Axis titles of a 2-D map: ``PC1 (23.4% of variance)`` for PCA with its explained-variance
    ratio, ``UMAP 1`` / ``UMAP 2`` (no units: UMAP distances are not variances)."""
    if method == "pca":
        if ratio is None:
            return "PC1", "PC2"
        return tuple(f"PC{i + 1} ({100 * float(r):.1f}% of variance)" for i, r in enumerate(ratio[:2]))  # type: ignore[return-value]
    return "UMAP 1", "UMAP 2"


def embedding_map(acts: Activations, layer: int, *, method: str = "pca", centering: bool = True, seed: int = 0,
                  title: str | None = None) -> go.Figure:
    """Sentences of every language at ``layer`` (residual-stream index) in 2-D, one colour per language.

    With ``centering=True`` a second panel shows the same sentences after language centering
    (each language's mean at this layer, estimated on these sentences, subtracted): clusters by
    language in the left panel that merge in the right one are the language-specific offset.
    Hover shows the sentence id (and text when the activations carry texts). PCA axes carry each
    panel's explained variance (``PC1 (23.4% of variance)``, :func:`axis_titles`; the ratios are in
    ``fig.layout.meta["explained_variance_ratio"]``); UMAP axes are ``UMAP 1`` / ``UMAP 2``, no units.
    """
    register()
    from ..centering.estimators import LanguageCentering

    one = acts.sel(layers=[layer])
    views = [("raw", one)]
    if centering:
        views.append(("centered", LanguageCentering().fit_transform(one)))
    fig = make_subplots(rows=1, cols=len(views), subplot_titles=[f"{name} ({method.upper()})" for name, _ in views],
                        horizontal_spacing=0.08)
    n_lang, n = len(one.languages), one.n_sentences
    variance: dict[str, list[float]] = {}
    for col, (name, view) in enumerate(views, start=1):
        xy, ratio = project_2d(view.data[0].reshape(n_lang * n, -1), method, seed=seed, return_variance=True)
        xy = xy.reshape(n_lang, n, 2)
        for gi, lang in enumerate(view.languages):
            texts = (view.texts or {}).get(lang)
            hover = [f"{lang} {sid}" + (f"<br>{texts[i][:80]}" if texts else "") for i, sid in enumerate(view.ids)]
            fig.add_trace(go.Scatter(x=xy[gi, :, 0], y=xy[gi, :, 1], mode="markers", name=lang, legendgroup=lang,
                                     showlegend=col == 1, text=hover, hovertemplate="%{text}<extra></extra>",
                                     marker=dict(color=language_color(lang), size=6, opacity=0.85,
                                                 line=dict(width=0.5, color="white"))), 1, col)
        # each panel has its own PCA, so its own explained variance
        x_title, y_title = axis_titles(method, ratio)
        fig.update_xaxes(title_text=x_title, showticklabels=method == "pca", row=1, col=col)
        fig.update_yaxes(title_text=y_title, showticklabels=method == "pca", row=1, col=col)
        if ratio is not None:
            variance[name] = [float(r) for r in ratio]
    fig.update_layout(template=TEMPLATE, width=500 * len(views), height=460,
                      title=title or f"Sentence representations at layer {layer}",
                      meta={"explained_variance_ratio": variance} if variance else None)
    return fig
