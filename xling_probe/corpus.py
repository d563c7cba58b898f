"""Parallel corpora: the same sentences (ids) in several languages.

A :class:`ParallelCorpus` is validated once, at construction: unique ids, a non-empty
translation for every (id, language), language codes that resolve to one canonical code each.
Loaders read TSV (no quoting: sentences contain quote characters), JSONL, pandas DataFrames and
Hugging Face ``datasets`` objects (wide: one column per language; long: FLORES+ style rows).
"""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorpusError, LanguageCodeError
from .languages import normalize_code, resolve

#: Column names that are metadata, not languages, when a table is read without ``languages=``.
METADATA_COLUMNS = frozenset({"orig_lang", "source", "domain", "topic", "url", "split", "note", "notes", "concept"})

SAMPLE_FILE = "sample_sentences.tsv"


def _preview(items: Sequence[Any], n: int = 10) -> str:
    shown = ", ".join(map(str, items[:n]))
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


@dataclass(frozen=True, eq=False)
class ParallelCorpus:
    """Sentences aligned by id across languages.

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
    ) -> ParallelCorpus:
        """Build from ``{language label: sentences}``; labels are normalised to canonical codes."""
        if on_missing not in ("error", "drop"):
            raise CorpusError(f"on_missing must be 'error' or 'drop', got {on_missing!r}")
        canon: dict[str, str] = {}
        unknown = []
        for label in columns:
            try:
                code = normalize_code(str(label))
            except LanguageCodeError:
                unknown.append(label)
                continue
            if code in canon:
                raise CorpusError(
                    f"columns {canon[code]!r} and {label!r} are the same language ({code}); keep one of them"
                )
            canon[code] = str(label)
        if unknown:
            raise LanguageCodeError(
                f"unknown language code(s) in the column names: {', '.join(map(repr, unknown))}. "
                "Use ISO 639 codes ('fr', 'fra', 'fra_Latn'); pass languages=[...] to choose columns, "
                "or ignore_columns=[...] for columns that are not languages."
            )
        ids = [str(i) for i in ids]
        sentences = {code: [_cell(v) for v in columns[label]] for code, label in canon.items()}
        if on_missing == "drop":
            keep = [k for k in range(len(ids)) if all(sentences[c][k] for c in sentences)]
            dropped = [ids[k] for k in range(len(ids)) if k not in set(keep)]
            if dropped:
                warnings.warn(f"dropped {len(dropped)} ids with a missing translation: {_preview(dropped)}", stacklevel=3)
            ids = [ids[k] for k in keep]
            sentences = {c: [s[k] for k in keep] for c, s in sentences.items()}
        return cls(
            ids=tuple(ids),
            sentences={c: tuple(s) for c, s in sentences.items()},
            labels={c: lbl for c, lbl in canon.items()},
            meta=dict(meta or {}),
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
    ) -> ParallelCorpus:
        """Read a tab-separated file: header row = ``id`` then language codes; no quoting.

        Sentences may contain ``"``: the file is read with ``csv.QUOTE_NONE``. A row with the wrong
        number of fields is an error that names its line numbers.
        """
        path = _existing(path)
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
        rows = [r for r in rows if r and any(c.strip() for c in r)]
        if not rows:
            raise CorpusError(f"{path} is empty")
        header, body = rows[0], rows[1:]
        bad = [(k + 2, len(r)) for k, r in enumerate(body) if len(r) != len(header)]
        if bad:
            detail = ", ".join(f"line {ln} has {n}" for ln, n in bad[:10])
            raise CorpusError(
                f"{path}: rows must have {len(header)} tab-separated fields like the header; {detail}"
                + (f" ({len(bad)} bad rows)" if len(bad) > 10 else "")
                + ". Check for tabs inside sentences or missing cells."
            )
        if id_column not in header:
            raise CorpusError(f"{path}: no {id_column!r} column; the header is: {', '.join(header)}")
        id_at = header.index(id_column)  # the first 'id' column holds ids; a later one is Indonesian
        table = {"\x00ids": [r[id_at] for r in body]}
        for j, name in enumerate(header):
            if j == id_at:
                continue
            if name in table:
                raise CorpusError(f"{path}: the header names column {name!r} twice")
            table[name] = [r[j] for r in body]
        return cls._from_table(table, "\x00ids", languages, ignore_columns, on_missing, {"source": str(path)})

    @classmethod
    def from_jsonl(
        cls,
        path: str | Path,
        *,
        id_column: str = "id",
        languages: Iterable[str] | None = None,
        ignore_columns: Iterable[str] | None = None,
        on_missing: str = "error",
    ) -> ParallelCorpus:
        """Read JSON lines: one object per sentence, ``{"id": ..., "en": ..., "fr": ...}``.

        A nested ``{"id": ..., "translations": {"en": ...}}`` form is accepted too.
        """
        path = _existing(path)
        records = []
        with path.open(encoding="utf-8") as fh:
            for ln, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{path} line {ln} is not valid JSON: {exc}") from None
                if not isinstance(rec, dict):
                    raise CorpusError(f"{path} line {ln} must be a JSON object, got {type(rec).__name__}")
                if id_column not in rec:
                    raise CorpusError(f"{path} line {ln} has no {id_column!r} field")
                sid = rec[id_column]
                # nested form: the translations may use 'id' for Indonesian
                cols = rec["translations"] if isinstance(rec.get("translations"), dict) else {
                    k: v for k, v in rec.items() if k != id_column}
                records.append((sid, cols))
        if not records:
            raise CorpusError(f"{path} has no records")
        names: list[str] = []
        for _, cols in records:
            names.extend(k for k in cols if k not in names)
        table = {"\x00ids": [sid for sid, _ in records]}
        table.update({name: [cols.get(name) for _, cols in records] for name in names})
        return cls._from_table(table, "\x00ids", languages, ignore_columns, on_missing, {"source": str(path)})

    @classmethod
    def from_dataframe(
        cls,
        df: Any,
        *,
        id_column: str | None = "id",
        languages: Iterable[str] | None = None,
        ignore_columns: Iterable[str] | None = None,
        on_missing: str = "error",
    ) -> ParallelCorpus:
        """From a pandas DataFrame with one column per language (and an id column or the index)."""
        table = {str(c): list(df[c]) for c in df.columns}
        if id_column is None or id_column not in table:
            if id_column not in (None, "id"):
                raise CorpusError(f"id column {id_column!r} not in the DataFrame columns {list(table)}")
            id_column = "__index__"
            table[id_column] = [str(i) for i in df.index]
        return cls._from_table(table, id_column, languages, ignore_columns, on_missing, {"source": "DataFrame"})

    @classmethod
    def from_hf_dataset(
        cls,
        dataset: Any,
        *,
        languages: Iterable[str] | None = None,
        id_column: str = "id",
        text_column: str = "text",
        on_missing: str = "error",
    ) -> ParallelCorpus:
        """From a Hugging Face ``datasets.Dataset`` (or a ``{language: Dataset}`` mapping).

        Accepted shapes: wide (one column per language, optionally ``sentence_<code>`` as in the
        original FLORES); long (FLORES+ style: one row per sentence and language with a ``text``
        column and ``iso_639_3`` + ``iso_15924``, or a ``language``/``lang`` column); or a mapping
        from language code to a dataset with ``id`` and ``text`` columns.
        """
        if isinstance(dataset, Mapping):
            table: dict[str, list[Any]] = {}
            ids = None
            for lang, ds in dataset.items():
                cols = ds.column_names
                if text_column not in cols:
                    raise CorpusError(f"dataset for {lang!r} has no {text_column!r} column (columns: {cols})")
                these = [str(x) for x in ds[id_column]] if id_column in cols else [str(k) for k in range(len(ds))]
                if ids is None:
                    ids = these
                elif these != ids:
                    raise CorpusError(f"dataset for {lang!r} is not aligned with the others (ids differ)")
                table[str(lang)] = list(ds[text_column])
            table["__id__"] = ids or []
            return cls._from_table(table, "__id__", languages, None, on_missing, {"source": "datasets"})
        cols = list(dataset.column_names)
        lang_col = None
        if text_column in cols:
            if "iso_639_3" in cols:
                lang_col = "iso_639_3"
            else:
                lang_col = next((c for c in ("language", "lang", "lang_code") if c in cols), None)
        if lang_col is not None:
            scripts = dataset["iso_15924"] if "iso_15924" in cols else None
            langs_raw = dataset[lang_col]
            keys = [f"{lg}_{sc}" if scripts is not None else lg for lg, sc in zip(langs_raw, scripts or langs_raw)]
            id_values = dataset[id_column] if id_column in cols else None
            if id_values is None:
                raise CorpusError(f"long-format dataset needs an {id_column!r} column to align sentences")
            pivot: dict[str, dict[str, str]] = {}
            order: list[str] = []
            for key, sid, text in zip(keys, id_values, dataset[text_column]):
                sid = str(sid)
                if sid not in pivot:
                    pivot[sid] = {}
                    order.append(sid)
                pivot[sid][key] = text
            all_keys = list(dict.fromkeys(keys))
            table = {k: [pivot[s].get(k) for s in order] for k in all_keys}
            table["__id__"] = order
            return cls._from_table(table, "__id__", languages, None, on_missing, {"source": "datasets (long)"})
        table = {}
        for c in cols:
            name = c[len("sentence_"):] if c.startswith("sentence_") else c
            table[name] = list(dataset[c])
        if id_column not in table:
            table[id_column] = [str(k) for k in range(len(dataset))]
        return cls._from_table(table, id_column, languages, None, on_missing, {"source": "datasets"})

    @classmethod
    def _from_table(
        cls,
        table: dict[str, list[Any]],
        id_column: str,
        languages: Iterable[str] | None,
        ignore_columns: Iterable[str] | None,
        on_missing: str,
        meta: dict[str, Any],
    ) -> ParallelCorpus:
        if id_column not in table:
            raise CorpusError(f"no {id_column!r} column; columns are: {', '.join(table)}")
        ids = table.pop(id_column)
        if languages is not None:
            wanted = list(languages)
            available = {}
            for name in table:
                try:
                    available[normalize_code(name)] = name
                except LanguageCodeError:
                    pass
            cols = {}
            missing = []
            for lang in wanted:
                try:
                    code = resolve(lang, list(available))
                except LanguageCodeError:
                    missing.append(lang)
                    continue
                cols[available[code]] = table[available[code]]
            if missing:
                raise LanguageCodeError(
                    f"language(s) not in the corpus: {', '.join(map(repr, missing))}; "
                    f"the corpus has: {', '.join(available.values())}"
                )
            table = cols
        else:
            skip = set(METADATA_COLUMNS if ignore_columns is None else ignore_columns)
            table = {k: v for k, v in table.items() if k not in skip}
        return cls.from_columns(ids, table, on_missing=on_missing, meta=meta)

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
        """Canonical code of ``language`` in this corpus (accepts any spelling of it)."""
        for code, label in self.labels.items():
            if label == language:
                return code
        return resolve(language, list(self.languages))

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


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    return str(value).strip()


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

        df = pd.read_csv(_existing(p), dtype=str, keep_default_na=False)
        return ParallelCorpus.from_dataframe(df, **kwargs)
    raise CorpusError(f"unknown corpus file type {suffix!r} for {p}; use .tsv, .jsonl or .csv")
