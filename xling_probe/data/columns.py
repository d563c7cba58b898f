"""Reading a table's column labels as languages: the shared step of every corpus loader.

:func:`read_labels` reads each column label as one canonical code (with a corpus convention,
:mod:`.conventions`); :func:`pick_columns` keeps the columns that ``languages=`` names, in any
spelling (:func:`xling_probe.labels.resolve_language`); :func:`warn_code_notes` reports, in one
warning, the convention table entries used.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import CorpusError, LanguageCodeError
from ..labels import resolve_language
from .conventions import CONVENTIONS, CodeReading
from .languages import normalize_code, read_code


def read_labels(columns: Iterable[Any], conventions: str | None) -> tuple[dict[str, str], dict[str, CodeReading]]:
    """``({canonical code: label}, {label: CodeReading})`` of the column labels.

    Raises :class:`LanguageCodeError` listing every label that is not a language code, and
    :class:`CorpusError` when two labels read as the same language (``fr`` and ``fra``).
    """
    canon: dict[str, str] = {}
    readings: dict[str, CodeReading] = {}
    unknown = []
    for label in columns:
        try:
            reading = read_code(str(label), conventions)
        except LanguageCodeError:
            unknown.append(label)
            continue
        code = reading.code
        if code in canon:
            raise CorpusError(
                f"columns {canon[code]!r} and {label!r} are the same language ({code}); keep one of them"
            )
        canon[code] = str(label)
        readings[str(label)] = reading
    if unknown:
        raise LanguageCodeError(
            f"unknown language code(s) in the column names: {', '.join(map(repr, unknown))}. "
            "Use ISO 639 codes ('fr', 'fra', 'fra_Latn'); pass languages=[...] to choose columns, "
            "or ignore_columns=[...] for columns that are not languages."
        )
    return canon, readings


def pick_columns(table: Mapping[str, Sequence[Any]], languages: Iterable[str], conventions: str | None) -> dict[str, Sequence[Any]]:
    """The columns of ``table`` that ``languages`` name (any spelling), in the order asked.

    Raises :class:`LanguageCodeError` listing every language the table does not have.
    """
    wanted = list(languages)
    available = {}
    for name in table:
        try:
            available[normalize_code(name, conventions)] = name
        except LanguageCodeError:
            pass
    cols = {}
    missing = []
    for lang in wanted:
        try:
            code = resolve_language(normalize_code(lang, conventions), list(available))
        except LanguageCodeError:
            missing.append(lang)
            continue
        cols[available[code]] = table[available[code]]
    if missing:
        raise LanguageCodeError(
            f"language(s) not in the corpus: {', '.join(map(repr, missing))}; "
            f"the corpus has: {', '.join(available.values())}"
        )
    return cols


def clean_cell(value: Any) -> str:
    """The text of one table cell: stripped, with None and NaN (a missing translation) as ''."""
    if value is None:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    return str(value).strip()


def warn_code_notes(readings: Iterable[CodeReading]) -> None:
    """One warning that lists the convention table entries used (a summary when there are many)."""
    notes = [r for r in readings if r.note]
    if not notes:
        return
    if len(notes) <= 3:
        text = "; ".join(r.note for r in notes)
    else:
        conventions = sorted({CONVENTIONS[r.convention].title for r in notes if r.convention in CONVENTIONS})
        shown = ", ".join(f"{r.label} -> {r.code}" for r in notes[:6])
        text = f"{len(notes)} language codes read by the {'/'.join(conventions)} convention ({shown}" + (
            ", ...)" if len(notes) > 6 else ")")
    warnings.warn(f"{text}. See corpus.code_readings() for every label.", stacklevel=4)
