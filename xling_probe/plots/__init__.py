"""Figure builders (result in, plotly Figure out) with one paper style, and static export.

Builders: :func:`similarity_curves`, :func:`neutrality_curves`, :func:`latent_language`,
:func:`language_heatmap` (orders and filters of many languages: :mod:`.ordering`), :func:`cross_layer_heatmap`, :func:`lens_heatmap`, :func:`embedding_map`;
language neurons (:mod:`.neurons`): :func:`neurons_per_layer`, :func:`neuron_overlap`, :func:`perplexity_change_heatmap`;
interventions (:mod:`.interventions`): :func:`intervention_curves`, :func:`intervention_heatmap`, :func:`next_token_bars`;
transliteration (:mod:`.transliteration`): :func:`transliteration_curves`.
Style: the plotly template ``"xling_paper"`` and :func:`language_color`. Export:
:func:`save_figure` / :func:`save_figures` (PNG at a DPI, SVG, PDF through kaleido + Chromium).
"""

from .curves import latent_language, neutrality_curves, similarity_curves
from .embedding import embedding_map, project_2d
from .export import find_chromium, save_figure, save_figures
from .heatmaps import cross_layer_heatmap, language_heatmap, lens_heatmap
from .interventions import intervention_curves, intervention_heatmap, next_token_bars
from .neurons import neuron_overlap, neurons_per_layer, perplexity_change_heatmap
from .ordering import cluster_order, order_languages, select_languages
from .transliteration import transliteration_curves
from .style import LANGUAGE_COLORS, OKABE_ITO, TEMPLATE, language_color, register

__all__ = [
    "LANGUAGE_COLORS", "OKABE_ITO", "TEMPLATE", "cluster_order", "cross_layer_heatmap", "embedding_map", "find_chromium",
    "intervention_curves", "intervention_heatmap", "language_color", "language_heatmap", "latent_language", "lens_heatmap", "neuron_overlap", "neurons_per_layer",
    "neutrality_curves", "next_token_bars", "perplexity_change_heatmap",
    "order_languages", "project_2d", "register", "save_figure", "save_figures", "select_languages", "similarity_curves",
    "transliteration_curves",
]
