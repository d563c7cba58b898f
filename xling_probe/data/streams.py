"""Reading Hugging Face datasets row by row: ``IterableDataset`` (streaming) and ``limit=``."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from ..errors import CorpusError
from .big_corpora import LANG_COLUMNS, add_long_rows, pivot_table, table_of
from .readers import hf_table


def stream_table(dataset: Any, id_column: str, text_column: str, limit: int | None) -> tuple[dict[str, list[Any]], str]:
    """A table from a ``Dataset``, an ``IterableDataset`` (streaming) or any iterable of row dicts,
    reading no more rows than needed: a wide stream stops after ``limit`` rows."""
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise CorpusError(f"limit must be a positive number of ids, got {limit!r}")
    sized = lambda ds: hasattr(ds, "column_names") and hasattr(ds, "__len__")  # a Dataset
    if limit is None and (sized(dataset) or isinstance(dataset, Mapping) and all(map(sized, dataset.values()))):
        return hf_table(dataset, id_column, text_column)
    if isinstance(dataset, Mapping):  # {language: dataset}, each read up to limit rows
        maps, order = {}, None
        for lang, ds in dataset.items():
            rows = list(itertools.islice(iter(ds), limit))
            if rows and text_column not in rows[0]:
                raise CorpusError(f"dataset for {lang!r} has no {text_column!r} column (columns: {list(rows[0])})")
            these = [str(r[id_column]) if id_column in r else str(k) for k, r in enumerate(rows)]
            if order is None:
                order = these
            elif these != order:
                raise CorpusError(f"dataset for {lang!r} is not aligned with the others (ids differ)")
            maps[str(lang)] = dict(zip(these, (r[text_column] for r in rows)))
        if not order:
            raise CorpusError("the datasets have no sentences (0 rows); a corpus needs at least one row of translations")
        return table_of(order, maps), "datasets (streamed)"
    rows = iter(dataset)
    first = next(rows, None)
    if first is None:
        raise CorpusError("the dataset has no sentences (0 rows); a corpus needs at least one row of translations")
    rows = itertools.chain([first], rows)
    if text_column in first and (any(c in first for c in LANG_COLUMNS) or "iso_639_3" in first):
        pivot: dict[str, dict[str, str]] = {}
        add_long_rows(pivot, rows, "the dataset", id_column=id_column, text_column=text_column, limit=limit)
        return pivot_table(pivot, "the dataset"), "datasets (long, streamed)"
    names = {}
    for c in first:
        name = c.removeprefix("sentence_")
        if name in names.values():
            raise CorpusError(f"the dataset has columns {name!r} and 'sentence_{name}'; keep one of them")
        names[c] = name
    order, maps = [], {n: {} for c, n in names.items() if c != id_column}
    for k, row in enumerate(itertools.islice(rows, limit)):
        sid = str(row[id_column]) if id_column in row else str(k)
        order.append(sid)
        for c, n in names.items():
            if c != id_column:
                maps[n].setdefault(sid, row.get(c))
    return table_of(order, maps), "datasets (streamed)"
