"""Word lists for the logit lens: the same concepts written in several languages.

A word list is a table with one row per concept and one column per language code (``en``,
``fr``, ``zh``...), optionally a ``concept`` column (an id; default: the English word, else the
row number) and extra columns that are not languages (``cloze_fr`` sentences for cloze prompts,
``notes``). A cell may hold alternatives separated by ``|`` (``Blume|Blüte``): the first one is
written in prompts, the token set of the word is the union over all of them. Empty cells mean
"no word in this language" and drop the concept for analyses that need that language.

The bundled list (``xling_probe/data/words.csv``, described in ``words.md``) is the default.
The word lists of Wendler et al. (2024) are read as published too: one ``clean.csv`` per
language folder with columns ``lang``, ``word_original`` (the English word) and
``word_translation`` (the word in ``lang``), plus extra columns (``blank_prompt_*``, ``error``)
that are kept as ``wendler_<column>_<lang>`` extras; see :meth:`WordList.from_wendler`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import LanguageCodeError, LensError
from ..data.languages import normalize_code
from ..labels import resolve_language

WORDS_FILE = "words.csv"
#: Separator of alternative spellings inside one cell.
ALT_SEP = "|"
#: Columns that are never read as languages.
META_COLUMNS = frozenset({"concept", "id", "notes", "note", "category", "pos", "source"})
CLOZE_PREFIX = "cloze_"
#: Prefix of the extra columns kept from Wendler et al.'s files (never read as languages).
WENDLER_PREFIX = "wendler_"
#: The columns that make a CSV a Wendler et al. word-list file.
WENDLER_COLUMNS = ("lang", "word_original", "word_translation")
WENDLER_FILE = "clean.csv"


@dataclass(frozen=True, eq=False)
class WordList:
    """Concepts (rows) written in several languages (columns).

    ``words[lang][i]`` is a tuple of alternative spellings of concept ``concepts[i]`` in
    ``lang`` (a canonical code); an empty tuple means the cell was empty. ``extras[name][i]``
    holds the non-language columns (``cloze_fr``...), ``labels[lang]`` the column name as the
    file wrote it.
    """

    concepts: tuple[str, ...]
    words: Mapping[str, tuple[tuple[str, ...], ...]]
    extras: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.concepts)
        if n == 0:
            raise LensError("the word list is empty: it needs at least one row of words")
        if len(set(self.concepts)) != n:
            seen, dups = set(), []
            for c in self.concepts:
                if c in seen:
                    dups.append(c)
                seen.add(c)
            raise LensError(f"duplicate concept ids in the word list: {', '.join(dups[:10])}; make them unique")
        for lang, col in self.words.items():
            if len(col) != n:
                raise LensError(f"language column {lang!r} has {len(col)} cells but there are {n} concepts")
        if not self.words:
            raise LensError("the word list has no language columns (headers must be language codes such as en, fr, zh)")

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_rows(cls, header: Sequence[str], rows: Iterable[Sequence[str]], *, source: str = "?") -> WordList:
        """Build from a header and rows of cells (what :func:`csv.reader` yields)."""
        header = [h.strip() for h in header]
        rows = [list(r) + [""] * (len(header) - len(r)) for r in rows if any(c.strip() for c in r)]
        langs: dict[str, int] = {}
        labels: dict[str, str] = {}
        extras: dict[str, int] = {}
        concept_col = None
        for j, name in enumerate(header):
            low = name.lower()
            if low in ("concept", "id"):
                concept_col = j
            elif low in META_COLUMNS or low.startswith((CLOZE_PREFIX, WENDLER_PREFIX)) or not low:
                extras[name] = j
            else:
                try:
                    code = normalize_code(name)
                except LanguageCodeError:
                    raise LensError(
                        f"word-list column {name!r} is neither a language code nor one of "
                        f"{', '.join(sorted(META_COLUMNS))} / cloze_<lang>; rename it"
                    ) from None
                if code in langs:
                    raise LensError(f"columns {labels[code]!r} and {name!r} are the same language ({code})")
                langs[code], labels[code] = j, name
        if not langs:
            raise LensError(f"the word list {source} has no language columns; its header is {header}")
        words = {code: tuple(_alternatives(r[j]) for r in rows) for code, j in langs.items()}
        if concept_col is not None:
            concepts = tuple(r[concept_col].strip() for r in rows)
        elif "en" in words:
            concepts = tuple(alts[0] if alts else f"row{k + 1}" for k, alts in enumerate(words["en"]))
        else:
            concepts = tuple(f"row{k + 1}" for k in range(len(rows)))
        missing_ids = [k + 1 for k, c in enumerate(concepts) if not c]
        if missing_ids:
            raise LensError(f"empty concept id on row(s) {missing_ids[:10]} of {source}")
        return cls(
            concepts=concepts,
            words=words,
            extras={name: tuple(r[j].strip() for r in rows) for name, j in extras.items()},
            labels=labels,
            meta={"source": source},
        )

    @classmethod
    def from_csv(cls, path: str | Path) -> WordList:
        """Read a UTF-8 CSV with one column per language code (and optionally ``concept``)."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise LensError(f"word list not found: {p}")
        with p.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise LensError(f"the word list {p} is empty") from None
            return cls.from_rows(header, list(reader), source=str(p))

    @classmethod
    def from_wendler(cls, paths: Sequence[str | Path]) -> WordList:
        """Merge Wendler et al.'s per-language ``clean.csv`` files into one list keyed by the English word.

        Each file has ``lang``, ``word_original`` (English) and ``word_translation`` (the word in
        ``lang``); concepts are the English words of all files (an outer join: a word missing
        from one language leaves that cell empty, which drops the concept only for analyses that
        need that language). The English column comes from ``word_original``. Two rows with the
        same English word in one language become alternative spellings (``|``), the first one
        written in prompts. Other columns are kept as extras ``wendler_<column>_<lang>``.
        """
        files = [Path(p).expanduser() for p in paths]
        if not files:
            raise LensError("no Wendler word-list files given; pass clean.csv paths or a folder of <lang>/clean.csv")
        order: dict[str, None] = {}
        words: dict[str, dict[str, list[str]]] = {"en": {}}
        labels: dict[str, str] = {"en": "en"}
        extras: dict[str, dict[str, str]] = {}
        for path in files:
            for lang, label, en, alts, extra in _wendler_rows(path):
                order.setdefault(en, None)
                words["en"].setdefault(en, [en])
                if lang != "en":
                    labels.setdefault(lang, label)
                    cell = words.setdefault(lang, {}).setdefault(en, [])
                    cell.extend(a for a in alts if a not in cell)
                for name, value in extra.items():
                    extras.setdefault(f"{WENDLER_PREFIX}{name}_{lang}", {}).setdefault(en, value)
        concepts = tuple(order)
        return cls(
            concepts=concepts,
            words={lang: tuple(tuple(col.get(c, ())) for c in concepts) for lang, col in words.items()},
            extras={name: tuple(col.get(c, "") for c in concepts) for name, col in extras.items()},
            labels=labels,
            meta={"source": ", ".join(map(str, files)), "format": "wendler", "files": [str(f) for f in files]},
        )

    @classmethod
    def from_dataframe(cls, df: Any, *, source: str = "DataFrame") -> WordList:
        """Build from a pandas DataFrame with one column per language code."""
        rows = [["" if v is None or v != v else str(v) for v in row] for row in df.itertuples(index=False)]
        return cls.from_rows([str(c) for c in df.columns], rows, source=source)

    @classmethod
    def from_dict(cls, columns: Mapping[str, Sequence[str]], *, source: str = "dict") -> WordList:
        """Build from ``{"en": [...], "fr": [...]}`` (all columns the same length)."""
        names = list(columns)
        lengths = {len(columns[c]) for c in names}
        if len(lengths) > 1:
            raise LensError(f"word-list columns have different lengths: { {c: len(columns[c]) for c in names} }")
        n = lengths.pop() if lengths else 0
        return cls.from_rows(names, [[str(columns[c][k] or "") for c in names] for k in range(n)], source=source)

    # ----------------------------------------------------------------- access
    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.words)

    def __len__(self) -> int:
        return len(self.concepts)

    def __repr__(self) -> str:
        return f"WordList({len(self)} concepts, languages={list(self.languages)}, source={self.meta.get('source', '?')!r})"

    def resolve_language(self, language: str) -> str:
        """The column code for ``language``; :class:`LensError` when the list has no such column."""
        try:
            return resolve_language(language, self.languages, what="the word list's languages")
        except LanguageCodeError as exc:
            code = _safe_code(language)
            if code is None:
                raise
            raise LensError(
                f"the word list has no words for language {language!r} ({exc}). "
                "Pass your own list with words=<csv with a column per language code>, or pick one of "
                f"{', '.join(self.languages)}"
            ) from None

    def word(self, language: str, index: int) -> str:
        """The spelling written in prompts (first alternative); '' when the cell is empty."""
        alts = self.words[self.resolve_language(language)][index]
        return alts[0] if alts else ""

    def alternatives(self, language: str, index: int) -> tuple[str, ...]:
        return self.words[self.resolve_language(language)][index]

    def has(self, language: str, index: int) -> bool:
        return bool(self.alternatives(language, index))

    def take(self, indices: Sequence[int]) -> WordList:
        """The rows ``indices`` (in that order)."""
        idx = list(indices)
        return WordList(
            concepts=tuple(self.concepts[k] for k in idx),
            words={lang: tuple(col[k] for k in idx) for lang, col in self.words.items()},
            extras={name: tuple(col[k] for k in idx) for name, col in self.extras.items()},
            labels=dict(self.labels),
            meta=dict(self.meta),
        )

    def head(self, n: int) -> WordList:
        if n < 1:
            raise LensError(f"head(n) needs n >= 1, got {n}")
        return self.take(range(min(n, len(self))))

    def to_dataframe(self):
        """Wide table: one row per concept, ``|``-joined alternatives per language."""
        import pandas as pd

        data = {"concept": list(self.concepts)}
        for lang, col in self.words.items():
            data[lang] = [ALT_SEP.join(alts) for alts in col]
        for name, col in self.extras.items():
            data[name] = list(col)
        return pd.DataFrame(data)


def _alternatives(cell: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in str(cell).split(ALT_SEP) if a.strip())


def _safe_code(language: str) -> str | None:
    try:
        return normalize_code(language)
    except LanguageCodeError:
        return None


def bundled_words_path() -> Path:
    """Path of the bundled word list ``xling_probe/data/words.csv``."""
    return Path(str(resources.files("xling_probe.data").joinpath(WORDS_FILE)))


def _wendler_rows(path: Path):
    """Yield ``(code, lang label, English word, alternatives, extras)`` for each row of one ``clean.csv``."""
    if not path.is_file():
        raise LensError(f"word list not found: {path}")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in WENDLER_COLUMNS if c not in header]
        if missing:
            raise LensError(
                f"{path} is not a Wendler et al. word-list file: it lacks the column(s) {', '.join(missing)} "
                f"(its header is {header})"
            )
        at = {c: header.index(c) for c in WENDLER_COLUMNS}
        skip = set(at.values()) | {j for j, h in enumerate(header) if not h or h.startswith("Unnamed:")}
        for ln, row in enumerate(reader, 2):
            if not any(c.strip() for c in row):
                continue
            row = row + [""] * (len(header) - len(row))
            label = row[at["lang"]].strip() or path.parent.name
            try:
                code = normalize_code(label)
            except LanguageCodeError:
                raise LensError(f"{path} line {ln}: lang {label!r} is not a language code") from None
            en = row[at["word_original"]].strip()
            if not en:
                raise LensError(f"{path} line {ln}: word_original (the English word) is empty")
            alts = _alternatives(row[at["word_translation"]])
            yield code, label, en, alts, {header[j]: row[j].strip() for j in range(len(header)) if j not in skip}


def _is_wendler_file(path: Path) -> bool:
    """True when the CSV header has Wendler et al.'s ``lang``, ``word_original``, ``word_translation``."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = {h.strip() for h in next(csv.reader(fh), [])}
    except (OSError, UnicodeDecodeError):
        return False
    return all(c in header for c in WENDLER_COLUMNS)


def wendler_files(folder: str | Path) -> list[Path]:
    """The ``<lang>/clean.csv`` files of a folder laid out like Wendler et al.'s published data."""
    root = Path(folder).expanduser()
    files = sorted(root.glob(f"*/{WENDLER_FILE}"))
    if (root / WENDLER_FILE).is_file():
        files.insert(0, root / WENDLER_FILE)
    if not files:
        raise LensError(f"{root} holds no <lang>/{WENDLER_FILE} files; pass a word-list CSV or such a folder")
    return files


def load_words(source: Any = None) -> WordList:
    """A :class:`WordList` from ``None`` (the bundled list), a CSV path, a DataFrame, a dict or a WordList.

    Wendler et al.'s published files are recognised by their header: one ``clean.csv`` path, a
    list of them, or a folder of ``<lang>/clean.csv`` subfolders (merged by
    :meth:`WordList.from_wendler`).
    """
    if source is None:
        path = bundled_words_path()
        if not path.is_file():
            raise LensError(f"the bundled word list {path} is missing; reinstall xling-probe or pass words=<csv>")
        return WordList.from_csv(path)
    if isinstance(source, WordList):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_dir():
            return WordList.from_wendler(wendler_files(path))
        if path.is_file() and _is_wendler_file(path):
            return WordList.from_wendler([path])
        return WordList.from_csv(path)
    if isinstance(source, (list, tuple)) and source and all(isinstance(p, (str, Path)) for p in source):
        return WordList.from_wendler(source)
    if isinstance(source, Mapping):
        return WordList.from_dict(source)
    if hasattr(source, "itertuples") and hasattr(source, "columns"):
        return WordList.from_dataframe(source)
    raise LensError(
        f"cannot read a word list from {type(source).__name__}; pass a CSV path, a list of Wendler clean.csv "
        "paths or their folder, a DataFrame, a dict of columns or a WordList"
    )
