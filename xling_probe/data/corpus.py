"""Parallel corpora: the same sentences (ids) in several languages.

A :class:`ParallelCorpus` is validated once, at construction: unique ids, a non-empty
translation for every (id, language), language codes that resolve to one canonical code each.
Loaders read TSV (no quoting: sentences contain quote characters), JSONL, pandas DataFrames and
Hugging Face ``datasets`` objects (wide: one column per language; long: FLORES+ style rows).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorpusError, LanguageCodeError
from ..labels import resolve_language
from .columns import clean_cell, pick_columns, read_labels, warn_code_notes
from .conventions import AUTO, CodeReading, check_conventions, detect_convention
from .corpus_loaders import BigCorpusLoaders
from .languages import is_language_code, language_name
from .readers import ID_KEY, dataframe_table, decode_file, jsonl_table, tsv_table
from .streams import stream_table

#: Column names that are metadata, not languages, when a table is read without ``languages=``.
METADATA_COLUMNS = frozenset({"orig_lang", "source", "domain", "topic", "url", "split", "note", "notes", "concept"})

SAMPLE_FILE = "sample_sentences.tsv"


def _preview(items: Sequence[Any], n: int = 10) -> str:
    shown = ", ".join(map(str, items[:n]))
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


@dataclass(frozen=True, eq=False)
class ParallelCorpus(BigCorpusLoaders):
    """Sentences aligned by id across languages (big public corpora: see :mod:`.corpus_loaders`).

    ``sentences[lang][i]`` is the translation of sentence ``ids[i]`` into ``lang`` (a canonical
    code); ``labels[lang]`` is the code as the source wrote it, for display.
    """

    ids: tuple[str, ...]
    sentences: dict[str, tuple[str, ...]]
    labels: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = tuple(str(i) for i in self.ids)
        seen: dict[str, int] = {}
        dups = []
        for i in ids:
            seen[i] = seen.get(i, 0) + 1
            if seen[i] == 2:
                dups.append(i)
        if dups:
            raise CorpusError(f"duplicate sentence ids: {_preview(dups)}. Every id must be unique.")
        if not ids:
            raise CorpusError("the corpus has no sentences (0 ids); a corpus needs at least one row of translations")
        if not self.sentences:
            raise CorpusError("the corpus has no language columns")
        problems = []
        clean: dict[str, tuple[str, ...]] = {}
        for lang, sents in self.sentences.items():
            sents = tuple(sents)
            if len(sents) != len(ids):
                raise CorpusError(f"language {lang!r} has {len(sents)} sentences but there are {len(ids)} ids")
            bad = [ids[k] for k, s in enumerate(sents) if not isinstance(s, str) or not s.strip()]
            if bad:
                problems.append(f"{self.labels.get(lang, lang)}: {_preview(bad)}")
            clean[lang] = sents
        if problems:
            raise CorpusError(
                "missing or empty translations (language: ids): "
                + "; ".join(problems)
                + ". Fill them in, or load with on_missing='drop' to drop those ids."
            )
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "sentences", clean)
        object.__setattr__(self, "labels", {lang: self.labels.get(lang, lang) for lang in clean})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_columns(
        cls,
        ids: Sequence[Any],
        columns: Mapping[str, Sequence[Any]],
        *,
        on_missing: str = "error",
        meta: dict[str, Any] | None = None,
        conventions: str | None = AUTO,
    ) -> ParallelCorpus:
        """Build from ``{language label: sentences}``; labels are normalised to canonical codes.

        ``conventions`` says how corpus-specific codes are read (see
        :func:`xling_probe.data.languages.normalize_code`): ``"auto"`` detects the corpus from the labels
        (``es-LA`` -> TICO-19), ``"tico19"``/``"flores"``/``"udhr"`` name it, ``None`` reads every
        label literally. How each label was read is in :meth:`code_readings`; a convention table
        entry that was used is also reported in one warning. Two labels that read as the same
        language (``fr`` and ``fra``) are an error.
        """
        if on_missing not in ("error", "drop"):
            raise CorpusError(f"on_missing must be 'error' or 'drop', got {on_missing!r}")
        conventions = check_conventions(conventions)
        if conventions == AUTO:
            conventions = detect_convention(columns) or AUTO
        canon, readings = read_labels(columns, conventions)
        ids = [str(i) for i in ids]
        if not ids:
            raise CorpusError("the corpus has no sentences (0 ids); a corpus needs at least one row of translations")
        sentences = {code: [clean_cell(v) for v in columns[label]] for code, label in canon.items()}
        if on_missing == "drop":
            keep = [k for k in range(len(ids)) if all(sentences[c][k] for c in sentences)]
            dropped = [ids[k] for k in range(len(ids)) if k not in set(keep)]
            if not keep:
                raise CorpusError(
                    f"no sentences left: all {len(ids)} ids lack a translation in at least one language; "
                    "choose fewer languages with languages=[...]"
                )
            if dropped:
                warnings.warn(f"dropped {len(dropped)} ids with a missing translation: {_preview(dropped)}", stacklevel=3)
            ids = [ids[k] for k in keep]
            sentences = {c: [s[k] for k in keep] for c, s in sentences.items()}
        warn_code_notes(readings.values())
        meta = dict(meta or {})
        meta["conventions"] = conventions
        meta["code_readings"] = {lbl: asdict(r) for lbl, r in readings.items()}
        return cls(
            ids=tuple(ids),
            sentences={c: tuple(s) for c, s in sentences.items()},
            labels={c: lbl for c, lbl in canon.items()},
            meta=meta,
        )

    @classmethod
    def from_tsv(
        cls,
        path: str | Path,
        *,
        id_column: str = "id",
        languages: Iterable[str] | None = None,
        ignore_columns: Iterable[str] | None = None,
        on_missing: str = "error",
        encoding: str = "utf-8",
        conventions: str | None = AUTO,
    ) -> ParallelCorpus:
        """Read a tab-separated file: header row = ``id`` then language codes; no quoting.

        Sentences may contain ``"``: the file is read with ``csv.QUOTE_NONE``. A row with the wrong
        number of fields is an error that names its line numbers; so is a byte that is not valid
        in ``encoding`` (a leading UTF-8 byte-order mark is dropped). A header without rows is an
        error, not an empty corpus. ``conventions``: see :meth:`from_columns`.
        """
        path = _existing(path)
        table = tsv_table(path, id_column, encoding)
        return cls._from_table(table, languages, ignore_columns, on_missing, {"source": str(path)}, conventions)

    @classmethod
    def from_jsonl(
        cls,
        path: str | Path,
        *,
        id_column: str = "id",
        languages: Iterable[str] | None = None,
        ignore_columns: Iterable[str] | None = None,
        on_missing: str = "error",
        encoding: str = "utf-8",
        conventions: str | None = AUTO,
    ) -> ParallelCorpus:
        """Read JSON lines: one object per sentence, ``{"id": ..., "en": ..., "fr": ...}``.

        A nested ``{"id": ..., "translations": {"en": ...}}`` form is accepted too. A key that
        appears twice in one object is an error (JSON would keep the last one silently).
        """
        path = _existing(path)
        table = jsonl_table(path, id_column, encoding)
        return cls._from_table(table, languages, ignore_columns, on_missing, {"source": str(path)}, conventions)

    @classmethod
    def from_dataframe(
        cls,
        df: Any,
        *,
        id_column: str | None = "id",
        languages: Iterable[str] | None = None,
        ignore_columns: Iterable[str] | None = None,
        on_missing: str = "error",
        conventions: str | None = AUTO,
    ) -> ParallelCorpus:
        """From a pandas DataFrame with one column per language (and an id column or the index).

        Duplicate column names are an error (pandas would hand back both columns for one name).
        """
        table = dataframe_table(df, id_column)
        return cls._from_table(table, languages, ignore_columns, on_missing, {"source": "DataFrame"}, conventions)

    @classmethod
    def from_hf_dataset(
        cls,
        dataset: Any,
        *,
        languages: Iterable[str] | None = None,
        id_column: str = "id",
        text_column: str = "text",
        on_missing: str = "error",
        conventions: str | None = AUTO,
        limit: int | None = None,
    ) -> ParallelCorpus:
        """From a Hugging Face ``datasets.Dataset`` (or a ``{language: Dataset}`` mapping).

        An ``IterableDataset`` (``streaming=True``) or any iterable of row dicts is read row by row,
        never whole: ``limit=N`` keeps the first N ids (a wide stream stops after N rows; a long
        one is read to its end, since any row may belong to a kept id, but stores only those ids).

        Accepted shapes: wide (one column per language, optionally ``sentence_<code>`` as in the
        original FLORES); long (FLORES+ style: one row per sentence and language with a ``text``
        column and ``iso_639_3`` + ``iso_15924``, or a ``language``/``lang`` column); or a mapping
        from language code to a dataset with ``id`` and ``text`` columns. Two rows for the same
        (id, language) are an error.
        """
        table, source = stream_table(dataset, id_column, text_column, limit)
        return cls._from_table(table, languages, None, on_missing, {"source": source}, conventions)

    @classmethod
    def _from_table(
        cls,
        table: dict[str, list[Any]],
        languages: Iterable[str] | None,
        ignore_columns: Iterable[str] | None,
        on_missing: str,
        meta: dict[str, Any],
        conventions: str | None = AUTO,
    ) -> ParallelCorpus:
        table = dict(table)
        ids = table.pop(ID_KEY)
        conventions = check_conventions(conventions)
        if conventions == AUTO:  # detected on the whole header, before languages= picks columns
            conventions = detect_convention(table) or AUTO
        if languages is not None:
            table = pick_columns(table, languages, conventions)
        else:
            skip = set(METADATA_COLUMNS if ignore_columns is None else ignore_columns)
            table = {k: v for k, v in table.items() if k not in skip}
        return cls.from_columns(ids, table, on_missing=on_missing, meta=meta, conventions=conventions)

    # ------------------------------------------------------------------ the bundled sample
    @classmethod
    def sample(cls, languages: Iterable[str] | None = None, n: int | None = None) -> ParallelCorpus:
        """The bundled sample of everyday sentences (see ``xling_probe/data/sample_sentences.md``)."""
        path = resources.files("xling_probe.data").joinpath(SAMPLE_FILE)
        with resources.as_file(path) as p:
            corpus = cls.from_tsv(p, languages=languages)
        corpus.meta["source"] = "xling_probe sample"
        return corpus.head(n) if n is not None else corpus

    # ------------------------------------------------------------------ access
    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.sentences)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"ParallelCorpus({len(self)} sentences x {len(self.languages)} languages: {', '.join(self.languages)})"

    def resolve_language(self, language: str) -> str:
        """Canonical code of ``language`` in this corpus (any spelling, or the corpus's own label), by
        :func:`xling_probe.labels.resolve_language`; :class:`LanguageCodeError` lists the corpus's languages."""
        return resolve_language(language, self.languages, self.labels, what="the corpus languages")

    def code_readings(self) -> dict[str, CodeReading]:
        """How each language label was read: ``{label: CodeReading(label, code, name, note)}``.

        ``note`` is set when a corpus convention table entry was used (``es-LA read as es-419
        (Latin American Spanish, TICO-19 convention)``); ``str(reading)`` is a one-line summary.
        """
        stored = self.meta.get("code_readings") or {}
        out = {}
        for code in self.languages:
            label = self.labels[code]
            if label in stored and stored[label].get("code") == code:
                out[label] = CodeReading(**stored[label])
            else:  # built directly: the key is the code
                out[label] = CodeReading(label, code, language_name(code) if is_language_code(code) else code)
        return out

    def code_notes(self) -> list[str]:
        """The one-line notes of the convention table entries used for this corpus's labels."""
        return [r.note for r in self.code_readings().values() if r.note]

    def texts(self, language: str) -> tuple[str, ...]:
        return self.sentences[self.resolve_language(language)]

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame({self.labels[c]: list(s) for c, s in self.sentences.items()}, index=pd.Index(self.ids, name="id"))

    # ------------------------------------------------------------------ subsets and splits
    def select_languages(self, languages: Iterable[str]) -> ParallelCorpus:
        """The corpus restricted to ``languages`` (any spelling); unknown ones are listed in the error."""
        codes, missing = [], []
        for lang in languages:
            try:
                codes.append(self.resolve_language(lang))
            except LanguageCodeError:
                missing.append(lang)
        if missing:
            raise LanguageCodeError(
                f"language(s) not in the corpus: {', '.join(map(repr, missing))}; the corpus has: "
                f"{', '.join(self.languages)}"
            )
        if len(set(codes)) != len(codes):
            raise CorpusError(f"languages {list(languages)} name the same language twice")
        return ParallelCorpus(self.ids, {c: self.sentences[c] for c in codes}, {c: self.labels[c] for c in codes}, dict(self.meta))

    def take(self, ids: Iterable[str]) -> ParallelCorpus:
        """The sentences with these ids, in this order."""
        pos = {s: k for k, s in enumerate(self.ids)}
        wanted = [str(i) for i in ids]
        missing = [i for i in wanted if i not in pos]
        if missing:
            raise CorpusError(f"ids not in the corpus: {_preview(missing)}")
        idx = [pos[i] for i in wanted]
        return ParallelCorpus(
            tuple(wanted), {c: tuple(s[k] for k in idx) for c, s in self.sentences.items()}, dict(self.labels), dict(self.meta)
        )

    def head(self, n: int) -> ParallelCorpus:
        if n < 1:
            raise CorpusError(f"n must be at least 1, got {n}")
        return self.take(self.ids[:n])

    def split(self, test_size: float | int = 0.5, *, seed: int = 0) -> tuple[ParallelCorpus, ParallelCorpus]:
        """A seeded split by sentence id into (fit, held-out) corpora that share no id."""
        fit_ids, test_ids = split_ids(self.ids, test_size, seed=seed)
        return self.take(fit_ids), self.take(test_ids)

    def content_hash(self) -> str:
        """SHA-256 over ids, languages and sentences: the corpus part of a cache key."""
        h = hashlib.sha256()
        for lang in self.languages:
            h.update(lang.encode() + b"\x00")
            for sid, s in zip(self.ids, self.sentences[lang]):
                h.update(sid.encode() + b"\x1f" + s.encode() + b"\x1e")
        return h.hexdigest()


def split_ids(ids: Sequence[str], test_size: float | int = 0.5, *, seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded split of ids into (fit, held-out); both keep the original order and are disjoint."""
    n = len(ids)
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise CorpusError(f"test_size as a fraction must be in (0, 1), got {test_size}")
        n_test = int(round(n * test_size))
    else:
        n_test = int(test_size)
    if not 0 < n_test < n:
        raise CorpusError(f"cannot split {n} sentences into a fit part and a held-out part of {n_test}")
    rng = np.random.default_rng(seed)
    test = set(rng.permutation(n)[:n_test].tolist())
    return [ids[k] for k in range(n) if k not in test], [ids[k] for k in range(n) if k in test]


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise CorpusError(f"corpus file not found: {p}")
    return p


def load_corpus(path: str | Path, **kwargs: Any) -> ParallelCorpus:
    """Read a corpus file by extension: ``.tsv``/``.txt`` (tab-separated), ``.jsonl``, ``.csv``."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".tsv", ".txt", ".tab"):
        return ParallelCorpus.from_tsv(p, **kwargs)
    if suffix in (".jsonl", ".ndjson"):
        return ParallelCorpus.from_jsonl(p, **kwargs)
    if suffix == ".csv":
        import pandas as pd

        text = decode_file(_existing(p), kwargs.pop("encoding", "utf-8"))
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        if len(df) == 0:
            raise CorpusError(f"{p} has no sentences (only a header row); a corpus needs at least one row of translations")
        corpus = ParallelCorpus.from_dataframe(df, **kwargs)
        corpus.meta["source"] = str(p)
        return corpus
    raise CorpusError(f"unknown corpus file type {suffix!r} for {p}; use .tsv, .jsonl or .csv")
