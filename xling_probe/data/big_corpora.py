"""Readers for the big public corpora: FLORES+ / FLORES-200, Bible verse files, Tatoeba pairs, streams.

Each reader returns a plain table (``{ID_KEY: ids, label: cells}``, a missing translation as
``None``) for :class:`xling_probe.data.corpus.ParallelCorpus`, which validates it and applies
``on_missing``. Like :mod:`.readers`, they refuse what would lose data: two rows or files for one
(id, language), a verse id twice in one file, text files of different lengths, unknown layouts.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import CorpusError, LanguageCodeError
from .columns import pick_columns
from .languages import normalize_code
from .readers import ID_KEY, decode_file

ROW_SUFFIXES = (".parquet", ".jsonl")
LANG_COLUMNS = ("language", "lang", "lang_code")


def _path(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise CorpusError(f"{what} not found: {p}")
    return p


def _stem(path: Path) -> str:
    """``fra_Latn.parquet`` / ``fra_Latn.devtest`` -> ``fra_Latn``."""
    return path.name.split(".", 1)[0]


def _lines(path: Path) -> list[str]:
    text = decode_file(path)
    text = text.removesuffix("\n")
    return [ln.rstrip("\r") for ln in text.split("\n")] if text else []


def table_of(order: Iterable[str], maps: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    """A table from ``{label: {id: text}}`` in the id ``order`` (absent cells are ``None``)."""
    order = list(order)
    table: dict[str, list[Any]] = {ID_KEY: order}
    table.update({label: [m.get(i) for i in order] for label, m in maps.items()})
    return table


def choose(labels: Mapping[str, Any], languages: Iterable[str] | None, conventions: str | None) -> dict[str, Any]:
    """The entries whose label names one of ``languages`` (all when ``None``), before reading files."""
    return dict(labels) if languages is None else pick_columns(labels, languages, conventions)


# ---------------------------------------------------------------------- long rows (FLORES+)
def _row_key(row: Mapping[str, Any], lang_col: str | None, fallback: str | None, where: str) -> str:
    if row.get("iso_639_3"):
        script = row.get("iso_15924")
        return f"{row['iso_639_3']}_{script}" if script else str(row["iso_639_3"])
    if lang_col is not None and row.get(lang_col):
        return str(row[lang_col])
    if fallback is not None:
        return fallback
    raise CorpusError(f"{where}: a row has no language (iso_639_3 + iso_15924, or a language column): {dict(row)}")


def add_long_rows(pivot: dict[str, dict[str, str]], rows: Iterable[Mapping[str, Any]], where: str, *,
                  id_column: str = "id", text_column: str = "text", fallback: str | None = None,
                  limit: int | None = None) -> None:
    """Add FLORES+-style rows (id, language, text) to ``pivot`` (``{id: {language: text}}``).

    With ``limit``, only the first ``limit`` distinct ids are kept (the rows are still all read:
    in long data any later row may belong to a kept id).
    """
    lang_col = None
    for n, row in enumerate(rows):
        if n == 0:
            missing = [c for c in (id_column, text_column) if c not in row]
            if missing:
                raise CorpusError(f"{where}: unknown layout, the rows lack {missing} (columns: {list(row)}); "
                                  f"long-format rows need {id_column!r}, {text_column!r} and a language")
            lang_col = next((c for c in LANG_COLUMNS if c in row), None)
        sid = str(row[id_column])
        key = _row_key(row, lang_col, fallback, where)
        cell = pivot.get(sid)
        if cell is None:
            if limit is not None and len(pivot) >= limit:
                continue
            cell = pivot[sid] = {}
        if key in cell:
            raise CorpusError(f"{where}: two rows for sentence {sid!r} in {key!r}; keep one of them")
        cell[key] = row[text_column]


def pivot_table(pivot: dict[str, dict[str, str]], where: str) -> dict[str, list[Any]]:
    if not pivot:
        raise CorpusError(f"{where} has no sentences (0 rows); a corpus needs at least one row of translations")
    labels: dict[str, None] = {}
    for cell in pivot.values():
        labels.update(dict.fromkeys(cell))
    return table_of(pivot, {lbl: {sid: c.get(lbl) for sid, c in pivot.items()} for lbl in labels})


def file_rows(path: Path) -> Iterator[Mapping[str, Any]]:
    """The rows of a ``.parquet`` (pandas + pyarrow or fastparquet) or ``.jsonl`` file."""
    if path.suffix == ".jsonl":
        for ln, line in enumerate(decode_file(path).splitlines(), 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{path} line {ln} is not valid JSON: {exc}") from None
        return
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except ImportError as exc:
        raise CorpusError(f"reading {path} needs a parquet engine (pip install pyarrow): {exc}") from None
    yield from df.to_dict("records")


def flores_table(source: Any, split: str, languages: Iterable[str] | None, conventions: str | None,
                 ) -> tuple[dict[str, list[Any]], str]:
    """FLORES+ (a folder ``<split>/xxx_Xxxx.parquet|.jsonl``, one such file, a ``datasets`` object
    or a DataFrame of long rows) or FLORES-200 (a folder of ``xxx_Xxxx.<split>`` line files)."""
    if isinstance(source, (str, Path)):
        root = _path(source, "FLORES path")
        if root.is_file():
            pivot: dict[str, dict[str, str]] = {}
            add_long_rows(pivot, file_rows(root), str(root), fallback=_stem(root))
            return pivot_table(pivot, str(root)), str(root)
        return _flores_folder(root / split if (root / split).is_dir() else root, split, languages, conventions)
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # a pandas DataFrame
        rows: Iterable[Mapping[str, Any]] = source.to_dict("records")
    elif isinstance(source, Mapping):  # a DatasetDict
        if split not in source:
            raise CorpusError(f"the datasets have no split {split!r}; they have: {', '.join(map(str, source))}")
        rows = source[split]
    else:
        rows = source
    pivot = {}
    add_long_rows(pivot, rows, "the FLORES+ dataset")
    return pivot_table(pivot, "the FLORES+ dataset"), "FLORES+ dataset"


def _flores_folder(folder: Path, split: str, languages: Iterable[str] | None, conventions: str | None,
                   ) -> tuple[dict[str, list[Any]], str]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and (p.suffix in ROW_SUFFIXES or p.suffix in (f".{split}", ".txt")):
            if _stem(p) in found:
                raise CorpusError(f"{folder} holds two files for {_stem(p)!r}: {found[_stem(p)].name} and {p.name}; "
                                  "keep one of them")
            found[_stem(p)] = p
    if not found:
        raise CorpusError(f"no FLORES files in {folder}: expected {split}/fra_Latn.parquet (FLORES+), "
                          f".jsonl files, or fra_Latn.{split} text files (FLORES-200, one sentence per line)")
    kinds = {p.suffix in ROW_SUFFIXES for p in found.values()}
    if len(kinds) > 1:
        raise CorpusError(f"{folder} mixes row files (.parquet/.jsonl) and line files; their ids do not align. "
                          "Load one kind of file")
    files = choose(found, languages, conventions)
    if kinds == {True}:
        pivot: dict[str, dict[str, str]] = {}
        for stem, p in files.items():
            add_long_rows(pivot, file_rows(p), str(p), fallback=stem)
        return pivot_table(pivot, str(folder)), str(folder)
    texts = {stem: _lines(p) for stem, p in files.items()}
    sizes = {stem: len(t) for stem, t in texts.items()}
    if len(set(sizes.values())) > 1:
        raise CorpusError(f"the FLORES line files of {folder} have different numbers of lines "
                          f"({', '.join(f'{k}: {v}' for k, v in sizes.items())}); line k must be sentence k in every file")
    n = next(iter(sizes.values()))
    if n == 0:
        raise CorpusError(f"the FLORES line files of {folder} are empty")
    order = [str(k) for k in range(1, n + 1)]  # 1-based, as the FLORES-200 files number their lines
    return table_of(order, {stem: dict(zip(order, t)) for stem, t in texts.items()}), str(folder)


# ---------------------------------------------------------------------- Bible verse files
def verse_file(path: Path) -> dict[str, str]:
    """``{verse id: text}`` of a ``VERSE_ID<TAB>text`` file (``#`` lines are comments; an id without
    text is a missing verse)."""
    verses: dict[str, str] = {}
    first: dict[str, int] = {}
    bad = []
    for ln, line in enumerate(_lines(path), 1):
        if not line.strip() or line.startswith("#"):
            continue
        vid, _, text = line.partition("\t")
        vid = vid.strip()
        if not vid or (not _ and not vid.isdigit()):
            bad.append(ln)
            continue
        if vid in first:
            raise CorpusError(f"{path}: verse {vid!r} appears twice (lines {first[vid]} and {ln}); keep one of them")
        first[vid] = ln
        verses[vid] = text
    if bad:
        raise CorpusError(f"{path}: lines {', '.join(map(str, bad[:10]))} are not 'VERSE_ID<TAB>text'"
                          + (f" ({len(bad)} such lines)" if len(bad) > 10 else ""))
    if not verses:
        raise CorpusError(f"{path} has no verses")
    return verses


def bible_table(source: str | Path | Iterable[str | Path], languages: Iterable[str] | None,
                conventions: str | None) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Verse files (a folder of ``*.txt`` or a list of files), one translation per language."""
    if isinstance(source, (str, Path)):
        root = _path(source, "Bible folder or file")
        paths = sorted(p for p in root.glob("*.txt") if p.is_file()) if root.is_dir() else [root]
        if not paths:
            raise CorpusError(f"no Bible files (*.txt, lines 'VERSE_ID<TAB>text') in {root}")
    else:
        paths = [_path(p, "Bible file") for p in source]
        if not paths:
            raise CorpusError("no Bible files given")
    by_lang: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for p in paths:
        lang = p.name[:3]
        if lang in by_lang:
            skipped[p.name] = f"another {lang} translation, {by_lang[lang].name}, comes first"
        else:
            by_lang[lang] = p
    chosen = choose(by_lang, languages, conventions)
    if skipped:
        skipped = {k: v for k, v in skipped.items() if k[:3] in chosen}
    if skipped:
        warnings.warn(f"kept the first translation of each language; skipped {len(skipped)}: {', '.join(skipped)}. "
                      "Pass the files you want to from_bible([...]) to choose", stacklevel=4)
    maps = {lang: verse_file(p) for lang, p in chosen.items()}
    ids: dict[str, None] = {}
    for m in maps.values():
        ids.update(dict.fromkeys(m))
    order = sorted(ids, key=int) if all(i.isdigit() for i in ids) else list(ids)
    meta = {"source": str(paths[0].parent), "files": {lang: str(p) for lang, p in chosen.items()}, "skipped": skipped}
    return table_of(order, maps), meta


# ---------------------------------------------------------------------- Tatoeba
_LASER = re.compile(r"^(?P<pre>.*tatoeba\.(?P<a>[^.-]+)-(?P<b>[^.]+))(?:\.(?P<side>[^.]+))?$")


def _same(a: str, b: str) -> bool:
    try:
        return normalize_code(a) == normalize_code(b)
    except LanguageCodeError:
        return a.strip().lower() == b.strip().lower()


def tatoeba_table(path: str | Path, source: str | None, target: str | None) -> tuple[dict[str, list[Any]], str]:
    """Pairs from a Tatoeba export folder (``sentences.csv`` + ``links.csv``), a TSV of pairs
    (``src<TAB>tgt``, or ``srclang<TAB>tgtlang<TAB>src<TAB>tgt`` as in the Tatoeba Challenge), or
    the two line files of a LASER pair (``tatoeba.fra-eng.fra`` + ``tatoeba.fra-eng.eng``)."""
    p = Path(path).expanduser()
    m = _LASER.match(p.name)
    if p.is_dir():
        return _tatoeba_export(p, source, target), str(p)
    if m and (m.group("side") in (m.group("a"), m.group("b")) or (m.group("side") is None and not p.is_file())):
        pre = p.parent / m.group("pre")
        a, b = m.group("a"), m.group("b")
        fa, fb = Path(f"{pre}.{a}"), Path(f"{pre}.{b}")
        for f in (fa, fb):
            if not f.is_file():
                raise CorpusError(f"Tatoeba (LASER) file not found: {f}; a pair is {fa.name} + {fb.name}")
        la, lb = _lines(fa), _lines(fb)
        if len(la) != len(lb):
            raise CorpusError(f"{fa.name} has {len(la)} lines but {fb.name} has {len(lb)}; line k must pair with line k")
        order = [str(k) for k in range(1, len(la) + 1)]
        return table_of(order, {a: dict(zip(order, la)), b: dict(zip(order, lb))}), str(pre)
    p = _path(p, "Tatoeba file")
    rows = [(ln, line.split("\t")) for ln, line in enumerate(_lines(p), 1) if line.strip()]
    if not rows:
        raise CorpusError(f"{p} has no sentence pairs")
    widths = {len(r) for _, r in rows}
    if widths == {2}:
        if not (source and target):
            raise CorpusError(f"{p} is a two-column TSV of pairs: pass source= and target= (its languages)")
        order = [str(ln) for ln, _ in rows]
        return table_of(order, {source: {str(ln): r[0] for ln, r in rows},
                                target: {str(ln): r[1] for ln, r in rows}}), str(p)
    if widths == {4}:
        pairs = {(r[0], r[1]) for _, r in rows}
        if source or target:
            keep = [(ln, r) for ln, r in rows if (not source or _same(r[0], source)) and (not target or _same(r[1], target))]
        else:
            keep = rows
        if len({(r[0], r[1]) for _, r in keep}) != 1:
            found = sorted(pairs) if not keep else sorted({(r[0], r[1]) for _, r in keep})
            raise CorpusError(f"{p}: {'no rows for' if not keep else 'several language pairs match'} "
                              f"source={source!r}, target={target!r}; the file holds "
                              f"{', '.join(f'{x}-{y}' for x, y in found)}. Pass source= and target= to pick one")
        src, tgt = keep[0][1][0], keep[0][1][1]
        order = [str(ln) for ln, _ in keep]
        return table_of(order, {src: {str(ln): r[2] for ln, r in keep}, tgt: {str(ln): r[3] for ln, r in keep}}), str(p)
    bad = [ln for ln, r in rows if len(r) != len(rows[0][1])] or [rows[0][0]]
    raise CorpusError(f"{p}: unknown Tatoeba layout: rows need 2 fields (src<TAB>tgt) or 4 (srclang<TAB>tgtlang<TAB>"
                      f"src<TAB>tgt) in every line; see lines {', '.join(map(str, bad[:10]))}")


def _tatoeba_export(folder: Path, source: str | None, target: str | None) -> dict[str, list[Any]]:
    sent_file, link_file = folder / "sentences.csv", folder / "links.csv"
    for f in (sent_file, link_file):
        if not f.is_file():
            raise CorpusError(f"Tatoeba export file not found: {f} (an export folder holds sentences.csv and links.csv)")
    if not (source and target):
        raise CorpusError("a Tatoeba export holds every language: pass source= and target= (e.g. 'fra', 'eng')")
    sents: dict[str, tuple[str, str]] = {}
    for ln, line in enumerate(_lines(sent_file), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise CorpusError(f"{sent_file} line {ln} is not 'id<TAB>lang<TAB>text'")
        sid, lang, text = parts[0], parts[1], "\t".join(parts[2:])
        if sid in sents:
            raise CorpusError(f"{sent_file}: sentence id {sid!r} appears twice (line {ln}); keep one of them")
        sents[sid] = (lang, text)
    langs = {lang for lang, _ in sents.values() if lang and lang != "\\N"}
    src = next((lg for lg in sorted(langs) if _same(lg, source)), None)
    tgt = next((lg for lg in sorted(langs) if _same(lg, target)), None)
    if src is None or tgt is None:
        raise CorpusError(f"{sent_file} has no sentences in {source if src is None else target!r}; it has: "
                          f"{', '.join(sorted(langs)[:30])}")
    order, a, b = [], {}, {}
    for ln, line in enumerate(_lines(link_file), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise CorpusError(f"{link_file} line {ln} is not 'id<TAB>id'")
        s, t = (x.strip() for x in parts)
        if sents.get(s, ("",))[0] == src and sents.get(t, ("",))[0] == tgt:
            pid = f"{s}-{t}"
            if pid in a:
                raise CorpusError(f"{link_file}: the link {s} -> {t} appears twice (line {ln}); keep one of them")
            order.append(pid)
            a[pid], b[pid] = sents[s][1], sents[t][1]
    if not order:
        raise CorpusError(f"{link_file} links no {src} sentence to a {tgt} sentence")
    return table_of(order, {src: a, tgt: b})
