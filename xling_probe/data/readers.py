"""Reading corpus files and tables into ``{column name: cells}`` for :class:`ParallelCorpus`.

Every reader returns a plain table (an ordered dict of equally long lists, the sentence ids under
:data:`ID_KEY`) and refuses what would silently lose data: duplicate column names (a DataFrame
with two ``fr`` columns, a JSON object with the key ``fr`` twice, FLORES rows that repeat an
(id, language)), a file that is not in the stated encoding, and tables without sentences.
A UTF-8 byte-order mark is stripped (files saved by Excel or Notepad start with one).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CorpusError

#: Key of the id column in the tables the readers return (cannot clash with a header name).
ID_KEY = "\x00ids"


def decode_file(path: Path, encoding: str = "utf-8") -> str:
    """The text of ``path``; a decoding error names the line, the byte offset and the bytes.

    ``utf-8`` is read with ``utf-8-sig`` semantics: a leading byte-order mark is dropped.
    """
    try:
        name = codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise CorpusError(f"unknown encoding {encoding!r}; use a Python codec name such as 'utf-8' or 'latin-1'") from None
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig" if name == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = raw[exc.start:min(exc.end, exc.start + 8)]
        raise CorpusError(
            f"{path} is not valid {encoding}: line {line}, column {column} (byte offset {exc.start}) holds "
            f"the byte(s) {bad.hex(' ')} ({exc.reason}). Re-save the file as UTF-8, or pass encoding=... with "
            "its encoding (e.g. encoding='cp1252' or 'latin-1')."
        ) from None


def _no_sentences(source: str, detail: str) -> CorpusError:
    return CorpusError(f"{source} has no sentences ({detail}); a corpus needs at least one row of translations")


def tsv_table(path: Path, id_column: str, encoding: str) -> dict[str, list[Any]]:
    """Header row = ``id`` then one column per language; no quoting (sentences contain ``"``)."""
    text = decode_file(path, encoding)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise CorpusError(f"{path} is empty")
    header, body = [h.strip() for h in rows[0]], rows[1:]
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
    if not body:
        raise _no_sentences(str(path), "only a header row")
    id_at = header.index(id_column)  # the first 'id' column holds ids; a later one is Indonesian
    table: dict[str, list[Any]] = {ID_KEY: [r[id_at] for r in body]}
    for j, name in enumerate(header):
        if j == id_at:
            continue
        if name in table:
            raise CorpusError(f"{path}: the header names column {name!r} twice; rename or remove one of them")
        table[name] = [r[j] for r in body]
    return table


def jsonl_table(path: Path, id_column: str, encoding: str) -> dict[str, list[Any]]:
    """One JSON object per line: flat ``{"id", "en", ...}`` or nested ``{"id", "translations": {...}}``."""
    text = decode_file(path, encoding)
    records = []
    for ln, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line, object_pairs_hook=lambda pairs, ln=ln: _unique_keys(pairs, path, ln))
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path} line {ln} is not valid JSON: {exc}") from None
        if not isinstance(rec, dict):
            raise CorpusError(f"{path} line {ln} must be a JSON object, got {type(rec).__name__}")
        if id_column not in rec:
            raise CorpusError(f"{path} line {ln} has no {id_column!r} field")
        # nested form: the translations may use 'id' for Indonesian
        cols = rec["translations"] if isinstance(rec.get("translations"), dict) else {
            k: v for k, v in rec.items() if k != id_column}
        records.append((rec[id_column], cols))
    if not records:
        raise _no_sentences(str(path), "no JSON records")
    names: dict[str, None] = {}
    for _, cols in records:
        names.update(dict.fromkeys(cols))
    table: dict[str, list[Any]] = {ID_KEY: [sid for sid, _ in records]}
    table.update({name: [cols.get(name) for _, cols in records] for name in names})
    return table


def _unique_keys(pairs: list[tuple[str, Any]], path: Path, ln: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise CorpusError(f"{path} line {ln} has the key {key!r} twice; keep one of them")
        out[key] = value
    return out


def dataframe_table(df: Any, id_column: str | None) -> dict[str, list[Any]]:
    """The columns of a pandas DataFrame (ids from ``id_column`` or, without one, the index)."""
    names = [str(c) for c in df.columns]
    dups = sorted({c for c in names if names.count(c) > 1})
    if dups:
        raise CorpusError(
            f"the DataFrame has duplicate column names: {', '.join(map(repr, dups))}; rename or drop the copies "
            "(e.g. df.loc[:, ~df.columns.duplicated()]) before loading"
        )
    if len(df) == 0:
        raise _no_sentences("the DataFrame", "0 rows")
    table = {name: list(df.iloc[:, j]) for j, name in enumerate(names)}
    if id_column is not None and id_column in table:
        ids = table.pop(id_column)
    elif id_column in (None, "id"):
        ids = [str(i) for i in df.index]
    else:
        raise CorpusError(f"id column {id_column!r} not in the DataFrame columns {names}")
    return {ID_KEY: ids, **table}


def hf_table(dataset: Any, id_column: str, text_column: str) -> tuple[dict[str, list[Any]], str]:
    """A table from a ``datasets.Dataset`` (wide or FLORES+ long) or a ``{language: Dataset}`` mapping.

    Returns the table and a description of the source for ``meta["source"]``.
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
        if not ids:
            raise _no_sentences("the datasets", "0 rows")
        return {ID_KEY: ids, **table}, "datasets"
    cols = list(dataset.column_names)
    if len(dataset) == 0:
        raise _no_sentences("the dataset", "0 rows")
    lang_col = None
    if text_column in cols:
        lang_col = "iso_639_3" if "iso_639_3" in cols else next(
            (c for c in ("language", "lang", "lang_code") if c in cols), None)
    if lang_col is not None:
        if id_column not in cols:
            raise CorpusError(f"long-format dataset needs an {id_column!r} column to align sentences")
        langs = dataset[lang_col]
        scripts = dataset["iso_15924"] if "iso_15924" in cols else None
        keys = [f"{lg}_{sc}" for lg, sc in zip(langs, scripts)] if scripts is not None else list(langs)
        pivot: dict[str, dict[str, str]] = {}
        for key, sid, text in zip(keys, dataset[id_column], dataset[text_column]):
            row = pivot.setdefault(str(sid), {})
            if key in row:
                raise CorpusError(f"the dataset has two rows for sentence {str(sid)!r} in {key!r}; keep one of them")
            row[key] = text
        order = list(pivot)
        table = {ID_KEY: order}
        table.update({k: [pivot[s].get(k) for s in order] for k in dict.fromkeys(keys)})
        return table, "datasets (long)"
    table = {}
    for c in cols:
        name = c[len("sentence_"):] if c.startswith("sentence_") else c
        if name in table:
            raise CorpusError(f"the dataset has columns {name!r} and 'sentence_{name}'; keep one of them")
        table[name] = list(dataset[c])
    ids = table.pop(id_column) if id_column in table else [str(k) for k in range(len(dataset))]
    return {ID_KEY: ids, **table}, "datasets"
