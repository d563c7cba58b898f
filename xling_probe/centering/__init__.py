"""Language centering, linear maps between languages, and the language-neutrality evaluation.

- :mod:`.estimators`: :class:`LanguageCentering` and :class:`LinearProjection` (fit / transform / evaluate).
- :mod:`.evaluate`: :func:`neutrality`, per layer on a held-out split, raw vs centered (vs projected).
- :mod:`.quality`: :func:`map_quality`, how orthogonal each fitted map is (per layer and source).
- :mod:`.result`: :class:`NeutralityReport`, with every value that is fixed by construction labelled.
"""

from .estimators import LanguageCentering, LinearProjection, ProjectionScores
from .evaluate import neutrality
from .quality import map_quality, orthogonality_deviation
from .result import NeutralityReport

__all__ = ["LanguageCentering", "LinearProjection", "NeutralityReport", "ProjectionScores", "map_quality", "neutrality",
           "orthogonality_deviation"]
