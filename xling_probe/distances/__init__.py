"""Language distance as an explanation of representation similarity.

- :mod:`.uriel`: :func:`language_distances`, URIEL+ distances (syntactic, phonological, inventory, genetic,
  geographic, featural, morphological) and script identity, as languages x languages tables.
- :mod:`.codes`: our codes -> URIEL's ISO 639-3 codes, and the script of a language.
- :mod:`.mantel`: :func:`mantel`, :func:`partial_mantel` (permutation tests over the upper triangles) and
  :func:`distance_correlations`, per layer, similarity vs each distance kind, controlling for script.
- :mod:`.figure`: :func:`distance_correlation_figure`, correlation vs layer per distance kind (plotly, loaded on use).

Definitions: docs/science.md, "Language distance as an explanation".
"""

from .figure import distance_correlation_figure
from .codes import iso639_3_candidates, script_of_code, scripts_from_texts, to_iso639_3
from .mantel import MantelResult, distance_correlations, mantel, partial_mantel
from .uriel import DEFAULT_KINDS, KINDS, LanguageDistances, angular_distances, language_distances

__all__ = ["DEFAULT_KINDS", "KINDS", "LanguageDistances", "MantelResult", "angular_distances",
           "distance_correlation_figure", "distance_correlations", "iso639_3_candidates", "language_distances",
           "mantel", "partial_mantel",
           "script_of_code", "scripts_from_texts", "to_iso639_3"]
