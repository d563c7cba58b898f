"""``xling-probe report``: every stage on one model and corpus, written as one self-contained HTML page.

- :mod:`.build`: :func:`build_report` runs the stages and collects sections, tables and figures.
- :mod:`.captions`: the sentence under each figure, computed from its numbers.
- :mod:`.html`: the page and its texts (how to read each figure).
- :mod:`.write`: the files (HTML, PNG/SVG, CSV, manifest.json).
"""

from .build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
